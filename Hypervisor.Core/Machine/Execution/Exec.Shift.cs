using System.Runtime.CompilerServices;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>
/// SHL/SAL/SHR/SAR, ROL/ROR/RCL/RCR, SHLD/SHRD (SDM vol. 2B). The count (1, imm8 or CL) is masked
/// to 5 bits, 6 for 64-bit operands; a masked count of 0 changes no flags. The destination is
/// written back even then, as QEMU does: a 32-bit register destination has its upper half zeroed.
/// Where the SDM leaves flags undefined (OF for counts above 1, AF, CF past the operand width,
/// SHLD/SHRD counts above 16 on 16-bit operands) the results are QEMU TCG's, so differential runs agree.
/// </summary>
internal static unsafe partial class Exec
{
    /// <summary>The masked count of a shift whose count is operand <c>kind</c> (an immediate or CL).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ShiftCount(X86Cpu c, OperandKind kind, ulong imm, int size)
    {
        ulong n = kind == OperandKind.Imm ? imm : c.Regs[Gpr.Rcx];
        return (int)n & (size == 8 ? 0x3F : 0x1F);
    }

    public static void Shl(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.OpSize;
        int count = ShiftCount(c, i.Kind1, i.Imm, size);
        ulong a = c.ReadOp0(ref i);
        if (c._abort) return;
        if (count == 0)
        {
            c.WriteOp0(ref i, a);
            return;
        }
        ulong mask = X86Cpu.SizeMask(size);
        ulong lastOut = a << (count - 1); // its MSB is the last bit shifted out (CF)
        ulong r = (lastOut << 1) & mask;
        c.WriteOp0(ref i, r);
        if (c._abort) return;
        c.SetFlagsLazy(FlagOp.Shl, size, r, lastOut & mask, 0);
    }

    public static void Shr(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.OpSize;
        int count = ShiftCount(c, i.Kind1, i.Imm, size);
        ulong a = c.ReadOp0(ref i);
        if (c._abort) return;
        if (count == 0)
        {
            c.WriteOp0(ref i, a);
            return;
        }
        ulong lastOut = a >> (count - 1); // its LSB is the last bit shifted out (CF)
        ulong r = lastOut >> 1;
        c.WriteOp0(ref i, r);
        if (c._abort) return;
        c.SetFlagsLazy(FlagOp.Sar, size, r, lastOut, 0);
    }

    public static void Sar(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.OpSize;
        int count = ShiftCount(c, i.Kind1, i.Imm, size);
        ulong a = c.ReadOp0(ref i);
        if (c._abort) return;
        if (count == 0)
        {
            c.WriteOp0(ref i, a);
            return;
        }
        ulong mask = X86Cpu.SizeMask(size);
        long sa = (long)X86Cpu.SignExtend(a, size);
        ulong lastOut = (ulong)(sa >> (count - 1));
        ulong r = (ulong)(sa >> count) & mask;
        c.WriteOp0(ref i, r);
        if (c._abort) return;
        c.SetFlagsLazy(FlagOp.Sar, size, r, lastOut & mask, 0);
    }

    // ---- Rotates: only CF and OF change, so they are set eagerly ----------------------------------

    /// <summary>ROL: CF = LSB(result), OF = MSB(result) XOR CF, for every non-zero masked count
    /// (SDM defines OF for a count of 1 only; QEMU computes it this way for all).</summary>
    public static void Rol(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.OpSize;
        int count = ShiftCount(c, i.Kind1, i.Imm, size);
        ulong a = c.ReadOp0(ref i);
        if (c._abort) return;
        if (count == 0)
        {
            c.WriteOp0(ref i, a);
            return;
        }
        int bits = size * 8;
        int n = count & (bits - 1);
        ulong r = n == 0 ? a : ((a << n) | (a >> (bits - n))) & X86Cpu.SizeMask(size);
        c.WriteOp0(ref i, r);
        if (c._abort) return;
        ulong cf = r & 1;
        ulong of = (r >> (bits - 1)) ^ cf;
        c.SetFlags(RFlags.Cf | RFlags.Of, cf | (of << 11));
    }

    /// <summary>ROR: CF = MSB(result), OF = the two most significant result bits XORed.</summary>
    public static void Ror(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.OpSize;
        int count = ShiftCount(c, i.Kind1, i.Imm, size);
        ulong a = c.ReadOp0(ref i);
        if (c._abort) return;
        if (count == 0)
        {
            c.WriteOp0(ref i, a);
            return;
        }
        int bits = size * 8;
        int n = count & (bits - 1);
        ulong r = n == 0 ? a : ((a >> n) | (a << (bits - n))) & X86Cpu.SizeMask(size);
        c.WriteOp0(ref i, r);
        if (c._abort) return;
        ulong cf = r >> (bits - 1);
        ulong of = cf ^ ((r >> (bits - 2)) & 1);
        c.SetFlags(RFlags.Cf | RFlags.Of, cf | (of << 11));
    }

    /// <summary>The RCL/RCR count: masked, then taken modulo 9 or 17 for 8- and 16-bit operands
    /// (the rotated quantity is CF plus the operand). A result of 0 changes no flags.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int RotateCarryCount(X86Cpu c, ref DecodedInsn i)
    {
        int count = ShiftCount(c, i.Kind1, i.Imm, i.OpSize);
        return i.OpSize switch { 1 => count % 9, 2 => count % 17, _ => count };
    }

    /// <summary>RCL: rotates CF:operand left. CF = the last bit out; OF = MSB(operand) XOR MSB(result),
    /// which is the SDM's MSB(result) XOR CF for a count of 1 and QEMU's value for other counts.</summary>
    public static void Rcl(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.OpSize;
        int count = RotateCarryCount(c, ref i);
        ulong a = c.ReadOp0(ref i);
        if (c._abort) return;
        if (count == 0)
        {
            c.WriteOp0(ref i, a);
            return;
        }
        int bits = size * 8; // count is at most bits (8, 16) or bits - 1 (32, 64): every shift below is in range
        ulong cin = c.GetCf() ? 1UL : 0UL;
        ulong r = (a << count) | (cin << (count - 1));
        if (count > 1)
            r |= a >> (bits + 1 - count);
        r &= X86Cpu.SizeMask(size);
        c.WriteOp0(ref i, r);
        if (c._abort) return;
        ulong cf = (a >> (bits - count)) & 1;
        ulong of = ((a ^ r) >> (bits - 1)) & 1;
        c.SetFlags(RFlags.Cf | RFlags.Of, cf | (of << 11));
    }

    /// <summary>RCR: rotates operand:CF right. OF = MSB(operand) XOR MSB(result), which is the SDM's
    /// MSB(operand) XOR CF for a count of 1.</summary>
    public static void Rcr(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.OpSize;
        int count = RotateCarryCount(c, ref i);
        ulong a = c.ReadOp0(ref i);
        if (c._abort) return;
        if (count == 0)
        {
            c.WriteOp0(ref i, a);
            return;
        }
        int bits = size * 8;
        ulong cin = c.GetCf() ? 1UL : 0UL;
        ulong r = (a >> count) | (cin << (bits - count));
        if (count > 1)
            r |= a << (bits + 1 - count);
        r &= X86Cpu.SizeMask(size);
        c.WriteOp0(ref i, r);
        if (c._abort) return;
        ulong cf = (a >> (count - 1)) & 1;
        ulong of = ((a ^ r) >> (bits - 1)) & 1;
        c.SetFlags(RFlags.Cf | RFlags.Of, cf | (of << 11));
    }

    // ---- Double-precision shifts ---------------------------------------------------------------

    /// <summary>SHLD r/m, reg, imm8/CL: bits of reg fill from the right. A 16-bit operand shifted by
    /// 17..31 draws on dest:src:dest (the Intel behaviour QEMU implements); flags as SHL.</summary>
    public static void Shld(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.OpSize;
        int count = ShiftCount(c, i.Kind2, i.Imm, size);
        ulong a = c.ReadOp0(ref i);
        if (c._abort) return;
        if (count == 0)
        {
            c.WriteOp0(ref i, a);
            return;
        }
        ulong b = c.ReadReg(i.Reg1, size);
        ulong r, lastOut;
        switch (size)
        {
            case 8:
                r = (a << count) | (b >> (64 - count));
                lastOut = a << (count - 1);
                break;
            case 4:
            {
                ulong x = (a << 32) | b;
                r = (uint)((x << count) >> 32);
                lastOut = (uint)((x << (count - 1)) >> 32);
                break;
            }
            default:
            {
                ulong x = (a << 32) | (b << 16) | a;
                r = (ushort)((x << count) >> 32);
                lastOut = (ushort)((x << (count - 1)) >> 32);
                break;
            }
        }
        c.WriteOp0(ref i, r);
        if (c._abort) return;
        c.SetFlagsLazy(FlagOp.Shl, size, r, lastOut, 0);
    }

    /// <summary>SHRD r/m, reg, imm8/CL: bits of reg fill from the left; flags as SHR.</summary>
    public static void Shrd(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.OpSize;
        int count = ShiftCount(c, i.Kind2, i.Imm, size);
        ulong a = c.ReadOp0(ref i);
        if (c._abort) return;
        if (count == 0)
        {
            c.WriteOp0(ref i, a);
            return;
        }
        ulong b = c.ReadReg(i.Reg1, size);
        ulong r, lastOut;
        switch (size)
        {
            case 8:
                r = (a >> count) | (b << (64 - count));
                lastOut = a >> (count - 1);
                break;
            case 4:
            {
                ulong x = (b << 32) | a;
                r = (uint)(x >> count);
                lastOut = (uint)(x >> (count - 1));
                break;
            }
            default:
            {
                ulong x = (a << 32) | (b << 16) | a;
                r = (ushort)(x >> count);
                lastOut = (ushort)(x >> (count - 1));
                break;
            }
        }
        c.WriteOp0(ref i, r);
        if (c._abort) return;
        c.SetFlagsLazy(FlagOp.Sar, size, r, lastOut, 0);
    }
}
