using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>RDMSR, WRMSR, RDTSC, RDTSCP and RDPID. The TSC counts retired instructions, so an
/// instruction reads it as the retired count before its block plus its index in the block.</summary>
internal static unsafe partial class Exec
{
    public static void Rdmsr(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireCpl0(c)) return;
        if (!c.ReadMsr((uint)c.GetGpr(Gpr.Rcx), i.BlockIndex, out ulong v))
        {
            c.RaiseGp0();
            return;
        }
        c.WriteReg(Gpr.Rax, 4, (uint)v);
        c.WriteReg(Gpr.Rdx, 4, v >> 32);
    }

    public static void Wrmsr(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireCpl0(c)) return;
        ulong v = ((ulong)(uint)c.GetGpr(Gpr.Rdx) << 32) | (uint)c.GetGpr(Gpr.Rax);
        if (!c.WriteMsr((uint)c.GetGpr(Gpr.Rcx), v, i.BlockIndex))
        {
            c.RaiseGp0();
            return;
        }
        c._stop = true; // EFER and the segment bases change how following code runs
    }

    /// <summary>CR4.TSD makes RDTSC/RDTSCP privileged in protected mode.</summary>
    private static bool TscAllowed(X86Cpu c)
    {
        if ((c.Cr4 & Cr4.Tsd) == 0 || c.Cpl == 0) return true;
        c.RaiseGp0();
        return false;
    }

    public static void Rdtsc(X86Cpu c, ref DecodedInsn i)
    {
        if (!TscAllowed(c)) return;
        ulong tsc = c.TscAt(i.BlockIndex);
        c.WriteReg(Gpr.Rax, 4, (uint)tsc);
        c.WriteReg(Gpr.Rdx, 4, tsc >> 32);
    }

    public static void Rdtscp(X86Cpu c, ref DecodedInsn i)
    {
        if (!c.Model.HasFeature(0x80000001, 0, 'd', 27)) { c.RaiseUd(); return; }
        if (!TscAllowed(c)) return;
        ulong tsc = c.TscAt(i.BlockIndex);
        c.WriteReg(Gpr.Rax, 4, (uint)tsc);
        c.WriteReg(Gpr.Rdx, 4, tsc >> 32);
        c.WriteReg(Gpr.Rcx, 4, (uint)c.Msr.TscAux);
    }

    /// <summary>RDPID: IA32_TSC_AUX into a 32-bit register (64-bit in 64-bit mode), at any CPL.</summary>
    public static void Rdpid(X86Cpu c, ref DecodedInsn i)
    {
        if (!c.Model.HasFeature(7, 0, 'c', 22)) { c.RaiseUd(); return; }
        c.WriteReg(i.Reg0, c.CodeBits == 64 ? 8 : 4, c.Msr.TscAux);
    }
}
