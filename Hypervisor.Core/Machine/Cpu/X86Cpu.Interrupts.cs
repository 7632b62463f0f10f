using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>Kinds of event delivered through the IDT; they differ in privilege checks and error codes.</summary>
internal enum EventKind : byte
{
    /// <summary>A fault or trap raised by the CPU (EXT=1 in error codes of nested faults).</summary>
    Exception,
    /// <summary>INT n / INT3 / INTO: the gate DPL is checked against CPL.</summary>
    Software,
    /// <summary>An external interrupt (EXT=1).</summary>
    External,
}

/// <summary>
/// Exception and interrupt delivery in real, protected and long mode, and the escalation rules of
/// SDM vol. 3 §6.15 table 6-5 (contributory + contributory or #PF + (#PF or contributory) = #DF;
/// anything during #DF = triple fault = shutdown). All in this one file.
/// </summary>
public sealed unsafe partial class X86Cpu
{
    private static bool IsContributory(int v) => v is Vector.DE or Vector.TS or Vector.NP or Vector.SS or Vector.GP;

    /// <summary>The exception being delivered when delivery itself faults, for escalation.</summary>
    private int _deliveringVector = -1;

    /// <summary>Delivers the pending exception, escalating to #DF or shutdown per table 6-5.
    /// Returns false when the CPU shut down (triple fault).</summary>
    internal bool DeliverPendingException()
    {
        while (_pendingVector >= 0)
        {
            int vector = _pendingVector;
            uint error = _pendingError;
            ulong cr2 = _pendingCr2;
            _pendingVector = -1;
            _abort = false;
            if (vector == Vector.PF)
                Cr2 = cr2;
            int prev = _deliveringVector;
            if (prev >= 0)
            {
                if (prev == Vector.DF)
                {
                    Shutdown($"triple fault: {Vector.Name(vector)} while delivering #DF");
                    return false;
                }
                bool df = (IsContributory(prev) && IsContributory(vector)) || (prev == Vector.PF && (vector == Vector.PF || IsContributory(vector)));
                if (df)
                {
                    vector = Vector.DF;
                    error = 0;
                }
            }
            _deliveringVector = vector;
            DeliverEvent(vector, EventKind.Exception, HasErrorCode(vector), error, 0);
            if (_exitPending)
            {
                _deliveringVector = -1;
                return false;
            }
        }
        _deliveringVector = -1;
        return true;
    }

    internal void Shutdown(string reason)
    {
        _exit = new CpuExit { Reason = CpuExitReason.Shutdown, Message = reason, Address = Rip };
        _exitPending = true;
        _abort = true;
        _pendingVector = -1;
    }

    /// <summary>INT n / INT3 / INTO from an executor: RIP already points past the instruction.</summary>
    internal void SoftwareInterrupt(int vector, ref DecodedInsn insn)
    {
        DeliverEvent(vector, EventKind.Software, false, 0, insn.Length);
        if (_abort && _pendingVector >= 0)
            return; // the run loop restores RIP and delivers the fault (with escalation)
        _stop = true;
    }

    /// <summary>Delivers one event. A fault during delivery is left pending (the caller escalates).</summary>
    private void DeliverEvent(int vector, EventKind kind, bool hasError, uint error, int insnLength)
    {
        if (!IsProtectedMode)
            DeliverReal(vector);
        else if (IsV86Mode)
            Fail(CpuExitReason.InternalError, $"interrupt {vector} in virtual-8086 mode is not supported");
        else if (IsLongMode)
            DeliverLong(vector, kind, hasError, error);
        else
            DeliverProtected(vector, kind, hasError, error);
        if (!_abort)
            _stop = true;
    }

    private uint ExtBit(EventKind kind) => kind == EventKind.Software ? 0u : 1u;

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
        _rflags &= ~(RFlags.If | RFlags.Tf | RFlags.Ac | RFlags.Rf);
        ref var cs = ref Segs[SegReg.Cs];
        cs.Selector = (ushort)(ivt >> 16);
        cs.Base = (ulong)cs.Selector << 4;
        Rip = (ushort)ivt;
        ModeChanged();
    }

    /// <summary>Reads the gate and checks it; returns the target CS descriptor.</summary>
    private bool ReadGate(int vector, EventKind kind, int gateSize, out ulong lo, out ulong hi, out Segment target, out ulong targetDesc)
    {
        lo = hi = targetDesc = 0;
        target = default;
        uint idtErr = (uint)(vector * 8 + 2) | ExtBit(kind);
        ulong off = (ulong)vector * (ulong)gateSize;
        if (off + (ulong)gateSize - 1 > Idtr.Limit)
        {
            RaiseFault(Vector.GP, idtErr);
            return false;
        }
        lo = ReadSystem(Idtr.Base + off, 8);
        if (gateSize == 16) hi = ReadSystem(Idtr.Base + off + 8, 8);
        if (_abort) return false;
        int type = (int)(lo >> 40) & 0x1F; // S bit + type
        int dpl = (int)(lo >> 45) & 3;
        bool valid = gateSize == 16 ? type is 0x0E or 0x0F : type is 0x06 or 0x07 or 0x0E or 0x0F or 0x05;
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
        uint selErr = (uint)(sel & ~3) | ExtBit(kind);
        if ((sel & ~3) == 0)
        {
            RaiseFault(Vector.GP, ExtBit(kind));
            return false;
        }
        if (!ReadDescriptor(sel, out targetDesc))
            return false;
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

    private void DeliverProtected(int vector, EventKind kind, bool hasError, uint error)
    {
        if (!ReadGate(vector, kind, 8, out ulong lo, out _, out var cs, out ulong csDesc))
            return;
        int type = (int)(lo >> 40) & 0xF;
        bool gate32 = (type & 8) != 0;
        int size = gate32 ? 4 : 2;
        ulong offset = (lo & 0xFFFF) | (gate32 ? ((lo >> 48) & 0xFFFF) << 16 : 0);
        bool conforming = (cs.Type & 4) != 0;
        int newCpl = conforming ? Cpl : cs.Dpl;
        ulong flags = GetRFlags();
        var oldSs = Segs[SegReg.Ss];
        ulong oldSp = Regs[Gpr.Rsp];
        ushort oldCsSel = Segs[SegReg.Cs].Selector;

        if (newCpl < Cpl)
        {
            if (!ReadTssStack(newCpl, out ushort ssSel, out ulong sp))
                return;
            // The new SS must be a present writable data segment at the new privilege.
            uint ssErr = (uint)(ssSel & ~3) | ExtBit(kind);
            if ((ssSel & ~3) == 0 || (ssSel & 3) != newCpl)
            {
                RaiseFault(Vector.TS, ssErr);
                return;
            }
            if (!ReadDescriptor(ssSel, out ulong ssDesc, Vector.TS))
                return;
            var ss = SegmentFromDescriptor(ssSel, ssDesc);
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
            int savedCpl = Cpl;
            Cpl = newCpl;
            Segs[SegReg.Ss] = ss;
            ModeChanged();
            Regs[Gpr.Rsp] = sp;
            Push(oldSs.Selector, size);
            Push(oldSp, size);
            PushFrame(flags, oldCsSel, size, hasError, error);
            if (_abort)
            {
                Cpl = savedCpl;
                Segs[SegReg.Ss] = oldSs;
                Regs[Gpr.Rsp] = oldSp;
                ModeChanged();
                return;
            }
        }
        else
        {
            PushFrame(flags, oldCsSel, size, hasError, error);
            if (_abort)
            {
                Regs[Gpr.Rsp] = oldSp;
                return;
            }
        }
        SetDescriptorAccessed(cs.Selector, csDesc);
        cs.Selector = (ushort)((cs.Selector & ~3) | newCpl);
        FinishDelivery(cs, newCpl, offset, type);
    }

    private void PushFrame(ulong flags, ushort csSel, int size, bool hasError, uint error)
    {
        Push(flags, size);
        Push(csSel, size);
        Push(Rip, size);
        if (hasError)
            Push(error, size);
    }

    private void DeliverLong(int vector, EventKind kind, bool hasError, uint error)
    {
        if (!ReadGate(vector, kind, 16, out ulong lo, out ulong hi, out var cs, out ulong csDesc))
            return;
        int type = (int)(lo >> 40) & 0xF;
        if (!cs.Long || cs.DefaultBig)
        {
            RaiseFault(Vector.GP, (uint)(cs.Selector & ~3) | ExtBit(kind));
            return;
        }
        ulong offset = (lo & 0xFFFF) | (((lo >> 48) & 0xFFFF) << 16) | ((hi & 0xFFFFFFFF) << 32);
        int ist = (int)(lo >> 32) & 7;
        bool conforming = (cs.Type & 4) != 0;
        int newCpl = conforming ? Cpl : cs.Dpl;
        ulong flags = GetRFlags();
        var oldSs = Segs[SegReg.Ss];
        ulong oldSp = Regs[Gpr.Rsp];
        ushort oldCsSel = Segs[SegReg.Cs].Selector;
        int oldCpl = Cpl;
        var oldCs = Segs[SegReg.Cs];

        ulong sp;
        if (ist != 0)
        {
            if (!ReadTssIst(ist, out sp)) return;
        }
        else if (newCpl < Cpl)
        {
            if (!ReadTssStack(newCpl, out _, out sp)) return;
        }
        else
        {
            sp = oldSp;
        }
        if (!IsCanonical(sp))
        {
            RaiseFault(Vector.SS, ExtBit(kind));
            return;
        }
        sp &= ~0xFUL; // the frame is 16-byte aligned (SDM §6.14.2)
        // Switch to the 64-bit handler's view of the stack before pushing.
        Cpl = newCpl;
        Segs[SegReg.Cs] = cs;
        if (newCpl != oldCpl)
            Segs[SegReg.Ss] = new Segment { Selector = (ushort)newCpl, Attributes = (ushort)(0x93 | (newCpl << 5)), Limit = 0xFFFFFFFF };
        ModeChanged();
        Regs[Gpr.Rsp] = sp;
        Push(oldSs.Selector, 8);
        Push(oldSp, 8);
        Push(flags, 8);
        Push(oldCsSel, 8);
        Push(Rip, 8);
        if (hasError)
            Push(error, 8);
        if (_abort)
        {
            Cpl = oldCpl;
            Segs[SegReg.Cs] = oldCs;
            Segs[SegReg.Ss] = oldSs;
            Regs[Gpr.Rsp] = oldSp;
            ModeChanged();
            return;
        }
        SetDescriptorAccessed(cs.Selector, csDesc);
        cs.Selector = (ushort)((cs.Selector & ~3) | newCpl);
        FinishDelivery(cs, newCpl, offset, type);
    }

    private void FinishDelivery(Segment cs, int newCpl, ulong offset, int gateType)
    {
        cs.Attributes |= 1;
        ulong clear = RFlags.Tf | RFlags.Nt | RFlags.Rf | RFlags.Vm;
        if ((gateType & 1) == 0)
            clear |= RFlags.If; // interrupt gate, not trap gate
        _rflags &= ~clear;
        SetCodeSegment(cs, newCpl);
        Rip = CodeBits == 64 ? offset : CodeBits == 32 ? (uint)offset : (ushort)offset;
    }
}
