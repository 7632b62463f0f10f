using Hypervisor.Svm.Hardware;

namespace Hypervisor.Svm.Nested;

/// <summary>
/// Per-vCPU nested SVM state (KVM's <c>struct svm_nested_state</c>): the VMCB L0 runs L2 with
/// (vmcb02), L1's vmcb12 as read at its VMRUN, and the permission maps vmcb02 points at (L1's
/// intercepts combined with L0's). Everything is allocated once with the vCPU: a nested VMRUN or
/// #VMEXIT allocates nothing.
/// </summary>
public sealed class NestedSvm : IDisposable
{
    internal NestedSvm(uint asid) => Asid = asid;

    /// <summary>The VMCB L2 runs on: vmcb12's guest state and intercepts plus L0's.</summary>
    public Vmcb Vmcb02 { get; } = new();

    /// <summary>L1's vmcb12 as read from its memory at the last nested VMRUN (the cached copy KVM
    /// keeps of the control area, here the whole page). Written back on nested #VMEXIT.</summary>
    public Vmcb Vmcb12 { get; } = new();

    /// <summary>vmcb02's I/O and MSR permission maps: a bit is set if L1's map or L0's has it.</summary>
    public SvmIoPermissionMap Iopm02 { get; } = new();
    public SvmMsrPermissionMap Msrpm02 { get; } = new();

    /// <summary>L2's ASID (L1's ASID in vmcb12 only has to be non-zero).</summary>
    public uint Asid { get; }

    /// <summary>Guest-physical address of vmcb12 (L1's RAX at its VMRUN).</summary>
    public ulong Vmcb12Gpa { get; internal set; }

    /// <summary>L1's EFER, restored on nested #VMEXIT (L2's is in vcpu.Efer while L2 runs).</summary>
    internal ulong L1Efer;

    /// <summary>Why the last nested VMRUN gave L1 VMEXIT_INVALID (null after a successful one), for logs and tests.</summary>
    public string? LastInvalidReason { get; internal set; }

    /// <summary>Nested VMRUNs that entered L2, and nested #VMEXITs back to L1.</summary>
    public long Vmruns { get; internal set; }
    public long Vmexits { get; internal set; }

    public void Dispose()
    {
        Vmcb02.Dispose();
        Vmcb12.Dispose();
        Iopm02.Dispose();
        Msrpm02.Dispose();
    }
}
