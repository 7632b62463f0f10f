namespace Hypervisor.Svm;

/// <summary>Module parameters of the SVM vendor module.</summary>
public sealed record SvmOptions
{
    /// <summary>Fill the RSB with 32 host entries after every #VMEXIT on hardware without ERAPS, as
    /// Linux's FILL_RETURN_BUFFER does, so host returns never consume guest-created entries. Only a
    /// test turns it off, to show the cross-domain counter catches what the fill prevents.</summary>
    public bool RsbFillAfterVmExit { get; init; } = true;

    /// <summary>How many calls deep the host is when it executes VMRUN (vcpu_run → vcpu_enter_guest
    /// → svm_vcpu_run → svm_vcpu_enter_exit → __svm_vcpu_run): the returns it executes after #VMEXIT.</summary>
    public int HostCallDepth { get; init; } = 5;

    /// <summary>Nested SVM (kvm-amd's <c>nested</c> parameter): guests get the SVM CPUID bit, may set
    /// EFER.SVME and run their own guests with VMRUN (without nested paging for them).</summary>
    public bool Nested { get; init; } = true;

    /// <summary>Entries FILL_RETURN_BUFFER writes (RSB_CLEAR_LOOPS).</summary>
    public const int RsbFillEntries = 32;
}
