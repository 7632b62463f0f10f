using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.X86;
using Hypervisor.Vmx.Hardware;

namespace Hypervisor.Vmx;

/// <summary>vmx_vcpu_run: the register cache written to the VMCS and the processor around
/// VMLAUNCH/VMRESUME, and the APX extended GPRs switched as KVM-FACTS §5 says.</summary>
public sealed partial class VmxOps
{
    public ExitFastpath Run(Vcpu vcpu)
    {
        var vmx = ToVmx(vcpu);
        var vmcs = vmx.Vmcs;
        var regs = vcpu.Regs;
        var cpu = vcpu.Cpu;

        // Dirty RSP/RIP go to the VMCS before entry (KVM-FACTS §1); RFLAGS and CR3 written by
        // common code (KVM_SET_REGS, kvm_set_cr3) are only in the cache too.
        if (regs.IsDirty(VcpuReg.Rsp)) vmcs[VmcsField.GuestRsp] = regs.Peek(VcpuReg.Rsp);
        if (regs.IsDirty(VcpuReg.Rip)) vmcs[VmcsField.GuestRip] = regs.Peek(VcpuReg.Rip);
        if (regs.IsDirty(VcpuReg.Rflags)) vmcs[VmcsField.GuestRflags] = regs.Peek(VcpuReg.Rflags);
        if (regs.IsDirty(VcpuReg.Cr3)) vmcs[VmcsField.GuestCr3] = regs.Peek(VcpuReg.Cr3);
        regs.ClearDirty();

        // The entry code loads the other GPRs, CR2 and DR6 itself (the VMCS has no fields for them).
        for (int g = 0; g < Gpr.LegacyCount; g++)
            if (g != Gpr.Rsp)
                cpu.SetGpr(g, regs.Read((VcpuReg)g));
        vmx.EgprsLoaded = SwitchesEgprs(vcpu);
        if (vmx.EgprsLoaded)
            LoadGuestEgprs(vcpu);
        cpu.Cr2 = vcpu.Cr2;
        cpu.Dr[6] = vcpu.Dr6;

        vcpu.LoadGuestXsaveState();
        var error = vmx.Processor.Enter(resume: vmcs.LaunchState == VmcsLaunchState.Launched, vcpu.RemainingInstructionBudget);
        vcpu.LoadHostXsaveState();

        for (int g = 0; g < Gpr.LegacyCount; g++)
            if (g != Gpr.Rsp)
                regs.Fill((VcpuReg)g, cpu.GetGpr(g));
        if (vmx.EgprsLoaded)
            SaveGuestEgprs(vcpu);
        vcpu.Cr2 = cpu.Cr2;
        vcpu.Dr6 = cpu.Dr[6];
        regs.ClearAvailable(LazilyLoaded);

        vmx.LastEntryError = error;
        vmx.LastExitReason = error == VmxInstructionError.None ? (uint)vmcs[VmcsField.ExitReason] : 0;
        bool failed = error != VmxInstructionError.None || new VmxExitReasonField(vmx.LastExitReason).IsVmEntryFailure;
        return failed ? ExitFastpath.EntryFailed : ExitFastpath.None;
    }

    /// <summary>Guest R16..R31 are switched only when the host has APX and the guest enabled the
    /// state component (XCR0[19]); otherwise the cached values stay as they are, so clearing and
    /// setting XCR0[19] again brings them back (KVM-FACTS §5).</summary>
    public static bool SwitchesEgprs(Vcpu vcpu) => vcpu.Cpu.Model.HasApx && (vcpu.Xcr0 & Xcr0Bits.Apx) != 0;

    private static void LoadGuestEgprs(Vcpu vcpu)
    {
        Span<ulong> egprs = stackalloc ulong[Gpr.ExtendedCount];
        var regs = vcpu.Regs;
        for (int k = 0; k < Gpr.ExtendedCount; k++)
            egprs[k] = regs.Read(VcpuReg.R16 + k);
        vcpu.Cpu.LoadExtendedGprs(egprs);
    }

    /// <summary>After the exit the guest's values go to the cache and the processor's are zeroed, so
    /// nothing of the guest's is left for the host.</summary>
    private static void SaveGuestEgprs(Vcpu vcpu)
    {
        Span<ulong> egprs = stackalloc ulong[Gpr.ExtendedCount];
        vcpu.Cpu.SaveExtendedGprs(egprs);
        vcpu.Cpu.ClearExtendedGprs();
        var regs = vcpu.Regs;
        for (int k = 0; k < Gpr.ExtendedCount; k++)
            regs.Fill(VcpuReg.R16 + k, egprs[k]);
    }
}
