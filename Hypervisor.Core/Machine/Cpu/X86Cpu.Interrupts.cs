using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>Kinds of event delivered through the IDT; they differ in the gate privilege check and
/// in the EXT bit of error codes of faults met while delivering them (SDM vol. 3 §6.13).</summary>
internal enum EventKind : byte
{
    /// <summary>A fault, trap or abort raised by the CPU: no gate DPL check, EXT=1.</summary>
    Exception,
    /// <summary>INT n / INT3 / INTO: the gate DPL is checked against CPL, EXT=0.</summary>
    Software,
    /// <summary>INT1 (ICEBP): a privileged software exception, delivered like #DB (no DPL check, EXT=1).</summary>
    PrivilegedSoftware,
    /// <summary>An external interrupt: no DPL check, EXT=1.</summary>
    External,
}

/// <summary>
/// Exception and interrupt delivery in real, protected and long mode (SDM vol. 3 §6.12, §6.14,
/// "INT n" operation), and the escalation rules of §6.15 table 6-5: contributory + contributory,
/// or #PF + (#PF or contributory) = #DF; any fault while delivering #DF = triple fault = shutdown.
/// Every check and every stack write happens before any register changes, so a fault during
/// delivery leaves the interrupted state intact for the next event.
/// </summary>
public sealed unsafe partial class X86Cpu
{
    private static bool IsContributory(int v) => v is Vector.DE or Vector.TS or Vector.NP or Vector.SS or Vector.GP;

    /// <summary>Faults whose handler may restart the instruction: the RF image pushed is 1 (SDM vol. 3 §17.3.1.1).</summary>
    private static bool IsFaultClass(int v) =>
        v is Vector.DE or Vector.BR or Vector.UD or Vector.NM or Vector.TS or Vector.NP or Vector.SS or Vector.GP
            or Vector.PF or Vector.MF or Vector.AC or Vector.XM or 20 or 21;

    /// <summary>Error codes with the selector format, whose bit 0 is EXT (SDM vol. 3 §6.13).</summary>
    private static bool HasSelectorErrorCode(int v) => v is Vector.TS or Vector.NP or Vector.SS or Vector.GP;

    /// <summary>Set when an INT n-type instruction delivered its event (no single-step trap follows it).</summary>
    internal bool _softwareEventDelivered;

    /// <summary>Delivers the pending exception, escalating to #DF or shutdown per table 6-5.
    /// Returns false when the CPU must exit (triple fault, unsupported delivery).</summary>
    internal bool DeliverPendingException()
    {
        int previous = -1;
        while (_pendingVector >= 0)
        {
            int vector = _pendingVector;
            uint error = _pendingError;
            _pendingVector = -1;
            _abort = false;
            // Guest mode: an intercepted vector leaves before delivery (and before CR2 changes:
            // the hypervisor gets the fault address in the exit information instead).
            if (InterceptException(vector, HasErrorCode(vector), error, vector == Vector.PF ? _pendingCr2 : 0))
                return false;
            // CR2 takes the faulting address when the #PF is recognized, even when it then
            // escalates to #DF (as Bochs models it): the #DF handler can see what failed.
            if (vector == Vector.PF)
                Cr2 = _pendingCr2;
            if (previous >= 0)
            {
                if (previous == Vector.DF)
                {
                    Shutdown($"triple fault: {Vector.Name(vector)} while delivering #DF");
                    return false;
                }
                bool df = (IsContributory(previous) && IsContributory(vector))
                    || (previous == Vector.PF && (vector == Vector.PF || IsContributory(vector)));
                if (df)
                {
                    vector = Vector.DF;
                    error = 0;
                }
                else if (HasSelectorErrorCode(vector))
                {
                    error |= 1; // EXT: met while delivering an earlier exception
                }
            }
            previous = vector;
            DeliverEvent(vector, EventKind.Exception, HasErrorCode(vector), error);
            if (_exitPending)
                return false;
        }
        _stop = false;
        return true;
    }

    internal void Shutdown(string reason)
    {
        if (InterceptShutdown(reason))
            return;
        _exit = new CpuExit { Reason = CpuExitReason.Shutdown, Message = reason, Address = Rip };
        _exitPending = true;
        _abort = true;
        _pendingVector = -1;
    }

    /// <summary>INT n / INT3 / INTO / INT1 from an executor: RIP already points past the
    /// instruction, which is the return address pushed. A fault stays pending and the run loop
    /// delivers it as a fault of the instruction (no escalation: the instruction raised it).</summary>
    internal void SoftwareInterrupt(int vector, EventKind kind)
    {
        DeliverEvent(vector, kind, false, 0);
        if (_abort)
        {
            if (kind == EventKind.PrivilegedSoftware && _pendingVector >= 0 && HasSelectorErrorCode(_pendingVector))
                _pendingError |= 1;
            return;
        }
        _softwareEventDelivered = true;
        _stop = true;
    }

    /// <summary>Delivers an external interrupt between instructions (the caller checked RFLAGS.IF
    /// and interrupt windows). Returns false when the CPU must exit (shutdown or unsupported delivery).</summary>
    public bool DeliverExternalInterrupt(int vector)
    {
        if (vector is < 0 or > 255)
            throw new ArgumentOutOfRangeException(nameof(vector));
        DeliverEvent(vector, EventKind.External, false, 0);
        _stop = false;
        if (!_abort)
            return true;
        if (_exitPending)
            return false;
        if (HasSelectorErrorCode(_pendingVector))
            _pendingError |= 1;
        // A fault while delivering an interrupt is handled serially (benign first event).
        return DeliverPendingException();
    }

    /// <summary>Delivers one event. A fault during delivery is left pending (the caller escalates).</summary>
    private void DeliverEvent(int vector, EventKind kind, bool hasError, uint error)
    {
        if (!IsProtectedMode)
            DeliverReal(vector);
        else if (IsV86Mode)
            Fail(CpuExitReason.InternalError, $"{Vector.Name(vector)} in virtual-8086 mode: virtual-8086 event delivery is not supported");
        else if (IsLongMode)
            DeliverLong(vector, kind, hasError, error);
        else
            DeliverProtected(vector, kind, hasError, error);
        if (!_abort)
            _stop = true;
    }

    private static uint ExtBit(EventKind kind) => kind == EventKind.Software ? 0u : 1u;

    /// <summary>The RFLAGS image an event pushes: RF=1 for fault-class exceptions.</summary>
    private ulong FlagsImage(int vector, EventKind kind)
    {
        ulong f = GetRFlags();
        if (kind == EventKind.Exception && IsFaultClass(vector))
            f |= RFlags.Rf;
        return f;
    }

    /// <summary>Real mode: the IVT holds 4-byte CS:IP vectors at IDTR.base (SDM vol. 3 §20.1.4).</summary>
    private void DeliverReal(int vector)
    {
        ulong entry = (ulong)vector * 4;
        if (entry + 3 > Idtr.Limit)
        {
            RaiseFault(Vector.GP, 0);
            return;
        }
        ulong ivt = ReadSystem(Idtr.Base + entry, 4);
        if (_abort) return;
        ulong flags = GetRFlags();
        ulong sp = Regs[Gpr.Rsp];
        Push(flags, 2);
        Push(Segs[SegReg.Cs].Selector, 2);
        Push(Rip, 2);
        if (_abort)
        {
            Regs[Gpr.Rsp] = sp;
            return;
        }
        _rflags &= ~(RFlags.If | RFlags.Tf | RFlags.Ac);
        ref var cs = ref Segs[SegReg.Cs];
        cs.Selector = (ushort)(ivt >> 16);
        cs.Base = (ulong)cs.Selector << 4;
        Rip = (ushort)ivt;
        ModeChanged();
    }

    /// <summary>Reads the gate and checks it and its target code segment (SDM "INT n" operation):
    /// IDT limit, gate type, DPL for software interrupts, presence, target selector and descriptor.</summary>
    private bool ReadGate(int vector, EventKind kind, int gateSize, out ulong lo, out ulong hi, out Segment target, out ulong targetDesc)
    {
        lo = hi = targetDesc = 0;
        target = default;
        uint ext = ExtBit(kind);
        uint idtErr = (uint)(vector * 8 + 2) | ext;
        ulong off = (ulong)vector * (ulong)gateSize;
        if (off + (ulong)gateSize - 1 > Idtr.Limit)
        {
            RaiseFault(Vector.GP, idtErr);
            return false;
        }
        lo = ReadSystem(Idtr.Base + off, 8);
        if (gateSize == 16) hi = ReadSystem(Idtr.Base + off + 8, 8);
        if (_abort) return false;
        int type = (int)(lo >> 40) & 0x1F; // S bit and type
        int dpl = (int)(lo >> 45) & 3;
        bool valid = gateSize == 16
            ? type is 0x0E or 0x0F && ((hi >> 40) & 0x1F) == 0 // upper half type field must be 0
            : type is 0x05 or 0x06 or 0x07 or 0x0E or 0x0F;
        if (!valid)
        {
            RaiseFault(Vector.GP, idtErr);
            return false;
        }
        if (kind == EventKind.Software && dpl < Cpl)
        {
            RaiseFault(Vector.GP, idtErr);
            return false;
        }
        if ((lo & (1UL << 47)) == 0)
        {
            RaiseFault(Vector.NP, idtErr);
            return false;
        }
        if (type == 0x05)
        {
            Fail(CpuExitReason.InternalError, $"task gate in IDT entry {vector}: task switching is not supported");
            return false;
        }
        ushort sel = (ushort)(lo >> 16);
        uint selErr = (uint)(sel & ~3) | ext;
        if ((sel & ~3) == 0)
        {
            RaiseFault(Vector.GP, ext);
            return false;
        }
        if (!ReadDescriptor(sel, out targetDesc))
        {
            AddExt(ext);
            return false;
        }
        target = SegmentFromDescriptor(sel, targetDesc);
        if (!target.IsCode || target.Dpl > Cpl)
        {
            RaiseFault(Vector.GP, selErr);
            return false;
        }
        if (!target.Present)
        {
            RaiseFault(Vector.NP, selErr);
            return false;
        }
        return true;
    }

    /// <summary>Checks that <paramref name="bytes"/> below <paramref name="sp"/> lie inside the
    /// stack segment (expand-up or expand-down, SDM vol. 3 §5.3).</summary>
    private static bool StackFits(in Segment ss, ulong sp, int bytes)
    {
        ulong mask = ss.DefaultBig ? 0xFFFFFFFFUL : 0xFFFFUL;
        sp &= mask;
        if (sp < (ulong)bytes && sp != 0)
            return false; // would wrap below zero
        ulong low = (sp - (ulong)bytes) & mask;
        ulong high = low + (ulong)bytes - 1;
        if ((ss.Type & 4) != 0)
            return low > ss.Limit && high <= mask;
        return high <= ss.Limit;
    }

    /// <summary>Writes the frame downwards from <paramref name="sp"/>; stack accesses at a new
    /// CPL below 3 are supervisor accesses. Returns the new stack offset, or ulong.MaxValue on a fault.</summary>
    private ulong WriteFrame(ulong ssBase, ulong sp, ulong mask, int size, bool supervisor, ReadOnlySpan<ulong> values)
    {
        foreach (ulong v in values)
        {
            sp = (sp - (ulong)size) & mask;
            ulong lin = ssBase + sp;
            if (mask != ulong.MaxValue) lin = (uint)lin;
            WriteLinearSlow(lin, size, v, implicitSupervisor: supervisor);
            if (_abort) return ulong.MaxValue;
        }
        return sp;
    }

    private void DeliverProtected(int vector, EventKind kind, bool hasError, uint error)
    {
        uint ext = ExtBit(kind);
        if (!ReadGate(vector, kind, 8, out ulong lo, out _, out var cs, out ulong csDesc))
            return;
        int gateType = (int)(lo >> 40) & 0xF;
        int size = (gateType & 8) != 0 ? 4 : 2;
        ulong offset = (lo & 0xFFFF) | (size == 4 ? ((lo >> 48) & 0xFFFF) << 16 : 0);
        int newCpl = (cs.Type & 4) != 0 ? Cpl : cs.Dpl; // conforming code keeps CPL
        if (offset > cs.Limit)
        {
            RaiseFault(Vector.GP, ext);
            return;
        }
        ulong flags = FlagsImage(vector, kind);
        ushort oldCs = Segs[SegReg.Cs].Selector;
        Span<ulong> frame = stackalloc ulong[6];
        int n = 0;
        Segment ss;
        ulong ssDesc = 0, sp;
        bool inner = newCpl < Cpl;
        if (inner)
        {
            if (!ReadTssStack(newCpl, out ushort ssSel, out sp))
            {
                AddExt(ext);
                return;
            }
            uint ssErr = (uint)(ssSel & ~3) | ext;
            if ((ssSel & ~3) == 0)
            {
                RaiseFault(Vector.TS, ext);
                return;
            }
            if ((ssSel & 3) != newCpl)
            {
                RaiseFault(Vector.TS, ssErr);
                return;
            }
            if (!ReadDescriptor(ssSel, out ssDesc, Vector.TS))
            {
                AddExt(ext);
                return;
            }
            ss = SegmentFromDescriptor(ssSel, ssDesc);
            if (ss.IsSystem || ss.IsCode || (ss.Type & 2) == 0 || ss.Dpl != newCpl)
            {
                RaiseFault(Vector.TS, ssErr);
                return;
            }
            if (!ss.Present)
            {
                RaiseFault(Vector.SS, ssErr);
                return;
            }
            frame[n++] = Segs[SegReg.Ss].Selector;
            frame[n++] = Regs[Gpr.Rsp];
            int bytes = (hasError ? 6 : 5) * size;
            if (!StackFits(ss, sp, bytes))
            {
                RaiseFault(Vector.SS, ssErr);
                return;
            }
        }
        else
        {
            ss = Segs[SegReg.Ss];
            sp = Regs[Gpr.Rsp];
            if (!StackFits(ss, sp, (hasError ? 4 : 3) * size))
            {
                RaiseFault(Vector.SS, ext);
                return;
            }
        }
        frame[n++] = flags;
        frame[n++] = oldCs;
        frame[n++] = Rip;
        if (hasError)
            frame[n++] = error;
        ulong mask = ss.DefaultBig ? 0xFFFFFFFFUL : 0xFFFFUL;
        ulong newSp = WriteFrame(ss.Base, sp, mask, size, newCpl < 3, frame[..n]);
        if (newSp == ulong.MaxValue)
            return;
        SetDescriptorAccessed(cs.Selector, csDesc);
        if (inner)
            SetDescriptorAccessed(ss.Selector, ssDesc);
        if (_abort) return;
        if (inner)
        {
            ss.Attributes |= 1;
            Segs[SegReg.Ss] = ss;
        }
        Regs[Gpr.Rsp] = (sp & ~mask) | newSp;
        cs.Selector = (ushort)((cs.Selector & ~3) | newCpl);
        FinishDelivery(cs, newCpl, offset, gateType);
    }

    private void DeliverLong(int vector, EventKind kind, bool hasError, uint error)
    {
        uint ext = ExtBit(kind);
        if (!ReadGate(vector, kind, 16, out ulong lo, out ulong hi, out var cs, out ulong csDesc))
            return;
        int gateType = (int)(lo >> 40) & 0xF;
        if (!cs.Long || cs.DefaultBig)
        {
            RaiseFault(Vector.GP, (uint)(cs.Selector & ~3) | ext);
            return;
        }
        ulong offset = (lo & 0xFFFF) | (((lo >> 48) & 0xFFFF) << 16) | ((hi & 0xFFFFFFFF) << 32);
        if (!IsCanonical(offset))
        {
            RaiseFault(Vector.GP, ext);
            return;
        }
        int ist = (int)(lo >> 32) & 7;
        int newCpl = (cs.Type & 4) != 0 ? Cpl : cs.Dpl;
        ulong sp;
        // SDM §6.14.4/§6.14.5: an IST entry always switches stacks; otherwise only a privilege change does.
        if (ist != 0)
        {
            if (!ReadTssIst(ist, out sp)) { AddExt(ext); return; }
        }
        else if (newCpl < Cpl)
        {
            if (!ReadTssStack(newCpl, out _, out sp)) { AddExt(ext); return; }
        }
        else
        {
            sp = Regs[Gpr.Rsp];
        }
        if (!IsCanonical(sp))
        {
            RaiseFault(Vector.SS, ext);
            return;
        }
        sp &= ~0xFUL; // the frame is 16-byte aligned in IA-32e mode (SDM §6.14.2)
        Span<ulong> frame = stackalloc ulong[6];
        frame[0] = Segs[SegReg.Ss].Selector;
        frame[1] = Regs[Gpr.Rsp];
        frame[2] = FlagsImage(vector, kind);
        frame[3] = Segs[SegReg.Cs].Selector;
        frame[4] = Rip;
        frame[5] = error;
        ulong newSp = WriteFrame(0, sp, ulong.MaxValue, 8, newCpl < 3, frame[..(hasError ? 6 : 5)]);
        if (newSp == ulong.MaxValue)
            return;
        SetDescriptorAccessed(cs.Selector, csDesc);
        if (_abort) return;
        if (newCpl != Cpl)
        {
            // A privilege change loads SS with a null selector whose RPL is the new CPL (SDM §6.14.4).
            Segs[SegReg.Ss] = new Segment { Selector = (ushort)newCpl, Attributes = (ushort)(0x93 | (newCpl << 5)), Limit = 0xFFFFFFFF };
        }
        Regs[Gpr.Rsp] = newSp;
        cs.Selector = (ushort)((cs.Selector & ~3) | newCpl);
        FinishDelivery(cs, newCpl, offset, gateType);
    }

    private void AddExt(uint ext)
    {
        if (_pendingVector >= 0 && HasSelectorErrorCode(_pendingVector))
            _pendingError |= ext;
    }

    private void FinishDelivery(Segment cs, int newCpl, ulong offset, int gateType)
    {
        cs.Attributes |= 1;
        MaterializeFlags();
        ulong clear = RFlags.Tf | RFlags.Nt | RFlags.Rf | RFlags.Vm;
        if ((gateType & 1) == 0)
            clear |= RFlags.If; // interrupt gate, not trap gate
        _rflags &= ~clear;
        SetCodeSegment(cs, newCpl);
        Rip = CodeBits == 64 ? offset : CodeBits == 32 ? (uint)offset : (ushort)offset;
    }
}
