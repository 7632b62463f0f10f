namespace Hypervisor.Core.Machine.Cpu;

/// <summary>MOV to CR0/CR3/CR4/CR8 and EFER writes with their checks (SDM vol. 3 §2.5, §4.10.4)
/// on the bare machine. Each returns false when the write must raise #GP(0); nothing changed then.</summary>
public sealed unsafe partial class X86Cpu
{
    public bool WriteCr0(ulong value)
    {
        if ((value >> 32) != 0)
            return false;
        value |= Cpu.Cr0.Et; // ET is hard-wired to 1 on every processor since the 486
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
            // Activating IA-32e mode needs PAE and must not happen from a 64-bit code segment.
            if ((Cr4 & Cpu.Cr4.Pae) == 0 || Segs[SegReg.Cs].Long)
                return false;
            efer |= Cpu.Efer.Lma;
        }
        if (disablingPg && IsLongMode)
        {
            if (CodeBits == 64)
                return false; // must leave 64-bit mode through compatibility mode first
            efer &= ~Cpu.Efer.Lma;
        }
        if (enablingPg && (efer & Cpu.Efer.Lma) == 0 && (Cr4 & Cpu.Cr4.Pae) != 0 && !LoadPdptes(Cr3))
            return false;
        if ((value & Cpu.Cr0.Pg) != 0 && (Cr4 & Cpu.Cr4.Pcide) != 0 && (efer & Cpu.Efer.Lma) == 0)
            return false;
        Cr0 = value;
        Efer = efer;
        if (((old ^ value) & (Cpu.Cr0.Pg | Cpu.Cr0.Pe)) != 0)
            FlushTlbAll();
        ModeChanged(); // WP and mode changes invalidate the fast paths
        return true;
    }

    /// <summary>Bits of CR4 this CPU lets software set.</summary>
    public ulong Cr4Supported
    {
        get
        {
            ulong s = Cpu.Cr4.Vme | Cpu.Cr4.Pvi | Cpu.Cr4.Tsd | Cpu.Cr4.De | Cpu.Cr4.Pse | Cpu.Cr4.Pae | Cpu.Cr4.Mce | Cpu.Cr4.Pge | Cpu.Cr4.Pce;
            if (Model.HasFeature(1, 0, 'c', 17)) s |= Cpu.Cr4.Pcide;
            if (Model.HasFeature(1, 0, 'c', 26)) s |= Cpu.Cr4.Osxsave;
            if (Model.HasFeature(7, 0, 'b', 7)) s |= Cpu.Cr4.Smep;
            if (Model.HasFeature(7, 0, 'b', 20)) s |= Cpu.Cr4.Smap;
            if (Model.HasFeature(7, 0, 'b', 0)) s |= Cpu.Cr4.Fsgsbase;
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
        if ((value & Cpu.Cr4.Pcide) != 0 && (old & Cpu.Cr4.Pcide) == 0 && (!IsLongMode || (Cr3 & Cr3Bits.PcidMask) != 0))
            return false;
        if (IsPaging && !IsLongMode && (value & Cpu.Cr4.Pae) != 0 && ((old ^ value) & (Cpu.Cr4.Pae | Cpu.Cr4.Pge | Cpu.Cr4.Pse | Cpu.Cr4.Smep)) != 0 && !LoadPdptes(Cr3))
            return false;
        Cr4 = value;
        ulong changed = old ^ value;
        // SDM §4.10.4.1: changing PGE, or clearing PCIDE, flushes everything; other paging bits too.
        if ((changed & (Cpu.Cr4.Pge | Cpu.Cr4.Pae | Cpu.Cr4.Pse | Cpu.Cr4.Smep | Cpu.Cr4.Smap)) != 0
            || ((old & Cpu.Cr4.Pcide) != 0 && (value & Cpu.Cr4.Pcide) == 0))
            FlushTlbAll();
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
        if (IsLongMode ? (value & ~((1UL << Model.MaxPhysAddrBits) - 1)) != 0 : (value >> 32) != 0)
            return false;
        if (IsPaePaging && !LoadPdptes(value))
            return false;
        Cr3 = value;
        if (!noFlush)
            Tlb.FlushPcid(CurrentPcid);
        FlushFastTlb();
        return true;
    }

    public bool WriteEfer(ulong value)
    {
        ulong allowed = Cpu.Efer.Sce | Cpu.Efer.Lme | Cpu.Efer.Lma | Cpu.Efer.Nxe;
        if ((value & ~allowed) != 0)
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
