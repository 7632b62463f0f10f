using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>CPUID, XGETBV and XSETBV.</summary>
internal static unsafe partial class Exec
{
    public static void Cpuid(X86Cpu c, ref DecodedInsn i)
    {
        var e = c.QueryCpuid((uint)c.GetGpr(Gpr.Rax), (uint)c.GetGpr(Gpr.Rcx));
        c.WriteReg(Gpr.Rax, 4, e.Eax);
        c.WriteReg(Gpr.Rbx, 4, e.Ebx);
        c.WriteReg(Gpr.Rcx, 4, e.Ecx);
        c.WriteReg(Gpr.Rdx, 4, e.Edx);
    }

    /// <summary>XGETBV and XSETBV need CR4.OSXSAVE (which needs CPUID XSAVE), else #UD.</summary>
    private static bool RequireOsxsave(X86Cpu c)
    {
        if ((c.Cr4 & Cr4.Osxsave) != 0) return true;
        c.RaiseUd();
        return false;
    }

    public static void Xgetbv(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireOsxsave(c)) return;
        // Only XCR0 exists: XINUSE (ECX=1) needs CPUID.(0Dh,1):EAX[2], which is not enumerated.
        if ((uint)c.GetGpr(Gpr.Rcx) != 0) { c.RaiseGp0(); return; }
        c.WriteReg(Gpr.Rax, 4, (uint)c.Xcr0);
        c.WriteReg(Gpr.Rdx, 4, c.Xcr0 >> 32);
    }

    public static void Xsetbv(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireOsxsave(c)) return;
        if (!RequireCpl0(c)) return;
        ulong v = ((ulong)(uint)c.GetGpr(Gpr.Rdx) << 32) | (uint)c.GetGpr(Gpr.Rax);
        if ((uint)c.GetGpr(Gpr.Rcx) != 0 || !c.IsValidXcr0(v))
        {
            c.RaiseGp0();
            return;
        }
        c.Xcr0 = v;
    }
}
