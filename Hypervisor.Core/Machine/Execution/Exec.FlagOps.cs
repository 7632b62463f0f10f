using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>Flag control (SDM vol. 1 §7.3.13.1): CLC STC CMC CLD STD LAHF SAHF. CLI/STI are system
/// instructions (Exec.System.cs); PUSHF/POPF are stack instructions.</summary>
internal static unsafe partial class Exec
{
    public static void Clc(X86Cpu c, ref DecodedInsn i) => c.SetFlags(RFlags.Cf, 0);
    public static void Stc(X86Cpu c, ref DecodedInsn i) => c.SetFlags(RFlags.Cf, RFlags.Cf);

    public static void Cmc(X86Cpu c, ref DecodedInsn i) => c.SetFlags(RFlags.Cf, c.GetCf() ? 0 : RFlags.Cf);

    // DF is never held lazily: it lives in _rflags only.
    public static void Cld(X86Cpu c, ref DecodedInsn i) => c._rflags &= ~RFlags.Df;
    public static void Std(X86Cpu c, ref DecodedInsn i) => c._rflags |= RFlags.Df;

    /// <summary>The flags LAHF and SAHF move: SF ZF AF PF CF (bits 7, 6, 4, 2, 0).</summary>
    private const ulong AhFlags = RFlags.Sf | RFlags.Zf | RFlags.Af | RFlags.Pf | RFlags.Cf;

    /// <summary>In 64-bit mode LAHF/SAHF exist only when CPUID.80000001H:ECX.LAHF-SAHF is set (#UD otherwise).</summary>
    private static bool LahfSahfValid(X86Cpu c)
    {
        if (c.CodeBits != 64 || c.Model.HasLahfSahf64) return true;
        c.RaiseUd();
        return false;
    }

    /// <summary>LAHF: AH ← SF:ZF:0:AF:0:PF:1:CF.</summary>
    public static void Lahf(X86Cpu c, ref DecodedInsn i)
    {
        if (!LahfSahfValid(c)) return;
        c.WriteHigh8(Gpr.Rax, (c.GetRFlags() & AhFlags) | RFlags.Fixed1);
    }

    /// <summary>SAHF: SF ZF AF PF CF ← AH; OF and the reserved bits keep their values.</summary>
    public static void Sahf(X86Cpu c, ref DecodedInsn i)
    {
        if (!LahfSahfValid(c)) return;
        c.SetFlags(AhFlags, c.ReadHigh8(Gpr.Rax));
    }
}
