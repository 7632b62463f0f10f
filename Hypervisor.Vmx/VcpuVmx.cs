using Hypervisor.Core.X86;
using Hypervisor.Vmx.Hardware;

namespace Hypervisor.Vmx;

/// <summary>The VMX module's per-vCPU state (KVM's <c>struct vcpu_vmx</c>).</summary>
public sealed class VcpuVmx : IDisposable
{
    /// <summary>Where the VMXON region is said to be: hypervisor memory, outside every guest slot and
    /// below the Intel models' 46-bit physical-address width.</summary>
    public const ulong VmxonRegionAddress = 0x0000_0FFF_FFFF_F000;

    internal VcpuVmx(Vcpu vcpu, ushort vpid)
    {
        Vcpu = vcpu;
        Vpid = vpid;
        Processor = new VmxProcessor(vcpu.Cpu) { IoBitmaps = IoBitmaps, MsrBitmap = MsrBitmap };
    }

    public Vcpu Vcpu { get; }
    /// <summary>The VMCS of the guest (vmcs01).</summary>
    public Vmcs Vmcs { get; } = new(VmxProcessorCapabilities.RevisionId);
    public VmxIoBitmaps IoBitmaps { get; } = new();
    public VmxMsrBitmap MsrBitmap { get; } = new();
    public VmxProcessor Processor { get; }
    /// <summary>The guest's VPID (never 0: VPID 0 is the host's).</summary>
    public ushort Vpid { get; }

    /// <summary>The exit-reason field of the last VM exit (bit 31 for a failed entry), for
    /// statistics and snapshots.</summary>
    public uint LastExitReason { get; internal set; }

    /// <summary>The VM-instruction error of a VMLAUNCH/VMRESUME that failed (VMfailValid), else None.</summary>
    public VmxInstructionError LastEntryError { get; internal set; }

    /// <summary>Guest R16..R31 were loaded at the last VM entry (host APX and guest XCR0[19]), so the
    /// exit saves them (KVM-FACTS §5).</summary>
    public bool EgprsLoaded { get; internal set; }

    /// <summary>CR0 bits the guest owns (changes to them do not exit): read from the VMCS when the
    /// cached CR0 is refreshed.</summary>
    public ulong Cr0GuestOwnedBits { get; internal set; }
    public ulong Cr4GuestOwnedBits { get; internal set; }

    public void Dispose()
    {
        IoBitmaps.Dispose();
        MsrBitmap.Dispose();
    }
}
