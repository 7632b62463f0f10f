using System.Buffers.Binary;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>MOV and friends (SDM vol. 1 §7.3.1): no flags.</summary>
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
        // Covers moffs (Disp is the absolute offset in the address size), imm64 and the
        // sign-extended imm32 of MOV r/m64, imm32 (the decoder extends it).
        ulong v = c.ReadOp1(ref i);
        if (c._abort) return;
        c.WriteOp0(ref i, v);
    }

    /// <summary>NOP, the multi-byte NOP 0F 1F /0, the reserved-NOP space 0F 19..0F 1E, PAUSE, and
    /// ENDBR32/64 (a hint NOP on a processor without CET indirect branch tracking). None of them
    /// touches its memory operand, so none can fault.</summary>
    public static void Nop(X86Cpu c, ref DecodedInsn i)
    {
    }

    /// <summary>MOVZX: the source (8 or 16 bits) is zero-extended by the read.</summary>
    public static void Movzx(X86Cpu c, ref DecodedInsn i)
    {
        ulong v = c.ReadOp1Src(ref i);
        if (c._abort) return;
        c.WriteReg(i.Reg0, i.OpSize, v);
    }

    public static void Movsx(X86Cpu c, ref DecodedInsn i)
    {
        ulong v = c.ReadOp1Src(ref i);
        if (c._abort) return;
        c.WriteReg(i.Reg0, i.OpSize, X86Cpu.SignExtend(v, i.SrcSize));
    }

    /// <summary>MOVSXD r64, r/m32 sign-extends. Without REX.W (r32, r/m32 and r16, r/m16) source and
    /// destination have the same size and it is a plain move; a 32-bit one zero-extends as usual.</summary>
    public static void Movsxd(X86Cpu c, ref DecodedInsn i) => Movsx(c, ref i);

    /// <summary>LEA: the offset in the address size (no segment, no access), then truncated or
    /// zero-extended to the operand size (SDM "LEA", table 3-54).</summary>
    public static void Lea(X86Cpu c, ref DecodedInsn i) =>
        c.WriteReg(i.Reg0, i.OpSize, c.EffectiveAddress(ref i));

    /// <summary>XCHG. The memory form is locked whether or not LOCK is present; as one RMW of this
    /// vCPU it is atomic. Both reads precede the writes, and the memory write precedes the register
    /// write, so a fault leaves no trace. <c>xchg eax, ecx</c> in 64-bit mode zero-extends both
    /// registers; the one-byte 90 is NOP, decoded as such.</summary>
    public static void Xchg(X86Cpu c, ref DecodedInsn i)
    {
        ulong a = c.ReadOp0(ref i);
        ulong b = c.ReadOp1(ref i);
        if (c._abort) return;
        c.WriteOp0(ref i, b);
        if (c._abort) return;
        c.WriteOp1(ref i, a);
    }

    /// <summary>BSWAP. With a 16-bit operand the SDM leaves the result undefined; this does what
    /// QEMU TCG does (which differential tests compare with): a 32-bit swap of the low doubleword,
    /// written as a 32-bit register (zero-extending in 64-bit mode).</summary>
    public static void Bswap(X86Cpu c, ref DecodedInsn i)
    {
        if (i.OpSize == 8)
            c.WriteReg(i.Reg0, 8, BinaryPrimitives.ReverseEndianness(c.ReadReg(i.Reg0, 8)));
        else
            c.WriteReg(i.Reg0, 4, BinaryPrimitives.ReverseEndianness((uint)c.ReadReg(i.Reg0, 4)));
    }

    /// <summary>XLAT: AL ← [seg:(E/R)BX + zero-extended AL], in the address size, DS overridable.</summary>
    public static void Xlatb(X86Cpu c, ref DecodedInsn i)
    {
        ulong ea = (c.ReadReg(Gpr.Rbx, 8) + c.ReadReg(Gpr.Rax, 1)) & X86Cpu.SizeMask(i.AddrSize);
        ulong v = c.ReadMem(i.Seg, ea, 1);
        if (c._abort) return;
        c.WriteReg(Gpr.Rax, 1, v);
    }
}
