using System.Globalization;
using System.Text.Json;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Host.Cli;
using Hypervisor.Host.Runtime;

namespace Hypervisor.Host.Service;

/// <summary>
/// What a VM is made of: the body of <c>POST /vms</c>, or one entry of <c>Hv:Vms</c> in the
/// configuration. Both go through the same checks, and a spec exists only when every field is
/// valid, so nothing is ever half-applied. The fields mean what the <c>hv run</c> options of the
/// same names mean.
/// </summary>
public sealed record VmSpec
{
    public const string ImageField = "image";
    public const string VendorField = "vendor";
    public const string MemoryField = "memory";
    public const string CpuField = "cpu";
    public const string HostCpuField = "hostCpu";
    public const string AppendField = "append";

    /// <summary>Every field a spec has, in the order the API documents them.</summary>
    public static IReadOnlyList<string> Fields { get; } = [ImageField, VendorField, MemoryField, CpuField, AppendField, HostCpuField];

    /// <summary>The image file, as a full path.</summary>
    public required string Image { get; init; }
    public VendorKind Vendor { get; init; } = VendorKind.Svm;
    public ulong Memory { get; init; } = MemorySize.DefaultBytes;
    /// <summary>Guest CPUID edits as <c>--cpu</c> takes them; null is <c>host</c>.</summary>
    public CpuSpec? Cpu { get; init; }

    /// <summary>The rest of the multiboot command line after the image's name (<c>--append</c>), or null.</summary>
    public string? Append { get; init; }

    /// <summary>The emulated hardware (<c>--host-cpu</c>): by default the vendor's own model, an
    /// Intel one for vmx and an AMD one otherwise.</summary>
    public HostCpuModel? HostCpu { get; init; }

    public HostCpuModel EffectiveHostCpu => HostCpu ?? (Vendor == VendorKind.Vmx ? HostCpuModel.DefaultIntel : HostCpuModel.Default);

    public MachineOptions MachineOptions => new() { Vendor = Vendor, Cpu = Cpu, HostCpu = EffectiveHostCpu };

    /// <summary>Checks a JSON request body. Every problem is reported, by field name.</summary>
    /// <exception cref="VmRequestException">the body is not a valid spec.</exception>
    public static VmSpec FromJson(JsonElement body)
    {
        var errors = new RequestErrors();
        if (body.ValueKind != JsonValueKind.Object)
        {
            errors.Add("", $"the body must be a JSON object with the fields {string.Join(", ", Fields)}, not {Describe(body.ValueKind)}");
            throw errors.ToException();
        }
        var values = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var p in body.EnumerateObject())
        {
            if (!Fields.Contains(p.Name))
            {
                errors.Add(p.Name, $"unknown field; a VM has: {string.Join(", ", Fields)}");
                continue;
            }
            if (values.ContainsKey(p.Name))
            {
                errors.Add(p.Name, "given twice");
                continue;
            }
            string? text = p.Value.ValueKind switch
            {
                JsonValueKind.String => p.Value.GetString(),
                // Memory may be a plain number of bytes as well as "256M".
                JsonValueKind.Number when p.Name == MemoryField && p.Value.TryGetUInt64(out ulong n) => n.ToString(CultureInfo.InvariantCulture),
                _ => null,
            };
            if (text == null)
            {
                errors.Add(p.Name, p.Name == MemoryField
                    ? $"must be a size string (\"256M\") or a whole number of bytes, not {Describe(p.Value.ValueKind)}"
                    : $"must be a string, not {Describe(p.Value.ValueKind)}");
                continue;
            }
            values[p.Name] = text;
        }
        return FromValues(values, errors);
    }

    /// <summary>Checks a spec given as text values by field name (the configuration's form).
    /// Absent fields take their defaults; <c>image</c> is required.</summary>
    /// <exception cref="VmRequestException">a value is missing or not valid.</exception>
    public static VmSpec FromValues(IReadOnlyDictionary<string, string?> values, RequestErrors? errors = null)
    {
        errors ??= new RequestErrors();
        string image = "";
        if (!values.TryGetValue(ImageField, out string? imageText) || string.IsNullOrWhiteSpace(imageText))
            errors.Add(ImageField, "required: the path of a multiboot kernel, as hv run IMAGE takes");
        else
            image = Path.GetFullPath(imageText);

        var vendor = VendorKind.Svm;
        if (values.TryGetValue(VendorField, out string? vendorText) && vendorText != null)
        {
            if (VendorKinds.Parse(vendorText) is { } v)
                vendor = v;
            else
                errors.Add(VendorField, $"'{vendorText}' is not a vendor; use {string.Join(", ", VendorKinds.Names)}");
        }

        ulong memory = MemorySize.DefaultBytes;
        if (values.TryGetValue(MemoryField, out string? memoryText) && memoryText != null)
        {
            if (MemorySize.TryParse(memoryText, out ulong bytes, out string error))
                memory = bytes;
            else
                errors.Add(MemoryField, error);
        }

        CpuSpec? cpu = null;
        if (values.TryGetValue(CpuField, out string? cpuText) && cpuText != null)
        {
            if (CpuSpec.TryParse(cpuText, out var spec, out string error))
                cpu = spec;
            else
                errors.Add(CpuField, error);
        }
        HostCpuModel? hostCpu = null;
        if (values.TryGetValue(HostCpuField, out string? modelText) && modelText != null)
        {
            hostCpu = HostCpuModel.Find(modelText);
            if (hostCpu == null)
                errors.Add(HostCpuField, $"unknown host CPU model '{modelText}'; the models are: {string.Join(", ", HostCpuModel.All.Select(m => m.Name))}");
        }

        if (cpu != null && vendor == VendorKind.Bare)
            errors.Add(CpuField, "configures the hypervisor's guest; vendor bare runs the image on the software CPU itself, with the host model's own CPUID");

        values.TryGetValue(AppendField, out string? append);

        errors.ThrowIfAny();
        return new VmSpec { Image = image, Vendor = vendor, Memory = memory, Cpu = cpu, HostCpu = hostCpu, Append = append };
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "a string",
    };
}

/// <summary>Problems with a request, by field name ("" for the request as a whole).</summary>
public sealed class RequestErrors
{
    private readonly Dictionary<string, List<string>> _errors = new(StringComparer.Ordinal);

    public bool Any => _errors.Count > 0;

    public void Add(string field, string message)
    {
        if (!_errors.TryGetValue(field, out var list))
            _errors[field] = list = [];
        list.Add(message);
    }

    public VmRequestException ToException() =>
        new(_errors.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal));

    public void ThrowIfAny()
    {
        if (Any)
            throw ToException();
    }
}

/// <summary>A request or configuration entry that cannot be carried out as given (HTTP 400); nothing was changed.</summary>
public sealed class VmRequestException(IReadOnlyDictionary<string, string[]> errors)
    : Exception(Format(errors))
{
    public IReadOnlyDictionary<string, string[]> Errors { get; } = errors;

    public static VmRequestException For(string field, string message) =>
        new(new Dictionary<string, string[]> { [field] = [message] });

    private static string Format(IReadOnlyDictionary<string, string[]> errors) =>
        string.Join("; ", errors.SelectMany(e => e.Value.Select(m => e.Key.Length == 0 ? m : $"{e.Key}: {m}")));
}
