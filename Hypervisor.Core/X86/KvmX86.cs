using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86.Cpuid;

namespace Hypervisor.Core.X86;

/// <summary>Raised for a vendor or configuration that cannot work (the errno KVM would return, and why).</summary>
public sealed class KvmException : Exception
{
    public KvmException(string errno, string message) : base(message) => Errno = errno;
    public string Errno { get; }
}

/// <summary>
/// The common x86 layer once a vendor has registered on a host CPU model (kvm.ko after
/// <c>kvm_x86_vendor_init</c>): the supported caps and the factory for VMs.
/// </summary>
public sealed class KvmX86
{
    /// <summary>Features the common layer knows how to virtualize (before vendor setup). VMX/SVM,
    /// the SVM feature leaf and ERAPS are the vendor's to set; OSXSAVE is dynamic; MPX was dropped.</summary>
    public static IReadOnlyList<CpuFeature> CommonVirtualizable { get; } = CpuFeatures.All
        .Where(f => f != CpuFeatures.Vmx && f != CpuFeatures.Svm && f != CpuFeatures.Osxsave && f != CpuFeatures.Mpx
                    && f != CpuFeatures.Hypervisor && f != CpuFeatures.ApxF && f != CpuFeatures.Eraps
                    && f.Function != 0x8000000A)
        .ToArray();

    private KvmX86(IX86Ops ops, HostCpuModel model, CpuCaps caps)
    {
        Ops = ops;
        Model = model;
        SupportedCaps = caps;
    }

    public IX86Ops Ops { get; }
    public HostCpuModel Model { get; }
    public CpuCaps SupportedCaps { get; }

    /// <summary>Validates a vendor once and builds the supported caps: hardware ∩ what the common
    /// layer virtualizes, then the vendor's own setup (which may set vendor features the hardware has).</summary>
    public static KvmX86 Register(IX86Ops ops, HostCpuModel model)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(model);
        if (string.IsNullOrWhiteSpace(ops.Name) || ops.Name != ops.Name.ToLowerInvariant())
            throw new KvmException("EINVAL", $"vendor module name '{ops.Name}' must be a lower-case word (svm, vmx)");
        if (!CpuCaps.HardwareHas(model, ops.HardwareFeature))
            throw new KvmException("EOPNOTSUPP", $"host CPU model {model.Name} has no {ops.HardwareFeature.Name.ToUpperInvariant()} ({ops.HardwareFeature}): the {ops.Name} module cannot load");
        var caps = CpuCaps.FromHardware(model, CommonVirtualizable);
        ops.HardwareSetup(model, caps);
        foreach (var f in caps.Features)
        {
            if (!CpuCaps.HardwareHas(model, f))
                throw new KvmException("EINVAL", $"vendor {ops.Name} claims {f} which host CPU model {model.Name} does not have");
        }
        return new KvmX86(ops, model, caps);
    }

    /// <summary>KVM_GET_SUPPORTED_CPUID.</summary>
    public IReadOnlyList<CpuidEntry> GetSupportedCpuid() => SupportedCpuid.Build(Model, SupportedCaps);

    /// <summary>KVM_CREATE_VM.</summary>
    public Vm CreateVm(VmOptions? options = null) => new(this, options ?? new VmOptions());
}

/// <summary>Per-VM choices (KVM's VM type and module parameters that matter here).</summary>
public sealed record VmOptions
{
    /// <summary>Second-stage translation (NPT/EPT). KVM's <c>npt</c>/<c>ept</c> module parameter.</summary>
    public bool NestedPaging { get; init; } = true;

    /// <summary>Intercept MOV to CR3 and INVPCID even with nested paging, so the common emulation
    /// (KVM-FACTS §3) runs for real instead of the hardware doing it.</summary>
    public bool InterceptCr3AndInvpcid { get; init; }
}
