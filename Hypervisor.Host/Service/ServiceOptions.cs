using Microsoft.Extensions.Options;

namespace Hypervisor.Host.Service;

/// <summary>
/// The <c>Hv</c> section of the service's configuration (<c>appsettings.json</c>, then
/// <c>--config FILE</c>, then environment variables such as <c>Hv__SliceInstructions</c>).
/// Bound strictly (an unknown key is an error) and checked by <see cref="ServiceOptionsValidator"/>
/// before the service starts.
/// </summary>
public sealed class ServiceOptions
{
    public const string Section = "Hv";

    /// <summary>Instructions a VM runs between two looks at pause/stop requests: the latency of an
    /// action is about one slice.</summary>
    public ulong SliceInstructions { get; set; } = 1UL << 20;

    /// <summary>Bytes of COM1 output kept per VM (the most recent ones).</summary>
    public int SerialBufferBytes { get; set; } = 1 << 20;

    /// <summary>How long shutdown may take (pausing the VMs, closing the socket), in seconds.</summary>
    public int ShutdownSeconds { get; set; } = 5;

    /// <summary>VMs created and started with the service, in order (ids vm-1, vm-2 ...).</summary>
    public List<ConfiguredVm> Vms { get; set; } = [];

    public const ulong MinSlice = 1_000;
    public const int MinSerialBuffer = 4096;
}

/// <summary>One VM declared in configuration: the fields of <c>POST /vms</c>, as text.</summary>
public sealed class ConfiguredVm
{
    public string? Image { get; set; }
    public string? Vendor { get; set; }
    public string? Memory { get; set; }
    public string? Cpu { get; set; }
    public string? Append { get; set; }
    public string? HostCpu { get; set; }

    public VmSpec ToSpec() => VmSpec.FromValues(new Dictionary<string, string?>
    {
        [VmSpec.ImageField] = Image,
        [VmSpec.VendorField] = Vendor,
        [VmSpec.MemoryField] = Memory,
        [VmSpec.CpuField] = Cpu,
        [VmSpec.AppendField] = Append,
        [VmSpec.HostCpuField] = HostCpu,
    });
}

/// <summary>Checks the options once, at start: every failure names its configuration key.</summary>
public sealed class ServiceOptionsValidator : IValidateOptions<ServiceOptions>
{
    public ValidateOptionsResult Validate(string? name, ServiceOptions options)
    {
        var failures = new List<string>();
        string s = ServiceOptions.Section;
        if (options.SliceInstructions < ServiceOptions.MinSlice)
            failures.Add($"{s}:SliceInstructions is {options.SliceInstructions}; it must be at least {ServiceOptions.MinSlice}");
        if (options.SerialBufferBytes < ServiceOptions.MinSerialBuffer)
            failures.Add($"{s}:SerialBufferBytes is {options.SerialBufferBytes}; it must be at least {ServiceOptions.MinSerialBuffer}");
        if (options.ShutdownSeconds is < 1 or > 300)
            failures.Add($"{s}:ShutdownSeconds is {options.ShutdownSeconds}; it must be between 1 and 300");
        for (int i = 0; i < options.Vms.Count; i++)
        {
            try
            {
                var spec = options.Vms[i].ToSpec();
                if (!File.Exists(spec.Image))
                    failures.Add($"{s}:Vms:{i}:Image: {spec.Image}: no such file");
            }
            catch (VmRequestException e)
            {
                foreach (var (field, messages) in e.Errors)
                {
                    foreach (string m in messages)
                        failures.Add($"{s}:Vms:{i}:{char.ToUpperInvariant(field[0])}{field[1..]}: {m}");
                }
            }
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
