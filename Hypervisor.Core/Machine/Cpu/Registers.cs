namespace Hypervisor.Core.Machine.Cpu;

/// <summary>General register numbers as the SDM encodes them (and as KVM's register cache numbers them).</summary>
public static class Gpr
{
    public const int Rax = 0, Rcx = 1, Rdx = 2, Rbx = 3, Rsp = 4, Rbp = 5, Rsi = 6, Rdi = 7;
    public const int R8 = 8, R9 = 9, R10 = 10, R11 = 11, R12 = 12, R13 = 13, R14 = 14, R15 = 15;
    /// <summary>APX's extended GPRs R16..R31 follow R15 (reachable only through REX2 with XCR0[19] set).</summary>
    public const int R16 = 16, R31 = 31;
    /// <summary>All 32 registers, R16..R31 included.</summary>
    public const int Count = 32;
    public const int LegacyCount = 16;
    /// <summary>How many extended GPRs APX adds (R16..R31).</summary>
    public const int ExtendedCount = 16;
}

/// <summary>Segment register numbers in SDM encoding order.</summary>
public static class SegReg
{
    public const int Es = 0, Cs = 1, Ss = 2, Ds = 3, Fs = 4, Gs = 5;
    public const int Ldtr = 6, Tr = 7;
    public const int Count = 8;
    public static readonly string[] Names = { "es", "cs", "ss", "ds", "fs", "gs", "ldtr", "tr" };
}

/// <summary>RFLAGS bits (SDM vol. 1 §3.4.3).</summary>
public static class RFlags
{
    public const ulong Cf = 1UL << 0, Fixed1 = 1UL << 1, Pf = 1UL << 2, Af = 1UL << 4, Zf = 1UL << 6, Sf = 1UL << 7;
    public const ulong Tf = 1UL << 8, If = 1UL << 9, Df = 1UL << 10, Of = 1UL << 11;
    public const ulong Iopl = 3UL << 12, Nt = 1UL << 14, Rf = 1UL << 16, Vm = 1UL << 17, Ac = 1UL << 18;
    public const ulong Vif = 1UL << 19, Vip = 1UL << 20, Id = 1UL << 21;
    /// <summary>The six status flags computed by arithmetic.</summary>
    public const ulong Arith = Cf | Pf | Af | Zf | Sf | Of;
    /// <summary>Bits software can ever see set.</summary>
    public const ulong Defined = Arith | Fixed1 | Tf | If | Df | Iopl | Nt | Rf | Vm | Ac | Vif | Vip | Id;
}

public static class Cr0
{
    public const ulong Pe = 1UL << 0, Mp = 1UL << 1, Em = 1UL << 2, Ts = 1UL << 3, Et = 1UL << 4, Ne = 1UL << 5;
    public const ulong Wp = 1UL << 16, Am = 1UL << 18, Nw = 1UL << 29, Cd = 1UL << 30, Pg = 1UL << 31;
    public const ulong Reserved = ~(Pe | Mp | Em | Ts | Et | Ne | Wp | Am | Nw | Cd | Pg);
}

public static class Cr4
{
    public const ulong Vme = 1UL << 0, Pvi = 1UL << 1, Tsd = 1UL << 2, De = 1UL << 3, Pse = 1UL << 4, Pae = 1UL << 5;
    public const ulong Mce = 1UL << 6, Pge = 1UL << 7, Pce = 1UL << 8, Osfxsr = 1UL << 9, Osxmmexcpt = 1UL << 10;
    public const ulong Umip = 1UL << 11, La57 = 1UL << 12, Vmxe = 1UL << 13, Smxe = 1UL << 14, Fsgsbase = 1UL << 16;
    public const ulong Pcide = 1UL << 17, Osxsave = 1UL << 18, Smep = 1UL << 20, Smap = 1UL << 21, Pke = 1UL << 22;
}

public static class Efer
{
    public const ulong Sce = 1UL << 0, Lme = 1UL << 8, Lma = 1UL << 10, Nxe = 1UL << 11, Svme = 1UL << 12;
    public const ulong Lmsle = 1UL << 13, Ffxsr = 1UL << 14, Tce = 1UL << 15;
}

/// <summary>XCR0 state-component bits (SDM vol. 1 §13.1).</summary>
public static class Xcr0Bits
{
    public const ulong X87 = 1UL << 0, Sse = 1UL << 1, Avx = 1UL << 2, BndRegs = 1UL << 3, BndCsr = 1UL << 4;
    public const ulong Mpx = BndRegs | BndCsr;
    /// <summary>APX extended GPRs R16..R31 (state component 19).</summary>
    public const ulong Apx = 1UL << 19;
}

public static class Cr3Bits
{
    /// <summary>With CR4.PCIDE=1, bit 63 of the source operand of MOV CR3 means "do not flush".</summary>
    public const ulong NoFlush = 1UL << 63;
    public const ulong PcidMask = 0xFFF;
}

/// <summary>Architectural exception vectors.</summary>
public static class Vector
{
    public const int DE = 0, DB = 1, NMI = 2, BP = 3, OF = 4, BR = 5, UD = 6, NM = 7, DF = 8;
    public const int TS = 10, NP = 11, SS = 12, GP = 13, PF = 14, MF = 16, AC = 17, MC = 18, XM = 19;
    public static readonly string[] Mnemonics =
    {
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
        "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
    };
    public static string Name(int v) => v >= 0 && v < Mnemonics.Length ? Mnemonics[v] : $"vector {v}";
}

/// <summary>
/// A segment register with its hidden part (the descriptor cache): what the CPU actually uses.
/// Attributes use the VMX access-rights layout: type[3:0], S[4], DPL[6:5], P[7], AVL[12], L[13], D/B[14], G[15].
/// </summary>
public struct Segment
{
    public ushort Selector;
    public ulong Base;
    public uint Limit;
    public ushort Attributes;

    public const ushort AttrP = 1 << 7, AttrS = 1 << 4, AttrL = 1 << 13, AttrDb = 1 << 14, AttrG = 1 << 15;

    public readonly int Type => Attributes & 0xF;
    public readonly int Dpl => (Attributes >> 5) & 3;
    public readonly bool Present => (Attributes & AttrP) != 0;
    public readonly bool IsSystem => (Attributes & AttrS) == 0;
    public readonly bool IsCode => !IsSystem && (Type & 8) != 0;
    public readonly bool Long => (Attributes & AttrL) != 0;
    public readonly bool DefaultBig => (Attributes & AttrDb) != 0;

    /// <summary>The segment a real-mode load produces: base = selector * 16, limit and attributes kept.</summary>
    public static Segment RealMode(ushort selector, ushort attributes = 0x93) =>
        new() { Selector = selector, Base = (ulong)selector << 4, Limit = 0xFFFF, Attributes = attributes };

    public override readonly string ToString() => $"sel=0x{Selector:x4} base=0x{Base:x} limit=0x{Limit:x} attr=0x{Attributes:x4}";
}

/// <summary>GDTR / IDTR.</summary>
public struct DescriptorTable
{
    public ulong Base;
    public ushort Limit;
}
