namespace Hypervisor.Host.Runtime;

/// <summary>Why a run ended. <see cref="Cli.ExitCodes"/> maps each to the process exit status.</summary>
public enum RunEnd
{
    /// <summary>HLT with IF = 0 and nothing pending: the guest stopped for good.</summary>
    Halted,
    /// <summary>The guest wrote to isa-debug-exit.</summary>
    DebugExit,
    /// <summary>Triple fault: the CPU shut down.</summary>
    Shutdown,
    /// <summary>The guest executed an instruction the CPU does not implement.</summary>
    Unimplemented,
    /// <summary>The machine met a state it cannot handle.</summary>
    InternalError,
    /// <summary>The instruction budget ran out first.</summary>
    InstructionLimit,
    /// <summary>The host asked the machine to stop.</summary>
    Stopped,
    /// <summary>The run stopped at the exit <c>--snapshot-at-exit</c> named, to take a snapshot.</summary>
    SnapshotPoint,
}

/// <summary>The end of a run: its kind, the debug-exit value, and a one-line explanation.</summary>
public readonly record struct RunResult(RunEnd End, uint DebugExitValue = 0, string? Message = null)
{
    public override string ToString() => End switch
    {
        RunEnd.DebugExit => $"debug exit 0x{DebugExitValue:x}",
        _ => Message is null ? End.ToString() : $"{End}: {Message}",
    };
}
