namespace Hypervisor.Core.Machine.Cpu;

/// <summary>MOV to CR0/CR3/CR4/CR8 and EFER writes with their checks (SDM vol. 3 §2.5, §4.10.4)
/// on the bare machine. Each returns false when the write must raise #GP(0); nothing changed then.</summary>
public sealed unsafe partial class X86Cpu
{
    public bool WriteCr0(ulong value)
    {
        if ((value >> 32) != 0)
            return false;
        // ET is hard-wired to 1 since the 486; writes to the other reserved bits of CR0[31:0] are ignored.
        value = (value | Cpu.Cr0.Et) & ~Cpu.Cr0.Reserved;
        if ((value & Cpu.Cr0.Pg) != 0 && (value & Cpu.Cr0.Pe) == 0)
            return false;
        if ((value & Cpu.Cr0.Nw) != 0 && (value & Cpu.Cr0.Cd) == 0)
            return false;
        ulong old = Cr0;
        bool enablingPg = (old & Cpu.Cr0.Pg) == 0 && (value & Cpu.Cr0.Pg) != 0;
        bool disablingPg = (old & Cpu.Cr0.Pg) != 0 && (value & Cpu.Cr0.Pg) == 0;
        ulong efer = Efer;
        if (enablingPg && (Efer & Cpu.Efer.Lme) != 0)
        {
            // Activating IA-32e mode needs PAE and must not happen from a 64-bit code segment (SDM §10.8.5).
            if ((Cr4 & Cpu.Cr4.Pae) == 0 || Segs[SegReg.Cs].Long)
                return false;
            efer |= Cpu.Efer.Lma;
        }
        if (disablingPg)
        {
            // Leaving 64-bit mode goes through compatibility mode; with PCIDE set paging stays on.
            if (CodeBits == 64 || (Cr4 & Cpu.Cr4.Pcide) != 0)
                return false;
            efer &= ~Cpu.Efer.Lma;
        }
        // SDM §4.4.1: with PAE paging in use afterwards, a write changing PG, CD or NW loads the PDPTEs.
        bool paeAfter = (value & Cpu.Cr0.Pg) != 0 && (Cr4 & Cpu.Cr4.Pae) != 0 && (efer & Cpu.Efer.Lma) == 0;
        if (paeAfter && ((old ^ value) & (Cpu.Cr0.Pg | Cpu.Cr0.Cd | Cpu.Cr0.Nw)) != 0 && !LoadPdptes(Cr3))
            return false;
        Cr0 = value;
        Efer = efer;
        if (((old ^ value) & (Cpu.Cr0.Pg | Cpu.Cr0.Pe)) != 0)
            FlushTlbAll();
        ModeChanged(); // WP and mode changes invalidate the fast paths
        return true;
    }

    /// <summary>Bits of CR4 this CPU lets software set: each needs the feature CPUID enumerates
    /// for it, so the model's CPUID and CR4 always agree.</summary>
    public ulong Cr4Supported => _cr4Supported ??= ComputeCr4Supported();
    private ulong? _cr4Supported;

    private ulong ComputeCr4Supported()
    {
        {
            ulong s = Cpu.Cr4.Pce;
            if (Model.HasFeature(1, 0, 'd', 1)) s |= Cpu.Cr4.Vme | Cpu.Cr4.Pvi;
            if (Model.HasFeature(1, 0, 'd', 2)) s |= Cpu.Cr4.De;
            if (Model.HasFeature(1, 0, 'd', 3)) s |= Cpu.Cr4.Pse;
            if (Model.HasFeature(1, 0, 'd', 4)) s |= Cpu.Cr4.Tsd;
            if (Model.HasFeature(1, 0, 'd', 6)) s |= Cpu.Cr4.Pae;
            if (Model.HasFeature(1, 0, 'd', 7)) s |= Cpu.Cr4.Mce;
            if (Model.HasFeature(1, 0, 'd', 13)) s |= Cpu.Cr4.Pge;
            if (Model.HasFeature(1, 0, 'd', 24)) s |= Cpu.Cr4.Osfxsr;
            if (Model.HasFeature(1, 0, 'd', 25)) s |= Cpu.Cr4.Osxmmexcpt;
            if (Model.HasFeature(1, 0, 'c', 17)) s |= Cpu.Cr4.Pcide;
            if (Model.HasFeature(1, 0, 'c', 26)) s |= Cpu.Cr4.Osxsave;
            if (Model.HasFeature(7, 0, 'b', 0)) s |= Cpu.Cr4.Fsgsbase;
            if (Model.HasFeature(7, 0, 'b', 7)) s |= Cpu.Cr4.Smep;
            if (Model.HasFeature(7, 0, 'b', 20)) s |= Cpu.Cr4.Smap;
            if (Model.HasFeature(7, 0, 'c', 2)) s |= Cpu.Cr4.Umip;
            if (Model.HasFeature(1, 0, 'c', 5)) s |= Cpu.Cr4.Vmxe; // VMX enumerated: VMXE may be set (SDM §24.7)
            return s;
        }
    }

    public bool WriteCr4(ulong value)
    {
        if ((value & ~Cr4Supported) != 0)
            return false;
        ulong old = Cr4;
        if (IsLongMode && (value & Cpu.Cr4.Pae) == 0)
            return false;
        // PCIDE can be set only in IA-32e mode with CR3[11:0] = 0 (SDM §4.10.1).
        if ((value & Cpu.Cr4.Pcide) != 0 && (old & Cpu.Cr4.Pcide) == 0 && (!IsLongMode || (Cr3 & Cr3Bits.PcidMask) != 0))
            return false;
        // SDM §4.4.1: PAE paging in use afterwards and PAE, PGE, PSE or SMEP changing reloads the PDPTEs.
        if (IsPaging && !IsLongMode && (value & Cpu.Cr4.Pae) != 0 && ((old ^ value) & (Cpu.Cr4.Pae | Cpu.Cr4.Pge | Cpu.Cr4.Pse | Cpu.Cr4.Smep)) != 0 && !LoadPdptes(Cr3))
            return false;
        Cr4 = value;
        ulong changed = old ^ value;
        // SDM §4.10.4.1: changing PGE or clearing PCIDE flushes everything, globals included;
        // changing PAE or setting SMEP flushes the current PCID. PSE and SMAP changes flush too (the
        // TLB may always drop more, and its entries were filled under the old rules).
        if ((changed & Cpu.Cr4.Pge) != 0 || ((old & Cpu.Cr4.Pcide) != 0 && (value & Cpu.Cr4.Pcide) == 0))
            FlushTlbAll();
        else if ((changed & (Cpu.Cr4.Pae | Cpu.Cr4.Pse | Cpu.Cr4.Smap)) != 0 || (value & ~old & Cpu.Cr4.Smep) != 0)
            FlushTlbPcid(CurrentPcid);
        else
            FlushFastTlb();
        return true;
    }

    /// <summary>MOV to CR3 on the bare machine (SDM §4.10.4.1): with PCIDE, bit 63 suppresses the flush.</summary>
    public bool WriteCr3(ulong value)
    {
        bool noFlush = false;
        if ((Cr4 & Cpu.Cr4.Pcide) != 0)
        {
            noFlush = (value & Cr3Bits.NoFlush) != 0;
            value &= ~Cr3Bits.NoFlush;
        }
        // Bits at and above MAXPHYADDR are reserved in IA-32e mode; outside it CR3 is 32 bits wide.
        if (IsLongMode ? (value & ~((1UL << Model.MaxPhysAddrBits) - 1)) != 0 : (value >> 32) != 0)
            return false;
        if (IsPaePaging && !LoadPdptes(value))
            return false;
        Cr3 = value;
        if (!noFlush)
            Tlb.FlushPcid(CurrentPcid);
        FlushFastTlb();
        ClearRapOnTlbInvalidation(); // ERAPS: every MOV CR3 clears the RAP, with or without a flush
        return true;
    }

    /// <summary>EFER bits this CPU implements (each enumerated in CPUID 80000001h EDX).</summary>
    public ulong EferSupported => _eferSupported ??= ComputeEferSupported();
    private ulong? _eferSupported;

    private ulong ComputeEferSupported()
    {
        {
            ulong s = 0;
            if (Model.HasFeature(0x80000001, 0, 'd', 11)) s |= Cpu.Efer.Sce;
            if (Model.HasFeature(0x80000001, 0, 'd', 29)) s |= Cpu.Efer.Lme | Cpu.Efer.Lma;
            if (Model.HasFeature(0x80000001, 0, 'd', 20)) s |= Cpu.Efer.Nxe;
            if (Model.HasFeature(0x80000001, 0, 'c', 2)) s |= Cpu.Efer.Svme;
            return s;
        }
    }

    public bool WriteEfer(ulong value)
    {
        if ((value & ~EferSupported) != 0)
            return false;
        // LME cannot change while paging is on; LMA is read-only (kept as the CPU set it).
        if (IsPaging && ((value ^ Efer) & Cpu.Efer.Lme) != 0)
            return false;
        value = (value & ~Cpu.Efer.Lma) | (Efer & Cpu.Efer.Lma);
        bool nxChanged = ((value ^ Efer) & Cpu.Efer.Nxe) != 0;
        Efer = value;
        if (nxChanged)
            FlushTlbAll();
        return true;
    }
}
