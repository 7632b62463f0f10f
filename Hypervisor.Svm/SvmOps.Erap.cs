using Hypervisor.Core.X86;
using Hypervisor.Core.X86.Cpuid;
using Hypervisor.Svm.Hardware;

namespace Hypervisor.Svm;

/// <summary>ERAPS virtualization (KVM-FACTS §4, kvm-x86 commit db5e82496492, with this project's two
/// improvements: ALLOW_LARGER_RAP is recomputed after KVM_SET_CPUID2, and INVPCID type 1 marks ERAPS
/// dirty in the common emulation).</summary>
public sealed partial class SvmOps
{
    /// <summary>ALLOW_LARGER_RAP if and only if the guest's caps have ERAPS: userspace owns the vCPU
    /// model, so the hardware having ERAPS is not enough.</summary>
    private static void UpdateErapCtl(Vcpu vcpu, VcpuSvm svm)
    {
        var vmcb = svm.Vmcb;
        svm.GuestHasEraps = vcpu.GuestCaps.Has(CpuFeatures.Eraps);
        if (svm.GuestHasEraps)
            vmcb.ErapCtl |= ErapCtl.AllowLargerRap;
        else
            vmcb.ErapCtl &= ~ErapCtl.AllowLargerRap;
    }

    /// <summary>Before VMRUN: a dirty ERAPS (= CR3) asks the hardware to clear the RAP.</summary>
    private static void PrepareErapCtl(Vcpu vcpu, VcpuSvm svm)
    {
        if (svm.GuestHasEraps && vcpu.Regs.IsDirty(VcpuReg.Eraps))
            svm.Current.ErapCtl |= ErapCtl.ClearRap;
    }

    /// <summary>svm_vcpu_after_set_cpuid: guest caps are known now.</summary>
    public void AfterSetCpuid(Vcpu vcpu)
    {
        var svm = ToSvm(vcpu);
        UpdateErapCtl(vcpu, svm);
        RecalcInvpcidIntercept(vcpu, svm);
        svm.Vmcb.MarkDirty(VmcbClean.Intercepts);
    }

    /// <summary>INVPCID is intercepted when the guest must get #UD for it (its caps lack INVPCID),
    /// when nested paging is off, or when the VM asks for the common emulation.</summary>
    private static void RecalcInvpcidIntercept(Vcpu vcpu, VcpuSvm svm)
    {
        bool intercept = !vcpu.GuestCaps.Has(CpuFeatures.Invpcid) || !vcpu.Vm.Options.NestedPaging || vcpu.Vm.Options.InterceptCr3AndInvpcid;
        svm.Vmcb.SetIntercept(SvmIntercept.Invpcid, intercept);
    }

    /// <summary>svm_flush_tlb_guest: the guest's own TLB flush also clears its RAP (ERAPS marked
    /// dirty), then its ASID is flushed.</summary>
    public void FlushTlbGuest(Vcpu vcpu)
    {
        vcpu.Regs.MarkDirty(VcpuReg.Eraps);
        FlushTlbAsid(vcpu);
    }
}
