using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

internal static unsafe partial class Exec
{
    /// <summary>Bytes that do not form a valid instruction in this mode.</summary>
    public static void InvalidOpcode(X86Cpu c, ref DecodedInsn i) => c.RaiseUd();

    /// <summary>A valid instruction this CPU does not implement: stop with a report naming it.
    /// Never skipped silently (it would corrupt the guest's state without a trace).</summary>
    public static void Unimplemented(X86Cpu c, ref DecodedInsn i) =>
        c.Fail(CpuExitReason.Unimplemented, c.DescribeInstruction(ref i));
}
