using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>
/// The exchange-and-modify instructions that LOCK makes atomic: XADD, CMPXCHG, CMPXCHG8B,
/// CMPXCHG16B. Each is one read-modify-write of this vCPU; every read comes before any write and
/// the memory write before any register write, so a fault leaves no trace. The decoder already
/// rejects LOCK on a register destination and the register forms of CMPXCHG8B/16B (#UD).
/// </summary>
internal static unsafe partial class Exec
{
    /// <summary>XADD: TEMP ← SRC + DEST; SRC ← DEST; DEST ← TEMP; flags of the addition. With the
    /// same register as both operands the sum wins (DEST is written last).</summary>
    public static void Xadd(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.OpSize;
        ulong dest = c.ReadOp0(ref i);
        ulong src = c.ReadOp1(ref i);
        if (c._abort) return;
        ulong sum = (dest + src) & X86Cpu.SizeMask(size);
        if (i.Kind0 == OperandKind.Mem)
        {
            c.WriteOp0(ref i, sum);
            if (c._abort) return;
            c.WriteOp1(ref i, dest);
        }
        else
        {
            c.WriteOp1(ref i, dest);
            c.WriteOp0(ref i, sum);
        }
        c.SetFlagsLazy(FlagOp.Add, size, sum, dest, src);
    }

    /// <summary>
    /// CMPXCHG: compares the accumulator with DEST (flags of CMP accumulator, DEST); equal: DEST ←
    /// SRC, else accumulator ← DEST. A memory destination receives a write cycle either way (the old
    /// value when the comparison fails), so a read-only page faults even then (SDM "CMPXCHG").
    /// A register destination is left completely alone on failure, and the accumulator is not
    /// written on success, so neither is zero-extended then (as QEMU TCG does).
    /// </summary>
    public static void Cmpxchg(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.OpSize;
        ulong acc = c.ReadReg(Gpr.Rax, size);
        ulong dest = c.ReadOp0(ref i);
        ulong src = c.ReadOp1(ref i);
        if (c._abort) return;
        bool equal = acc == dest;
        if (i.Kind0 == OperandKind.Mem)
        {
            c.WriteOp0(ref i, equal ? src : dest);
            if (c._abort) return;
        }
        else if (equal)
        {
            c.WriteOp0(ref i, src);
        }
        if (!equal)
            c.WriteReg(Gpr.Rax, size, dest);
        c.SetFlagsLazy(FlagOp.Sub, size, (acc - dest) & X86Cpu.SizeMask(size), acc, dest);
    }

    /// <summary>CMPXCHG8B m64: EDX:EAX against m64; equal: ZF ← 1, m64 ← ECX:EBX; else ZF ← 0,
    /// m64 written back unchanged, EDX:EAX ← m64. Only ZF changes.</summary>
    public static void Cmpxchg8b(X86Cpu c, ref DecodedInsn i)
    {
        ulong ea = c.EffectiveAddress(ref i);
        ulong old = c.ReadMem(i.Seg, ea, 8);
        if (c._abort) return;
        ulong expected = c.ReadReg(Gpr.Rax, 4) | c.ReadReg(Gpr.Rdx, 4) << 32;
        bool equal = old == expected;
        c.WriteMem(i.Seg, ea, 8, equal ? c.ReadReg(Gpr.Rbx, 4) | c.ReadReg(Gpr.Rcx, 4) << 32 : old);
        if (c._abort) return;
        if (!equal)
        {
            c.WriteReg(Gpr.Rax, 4, old);
            c.WriteReg(Gpr.Rdx, 4, old >> 32);
        }
        c.SetFlags(RFlags.Zf, equal ? RFlags.Zf : 0);
    }

    /// <summary>CMPXCHG16B m128 (64-bit mode, REX.W): RDX:RAX against m128, RCX:RBX stored on
    /// success; otherwise as CMPXCHG8B. #UD without CPUID.01H:ECX.CX16; #GP(0) unless the linear
    /// address is 16-byte aligned (checked before any access).</summary>
    public static void Cmpxchg16b(X86Cpu c, ref DecodedInsn i)
    {
        if (!c.Model.HasCx16)
        {
            c.RaiseUd();
            return;
        }
        ulong ea = c.EffectiveAddress(ref i);
        if (((c.SegBase(i.Seg) + ea) & 15) != 0)
        {
            c.RaiseGp0();
            return;
        }
        // Aligned, so both halves lie in one page: if the first store succeeds so does the second.
        ulong eaHigh = (ea + 8) & X86Cpu.SizeMask(i.AddrSize);
        ulong lo = c.ReadMem(i.Seg, ea, 8);
        ulong hi = c.ReadMem(i.Seg, eaHigh, 8);
        if (c._abort) return;
        bool equal = lo == c.ReadReg(Gpr.Rax, 8) && hi == c.ReadReg(Gpr.Rdx, 8);
        c.WriteMem(i.Seg, ea, 8, equal ? c.ReadReg(Gpr.Rbx, 8) : lo);
        if (c._abort) return;
        c.WriteMem(i.Seg, eaHigh, 8, equal ? c.ReadReg(Gpr.Rcx, 8) : hi);
        if (c._abort) return;
        if (!equal)
        {
            c.WriteReg(Gpr.Rax, 8, lo);
            c.WriteReg(Gpr.Rdx, 8, hi);
        }
        c.SetFlags(RFlags.Zf, equal ? RFlags.Zf : 0);
    }
}
