using Hypervisor.Core.Machine.Models;

namespace Hypervisor.Core.X86.Cpuid;

/// <summary>Why KVM_SET_CPUID2 refused a table (the errno KVM would return, and a sentence).</summary>
public sealed class CpuidException : Exception
{
    public CpuidException(string errno, string message) : base(message) => Errno = errno;
    public string Errno { get; }
}

/// <summary>
/// The CPUID table userspace gave a vCPU (KVM_SET_CPUID2): stored exactly as given, after
/// validation. The guest caps derived from it are what feature checks in the hypervisor ask.
/// </summary>
public sealed class GuestCpuid
{
    /// <summary>KVM_MAX_CPUID_ENTRIES.</summary>
    public const int MaxEntries = 256;

    private readonly List<CpuidEntry> _entries;
    private readonly CpuidTable _table = new();

    private GuestCpuid(List<CpuidEntry> entries, CpuCaps caps)
    {
        _entries = entries;
        foreach (var e in entries)
            _table.Set(e);
        Caps = caps;
    }

    public IReadOnlyList<CpuidEntry> Entries => _entries;
    public CpuCaps Caps { get; }

    public CpuidEntry Lookup(uint function, uint index) => _table.Lookup(function, index);

    /// <summary>Validates <paramref name="entries"/> and computes guest caps = table ∩ supported.</summary>
    public static GuestCpuid Create(IReadOnlyList<CpuidEntry> entries, CpuCaps supported)
    {
        if (entries.Count > MaxEntries)
            throw new CpuidException("E2BIG", $"CPUID table has {entries.Count} entries; at most {MaxEntries} are allowed");
        var seen = new HashSet<(uint, uint)>();
        foreach (var e in entries)
        {
            if ((e.Flags & ~CpuidEntry.SignificantIndex) != 0)
                throw new CpuidException("EINVAL", $"CPUID entry 0x{e.Function:x}.{e.Index}: unknown flags 0x{e.Flags:x} (only 0x1, significant index, is defined)");
            uint index = (e.Flags & CpuidEntry.SignificantIndex) != 0 ? e.Index : 0;
            if (!seen.Add((e.Function, index)))
                throw new CpuidException("EINVAL", $"CPUID entry 0x{e.Function:x}.{index} appears twice");
        }
        return new GuestCpuid(entries.ToList(), CpuCaps.GuestCaps(entries, supported));
    }

    /// <summary>True when <paramref name="other"/> is the same table (what KVM accepts after the first run).</summary>
    public bool IsIdentical(IReadOnlyList<CpuidEntry> other)
    {
        if (other.Count != _entries.Count) return false;
        for (int i = 0; i < other.Count; i++)
            if (other[i] != _entries[i]) return false;
        return true;
    }
}
