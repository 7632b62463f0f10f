using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86.Cpuid;

namespace Hypervisor.Host.Runtime;

/// <summary>One <c>--cpu</c> edit: a feature turned on or off.</summary>
public readonly record struct CpuFeatureEdit(CpuFeature Feature, bool On)
{
    public override string ToString() => (On ? "+" : "-") + Feature.Name;
}

/// <summary>
/// The guest CPU the way QEMU's <c>-cpu</c> names it: <c>host[,+feature|,-feature|,feature=on|off...]</c>.
/// <c>host</c> is what the hypervisor supports (KVM_GET_SUPPORTED_CPUID), as QEMU's <c>-cpu host</c>
/// under KVM; the edits apply from left to right, so a later edit of the same feature wins. Feature
/// names are those of <see cref="CpuFeatures"/> (the Linux /proc/cpuinfo spellings); as in QEMU,
/// '-' and '_' inside a name are the same.
/// </summary>
public sealed record CpuSpec(IReadOnlyList<CpuFeatureEdit> Edits)
{
    /// <summary>The only model name: QEMU's models with their own CPUID tables are not offered.</summary>
    public const string HostModel = "host";

    /// <summary>EBX[23:16] of leaf 0x80000021: the RAP size that goes with ERAPS (KVM-FACTS §2).</summary>
    public const uint RapSizeMask = 0x00FF_0000;

    public static CpuSpec Host { get; } = new(Array.Empty<CpuFeatureEdit>());

    public override string ToString() => Edits.Count == 0 ? HostModel : HostModel + "," + string.Join(",", Edits);

    public static bool TryParse(string text, out CpuSpec spec, out string error)
    {
        spec = Host;
        string[] parts = text.Split(',');
        if (!string.Equals(parts[0].Trim(), HostModel, StringComparison.OrdinalIgnoreCase))
        {
            error = $"'{parts[0]}' is not a CPU model hv offers: only '{HostModel}' (what the hypervisor supports, as QEMU's -cpu host), optionally followed by ,+feature ,-feature or ,feature=on|off";
            return false;
        }
        var edits = new List<CpuFeatureEdit>();
        for (int k = 1; k < parts.Length; k++)
        {
            string item = parts[k].Trim();
            string name;
            bool on;
            int eq = item.IndexOf('=');
            if (item.Length > 1 && item[0] is '+' or '-')
            {
                name = item[1..];
                on = item[0] == '+';
            }
            else if (eq > 0)
            {
                name = item[..eq];
                string value = item[(eq + 1)..].ToLowerInvariant();
                if (value is not ("on" or "off"))
                {
                    error = $"'{item}': a feature is 'on' or 'off'";
                    return false;
                }
                on = value == "on";
            }
            else
            {
                string f = item.TrimStart('+', '-').Length == 0 ? "feature" : item;
                error = $"'{item}' is not a feature edit: write +{f}, -{f} or {f}=on|off";
                return false;
            }
            var feature = FindFeature(name);
            if (feature is null)
            {
                error = $"unknown CPU feature '{name}'; known features: {string.Join(" ", CpuFeatures.All.Select(f => f.Name))}";
                return false;
            }
            edits.Add(new CpuFeatureEdit(feature.Value, on));
        }
        spec = new CpuSpec(edits);
        error = "";
        return true;
    }

    private static CpuFeature? FindFeature(string name)
    {
        foreach (string spelling in new[] { name, name.Replace('-', '_') })
        {
            // CpuFeatures.Find answers an unknown name with default(CpuFeature) (Name null), not null.
            if (CpuFeatures.Find(spelling) is { Name: not null } f)
                return f;
        }
        return null;
    }

    /// <summary>
    /// The guest CPUID table: <paramref name="supported"/> (KVM_GET_SUPPORTED_CPUID of
    /// <paramref name="hostModel"/>) with the edits applied. Turning on a feature the supported
    /// table lacks is refused, as the hypervisor could not provide it; turning one off always works.
    /// Turning ERAPS off also clears the RAP size in EBX[23:16] of leaf 0x80000021, which only
    /// means something with ERAPS; turning it back on restores the supported size.
    /// </summary>
    /// <exception cref="MachineConfigurationException">a feature the host model does not support.</exception>
    public IReadOnlyList<CpuidEntry> Apply(IReadOnlyList<CpuidEntry> supported, string hostModel)
    {
        var table = supported.ToList();
        foreach (var edit in Edits)
        {
            var f = edit.Feature;
            int at = IndexOf(table, f);
            if (edit.On)
            {
                if (at < 0 || (CpuCaps.Register(supported[at], f.Reg) & f.Mask) == 0)
                    throw new MachineConfigurationException(
                        $"--cpu {edit}: host CPU model {hostModel} does not support {f}: KVM_GET_SUPPORTED_CPUID does not report it");
                table[at] = WithBit(table[at], f, on: true);
                if (f == CpuFeatures.Eraps)
                    table[at] = table[at] with { Ebx = (table[at].Ebx & ~RapSizeMask) | (supported[at].Ebx & RapSizeMask) };
            }
            else if (at >= 0)
            {
                table[at] = WithBit(table[at], f, on: false);
                if (f == CpuFeatures.Eraps)
                    table[at] = table[at] with { Ebx = table[at].Ebx & ~RapSizeMask };
            }
        }
        return table;
    }

    /// <summary>The entry that holds <paramref name="f"/>: its leaf, and its subleaf where the
    /// leaf has subleaves (kvm_cpuid_entry2 flag 1).</summary>
    private static int IndexOf(List<CpuidEntry> table, CpuFeature f)
    {
        for (int k = 0; k < table.Count; k++)
        {
            var e = table[k];
            bool indexed = (e.Flags & CpuidEntry.SignificantIndex) != 0;
            if (e.Function == f.Function && (indexed ? e.Index == f.Index : f.Index == 0))
                return k;
        }
        return -1;
    }

    private static CpuidEntry WithBit(CpuidEntry e, CpuFeature f, bool on)
    {
        uint Edit(uint r) => on ? r | f.Mask : r & ~f.Mask;
        return f.Reg switch
        {
            CpuidReg.Eax => e with { Eax = Edit(e.Eax) },
            CpuidReg.Ebx => e with { Ebx = Edit(e.Ebx) },
            CpuidReg.Ecx => e with { Ecx = Edit(e.Ecx) },
            _ => e with { Edx = Edit(e.Edx) },
        };
    }
}
