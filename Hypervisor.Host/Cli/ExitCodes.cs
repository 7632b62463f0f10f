using Hypervisor.Host.Devices;
using Hypervisor.Host.Runtime;

namespace Hypervisor.Host.Cli;

/// <summary>
/// Every exit status <c>hv</c> can return, in one place; <see cref="HelpText"/> is shown by
/// <c>hv --help</c>. Statuses are part of the stable interface: add, never renumber.
/// Odd statuses are also what the guest's isa-debug-exit writes give ((v &lt;&lt; 1) | 1): 3 and 5
/// are the numbering for shutdown and service failure, and stderr says which it was;
/// guests that report through isa-debug-exit avoid writing 1 and 2.
/// </summary>
public static class ExitCodes
{
    /// <summary>The guest executed HLT with IF = 0 and nothing pending.</summary>
    public const int Halted = 0;
    /// <summary>Bad command line, or an image that cannot be read or loaded: nothing ran.</summary>
    public const int UsageOrImageError = 2;
    /// <summary>The guest shut down (triple fault).</summary>
    public const int Shutdown = 3;
    /// <summary>Unimplemented instruction or internal error.</summary>
    public const int InternalError = 4;
    /// <summary>hv serve: the service failed (its socket is in use or cannot be created).</summary>
    public const int ServiceFailure = 5;
    /// <summary>The --max-instructions budget ran out before the guest stopped.</summary>
    public const int InstructionLimit = 6;

    /// <summary><c>hv snapshot diff</c>: the two snapshots differ.</summary>
    public const int SnapshotsDiffer = 8;

    /// <summary>(v &lt;&lt; 1) | 1 for a write of v to isa-debug-exit, as QEMU exits.</summary>
    public static int DebugExit(uint value) => Devices.DebugExit.StatusFor(value);

    public static int For(RunResult result) => result.End switch
    {
        RunEnd.Halted or RunEnd.SnapshotPoint => Halted,
        RunEnd.DebugExit => DebugExit(result.DebugExitValue),
        RunEnd.Shutdown => Shutdown,
        RunEnd.InstructionLimit => InstructionLimit,
        _ => InternalError,
    };

    public const string HelpText =
        """
        Exit status:
          0          the guest halted (HLT with interrupts disabled and nothing pending), or the run
                     stopped at --snapshot-at-exit N and wrote its snapshot
          (v<<1)|1   the guest wrote v to isa-debug-exit (port 0xf4), as QEMU exits; the shell sees the low 8 bits
          2          bad command line, or an image that cannot be read or loaded (nothing ran)
          3          the guest shut down (triple fault); the reason is on stderr
          4          unimplemented instruction or internal error; the report is on stderr
          5          hv serve: the service failed (socket in use or not creatable); bad configuration is 2
          6          the --max-instructions budget ran out before the guest stopped
          8          hv snapshot diff: the snapshots differ
        """;
}
