using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.X86.Cpuid;
using CR0 = Hypervisor.Core.Machine.Cpu.Cr0;
using CR4 = Hypervisor.Core.Machine.Cpu.Cr4;
using EFER = Hypervisor.Core.Machine.Cpu.Efer;

namespace Hypervisor.Core.X86;

/// <summary>
/// The common CR0/CR3/CR4/EFER policies (KVM's <c>kvm_set_cr0/3/4</c>, <c>kvm_valid_efer</c>).
/// Vendors never re-implement these checks; they only apply an accepted value to their control
/// structure through <see cref="IX86Ops"/>. A false return means "inject #GP(0)".
/// </summary>
public static class ControlRegisters
{
    /// <summary>Guest MAXPHYADDR: CPUID 0x80000008 EAX[7:0] of the guest table when present, else the host's.</summary>
    public static int GuestMaxPhysAddr(Vcpu v)
    {
        var e = v.Cpuid?.Entries.FirstOrDefault(x => x.Function == 0x80000008);
        int bits = e is { } entry && (entry.Eax & 0xFF) != 0 ? (int)(entry.Eax & 0xFF) : v.Vm.Kvm.Model.MaxPhysAddrBits;
        return Math.Min(bits, v.Vm.Kvm.Model.MaxPhysAddrBits);
    }

    /// <summary>MOV to CR3 (KVM-FACTS §3): PCID no-flush bit, same-value shortcut, reserved bits,
    /// PAE PDPTEs, then store (marking CR3 — and so ERAPS — dirty) and flush that PCID.</summary>
    public static bool SetCr3(Vcpu v, ulong cr3)
    {
        bool skipFlush = false;
        bool pcid = v.IsPcidEnabled;
        if (pcid)
        {
            skipFlush = (cr3 & Cr3Bits.NoFlush) != 0;
            cr3 &= ~Cr3Bits.NoFlush;
        }
        if (cr3 != v.Cr3 || v.IsPaePaging)
        {
            ulong reserved = v.IsLongMode ? ~((1UL << GuestMaxPhysAddr(v)) - 1) : 0xFFFF_FFFF_0000_0000UL;
            if ((cr3 & reserved) != 0)
                return false;
            if (v.IsPaePaging && !LoadPdptrs(v, cr3))
                return false;
            v.Regs.Write(VcpuReg.Cr3, cr3);
        }
        if (!skipFlush)
            InvalidatePcid(v, pcid ? (ushort)(cr3 & Cr3Bits.PcidMask) : (ushort)0);
        return true;
    }

    /// <summary>kvm_invalidate_pcid: the guest's TLB entries for a PCID. With nested paging the
    /// hypervisor's own tables are not affected; the guest flush request does it (and, on SVM,
    /// marks ERAPS dirty). Without it the CPU's entries for that PCID are dropped directly.</summary>
    public static void InvalidatePcid(Vcpu v, ushort pcid)
    {
        if (v.Vm.Options.NestedPaging)
            v.MakeRequest(VcpuRequest.TlbFlushGuest);
        else
            v.Cpu.FlushTlbPcid(pcid);
    }

    /// <summary>Loads and checks the four PAE PDPTEs from guest memory (SDM §4.4.1): a present
    /// entry with reserved bits set makes the load fail.</summary>
    public static bool LoadPdptrs(Vcpu v, ulong cr3)
    {
        Span<ulong> pdptrs = stackalloc ulong[4];
        if (!ReadPdptrs(v, cr3, pdptrs))
            return false;
        ulong reserved = ~((1UL << GuestMaxPhysAddr(v)) - 1) | 0x1E6;
        foreach (ulong e in pdptrs)
            if ((e & 1) != 0 && (e & reserved) != 0)
                return false;
        v.Regs.WritePdptrs(pdptrs);
        return true;
    }

    /// <summary>The four PDPTEs at CR3[31:5] as guest memory holds them; false when they are not in guest RAM.</summary>
    public static bool ReadPdptrs(Vcpu v, ulong cr3, Span<ulong> pdptrs)
    {
        ulong baseAddr = cr3 & 0xFFFF_FFE0;
        for (int i = 0; i < 4; i++)
        {
            ulong gpa = baseAddr + (ulong)i * 8;
            if (!v.Vm.IsGuestRam(gpa))
                return false;
            pdptrs[i] = v.Vm.Memory.ReadU64(gpa);
        }
        return true;
    }

    /// <summary>CR4 bits the guest may set: the architectural ones gated by the guest's caps.</summary>
    public static ulong GuestCr4Reserved(Vcpu v)
    {
        var caps = v.GuestCaps;
        ulong allowed = CR4.Vme | CR4.Pvi | CR4.Tsd | CR4.De | CR4.Pse | CR4.Pae | CR4.Mce | CR4.Pge | CR4.Pce | CR4.Osfxsr | CR4.Osxmmexcpt;
        if (caps.Has(CpuFeatures.Pcid)) allowed |= CR4.Pcide;
        if (caps.Has(CpuFeatures.Xsave)) allowed |= CR4.Osxsave;
        if (caps.Has(CpuFeatures.Smep)) allowed |= CR4.Smep;
        if (caps.Has(CpuFeatures.Smap)) allowed |= CR4.Smap;
        if (caps.Has(CpuFeatures.Fsgsbase)) allowed |= CR4.Fsgsbase;
        return ~allowed;
    }

    public static bool IsValidCr4(Vcpu v, ulong cr4) => (cr4 & GuestCr4Reserved(v)) == 0 && v.Ops.IsValidCr4(v, cr4);

    /// <summary>kvm_valid_efer: only bits whose feature the guest has.</summary>
    public static bool IsValidEfer(Vcpu v, ulong efer)
    {
        var caps = v.GuestCaps;
        ulong allowed = 0;
        if (caps.Has(CpuFeatures.Syscall)) allowed |= EFER.Sce;
        if (caps.Has(CpuFeatures.Lm)) allowed |= EFER.Lme | EFER.Lma;
        if (caps.Has(CpuFeatures.Nx)) allowed |= EFER.Nxe;
        if (caps.Has(CpuFeatures.Svm)) allowed |= EFER.Svme;
        return (efer & ~allowed) == 0;
    }

    /// <summary>kvm_is_valid_sregs: the combination must be one the CPU could be in.
    /// Returns why not, or null.</summary>
    public static string? CheckSregs(Vcpu v, in KvmSregs s)
    {
        if ((s.Efer & EFER.Lme) != 0 && (s.Cr0 & CR0.Pg) != 0)
        {
            if ((s.Cr4 & CR4.Pae) == 0) return "EFER.LME with CR0.PG requires CR4.PAE";
            if ((s.Efer & EFER.Lma) == 0) return "EFER.LME with CR0.PG requires EFER.LMA";
        }
        else if ((s.Efer & EFER.Lma) != 0)
        {
            return "EFER.LMA without EFER.LME and CR0.PG";
        }
        if ((s.Cr0 & CR0.Pg) != 0 && (s.Cr0 & CR0.Pe) == 0) return "CR0.PG without CR0.PE";
        if ((s.Cr0 & CR0.Nw) != 0 && (s.Cr0 & CR0.Cd) == 0) return "CR0.NW without CR0.CD";
        if ((s.Cr0 >> 32) != 0) return $"CR0 reserved bits 0x{s.Cr0 & ~0xFFFF_FFFFUL:x}";
        if (!IsValidCr4(v, s.Cr4)) return $"CR4 0x{s.Cr4:x} has bits the guest's CPUID does not allow (0x{s.Cr4 & GuestCr4Reserved(v):x})";
        if (v.Cpuid != null && !IsValidEfer(v, s.Efer)) return $"EFER 0x{s.Efer:x} has bits the guest's CPUID does not allow";
        return null;
    }
}
