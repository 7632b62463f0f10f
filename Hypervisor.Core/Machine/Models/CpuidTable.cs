namespace Hypervisor.Core.Machine.Models;

/// <summary>One CPUID result, shaped like <c>kvm_cpuid_entry2</c>.</summary>
public record struct CpuidEntry(uint Function, uint Index, uint Flags, uint Eax, uint Ebx, uint Ecx, uint Edx)
{
    /// <summary>KVM_CPUID_FLAG_SIGNIFCANT_INDEX: the leaf has subleaves selected by ECX.</summary>
    public const uint SignificantIndex = 1;
}

/// <summary>A CPUID table: leaf (and subleaf where significant) → registers.</summary>
public sealed class CpuidTable
{
    private readonly Dictionary<(uint, uint), CpuidEntry> _entries = new();

    public IEnumerable<CpuidEntry> Entries => _entries.OrderBy(kv => kv.Key).Select(kv => kv.Value);

    public CpuidTable Set(uint function, uint index, uint eax, uint ebx, uint ecx, uint edx, bool indexed = false)
    {
        _entries[(function, indexed ? index : 0)] = new CpuidEntry(function, indexed ? index : 0, indexed ? CpuidEntry.SignificantIndex : 0, eax, ebx, ecx, edx);
        return this;
    }

    public CpuidTable Set(CpuidEntry e)
    {
        _entries[(e.Function, (e.Flags & CpuidEntry.SignificantIndex) != 0 ? e.Index : 0)] = e;
        return this;
    }

    /// <summary>The entry CPUID returns for EAX=<paramref name="function"/>, ECX=<paramref name="index"/>.
    /// A leaf above the maximum of its range returns the highest basic leaf (as Intel and AMD do for
    /// basic leaves); a missing leaf inside the range returns zeros.</summary>
    public CpuidEntry Lookup(uint function, uint index)
    {
        uint rangeBase = function & 0xFFFF0000;
        if (_entries.TryGetValue((rangeBase, 0), out var max) && function > max.Eax && rangeBase == 0)
            function = max.Eax;
        if (_entries.TryGetValue((function, 0), out var e) && (e.Flags & CpuidEntry.SignificantIndex) == 0)
            return e;
        if (_entries.TryGetValue((function, index), out e))
            return e;
        return new CpuidEntry(function, index, 0, 0, 0, 0, 0);
    }

    public CpuidTable Clone()
    {
        var t = new CpuidTable();
        foreach (var e in _entries.Values)
            t.Set(e);
        return t;
    }
}
