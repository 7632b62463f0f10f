using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>MOV and friends: no flags.</summary>
internal static unsafe partial class Exec
{
    public static void Mov(X86Cpu c, ref DecodedInsn i)
    {
        if (i.Kind0 == OperandKind.Seg || i.Kind1 == OperandKind.Seg)
        {
            MovSeg(c, ref i);
            return;
        }
        if (i.Kind0 is OperandKind.Cr or OperandKind.Dr || i.Kind1 is OperandKind.Cr or OperandKind.Dr)
        {
            MovControl(c, ref i);
            return;
        }
        ulong v = c.ReadOp1(ref i);
        if (c._abort) return;
        c.WriteOp0(ref i, v);
    }

    public static void Nop(X86Cpu c, ref DecodedInsn i)
    {
    }
}
