using Hypervisor.Core.Machine.Cpu;
using Iced.Intel;

namespace Hypervisor.Core.Tests.Support;

/// <summary>
/// Definitions the ALU tests build their expected values from: masks, parity, the status flags by
/// name, and instructions by Iced <see cref="Code"/> name and operand size (so one table row can
/// cover every size). Written from the SDM's definitions, independently of the executors.
/// </summary>
public static class AluReference
{
    public const ulong C = RFlags.Cf, P = RFlags.Pf, A = RFlags.Af, Z = RFlags.Zf, S = RFlags.Sf, O = RFlags.Of;
    public static readonly int[] Sizes = { 1, 2, 4, 8 };

    public static int Bits(int size) => size * 8;
    public static ulong Mask(int size) => size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;
    public static ulong Msb(int size) => 1UL << (size * 8 - 1);
    public static long Signed(ulong v, int size) => (long)(v << (64 - size * 8)) >> (64 - size * 8);

    /// <summary>PF: set when the low byte has an even number of 1 bits (SDM vol. 1 §3.4.3.1).</summary>
    public static bool EvenParity(ulong v)
    {
        int ones = 0;
        for (int b = 0; b < 8; b++)
            ones += (int)(v >> b) & 1;
        return ones % 2 == 0;
    }

    /// <summary>SF, ZF, PF of a result of the given size.</summary>
    public static ulong Szp(ulong r, int size)
    {
        r &= Mask(size);
        return (r == 0 ? Z : 0) | ((r & Msb(size)) != 0 ? S : 0) | (EvenParity(r) ? P : 0);
    }

    public static ulong If(bool condition, ulong flag) => condition ? flag : 0;

    /// <summary>"C P A Z S O" style names to flag bits ("" is none).</summary>
    public static ulong Flags(string names)
    {
        ulong f = 0;
        foreach (var n in names.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            f |= n switch { "C" => C, "P" => P, "A" => A, "Z" => Z, "S" => S, "O" => O, _ => throw new ArgumentException(n) };
        return f;
    }

    /// <summary>Flag bits as names, for readable assertion messages.</summary>
    public static string Names(ulong f)
    {
        var parts = new List<string>();
        if ((f & C) != 0) parts.Add("C");
        if ((f & P) != 0) parts.Add("P");
        if ((f & A) != 0) parts.Add("A");
        if ((f & Z) != 0) parts.Add("Z");
        if ((f & S) != 0) parts.Add("S");
        if ((f & O) != 0) parts.Add("O");
        return string.Join(" ", parts);
    }

    /// <summary>AL/AX/EAX/RAX-style register n (0 = A, 1 = C, 2 = D, 3 = B) of the given size.</summary>
    public static Register Reg(int n, int size) => size switch
    {
        1 => Register.AL + n,
        2 => Register.AX + n,
        4 => Register.EAX + n,
        _ => Register.RAX + n,
    };

    /// <summary>The Iced code named by a pattern where {0} is the operand width in bits ("Add_rm{0}_r{0}").</summary>
    public static Code CodeOf(string pattern, int size) => Enum.Parse<Code>(string.Format(pattern, size * 8));

    /// <summary>Emits one instruction built from its Iced code and operands.</summary>
    public static Action<Assembler> Insn(Instruction instruction) => a => a.AddInstruction(instruction);

    /// <summary>Interesting operand values for a size: zero, one, nibble and sign boundaries, all ones, a pattern.</summary>
    public static ulong[] Edges(int size)
    {
        ulong m = Mask(size), msb = Msb(size);
        return new ulong[] { 0, 1, 0x0F, 0x10, msb - 1, msb, msb + 1, m - 1, m, 0x5A5A5A5A5A5A5A5AUL & m, 0x9C3B1F86E7D20A45UL & m };
    }
}
