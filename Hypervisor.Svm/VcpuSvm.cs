using Hypervisor.Core.X86;
using Hypervisor.Svm.Hardware;
using Hypervisor.Svm.Nested;

namespace Hypervisor.Svm;

/// <summary>The SVM module's per-vCPU state (KVM's <c>struct vcpu_svm</c>).</summary>
public sealed class VcpuSvm : IDisposable
{
    internal VcpuSvm(Vcpu vcpu, uint asid, NestedSvm? nested)
    {
        Vcpu = vcpu;
        Asid = asid;
        Processor = new SvmProcessor(vcpu.Cpu) { Iopm = Iopm, Msrpm = Msrpm };
        Nested = nested;
        Current = Vmcb;
    }

    public Vcpu Vcpu { get; }
    /// <summary>The VMCB of the L1 guest (vmcb01).</summary>
    public Vmcb Vmcb { get; } = new();
    /// <summary>The VMCB the vCPU runs now: <see cref="Vmcb"/> (vmcb01), or vmcb02 while L2 runs.
    /// Every state accessor and exit handler works on this one.</summary>
    public Vmcb Current { get; internal set; }

    /// <summary>Nested SVM state (vmcb02, the cached vmcb12), or null when the module has nested off.</summary>
    public NestedSvm? Nested { get; }

    /// <summary>The vCPU runs its L2 guest (KVM's is_guest_mode).</summary>
    public bool IsGuestMode => !ReferenceEquals(Current, Vmcb);

    public SvmIoPermissionMap Iopm { get; } = new();
    public SvmMsrPermissionMap Msrpm { get; } = new();
    public SvmProcessor Processor { get; }
    public uint Asid { get; }

    /// <summary>The guest's caps have ERAPS (cached from KVM_SET_CPUID2: asked before every VMRUN).</summary>
    public bool GuestHasEraps { get; internal set; }

    /// <summary>The exit code of the last #VMEXIT, kept for statistics and snapshots.</summary>
    public SvmExitCode LastExitCode { get; internal set; }

    public void Dispose()
    {
        Vmcb.Dispose();
        Nested?.Dispose();
        Iopm.Dispose();
        Msrpm.Dispose();
    }
}
