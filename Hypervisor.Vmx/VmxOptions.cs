namespace Hypervisor.Vmx;

/// <summary>Module parameters of the VMX vendor module (kvm-intel's).</summary>
public sealed record VmxOptions
{
    /// <summary>kvm-intel's <c>vpid</c>: tag the guest's translations with a VPID so VM entry and
    /// exit do not flush them. Off, every VM entry invalidates the guest's TLB (SDM vol. 3 §29.1.3).</summary>
    public bool Vpid { get; init; } = true;

    /// <summary>kvm-intel's <c>unrestricted_guest</c> (needs EPT): the guest may run with CR0.PE or
    /// CR0.PG clear. Off, such a guest fails VM entry (this project has no real-mode emulation).</summary>
    public bool UnrestrictedGuest { get; init; } = true;
}
