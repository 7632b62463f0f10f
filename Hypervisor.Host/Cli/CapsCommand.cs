using System.CommandLine;
using System.Text;
using System.Text.Json;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86;
using Hypervisor.Host.Runtime;
using Hypervisor.Svm;
using Hypervisor.Vmx;

namespace Hypervisor.Host.Cli;

/// <summary>
/// <c>hv caps [--vendor svm|vmx] [--host-cpu NAME] [--json]</c>: what KVM_GET_SUPPORTED_CPUID
/// returns once the vendor module has registered on the host CPU model (the CPUID a VMM starts
/// from for <c>-cpu host</c>). <c>hv caps --list-models</c> lists the host CPU models.
/// </summary>
public sealed class CapsCommand : Command
{
    private readonly HostConsole _console;

    public Option<string> Vendor { get; } = MachineCommandOptions.Vendor("The vendor module whose supported CPUID to show", ["svm", "vmx"]);

    public Option<string> HostCpu { get; } = MachineCommandOptions.HostCpu();

    public Option<bool> Json { get; } = new("--json")
    {
        Description = "Print a JSON array of kvm_cpuid_entry2-shaped objects (function, index, flags, eax, ebx, ecx, edx)",
    };

    public Option<bool> ListModels { get; } = new("--list-models")
    {
        Description = "List the host CPU models with their descriptions",
    };

    public CapsCommand(HostConsole console)
        : base("caps", "Print the supported CPUID (KVM_GET_SUPPORTED_CPUID) of a vendor module on a host CPU model")
    {
        _console = console;
        Options.Add(Vendor);
        Options.Add(HostCpu);
        Options.Add(Json);
        Options.Add(ListModels);
        SetAction(p =>
        {
            if (p.GetValue(ListModels))
                return WriteModels(p.GetValue(Json));
            var vendor = MachineCommandOptions.VendorOf(p.GetValue(Vendor)!);
            return Run(vendor, MachineCommandOptions.ModelOf(p.GetValue(HostCpu), vendor), p.GetValue(Json));
        });
    }

    public int Run(VendorKind vendor, HostCpuModel model, bool json)
    {
        if (vendor is not (VendorKind.Svm or VendorKind.Vmx))
        {
            _console.Error.WriteLine($"hv: --vendor {VendorKinds.Name(vendor)}: only a vendor module has a supported CPUID (svm or vmx)");
            return ExitCodes.UsageOrImageError;
        }
        KvmX86 kvm;
        try
        {
            kvm = KvmX86.Register(vendor == VendorKind.Vmx ? new VmxOps() : new SvmOps(), model);
        }
        catch (KvmException e)
        {
            _console.Error.WriteLine($"hv: --vendor {VendorKinds.Name(vendor)} on host CPU model {model.Name}: {e.Message}");
            return ExitCodes.UsageOrImageError;
        }
        var entries = kvm.GetSupportedCpuid();
        if (json)
        {
            CpuidFormat.WriteJson(_console.Out, entries);
            return 0;
        }
        _console.Out.WriteLine($"KVM_GET_SUPPORTED_CPUID of the {kvm.Ops.Name} module on host CPU model {model.Name} ({model.Description}):");
        CpuidFormat.WriteTable(_console.Out, entries);
        return 0;
    }

    public int WriteModels(bool json)
    {
        var w = _console.Out;
        if (json)
        {
            using var stream = new MemoryStream();
            using (var j = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
            {
                j.WriteStartArray();
                foreach (var m in HostCpuModel.All)
                {
                    j.WriteStartObject();
                    j.WriteString("name", m.Name);
                    j.WriteString("description", m.Description);
                    j.WriteString("vendor", m.Vendor);
                    j.WriteNumber("rapEntries", m.RapEntries);
                    j.WriteBoolean("eraps", m.HasEraps);
                    j.WriteBoolean("apx", m.HasApx);
                    if (DefaultFor(m) is { } vendor)
                        j.WriteString("defaultFor", vendor);
                    j.WriteEndObject();
                }
                j.WriteEndArray();
            }
            w.WriteLine(Encoding.UTF8.GetString(stream.ToArray()));
            return 0;
        }
        int width = HostCpuModel.All.Max(m => m.Name.Length);
        foreach (var m in HostCpuModel.All)
            w.WriteLine($"{m.Name.PadRight(width)}  {m.Description}{(DefaultFor(m) is { } v ? $" (default for {v})" : "")}");
        return 0;
    }

    /// <summary>The vendor whose default host CPU <paramref name="m"/> is, if any.</summary>
    internal static string? DefaultFor(HostCpuModel m) =>
        ReferenceEquals(m, HostCpuModel.Default) ? "svm" : ReferenceEquals(m, HostCpuModel.DefaultIntel) ? "vmx" : null;
}
