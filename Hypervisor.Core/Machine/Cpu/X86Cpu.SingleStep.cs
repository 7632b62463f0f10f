using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>
/// Instruction boundaries that need attention: RFLAGS.RF is cleared once an instruction completes
/// (SDM vol. 3 §17.3.1.1; nothing else reads it here because instruction breakpoints are not
/// modelled), and with RFLAGS.TF set at the start of an instruction a single-step #DB trap follows
/// it (§17.3.1.4): DR6.BS is set and the frame points at the next instruction. Instructions that
/// deliver an event themselves (INT n, faults) are not followed by the trap: delivery clears TF.
/// </summary>
public sealed unsafe partial class X86Cpu
{
    private const ulong Dr6Bs = 1UL << 14;

    /// <summary>A completed instruction left the CPU through an exit before its single-step trap
    /// could be delivered; it is delivered when the CPU runs again.</summary>
    private bool _singleStepPending;

    /// <summary>Called by the run loop at a block boundary when TF or RF is set. Runs at most one
    /// instruction. Returns true when the run loop must return the pending exit.</summary>
    private bool StepBoundary()
    {
        _rflags &= ~RFlags.Rf;
        if (_singleStepPending)
        {
            _singleStepPending = false;
            return !DeliverSingleStepTrap();
        }
        if ((_rflags & RFlags.Tf) == 0)
            return false;

        Block? block = FindBlock();
        if (block == null)
        {
            if (_exitPending)
                return true;
            return _pendingVector >= 0 && !DeliverPendingException();
        }
        block.Executions++;
        ref DecodedInsn insn = ref block.Insns[0];
        _softwareEventDelivered = false;
        Rip = insn.NextIp;
        insn.Handler(this, ref insn);
        _stop = false;
        if (_abort)
        {
            // A fault or a restartable exit: the instruction did not complete, so no trap.
            _abort = false;
            Rip = insn.Ip;
            if (_exitPending)
                return true;
            return !DeliverPendingException();
        }
        InstructionsRetired++;
        if (_softwareEventDelivered)
        {
            _softwareEventDelivered = false;
            return _exitPending;
        }
        if (_exitPending)
        {
            _singleStepPending = true; // OUT, HLT...: exit first, trap when resumed
            return true;
        }
        return !DeliverSingleStepTrap();
    }

    private bool DeliverSingleStepTrap()
    {
        Dr[6] |= Dr6Bs;
        RaiseFault(Vector.DB);
        _abort = false;
        return DeliverPendingException();
    }
}
