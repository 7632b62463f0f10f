using Hypervisor.Host.Cli;
using Hypervisor.Host.Runtime;

namespace Hypervisor.Host.Tests.Differential;

/// <summary>
/// The qemu-oracle exit status that corresponds to how an hv run ended. A debug-exit write gives
/// the same status under both (low 8 bits). A triple fault ends hv with 3, while QEMU started
/// with -no-reboot turns the reset into a clean exit, 0. (The status alone cannot tell them apart:
/// 3 is also a debug-exit write of 1, so the comparison starts from the run's end, not its status.)
/// A halted guest never ends under QEMU, and hv's own failures have no QEMU counterpart: neither
/// can be compared.
/// </summary>
internal static class DifferentialStatus
{
    public static int? ExpectedQemuStatus(RunResult hv) => hv.End switch
    {
        RunEnd.DebugExit => ExitCodes.DebugExit(hv.DebugExitValue) & 0xFF,
        RunEnd.Shutdown => 0,
        _ => null,
    };
}
