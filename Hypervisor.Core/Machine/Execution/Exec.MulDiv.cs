using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>
/// MUL/IMUL/DIV/IDIV (SDM vol. 2A/2B). Multiplies set CF=OF when the high half is significant;
/// SF/ZF/PF come from the low half and AF=0 (undefined in the SDM, QEMU's values). Divides raise
/// #DE for a zero divisor and for a quotient that does not fit, before any register changes, and
/// leave the flags as they were (undefined in the SDM; QEMU does not touch them).
/// </summary>
internal static unsafe partial class Exec
{
    /// <summary>MUL r/m: AX = AL*src, DX:AX = AX*src, EDX:EAX = EAX*src or RDX:RAX = RAX*src.</summary>
    public static void Mul(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.OpSize;
        ulong src = c.ReadOp0(ref i);
        if (c._abort) return;
        ulong* r = c.Regs;
        ulong lo, hi;
        switch (size)
        {
            case 1:
            {
                ulong p = (byte)r[Gpr.Rax] * src;
                c.WriteReg(Gpr.Rax, 2, p);
                lo = p & 0xFF;
                hi = p >> 8;
                break;
            }
            case 2:
            {
                ulong p = (ushort)r[Gpr.Rax] * src;
                lo = p & 0xFFFF;
                hi = p >> 16;
                c.WriteReg(Gpr.Rax, 2, lo);
                c.WriteReg(Gpr.Rdx, 2, hi);
                break;
            }
            case 4:
            {
                ulong p = (uint)r[Gpr.Rax] * src;
                lo = (uint)p;
                hi = p >> 32;
                c.WriteReg(Gpr.Rax, 4, lo);
                c.WriteReg(Gpr.Rdx, 4, hi);
                break;
            }
            default:
                hi = Math.BigMul(r[Gpr.Rax], src, out lo);
                r[Gpr.Rax] = lo;
                r[Gpr.Rdx] = hi;
                break;
        }
        c.SetFlagsLazy(FlagOp.Mul, size, lo, hi != 0 ? 1UL : 0UL, 0);
    }

    /// <summary>IMUL in its three forms: r/m (into AX, DX:AX, EDX:EAX, RDX:RAX), reg *= r/m, and
    /// reg = r/m * imm. CF=OF=1 when the signed product does not fit the destination.</summary>
    public static void Imul(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.OpSize;
        if (i.Kind1 == OperandKind.None)
        {
            ImulOneOperand(c, ref i, size);
            return;
        }
        ulong a, b;
        if (i.Kind2 == OperandKind.Imm)
        {
            a = c.ReadOp1(ref i);
            b = i.Imm;
        }
        else
        {
            a = c.ReadOp0(ref i);
            b = c.ReadOp1(ref i);
        }
        if (c._abort) return;
        ulong mask = X86Cpu.SizeMask(size);
        ulong lo;
        bool overflow;
        if (size == 8)
        {
            long hi = Math.BigMul((long)a, (long)b, out long low);
            lo = (ulong)low;
            overflow = hi != low >> 63;
        }
        else
        {
            long p = (long)X86Cpu.SignExtend(a & mask, size) * (long)X86Cpu.SignExtend(b & mask, size);
            lo = (ulong)p & mask;
            overflow = (long)X86Cpu.SignExtend(lo, size) != p;
        }
        c.WriteReg(i.Reg0, size, lo);
        c.SetFlagsLazy(FlagOp.Mul, size, lo, overflow ? 1UL : 0UL, 0);
    }

    private static void ImulOneOperand(X86Cpu c, ref DecodedInsn i, int size)
    {
        ulong src = c.ReadOp0(ref i);
        if (c._abort) return;
        ulong* r = c.Regs;
        ulong lo;
        bool overflow;
        if (size == 8)
        {
            long hi = Math.BigMul((long)r[Gpr.Rax], (long)src, out long low);
            r[Gpr.Rax] = (ulong)low;
            r[Gpr.Rdx] = (ulong)hi;
            lo = (ulong)low;
            overflow = hi != low >> 63;
        }
        else
        {
            ulong mask = X86Cpu.SizeMask(size);
            long p = (long)X86Cpu.SignExtend(r[Gpr.Rax] & mask, size) * (long)X86Cpu.SignExtend(src, size);
            lo = (ulong)p & mask;
            overflow = (long)X86Cpu.SignExtend(lo, size) != p;
            if (size == 1)
            {
                c.WriteReg(Gpr.Rax, 2, (ulong)p);
            }
            else
            {
                c.WriteReg(Gpr.Rax, size, lo);
                c.WriteReg(Gpr.Rdx, size, (ulong)p >> (size * 8));
            }
        }
        c.SetFlagsLazy(FlagOp.Mul, size, lo, overflow ? 1UL : 0UL, 0);
    }

    /// <summary>DIV r/m: unsigned AX, DX:AX, EDX:EAX or RDX:RAX by the operand; quotient in the low
    /// half, remainder in the high half (AH for bytes).</summary>
    public static void Div(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.OpSize;
        ulong d = c.ReadOp0(ref i);
        if (c._abort) return;
        ulong* r = c.Regs;
        if (size == 8)
        {
            ulong hi = r[Gpr.Rdx], lo = r[Gpr.Rax];
            // hi >= d covers d == 0 and every quotient of 2^64 or more.
            if (hi >= d)
            {
                c.RaiseFault(Vector.DE);
                return;
            }
            ulong q, rem;
            if (hi == 0)
            {
                q = lo / d;
                rem = lo - q * d;
            }
            else
            {
                var n = new UInt128(hi, lo);
                q = (ulong)(n / d);
                rem = lo - q * d; // exact modulo 2^64, and the true remainder is below d
            }
            r[Gpr.Rax] = q;
            r[Gpr.Rdx] = rem;
            return;
        }
        if (d == 0)
        {
            c.RaiseFault(Vector.DE);
            return;
        }
        int bits = size * 8;
        ulong mask = X86Cpu.SizeMask(size);
        ulong dividend = size == 1 ? (ushort)r[Gpr.Rax] : ((r[Gpr.Rdx] & mask) << bits) | (r[Gpr.Rax] & mask);
        ulong quot = dividend / d;
        if (quot > mask)
        {
            c.RaiseFault(Vector.DE);
            return;
        }
        ulong remainder = dividend - quot * d;
        if (size == 1)
        {
            c.WriteReg(Gpr.Rax, 2, (remainder << 8) | quot);
            return;
        }
        c.WriteReg(Gpr.Rax, size, quot);
        c.WriteReg(Gpr.Rdx, size, remainder);
    }

    /// <summary>IDIV r/m: signed division truncating toward zero; the remainder takes the
    /// dividend's sign. A quotient outside the destination's range (the most negative dividend by
    /// -1 among them) is #DE.</summary>
    public static void Idiv(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.OpSize;
        ulong src = c.ReadOp0(ref i);
        if (c._abort) return;
        if (src == 0)
        {
            c.RaiseFault(Vector.DE);
            return;
        }
        ulong* r = c.Regs;
        if (size == 8)
        {
            Idiv128(c, (long)src);
            return;
        }
        int bits = size * 8;
        ulong mask = X86Cpu.SizeMask(size);
        long n = size == 1
            ? (short)r[Gpr.Rax]
            : (long)X86Cpu.SignExtend(((r[Gpr.Rdx] & mask) << bits) | (r[Gpr.Rax] & mask), size * 2);
        long d = (long)X86Cpu.SignExtend(src, size);
        // Dividing by -1 is negation; long.MinValue / -1 would overflow the host's division.
        long q = d == -1 ? -n : n / d;
        long rem = d == -1 ? 0 : n - q * d;
        long limit = 1L << (bits - 1);
        if (q >= limit || q < -limit)
        {
            c.RaiseFault(Vector.DE);
            return;
        }
        if (size == 1)
        {
            c.WriteReg(Gpr.Rax, 2, (((ulong)rem & 0xFF) << 8) | ((ulong)q & 0xFF));
            return;
        }
        c.WriteReg(Gpr.Rax, size, (ulong)q);
        c.WriteReg(Gpr.Rdx, size, (ulong)rem);
    }

    /// <summary>IDIV r/m64: RDX:RAX by a non-zero divisor, on magnitudes so nothing can overflow on the host.</summary>
    private static void Idiv128(X86Cpu c, long d)
    {
        ulong* r = c.Regs;
        ulong hi = r[Gpr.Rdx], lo = r[Gpr.Rax];
        long q, rem;
        if (hi == (ulong)((long)lo >> 63))
        {
            // The dividend fits in 64 bits: only long.MinValue / -1 overflows.
            long n = (long)lo;
            if (d == -1)
            {
                if (n == long.MinValue)
                {
                    c.RaiseFault(Vector.DE);
                    return;
                }
                q = -n;
                rem = 0;
            }
            else
            {
                q = n / d;
                rem = n - q * d;
            }
        }
        else
        {
            bool negN = (long)hi < 0, negD = d < 0;
            var n = new UInt128(hi, lo);
            if (negN) n = 0 - n;
            ulong ud = negD ? 0 - (ulong)d : (ulong)d;
            UInt128 uq = n / ud;
            ulong urem = (ulong)(n - uq * ud);
            bool negQ = negN != negD;
            // |q| may be 2^63 only when q is negative.
            if (uq > (negQ ? 1UL << 63 : (1UL << 63) - 1))
            {
                c.RaiseFault(Vector.DE);
                return;
            }
            q = negQ ? (long)(0 - (ulong)uq) : (long)(ulong)uq;
            rem = negN ? (long)(0 - urem) : (long)urem;
        }
        r[Gpr.Rax] = (ulong)q;
        r[Gpr.Rdx] = (ulong)rem;
    }
}
