using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>How executors report that an instruction cannot complete or that the CPU must stop:
/// plain fields the run loop checks after each instruction, never .NET exceptions.</summary>
public sealed unsafe partial class X86Cpu
{
    /// <summary>The current instruction must not complete: RIP goes back to it, then either the
    /// pending exception is delivered or the pending exit is returned (and the instruction re-runs).</summary>
    internal bool _abort;
    /// <summary>Leave the current block after this instruction (exit, mode change, stale code).</summary>
    internal bool _stop;

    internal int _pendingVector = -1;
    internal uint _pendingError;
    internal ulong _pendingCr2;
    internal bool _exitPending;
    internal CpuExit _exit;

    // Replays: an IN or MMIO read leaves the CPU, the host supplies the value, and the instruction
    // runs again and consumes it (the way KVM completes userspace I/O).
    private bool _ioReplay;
    private ulong _ioReplayValue;
    private bool _mmioReplay;
    private ulong _mmioReplayAddr, _mmioReplayValue;

    internal static bool HasErrorCode(int vector) =>
        vector is Vector.DF or Vector.TS or Vector.NP or Vector.SS or Vector.GP or Vector.PF or Vector.AC or 21;

    /// <summary>Records a fault; the instruction is abandoned. The first fault of an instruction wins.</summary>
    internal void RaiseFault(int vector, uint errorCode = 0, ulong cr2 = 0)
    {
        if (_pendingVector >= 0 || _exitPending)
            return;
        _pendingVector = vector;
        _pendingError = errorCode;
        _pendingCr2 = cr2;
        _abort = true;
    }

    internal void RaiseUd() => RaiseFault(Vector.UD);
    internal void RaiseGp0() => RaiseFault(Vector.GP, 0);

    /// <summary>Asks the run loop to return <paramref name="exit"/>. With <paramref name="restart"/>
    /// the instruction is abandoned and will run again when the CPU resumes.</summary>
    internal void RequestExit(in CpuExit exit, bool restart)
    {
        if (_exitPending)
        {
            if (!restart) // a second store-type exit in one instruction cannot be expressed
                Fail(CpuExitReason.InternalError, $"two exits in one instruction ({_exit} and {exit})");
            return;
        }
        _exit = exit;
        _exitPending = true;
        if (restart) _abort = true;
        else _stop = true;
    }

    /// <summary>Ends the run with an unimplemented/internal error report.</summary>
    internal void Fail(CpuExitReason reason, string message)
    {
        _exit = new CpuExit { Reason = reason, Message = message, Address = Rip };
        _exitPending = true;
        _abort = true;
    }

    private void ClearPending()
    {
        _abort = _stop = false;
        _pendingVector = -1;
        _exitPending = false;
        _ioReplay = _mmioReplay = false;
    }

    internal bool TakeIoReplay(out ulong value)
    {
        value = _ioReplayValue;
        if (!_ioReplay) return false;
        _ioReplay = false;
        return true;
    }

    /// <summary>Completes a port-input exit: the IN instruction runs again and receives <paramref name="value"/>.</summary>
    public void CompleteIoIn(ulong value)
    {
        _ioReplay = true;
        _ioReplayValue = value;
    }

    /// <summary>Completes an MMIO-read exit: the instruction runs again and receives <paramref name="value"/>.</summary>
    public void CompleteMmioRead(ulong gpa, ulong value)
    {
        _mmioReplay = true;
        _mmioReplayAddr = gpa;
        _mmioReplayValue = value;
    }

    private ulong MmioRead(ulong gpa, int size)
    {
        if (_mmioReplay && _mmioReplayAddr == gpa)
        {
            _mmioReplay = false;
            return _mmioReplayValue & SizeMask(size);
        }
        RequestExit(new CpuExit { Reason = CpuExitReason.Mmio, Address = gpa, Size = (byte)size, IsWrite = false }, restart: true);
        return 0;
    }

    private void MmioWrite(ulong gpa, int size, ulong value) =>
        RequestExit(new CpuExit { Reason = CpuExitReason.Mmio, Address = gpa, Size = (byte)size, IsWrite = true, Data = value & SizeMask(size) }, restart: false);

    private volatile bool _stopRequested;

    /// <summary>Thread-safe: makes <see cref="Run"/> return <see cref="CpuExitReason.StopRequested"/> at the next block boundary.</summary>
    public void RequestStop() => _stopRequested = true;
}
