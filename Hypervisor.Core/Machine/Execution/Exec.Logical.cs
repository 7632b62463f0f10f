using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>AND/OR/XOR/TEST/NOT: CF=OF=0, SF/ZF/PF from the result, AF 0.</summary>
internal static unsafe partial class Exec
{
    private enum LogicOp { And, Or, Xor }

    public static void And(X86Cpu c, ref DecodedInsn i) => EmitLogic(c, ref i, LogicOp.And, write: true);
    public static void Or(X86Cpu c, ref DecodedInsn i) => EmitLogic(c, ref i, LogicOp.Or, write: true);
    public static void Xor(X86Cpu c, ref DecodedInsn i) => EmitLogic(c, ref i, LogicOp.Xor, write: true);
    public static void Test(X86Cpu c, ref DecodedInsn i) => EmitLogic(c, ref i, LogicOp.And, write: false);

    private static void EmitLogic(X86Cpu c, ref DecodedInsn i, LogicOp op, bool write)
    {
        int size = i.OpSize;
        ulong a = c.ReadOp0(ref i);
        ulong b = c.ReadOp1(ref i);
        if (c._abort) return;
        ulong r = op switch { LogicOp.And => a & b, LogicOp.Or => a | b, _ => a ^ b } & X86Cpu.SizeMask(size);
        if (write)
        {
            c.WriteOp0(ref i, r);
            if (c._abort) return;
        }
        c.SetFlagsLazy(FlagOp.Logic, size, r, a, b);
    }

    /// <summary>NOT: one's complement; no flag changes (SDM vol. 2B NOT).</summary>
    public static void Not(X86Cpu c, ref DecodedInsn i)
    {
        ulong a = c.ReadOp0(ref i);
        if (c._abort) return;
        c.WriteOp0(ref i, ~a & X86Cpu.SizeMask(i.OpSize));
    }
}
