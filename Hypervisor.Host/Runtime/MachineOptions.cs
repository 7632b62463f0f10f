using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;

namespace Hypervisor.Host.Runtime;

/// <summary>What runs the guest: a hypervisor vendor module, or the software CPU directly.</summary>
public enum VendorKind
{
    /// <summary>A VM under the SVM module (kvm-amd on AMD-V): the default.</summary>
    Svm,
    /// <summary>A VM under the VMX module (kvm-intel on VT-x), on an Intel host CPU model.</summary>
    Vmx,
    /// <summary>The bare machine: the software CPU runs the guest itself, no hypervisor. For
    /// comparison and debugging.</summary>
    Bare,
}

public static class VendorKinds
{
    /// <summary>The command-line spellings, in the order help lists them.</summary>
    public static IReadOnlyList<string> Names { get; } = ["svm", "vmx", "bare"];

    public static string Name(VendorKind v) => v switch
    {
        VendorKind.Svm => "svm",
        VendorKind.Vmx => "vmx",
        _ => "bare",
    };

    public static VendorKind? Parse(string text) => text.ToLowerInvariant() switch
    {
        "svm" => VendorKind.Svm,
        "vmx" => VendorKind.Vmx,
        "bare" => VendorKind.Bare,
        _ => null,
    };

    /// <summary>The host CPU model a vendor runs on unless <c>--host-cpu</c> says otherwise: the
    /// AMD model for SVM (and the bare machine), the Intel APX model for VMX.</summary>
    public static HostCpuModel DefaultHostCpu(VendorKind v) => v == VendorKind.Vmx ? HostCpuModel.DefaultIntel : HostCpuModel.Default;
}

/// <summary>How to build the machine a guest runs on (the <c>hv run</c> options after parsing).</summary>
public sealed record MachineOptions
{
    public VendorKind Vendor { get; init; } = VendorKind.Svm;

    /// <summary>Options for <paramref name="vendor"/> on its default host CPU model.</summary>
    public static MachineOptions ForVendor(VendorKind vendor) => new() { Vendor = vendor, HostCpu = VendorKinds.DefaultHostCpu(vendor) };

    /// <summary>The emulated hardware.</summary>
    public HostCpuModel HostCpu { get; init; } = HostCpuModel.Default;

    /// <summary>Edits of the guest CPUID (<c>--cpu</c>); null is <c>-cpu host</c> unedited.
    /// Only a hypervisor vendor gives its guest a CPUID table.</summary>
    public CpuSpec? Cpu { get; init; }

    /// <summary>The guest CPUID table exactly (a restored snapshot's); when set, <see cref="Cpu"/> is not used.</summary>
    public IReadOnlyList<CpuidEntry>? ExactCpuid { get; init; }

    /// <summary>What the TSC counts (<c>--clock instructions|host</c>): retired instructions by
    /// default, so runs are reproducible.</summary>
    public TscClock Clock { get; init; } = TscClock.Instructions;

    /// <summary>VmOptions.InterceptCr3AndInvpcid (<c>--intercept cr3,invpcid</c>).</summary>
    public bool InterceptCr3AndInvpcid { get; init; }
}

/// <summary>A machine that cannot be built as asked (a vendor without a module, a CPUID edit the
/// host model cannot honour): a usage error, reported before anything runs.</summary>
public sealed class MachineConfigurationException(string message) : Exception(message);
