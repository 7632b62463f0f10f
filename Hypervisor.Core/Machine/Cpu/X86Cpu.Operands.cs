using System.Runtime.CompilerServices;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>Reading and writing the operands a <see cref="DecodedInsn"/> describes.</summary>
public sealed unsafe partial class X86Cpu
{
    /// <summary>Offset of the memory operand: base + index * scale + displacement, in the address size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong EffectiveAddress(ref DecodedInsn i)
    {
        ulong ea = i.Disp;
        if (i.Base != DecodedInsn.NoReg) ea += Regs[i.Base];
        if (i.Index != DecodedInsn.NoReg) ea += Regs[i.Index] << i.Scale;
        return i.AddrSize switch { 8 => ea, 4 => (uint)ea, _ => (ushort)ea };
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong ReadOperand(ref DecodedInsn i, OperandKind kind, byte reg, int size) => kind switch
    {
        OperandKind.Reg => ReadReg(reg, size),
        OperandKind.Imm => i.Imm & SizeMask(size),
        OperandKind.Mem => ReadMem(i.Seg, EffectiveAddress(ref i), size),
        OperandKind.RegHigh8 => ReadHigh8(reg),
        OperandKind.Seg => Segs[reg].Selector,
        _ => 0,
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void WriteOperand(ref DecodedInsn i, OperandKind kind, byte reg, int size, ulong v)
    {
        switch (kind)
        {
            case OperandKind.Reg: WriteReg(reg, size, v); break;
            case OperandKind.Mem: WriteMem(i.Seg, EffectiveAddress(ref i), size, v); break;
            case OperandKind.RegHigh8: WriteHigh8(reg, v); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong ReadOp0(ref DecodedInsn i) => ReadOperand(ref i, i.Kind0, i.Reg0, i.OpSize);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong ReadOp1(ref DecodedInsn i) => ReadOperand(ref i, i.Kind1, i.Reg1, i.OpSize);

    /// <summary>Source operand with its own size (MOVZX, MOVSX, shifts by CL).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong ReadOp1Src(ref DecodedInsn i) => ReadOperand(ref i, i.Kind1, i.Reg1, i.SrcSize != 0 ? i.SrcSize : i.OpSize);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void WriteOp0(ref DecodedInsn i, ulong v) => WriteOperand(ref i, i.Kind0, i.Reg0, i.OpSize, v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void WriteOp1(ref DecodedInsn i, ulong v) => WriteOperand(ref i, i.Kind1, i.Reg1, i.OpSize, v);

    /// <summary>Masks a branch target to the operand size and checks it (CS limit outside 64-bit
    /// mode, canonical form in it) before RIP changes (SDM: JMP/CALL/RET fault with RIP unchanged).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool SetBranchTarget(ulong target, int opSize)
    {
        if (CodeBits == 64)
        {
            if (opSize == 2) target = (ushort)target;
            if (!IsCanonical(target))
            {
                RaiseGp0();
                return false;
            }
        }
        else
        {
            target &= opSize == 2 ? 0xFFFFUL : 0xFFFFFFFFUL;
            if (target > Segs[SegReg.Cs].Limit)
            {
                RaiseGp0();
                return false;
            }
        }
        Rip = target;
        return true;
    }
}
