using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Support.Data;

/// <summary>RFLAGS bit values as the SDM numbers them, for building expected flags in tests.</summary>
public static class F
{
    public const ulong CF = 1 << 0, PF = 1 << 2, AF = 1 << 4, ZF = 1 << 6, SF = 1 << 7, DF = 1 << 10, OF = 1 << 11;
    /// <summary>The six status flags.</summary>
    public const ulong Status = CF | PF | AF | ZF | SF | OF;
}

/// <summary>
/// Expected status flags computed from the SDM definitions (vol. 1 appendix A and the instruction
/// pages), independently of the CPU's lazy-flag code, plus guest code that loads chosen flags.
/// </summary>
public static class RefFlags
{
    public static ulong Mask(int size) => size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;
    public static ulong Sign(int size) => 1UL << (size * 8 - 1);

    /// <summary>PF: set when the low byte of the result has an even number of 1 bits.</summary>
    public static ulong Parity(ulong r)
    {
        int ones = 0;
        for (int b = 0; b < 8; b++)
            ones += (int)((r >> b) & 1);
        return ones % 2 == 0 ? F.PF : 0;
    }

    /// <summary>SF, ZF and PF of a result of <paramref name="size"/> bytes.</summary>
    public static ulong Szp(ulong r, int size)
    {
        r &= Mask(size);
        return (r == 0 ? F.ZF : 0) | ((r & Sign(size)) != 0 ? F.SF : 0) | Parity(r);
    }

    public static ulong Add(ulong a, ulong b, int size)
    {
        a &= Mask(size);
        b &= Mask(size);
        UInt128 wide = (UInt128)a + b;
        ulong r = (ulong)wide & Mask(size);
        bool sa = (a & Sign(size)) != 0, sb = (b & Sign(size)) != 0, sr = (r & Sign(size)) != 0;
        return Szp(r, size)
            | (wide > Mask(size) ? F.CF : 0)
            | (((a ^ b ^ r) & 0x10) != 0 ? F.AF : 0)
            | (sa == sb && sr != sa ? F.OF : 0);
    }

    public static ulong Sub(ulong a, ulong b, int size)
    {
        a &= Mask(size);
        b &= Mask(size);
        ulong r = (a - b) & Mask(size);
        bool sa = (a & Sign(size)) != 0, sb = (b & Sign(size)) != 0, sr = (r & Sign(size)) != 0;
        return Szp(r, size)
            | (a < b ? F.CF : 0)
            | (((a ^ b ^ r) & 0x10) != 0 ? F.AF : 0)
            | (sa != sb && sr != sa ? F.OF : 0);
    }

    /// <summary>
    /// Emits guest code that sets CF PF AF ZF SF OF to the bits of <paramref name="flags"/> and
    /// leaves every general register as it was: OF from an 8-bit ADD (0x7F + 1 overflows, 0 + 1
    /// does not), the other five from SAHF. Only PUSH, POP, MOV, ADD and SAHF are used.
    /// </summary>
    public static void Load(Assembler a, ulong flags)
    {
        switch (a.Bitness)
        {
            case 64: a.push(rax); break;
            case 32: a.push(eax); break;
            default: a.push(ax); break;
        }
        a.mov(al, (flags & F.OF) != 0 ? (byte)0x7F : (byte)0);
        a.add(al, 1);
        a.mov(ah, (byte)((flags & (F.SF | F.ZF | F.AF | F.PF | F.CF)) | 2));
        a.sahf();
        switch (a.Bitness)
        {
            case 64: a.pop(rax); break;
            case 32: a.pop(eax); break;
            default: a.pop(ax); break;
        }
    }

    /// <summary>Every combination of CF PF ZF SF OF (AF does not enter any condition).</summary>
    public static IEnumerable<ulong> ConditionCombinations()
    {
        ulong[] bits = { F.CF, F.PF, F.ZF, F.SF, F.OF };
        for (int k = 0; k < 32; k++)
        {
            ulong f = 0;
            for (int b = 0; b < 5; b++)
                if ((k & (1 << b)) != 0) f |= bits[b];
            yield return f;
        }
    }

    /// <summary>The tttn condition (SDM vol. 2 table B-1) evaluated on materialized flags.</summary>
    public static bool Condition(int cc, ulong flags)
    {
        bool cf = (flags & F.CF) != 0, zf = (flags & F.ZF) != 0, sf = (flags & F.SF) != 0;
        bool of = (flags & F.OF) != 0, pf = (flags & F.PF) != 0;
        bool r = (cc >> 1) switch
        {
            0 => of,
            1 => cf,
            2 => zf,
            3 => cf || zf,
            4 => sf,
            5 => pf,
            6 => sf != of,
            _ => zf || sf != of,
        };
        return (cc & 1) != 0 ? !r : r;
    }
}
