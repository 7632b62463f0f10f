namespace Hypervisor.Core.Machine.Cpu;

/// <summary>Descriptor tables and segment loads with the architectural checks (SDM vol. 3 ch. 3 and 5).</summary>
public sealed unsafe partial class X86Cpu
{
    /// <summary>Reads the 8-byte descriptor a selector names from the GDT or LDT. On a limit
    /// violation raises #GP(selector) (or <paramref name="faultVector"/>) and returns false.</summary>
    internal bool ReadDescriptor(ushort selector, out ulong descriptor, int faultVector = Vector.GP)
    {
        descriptor = 0;
        ulong index = (ulong)(selector & ~7);
        ulong tableBase;
        uint limit;
        if ((selector & 4) != 0)
        {
            ref var ldt = ref Segs[SegReg.Ldtr];
            if (!ldt.Present || (ldt.Selector & ~3) == 0)
            {
                RaiseFault(faultVector, (uint)(selector & ~3));
                return false;
            }
            tableBase = ldt.Base;
            limit = ldt.Limit;
        }
        else
        {
            tableBase = Gdtr.Base;
            limit = Gdtr.Limit;
        }
        if (index + 7 > limit)
        {
            RaiseFault(faultVector, (uint)(selector & ~3));
            return false;
        }
        descriptor = ReadSystem(tableBase + index, 8);
        return !_abort;
    }

    /// <summary>Sets the accessed bit of a code/data descriptor in memory, as the CPU does on load.</summary>
    internal void SetDescriptorAccessed(ushort selector, ulong descriptor)
    {
        if ((descriptor & (1UL << 40)) != 0)
            return;
        ulong tableBase = (selector & 4) != 0 ? Segs[SegReg.Ldtr].Base : Gdtr.Base;
        WriteSystem(tableBase + (ulong)(selector & ~7) + 5, 1, ((descriptor >> 40) & 0xFF) | 1);
    }

    /// <summary>The hidden part a descriptor produces.</summary>
    internal static Segment SegmentFromDescriptor(ushort selector, ulong d)
    {
        uint limit = (uint)((d & 0xFFFF) | ((d >> 32) & 0xF0000));
        if ((d & (1UL << 55)) != 0)
            limit = (limit << 12) | 0xFFF;
        return new Segment
        {
            Selector = selector,
            Base = ((d >> 16) & 0xFFFFFF) | (((d >> 56) & 0xFF) << 24),
            Limit = limit,
            // type/S/DPL/P from bits 47:40, AVL/L/DB/G from bits 55:52.
            Attributes = (ushort)(((d >> 40) & 0xFF) | (((d >> 52) & 0xF) << 12)),
        };
    }

    /// <summary>MOV/POP to a data segment register or SS, LDS-family loads (SDM vol. 2 "MOV—Move",
    /// operation for segment loads). Returns false when a fault was raised; nothing changed then.</summary>
    internal bool LoadDataSegment(int seg, ushort selector)
    {
        if (!IsProtectedMode || IsV86Mode)
        {
            ref var s = ref Segs[seg];
            s.Selector = selector;
            s.Base = (ulong)selector << 4;
            if (IsV86Mode)
            {
                s.Limit = 0xFFFF;
                s.Attributes = 0xF3;
            }
            SegmentChanged(seg);
            return true;
        }
        int rpl = selector & 3;
        if ((selector & ~3) == 0)
        {
            if (seg == SegReg.Ss && !(CodeBits == 64 && Cpl != 3 && rpl == Cpl))
            {
                RaiseGp0();
                return false;
            }
            // A null selector loads an unusable segment: any access through it faults.
            Segs[seg] = new Segment { Selector = selector, Attributes = seg == SegReg.Ss ? (ushort)((Cpl << 5) | 0x93 & ~0x80) : (ushort)0 };
            SegmentChanged(seg);
            return true;
        }
        if (!ReadDescriptor(selector, out ulong d))
            return false;
        var ns = SegmentFromDescriptor(selector, d);
        uint err = (uint)(selector & ~3);
        if (seg == SegReg.Ss)
        {
            // SS: a writable data segment with RPL = DPL = CPL.
            if (rpl != Cpl || ns.IsSystem || ns.IsCode || (ns.Type & 2) == 0 || ns.Dpl != Cpl)
            {
                RaiseFault(Vector.GP, err);
                return false;
            }
            if (!ns.Present)
            {
                RaiseFault(Vector.SS, err);
                return false;
            }
        }
        else
        {
            // Data or readable code; privilege checked unless conforming code.
            if (ns.IsSystem || (ns.IsCode && (ns.Type & 2) == 0))
            {
                RaiseFault(Vector.GP, err);
                return false;
            }
            bool conformingCode = ns.IsCode && (ns.Type & 4) != 0;
            if (!conformingCode && (rpl > ns.Dpl || Cpl > ns.Dpl))
            {
                RaiseFault(Vector.GP, err);
                return false;
            }
            if (!ns.Present)
            {
                RaiseFault(Vector.NP, err);
                return false;
            }
        }
        SetDescriptorAccessed(selector, d);
        if (_abort) return false;
        ns.Attributes |= 1; // accessed
        Segs[seg] = ns;
        SegmentChanged(seg);
        return true;
    }

    /// <summary>Recomputes derived state after a segment register changed.</summary>
    internal void SegmentChanged(int seg)
    {
        if (seg == SegReg.Cs || seg == SegReg.Ss)
            ModeChanged();
        else
            UpdateSegmentFastPaths();
    }

    /// <summary>Loads CS for a far transfer to a code segment whose checks the caller made;
    /// sets CPL and the mode derived from CS.</summary>
    internal void SetCodeSegment(Segment cs, int cpl)
    {
        Segs[SegReg.Cs] = cs;
        Cpl = cpl;
        ModeChanged();
    }

    /// <summary>Reads the inner stack pointer for privilege level <paramref name="dpl"/> from the TSS
    /// (32-bit TSS: ESP at 4 + 8*dpl, SS at 8 + 8*dpl; 64-bit TSS: RSP at 4 + 8*dpl).</summary>
    internal bool ReadTssStack(int dpl, out ushort ss, out ulong sp)
    {
        ss = 0;
        sp = 0;
        ref var tr = ref Segs[SegReg.Tr];
        uint err = (uint)(tr.Selector & ~3);
        if (IsLongMode)
        {
            ulong off = 4 + 8 * (ulong)dpl;
            if (off + 7 > tr.Limit)
            {
                RaiseFault(Vector.TS, err);
                return false;
            }
            sp = ReadSystem(tr.Base + off, 8);
            return !_abort;
        }
        bool tss32 = (tr.Type & 8) != 0;
        ulong o = tss32 ? 4 + 8 * (ulong)dpl : 2 + 4 * (ulong)dpl;
        if (o + (tss32 ? 5UL : 3UL) > tr.Limit)
        {
            RaiseFault(Vector.TS, err);
            return false;
        }
        sp = ReadSystem(tr.Base + o, tss32 ? 4 : 2);
        ss = (ushort)ReadSystem(tr.Base + o + (tss32 ? 4UL : 2UL), 2);
        return !_abort;
    }

    /// <summary>Reads IST entry <paramref name="ist"/> (1..7) of the 64-bit TSS.</summary>
    internal bool ReadTssIst(int ist, out ulong sp)
    {
        sp = 0;
        ref var tr = ref Segs[SegReg.Tr];
        ulong off = 0x24 + 8 * (ulong)(ist - 1);
        if (off + 7 > tr.Limit)
        {
            RaiseFault(Vector.TS, (uint)(tr.Selector & ~3));
            return false;
        }
        sp = ReadSystem(tr.Base + off, 8);
        return !_abort;
    }
}

public sealed unsafe partial class X86Cpu
{
    /// <summary>After a return to an outer privilege level, data segments the new CPL may not use
    /// are loaded with null (SDM "RET", "IRET": DS, ES, FS, GS with DPL &lt; CPL and not conforming code).</summary>
    internal void NullOuterDataSegments()
    {
        NullIfOuter(SegReg.Es);
        NullIfOuter(SegReg.Ds);
        NullIfOuter(SegReg.Fs);
        NullIfOuter(SegReg.Gs);
        UpdateSegmentFastPaths();
    }

    private void NullIfOuter(int s)
    {
        ref var seg = ref Segs[s];
        bool conformingCode = seg.IsCode && (seg.Type & 4) != 0;
        if ((seg.Selector & ~3) != 0 && seg.Dpl < Cpl && !conformingCode)
            seg = new Segment { Selector = 0, Attributes = 0 };
    }

    /// <summary>Reads a descriptor for LAR, LSL, VERR and VERW, which report a null selector or one
    /// outside its table in ZF instead of faulting. Returns 1 when read, 0 when not accessible,
    /// -1 when the read itself faulted (#PF: the fault is pending).</summary>
    internal int ProbeDescriptor(ushort selector, out ulong descriptor)
    {
        descriptor = 0;
        if ((selector & ~3) == 0)
            return 0;
        ulong tableBase;
        uint limit;
        if ((selector & 4) != 0)
        {
            ref var ldt = ref Segs[SegReg.Ldtr];
            if (!ldt.Present || (ldt.Selector & ~3) == 0)
                return 0;
            tableBase = ldt.Base;
            limit = ldt.Limit;
        }
        else
        {
            tableBase = Gdtr.Base;
            limit = Gdtr.Limit;
        }
        if ((ulong)(selector & ~7) + 7 > limit)
            return 0;
        descriptor = ReadSystem(tableBase + (ulong)(selector & ~7), 8);
        return _abort ? -1 : 1;
    }

    /// <summary>Reads the GDT descriptor of an LDT or TSS for LLDT/LTR: 8 bytes, or 16 in IA-32e
    /// mode where the upper half holds base[63:32] (SDM vol. 3 §8.2.3, §3.5.2). Faults #GP(selector).</summary>
    private bool ReadSystemSegmentDescriptor(ushort selector, out Segment seg, out ulong lo)
    {
        seg = default;
        lo = 0;
        uint err = (uint)(selector & ~3);
        if ((selector & 4) != 0)
        {
            RaiseFault(Vector.GP, err);
            return false;
        }
        ulong index = (ulong)(selector & ~7);
        int bytes = IsLongMode ? 16 : 8;
        if (index + (ulong)bytes - 1 > Gdtr.Limit)
        {
            RaiseFault(Vector.GP, err);
            return false;
        }
        lo = ReadSystem(Gdtr.Base + index, 8);
        ulong hi = IsLongMode ? ReadSystem(Gdtr.Base + index + 8, 8) : 0;
        if (_abort) return false;
        seg = SegmentFromDescriptor(selector, lo);
        if (IsLongMode)
            seg.Base |= (hi & 0xFFFFFFFF) << 32;
        if (IsLongMode && (((hi >> 40) & 0x1F) != 0 || !IsCanonical(seg.Base)))
        {
            RaiseFault(Vector.GP, err);
            return false;
        }
        return true;
    }

    /// <summary>LLDT (SDM vol. 2 "LLDT"): a null selector leaves LDTR unusable; otherwise the GDT
    /// entry must be a present LDT descriptor. Returns false when a fault was raised.</summary>
    internal bool LoadLdtr(ushort selector)
    {
        if ((selector & ~3) == 0)
        {
            Segs[SegReg.Ldtr] = new Segment { Selector = selector };
            return true;
        }
        if (!ReadSystemSegmentDescriptor(selector, out var seg, out _))
            return false;
        uint err = (uint)(selector & ~3);
        if (!seg.IsSystem || seg.Type != 2)
        {
            RaiseFault(Vector.GP, err);
            return false;
        }
        if (!seg.Present)
        {
            RaiseFault(Vector.NP, err);
            return false;
        }
        Segs[SegReg.Ldtr] = seg;
        return true;
    }

    /// <summary>LTR (SDM vol. 2 "LTR"): the GDT entry must be a present available TSS (a 64-bit
    /// TSS in IA-32e mode); it is marked busy in memory and in TR.</summary>
    internal bool LoadTr(ushort selector)
    {
        uint err = (uint)(selector & ~3);
        if ((selector & ~3) == 0)
        {
            RaiseGp0();
            return false;
        }
        if (!ReadSystemSegmentDescriptor(selector, out var seg, out ulong lo))
            return false;
        bool available = IsLongMode ? seg.Type == 9 : seg.Type is 1 or 9;
        if (!seg.IsSystem || !available)
        {
            RaiseFault(Vector.GP, err);
            return false;
        }
        if (!seg.Present)
        {
            RaiseFault(Vector.NP, err);
            return false;
        }
        WriteSystem(Gdtr.Base + (ulong)(selector & ~7) + 5, 1, ((lo >> 40) & 0xFF) | 2);
        if (_abort) return false;
        seg.Attributes |= 2; // busy
        Segs[SegReg.Tr] = seg;
        return true;
    }

    /// <summary>The domain that CALL/RET use in the RAP: host on the bare machine; the vendor's
    /// guest mode sets it while a guest runs.</summary>
    public Machine.Rap.RapDomain CurrentRapDomain { get; set; } = Machine.Rap.RapDomain.Host;
}
