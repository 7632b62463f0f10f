using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>ADD/ADC/SUB/SBB/CMP/NEG/INC/DEC with exact flags (lazily computed). LOCK misuse (a
/// register destination, CMP, TEST, shifts, multiplies) is already invalid in Iced's decode, hence
/// #UD. A locked read-modify-write runs as a plain read then write: that is atomic for one vCPU, but
/// vCPUs on separate host threads would need an atomic update from the memory layer.</summary>
internal static unsafe partial class Exec
{
    public static void Add(X86Cpu c, ref DecodedInsn i) => EmitAddSub(c, ref i, subtract: false, withCarry: false, write: true);
    public static void Adc(X86Cpu c, ref DecodedInsn i) => EmitAddSub(c, ref i, subtract: false, withCarry: true, write: true);
    public static void Sub(X86Cpu c, ref DecodedInsn i) => EmitAddSub(c, ref i, subtract: true, withCarry: false, write: true);
    public static void Sbb(X86Cpu c, ref DecodedInsn i) => EmitAddSub(c, ref i, subtract: true, withCarry: true, write: true);
    public static void Cmp(X86Cpu c, ref DecodedInsn i) => EmitAddSub(c, ref i, subtract: true, withCarry: false, write: false);

    private static void EmitAddSub(X86Cpu c, ref DecodedInsn i, bool subtract, bool withCarry, bool write)
    {
        int size = i.OpSize;
        ulong mask = X86Cpu.SizeMask(size);
        ulong a = c.ReadOp0(ref i);
        ulong b = c.ReadOp1(ref i) & mask; // immediates arrive sign-extended to 64 bits
        if (c._abort) return;
        ulong carry = withCarry && c.GetCf() ? 1UL : 0UL;
        ulong r = (subtract ? a - b - carry : a + b + carry) & mask;
        if (write)
        {
            c.WriteOp0(ref i, r);
            if (c._abort) return;
        }
        // A carry-in of 0 makes ADC/SBB exactly ADD/SUB, which keeps CMP-style condition fast paths.
        if (carry == 0)
            c.SetFlagsLazy(subtract ? FlagOp.Sub : FlagOp.Add, size, r, a, b);
        else
            c.SetFlagsWithCarry(subtract ? FlagOp.Sbb : FlagOp.Adc, size, r, a, b);
    }

    /// <summary>NEG: the flags of 0 - operand (SDM vol. 2B NEG: CF = operand != 0).</summary>
    public static void Neg(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.OpSize;
        ulong a = c.ReadOp0(ref i);
        if (c._abort) return;
        ulong r = (0 - a) & X86Cpu.SizeMask(size);
        c.WriteOp0(ref i, r);
        if (c._abort) return;
        c.SetFlagsLazy(FlagOp.Sub, size, r, 0, a);
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
