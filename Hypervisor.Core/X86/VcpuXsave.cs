using Hypervisor.Core.Machine.Cpu;

namespace Hypervisor.Core.X86;

/// <summary>
/// The guest's XCR0 on the processor while it runs (KVM's kvm_load_guest_xsave_state and
/// kvm_load_host_xsave_state, which vendors call right around VM entry). XSETBV always exits, so
/// <see cref="Vcpu.Xcr0"/> is what the guest set; the processor holds it only while the guest runs.
/// It decides, among other things, whether the guest's 0xD5 bytes decode as REX2 (XCR0[19]).
/// </summary>
public sealed partial class Vcpu
{
    private ulong _hostXcr0 = Xcr0Bits.X87;

    /// <summary>Before VM entry: the processor takes the guest's XCR0 when the guest has enabled
    /// XSAVE (CR4.OSXSAVE); otherwise the host's value stays, as in KVM.</summary>
    public void LoadGuestXsaveState()
    {
        _hostXcr0 = Cpu.Xcr0;
        if ((Cr4 & Machine.Cpu.Cr4.Osxsave) != 0 && Xcr0 != _hostXcr0)
            Cpu.Xcr0 = Xcr0;
    }

    /// <summary>After VM exit: the host's XCR0 again.</summary>
    public void LoadHostXsaveState()
    {
        if (Cpu.Xcr0 != _hostXcr0)
            Cpu.Xcr0 = _hostXcr0;
    }
}
