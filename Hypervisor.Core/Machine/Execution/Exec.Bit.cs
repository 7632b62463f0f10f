using System.Numerics;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>Bit test (BT BTS BTR BTC), bit scan (BSF BSR) and bit count (POPCNT LZCNT TZCNT).</summary>
internal static unsafe partial class Exec
{
    private enum BitTestOp { Test, Set, Reset, Complement }

    public static void Bt(X86Cpu c, ref DecodedInsn i) => EmitBitTest(c, ref i, BitTestOp.Test);
    public static void Bts(X86Cpu c, ref DecodedInsn i) => EmitBitTest(c, ref i, BitTestOp.Set);
    public static void Btr(X86Cpu c, ref DecodedInsn i) => EmitBitTest(c, ref i, BitTestOp.Reset);
    public static void Btc(X86Cpu c, ref DecodedInsn i) => EmitBitTest(c, ref i, BitTestOp.Complement);

    /// <summary>
    /// CF ← the selected bit, which BTS/BTR/BTC then set, clear or flip. An immediate offset and
    /// any offset into a register are taken modulo the operand width. A register offset into a
    /// memory bit string is signed and reaches outside the operand: the operand-sized unit at
    /// EA + operand size × (offset SAR log2(width)) is accessed (SDM vol. 1 §3.4.1.1 "bit base,
    /// bit offset"; SDM "BT", table 3-2). ZF is unaffected; OF SF AF PF are undefined and kept,
    /// as QEMU keeps them.
    /// </summary>
    private static void EmitBitTest(X86Cpu c, ref DecodedInsn i, BitTestOp op)
    {
        int size = i.OpSize;
        int widthLog2 = 3 + BitOperations.Log2((uint)size);
        ulong offset = i.Kind1 == OperandKind.Imm ? i.Imm : c.ReadReg(i.Reg1, size);
        int bit = (int)offset & ((1 << widthLog2) - 1);
        ulong value;
        ulong ea = 0;
        if (i.Kind0 == OperandKind.Mem)
        {
            ea = c.EffectiveAddress(ref i);
            if (i.Kind1 != OperandKind.Imm)
            {
                long units = (long)X86Cpu.SignExtend(offset, size) >> widthLog2;
                ea = (ea + (ulong)(units * size)) & X86Cpu.SizeMask(i.AddrSize);
            }
            value = c.ReadMem(i.Seg, ea, size);
            if (c._abort) return;
        }
        else
        {
            value = c.ReadReg(i.Reg0, size);
        }
        ulong mask = 1UL << bit;
        bool cf = (value & mask) != 0;
        if (op != BitTestOp.Test)
        {
            ulong result = op switch
            {
                BitTestOp.Set => value | mask,
                BitTestOp.Reset => value & ~mask,
                _ => value ^ mask,
            };
            if (i.Kind0 == OperandKind.Mem)
            {
                c.WriteMem(i.Seg, ea, size, result);
                if (c._abort) return;
            }
            else
            {
                c.WriteReg(i.Reg0, size, result);
            }
        }
        c.SetFlags(RFlags.Cf, cf ? RFlags.Cf : 0);
    }

    /// <summary>
    /// BSF/BSR: the index of the lowest/highest set bit. A zero source sets ZF and leaves the
    /// destination as it was (AMD documents this; Intel calls it undefined). As in QEMU TCG the old
    /// value is written back at the operand size, so a 32-bit destination in 64-bit mode is
    /// zero-extended. Only ZF is defined; the others follow QEMU, which computes them as for a
    /// logical operation on the source: CF = OF = AF = 0, SF and PF from the source.
    /// </summary>
    public static void Bsf(X86Cpu c, ref DecodedInsn i) => EmitBitScan(c, ref i, reverse: false);
    public static void Bsr(X86Cpu c, ref DecodedInsn i) => EmitBitScan(c, ref i, reverse: true);

    private static void EmitBitScan(X86Cpu c, ref DecodedInsn i, bool reverse)
    {
        int size = i.OpSize;
        ulong src = c.ReadOp1(ref i);
        if (c._abort) return;
        ulong index = src == 0 ? c.ReadReg(i.Reg0, size)
            : reverse ? (ulong)BitOperations.Log2(src) : (ulong)BitOperations.TrailingZeroCount(src);
        c.WriteReg(i.Reg0, size, index);
        c.SetFlagsLazy(FlagOp.Logic, size, src, src, 0);
    }

    /// <summary>POPCNT: ZF = (source = 0); OF SF AF CF PF are cleared (SDM "POPCNT").</summary>
    public static void Popcnt(X86Cpu c, ref DecodedInsn i)
    {
        if (!c.Model.HasPopcnt)
        {
            c.RaiseUd();
            return;
        }
        ulong src = c.ReadOp1(ref i);
        if (c._abort) return;
        c.WriteReg(i.Reg0, i.OpSize, (ulong)BitOperations.PopCount(src));
        c.SetFlags(RFlags.Arith, src == 0 ? RFlags.Zf : 0);
    }

    /// <summary>LZCNT; without ABM the F3 prefix is ignored and the instruction is BSR.</summary>
    public static void Lzcnt(X86Cpu c, ref DecodedInsn i)
    {
        if (!c.Model.HasLzcnt)
        {
            Bsr(c, ref i);
            return;
        }
        EmitBitCount(c, ref i, leading: true);
    }

    /// <summary>TZCNT; without BMI1 the F3 prefix is ignored and the instruction is BSF (which is
    /// what the common "rep bsf" encoding relies on).</summary>
    public static void Tzcnt(X86Cpu c, ref DecodedInsn i)
    {
        if (!c.Model.HasBmi1)
        {
            Bsf(c, ref i);
            return;
        }
        EmitBitCount(c, ref i, leading: false);
    }

    /// <summary>LZCNT/TZCNT: the count of leading/trailing zero bits, the operand width for a zero
    /// source. CF = (source = 0), ZF = (result = 0) (SDM "LZCNT", "TZCNT"); OF SF AF PF are
    /// undefined and follow QEMU TCG: SF and PF from the result, OF = AF = 0.</summary>
    private static void EmitBitCount(X86Cpu c, ref DecodedInsn i, bool leading)
    {
        int size = i.OpSize;
        int width = size * 8;
        ulong src = c.ReadOp1(ref i);
        if (c._abort) return;
        ulong count = src == 0 ? (ulong)width
            : leading ? (ulong)(width - 1 - BitOperations.Log2(src)) : (ulong)BitOperations.TrailingZeroCount(src);
        c.WriteReg(i.Reg0, size, count);
        c.SetFlags(RFlags.Arith, X86Cpu.SzpFlags(count, size) | (src == 0 ? RFlags.Cf : 0));
    }
}
