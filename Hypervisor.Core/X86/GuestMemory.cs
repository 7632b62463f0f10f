using Hypervisor.Core.Machine.Cpu;

namespace Hypervisor.Core.X86;

/// <summary>Why reading guest virtual memory failed: the #PF to inject.</summary>
public readonly record struct GuestPageFault(ulong Address, uint ErrorCode);

/// <summary>
/// Reads guest virtual memory the way KVM's emulator does (<c>kvm_read_guest_virt</c>): a software
/// walk of the guest's page tables with the guest's CR0/CR3/CR4/EFER, as a supervisor data read.
/// Used to read INVPCID descriptors and similar operands of intercepted instructions.
/// </summary>
public static class GuestMemory
{
    /// <summary>Writes guest virtual memory as the guest at its CPL would (R/W and U/S checked, CR0.WP
    /// for supervisor writes); nothing is written unless every byte can be.</summary>
    public static bool TryWrite(Vcpu v, ulong gva, ReadOnlySpan<byte> source, out GuestPageFault fault)
    {
        bool user = v.Ops.GetCpl(v) == 3;
        Span<ulong> gpas = stackalloc ulong[2];
        int pages = 0;
        for (ulong addr = gva; addr < gva + (ulong)source.Length; addr = (addr & ~0xFFFUL) + 0x1000)
        {
            if (!TryTranslate(v, addr, write: true, user, out ulong gpa, out fault))
                return false;
            if (!v.Vm.IsGuestRam(gpa))
            {
                fault = new GuestPageFault(addr, 0);
                return false;
            }
            gpas[pages++] = gpa;
        }
        fault = default;
        int done = 0;
        for (int p = 0; p < pages; p++)
        {
            ulong addr = gva + (ulong)done;
            int n = (int)Math.Min((ulong)(source.Length - done), 0x1000 - (addr & 0xFFF));
            v.Vm.Memory.Write(gpas[p], source.Slice(done, n));
            done += n;
        }
        return true;
    }

    public static bool TryRead(Vcpu v, ulong gva, Span<byte> destination, out GuestPageFault fault)
    {
        fault = default;
        int done = 0;
        while (done < destination.Length)
        {
            ulong addr = gva + (ulong)done;
            if (!TryTranslate(v, addr, out ulong gpa, out fault))
                return false;
            int n = (int)Math.Min((ulong)(destination.Length - done), 0x1000 - (addr & 0xFFF));
            if (!v.Vm.IsGuestRam(gpa) || !v.Vm.IsGuestRam(gpa + (ulong)n - 1))
            {
                fault = new GuestPageFault(addr, 0);
                return false;
            }
            v.Vm.Memory.Read(gpa, destination.Slice(done, n));
            done += n;
        }
        return true;
    }

    /// <summary>Guest linear → guest physical for a supervisor read; on failure the #PF (present bit
    /// and RSVD in the error code as the hardware would set them).</summary>
    public static bool TryTranslate(Vcpu v, ulong gva, out ulong gpa, out GuestPageFault fault) =>
        TryTranslate(v, gva, write: false, user: false, out gpa, out fault);

    /// <summary>Guest linear → guest physical for a data access with the guest's permission rules
    /// (R/W and U/S at every level, CR0.WP for supervisor writes); the #PF error code on failure.</summary>
    public static bool TryTranslate(Vcpu v, ulong gva, bool write, bool user, out ulong gpa, out GuestPageFault fault)
    {
        if (!TryWalk(v, gva, out gpa, out fault, out bool writable, out bool userOk))
            return false;
        uint err = 1u | (write ? 2u : 0) | (user ? 4u : 0);
        if ((user && !userOk) || (write && !writable && (user || (v.Cr0 & Cr0.Wp) != 0)))
        {
            fault = new GuestPageFault(gva, err);
            return false;
        }
        return true;
    }

    private static bool TryWalk(Vcpu v, ulong gva, out ulong gpa, out GuestPageFault fault, out bool writable, out bool userOk)
    {
        writable = userOk = true;
        fault = default;
        gpa = gva;
        if (!v.IsPaging)
        {
            gpa = v.IsLongMode ? gva : (uint)gva;
            return true;
        }
        var mem = v.Vm.Memory;
        ulong physMask = ((1UL << ControlRegisters.GuestMaxPhysAddr(v)) - 1) & ~0xFFFUL;
        bool nxe = (v.Efer & Efer.Nxe) != 0;
        ulong ReadEntry(ulong addr, bool wide) => !v.Vm.IsGuestRam(addr) ? 0 : wide ? mem.ReadU64(addr) : mem.ReadU32(addr);

        if (v.IsLongMode || v.IsPaePaging)
        {
            int levels;
            ulong table;
            int shift;
            if (v.IsLongMode)
            {
                levels = 4;
                table = v.Cr3 & physMask;
                shift = 39;
            }
            else
            {
                ulong pdpte = v.Regs.ReadPdptr((int)((gva >> 30) & 3));
                if ((pdpte & 1) == 0) { fault = new GuestPageFault(gva, 0); return false; }
                levels = 2;
                table = pdpte & physMask;
                shift = 21;
            }
            for (int level = levels; level >= 1; level--, shift -= 9)
            {
                ulong e = ReadEntry(table + ((gva >> shift) & 511) * 8, wide: true);
                if ((e & 1) == 0) { fault = new GuestPageFault(gva, 0); return false; }
                ulong reserved = (e & ~physMask & 0x000F_FFFF_FFFF_F000UL) | (nxe ? 0 : e & (1UL << 63));
                if (reserved != 0) { fault = new GuestPageFault(gva, 1 | 8); return false; }
                writable &= (e & 2) != 0;
                userOk &= (e & 4) != 0;
                bool leaf = level == 1 || ((e & 0x80) != 0 && level <= 3);
                if (leaf)
                {
                    ulong size = 1UL << shift;
                    gpa = (e & physMask & ~(size - 1)) | (gva & (size - 1));
                    return true;
                }
                table = e & physMask;
            }
            return false;
        }
        ulong pde = ReadEntry((v.Cr3 & 0xFFFF_F000) + ((gva >> 22) & 1023) * 4, wide: false);
        if ((pde & 1) == 0) { fault = new GuestPageFault(gva, 0); return false; }
        writable &= (pde & 2) != 0;
        userOk &= (pde & 4) != 0;
        if ((pde & 0x80) != 0 && (v.Cr4 & Cr4.Pse) != 0)
        {
            gpa = (pde & 0xFFC0_0000) | (((pde >> 13) & 0xFF) << 32) | (gva & 0x3F_FFFF);
            return true;
        }
        ulong pte = ReadEntry((pde & 0xFFFF_F000) + ((gva >> 12) & 1023) * 4, wide: false);
        if ((pte & 1) == 0) { fault = new GuestPageFault(gva, 0); return false; }
        writable &= (pte & 2) != 0;
        userOk &= (pte & 4) != 0;
        gpa = (pte & 0xFFFF_F000) | (gva & 0xFFF);
        return true;
    }
}
