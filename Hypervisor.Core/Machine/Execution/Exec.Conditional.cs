using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>CMOVcc and SETcc: the condition is the tttn field (SDM vol. 2 appendix B.1.4.7).</summary>
internal static unsafe partial class Exec
{
    /// <summary>CMOVcc. The source is read whatever the condition (a memory source faults even when
    /// the move does not happen). In 64-bit mode a 32-bit CMOVcc writes the destination either way,
    /// so a false condition still clears bits 63:32 (SDM "CMOVcc", Operation).</summary>
    public static void Cmovcc(X86Cpu c, ref DecodedInsn i)
    {
        ulong v = c.ReadOp1(ref i);
        if (c._abort) return;
        if (c.Condition(i.Cond))
            c.WriteReg(i.Reg0, i.OpSize, v);
        else if (i.OpSize == 4)
            c.WriteReg(i.Reg0, 4, c.ReadReg(i.Reg0, 4));
    }

    public static void Setcc(X86Cpu c, ref DecodedInsn i) =>
        c.WriteOperand(ref i, i.Kind0, i.Reg0, 1, c.Condition(i.Cond) ? 1UL : 0UL);
}
