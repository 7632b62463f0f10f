using Hypervisor.Core.X86;
using Hypervisor.Svm.Hardware;

namespace Hypervisor.Svm;

/// <summary>The SVM module's per-vCPU state (KVM's <c>struct vcpu_svm</c>).</summary>
public sealed class VcpuSvm : IDisposable
{
    internal VcpuSvm(Vcpu vcpu, uint asid)
    {
        Vcpu = vcpu;
        Asid = asid;
        Processor = new SvmProcessor(vcpu.Cpu) { Iopm = Iopm, Msrpm = Msrpm };
    }

    public Vcpu Vcpu { get; }
    /// <summary>The VMCB of the L1 guest (vmcb01).</summary>
    public Vmcb Vmcb { get; } = new();
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
        Iopm.Dispose();
        Msrpm.Dispose();
    }
}
