using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>ADD/ADC/SUB/SBB/CMP/INC/DEC/NEG with exact flags (lazily computed).</summary>
internal static unsafe partial class Exec
{
    public static void Add(X86Cpu c, ref DecodedInsn i) => EmitAddSub(c, ref i, FlagOp.Add, write: true);
    public static void Sub(X86Cpu c, ref DecodedInsn i) => EmitAddSub(c, ref i, FlagOp.Sub, write: true);
    public static void Cmp(X86Cpu c, ref DecodedInsn i) => EmitAddSub(c, ref i, FlagOp.Sub, write: false);

    private static void EmitAddSub(X86Cpu c, ref DecodedInsn i, FlagOp op, bool write)
    {
        int size = i.OpSize;
        ulong mask = X86Cpu.SizeMask(size);
        ulong a = c.ReadOp0(ref i);
        ulong b = c.ReadOp1(ref i) & mask;
        if (c._abort) return;
        ulong r = (op == FlagOp.Add ? a + b : a - b) & mask;
        if (write)
        {
            c.WriteOp0(ref i, r);
            if (c._abort) return;
        }
        c.SetFlagsLazy(op, size, r, a, b);
    }

    public static void Inc(X86Cpu c, ref DecodedInsn i) => EmitIncDec(c, ref i, FlagOp.Inc);
    public static void Dec(X86Cpu c, ref DecodedInsn i) => EmitIncDec(c, ref i, FlagOp.Dec);

    private static void EmitIncDec(X86Cpu c, ref DecodedInsn i, FlagOp op)
    {
        int size = i.OpSize;
        ulong a = c.ReadOp0(ref i);
        if (c._abort) return;
        ulong r = (op == FlagOp.Inc ? a + 1 : a - 1) & X86Cpu.SizeMask(size);
        c.WriteOp0(ref i, r);
        if (c._abort) return;
        c.SetFlagsIncDec(op, size, r, a);
    }
}
