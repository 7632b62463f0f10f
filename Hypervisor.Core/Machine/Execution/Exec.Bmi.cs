using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>
/// BMI1 (CPUID.(EAX=07H,ECX=0):EBX.BMI1[3]): ANDN, BEXTR, BLSI, BLSMSK, BLSR (TZCNT is in
/// Exec.Bit.cs). VEX-encoded general-purpose instructions, 32- or 64-bit. Flags as the SDM
/// defines them; its undefined AF and PF are AF=0 and PF=parity of the result, as QEMU leaves them.
/// </summary>
internal static unsafe partial class Exec
{
    /// <summary>VEX instructions are #UD in real and virtual-8086 mode, and without BMI1.</summary>
    private static bool CheckBmi1(X86Cpu c)
    {
        if (c.Model.HasBmi1 && c.IsProtectedMode && !c.IsV86Mode) return true;
        c.RaiseUd();
        return false;
    }

    /// <summary>Sets the six status flags: ZF/SF/PF from the result, CF as given, OF and AF clear.</summary>
    private static void SetBmiFlags(X86Cpu c, ulong result, int size, bool cf, bool zfFromResult = true)
    {
        ulong f = X86Cpu.SzpFlags(result, size);
        if (!zfFromResult) f &= ~RFlags.Zf;
        if (cf) f |= RFlags.Cf;
        c.SetFlags(RFlags.Arith, f);
    }

    /// <summary>ANDN r, vvvv, r/m: dest = ~src1 &amp; src2; CF=OF=0.</summary>
    public static void Andn(X86Cpu c, ref DecodedInsn i)
    {
        if (!CheckBmi1(c)) return;
        int size = i.OpSize;
        ulong src1 = c.ReadReg(i.Reg1, size);
        ulong src2 = c.ReadOperand(ref i, i.Kind2, i.Reg2, size);
        if (c._abort) return;
        ulong r = ~src1 & src2 & X86Cpu.SizeMask(size);
        c.WriteReg(i.Reg0, size, r);
        SetBmiFlags(c, r, size, cf: false);
    }

    /// <summary>BEXTR r, r/m, vvvv: start = vvvv[7:0], length = vvvv[15:8]; ZF from the result, CF=OF=0.</summary>
    public static void Bextr(X86Cpu c, ref DecodedInsn i)
    {
        if (!CheckBmi1(c)) return;
        int size = i.OpSize;
        int bits = size * 8;
        ulong src = c.ReadOperand(ref i, i.Kind1, i.Reg1, size);
        if (c._abort) return;
        ulong ctl = c.ReadReg(i.Reg2, size);
        int start = (int)(ctl & 0xFF), len = (int)((ctl >> 8) & 0xFF);
        ulong r = 0;
        if (start < bits && len > 0)
        {
            r = src >> start;
            if (len < 64) r &= (1UL << len) - 1;
        }
        r &= X86Cpu.SizeMask(size);
        c.WriteReg(i.Reg0, size, r);
        SetBmiFlags(c, r, size, cf: false);
    }

    /// <summary>BLSI vvvv, r/m: isolate the lowest set bit; CF = (src != 0).</summary>
    public static void Blsi(X86Cpu c, ref DecodedInsn i) => EmitBls(c, ref i, BlsOp.Isolate);

    /// <summary>BLSMSK vvvv, r/m: mask up to the lowest set bit; CF = (src == 0), ZF = 0.</summary>
    public static void Blsmsk(X86Cpu c, ref DecodedInsn i) => EmitBls(c, ref i, BlsOp.Mask);

    /// <summary>BLSR vvvv, r/m: reset the lowest set bit; CF = (src == 0).</summary>
    public static void Blsr(X86Cpu c, ref DecodedInsn i) => EmitBls(c, ref i, BlsOp.Reset);

    private enum BlsOp { Isolate, Mask, Reset }

    private static void EmitBls(X86Cpu c, ref DecodedInsn i, BlsOp op)
    {
        if (!CheckBmi1(c)) return;
        int size = i.OpSize;
        ulong mask = X86Cpu.SizeMask(size);
        ulong src = c.ReadOperand(ref i, i.Kind1, i.Reg1, size);
        if (c._abort) return;
        ulong r = op switch
        {
            BlsOp.Isolate => (0 - src) & src,
            BlsOp.Mask => (src - 1) ^ src,
            _ => (src - 1) & src,
        } & mask;
        c.WriteReg(i.Reg0, size, r);
        SetBmiFlags(c, r, size, cf: op == BlsOp.Isolate ? src != 0 : src == 0, zfFromResult: op != BlsOp.Mask);
    }
}
