using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Virtualization;
using Iced.Intel;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>
/// The virtualization instructions a guest can execute. In guest mode the vendor intercepts them
/// (VMMCALL/VMCALL become hypercalls, VMRUN nested virtualization). Outside an intercept they are
/// #UD here: SVM instructions need EFER.SVME and VMX ones VMX operation, neither of which the bare
/// CPU offers to its own code (APM vol. 3 "VMMCALL": #UD when not intercepted).
/// </summary>
internal static unsafe partial class Exec
{
    public static void Vmmcall(X86Cpu c, ref DecodedInsn i)
    {
        if (!c.InterceptInstruction(InterceptReason.Vmmcall, ref i))
            c.RaiseUd();
    }

    public static void Vmcall(X86Cpu c, ref DecodedInsn i)
    {
        if (!c.InterceptInstruction(InterceptReason.Vmcall, ref i))
            c.RaiseUd();
    }

    /// <summary>VMRUN, VMLOAD, VMSAVE, STGI, CLGI: #UD without SVME; CPL &gt; 0 is #GP(0) first
    /// when SVME is set (APM "VMRUN" exceptions), and the intercept is checked after that.</summary>
    public static void SvmInstruction(X86Cpu c, ref DecodedInsn i)
    {
        if ((c.Efer & Cpu.Efer.Svme) == 0 || !c.IsProtectedMode)
        {
            c.RaiseUd();
            return;
        }
        if (!RequireCpl0(c)) return;
        var reason = i.Mnemonic switch
        {
            Mnemonic.Vmrun => InterceptReason.Vmrun,
            Mnemonic.Vmload => InterceptReason.Vmload,
            Mnemonic.Vmsave => InterceptReason.Vmsave,
            Mnemonic.Stgi => InterceptReason.Stgi,
            _ => InterceptReason.Clgi,
        };
        if (!c.InterceptInstruction(reason, ref i))
            c.Fail(CpuExitReason.Unimplemented, $"{i.Mnemonic.ToString().ToLowerInvariant()} without an intercept: nested SVM is not implemented yet");
    }
}
