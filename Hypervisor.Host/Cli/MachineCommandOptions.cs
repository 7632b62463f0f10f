using System.CommandLine;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Host.Runtime;

namespace Hypervisor.Host.Cli;

/// <summary>The options several commands share to say which machine they mean: <c>--vendor</c>
/// and <c>--host-cpu</c>. Each command gets its own instances (an option belongs to one command).</summary>
internal static class MachineCommandOptions
{
    public static Option<string> Vendor(string description, IReadOnlyList<string>? accepted = null)
    {
        accepted ??= VendorKinds.Names;
        var o = new Option<string>("--vendor")
        {
            Description = description,
            HelpName = string.Join("|", accepted),
            DefaultValueFactory = _ => VendorKinds.Name(VendorKind.Svm),
        };
        o.Validators.Add(r =>
        {
            string text = r.GetValueOrDefault<string>() ?? "";
            if (!accepted.Contains(text.ToLowerInvariant()))
                r.AddError($"--vendor: '{text}' is not a vendor this command takes; use {string.Join(", ", accepted)}");
        });
        return o;
    }

    public static Option<string> HostCpu()
    {
        var o = new Option<string>("--host-cpu")
        {
            Description = "The emulated host CPU model: " + string.Join(", ", HostCpuModel.All.Select(m => m.Name))
                + $" (default: {HostCpuModel.Default.Name} for svm and bare, {HostCpuModel.DefaultIntel.Name} for vmx)",
            HelpName = "NAME",
        };
        o.Validators.Add(r =>
        {
            string? text = r.GetValueOrDefault<string>();
            if (text != null && HostCpuModel.Find(text) == null)
                r.AddError($"--host-cpu: unknown host CPU model '{text}'; the models are: {ModelList()}");
        });
        return o;
    }

    /// <summary>"zen5 (AMD Zen 5-class ...), zen4 (...)".</summary>
    public static string ModelList() => string.Join(", ", HostCpuModel.All.Select(m => $"{m.Name} ({m.Description})"));

    /// <summary>The vendor a validated <c>--vendor</c> value names.</summary>
    public static VendorKind VendorOf(string text) =>
        VendorKinds.Parse(text) ?? throw new InvalidOperationException($"--vendor '{text}' passed validation but names no vendor");

    /// <summary>The model a validated <c>--host-cpu</c> value names, or the vendor's default when it was not given.</summary>
    public static HostCpuModel ModelOf(string? text, VendorKind vendor) => text == null
        ? VendorKinds.DefaultHostCpu(vendor)
        : HostCpuModel.Find(text) ?? throw new InvalidOperationException($"--host-cpu '{text}' passed validation but names no model");
}
