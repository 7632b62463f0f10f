using System.Diagnostics;
using System.Globalization;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.X86;

namespace Hypervisor.Host.Runtime;

/// <summary>
/// What one run did: instructions retired, wall time, and exits. On the bare machine the exits
/// are the CPU's, by kind; budget slices the host itself asks for are not counted. Under a vendor
/// module they are the vCPU's counters, as KVM keeps them: exits that reached userspace by
/// KVM_EXIT_* reason, and every #VMEXIT by the vendor's exit name (the host's own slices appear
/// there as KVM_EXIT_INTR / VMEXIT_INTR, since under a hypervisor they are real exits).
/// </summary>
public sealed class RunStatistics
{
    private readonly long[] _exits = new long[Enum.GetValues<CpuExitReason>().Length];
    private readonly Stopwatch _wall = new();

    public ulong InstructionsRetired { get; set; }
    public TimeSpan WallTime => _wall.Elapsed;

    /// <summary>Bare machine: CPU exits of one kind.</summary>
    public long Exits(CpuExitReason reason) => _exits[(int)reason];

    /// <summary>The vendor module ("svm"), or null on the bare machine.</summary>
    public string? Vendor { get; private set; }

    /// <summary>Under a vendor: exits to userspace by KVM_EXIT_* reason, in reason order.</summary>
    public IReadOnlyList<(KvmExitReason Reason, long Count)> UserspaceExits { get; private set; } = [];

    /// <summary>Under a vendor: every exit by the vendor's name for it ("VMEXIT_CPUID"), most frequent first.</summary>
    public IReadOnlyList<(string Name, long Count)> VendorExits { get; private set; } = [];

    internal void CountExit(CpuExitReason reason) => _exits[(int)reason]++;
    internal void StartClock() => _wall.Start();
    internal void StopClock() => _wall.Stop();

    internal void SetVcpuExits(string vendor, ExitStatistics stats)
    {
        Vendor = vendor;
        var user = new List<(KvmExitReason, long)>();
        foreach (var r in Enum.GetValues<KvmExitReason>())
        {
            if (stats[r] != 0)
                user.Add((r, stats[r]));
        }
        UserspaceExits = user;
        var byName = stats.ByVendorExit.Select(kv => (kv.Key, kv.Value)).ToList();
        byName.Sort((a, b) => a.Value != b.Value ? b.Value.CompareTo(a.Value) : string.CompareOrdinal(a.Key, b.Key));
        VendorExits = byName;
    }

    public double Mips => WallTime.TotalSeconds > 0 ? InstructionsRetired / WallTime.TotalSeconds / 1e6 : 0;

    /// <summary>KVM's name of an exit reason: KVM_EXIT_IO, KVM_EXIT_INTERNAL_ERROR ...</summary>
    public static string KvmName(KvmExitReason r)
    {
        string name = r.ToString();
        var sb = new System.Text.StringBuilder("KVM_EXIT_");
        for (int k = 0; k < name.Length; k++)
        {
            // IrqWindowOpen → IRQ_WINDOW_OPEN; X86Rdmsr → X86_RDMSR.
            if (k > 0 && char.IsUpper(name[k]) && !char.IsUpper(name[k - 1]))
                sb.Append('_');
            sb.Append(char.ToUpperInvariant(name[k]));
        }
        return sb.ToString();
    }

    /// <summary>The <c>--stats</c> report.</summary>
    public void WriteTo(TextWriter w)
    {
        var c = CultureInfo.InvariantCulture;
        w.WriteLine(string.Create(c, $"instructions retired: {InstructionsRetired}"));
        w.WriteLine(string.Create(c, $"wall time: {WallTime.TotalSeconds:F3} s"));
        w.WriteLine(string.Create(c, $"MIPS: {Mips:F1}"));
        if (Vendor != null)
        {
            w.WriteLine("exits to userspace: " + Join(UserspaceExits.Select(e => (KvmName(e.Reason), e.Count))));
            w.WriteLine($"{Vendor} exits: " + Join(VendorExits));
            return;
        }
        var parts = new List<(string, long)>();
        foreach (var reason in Enum.GetValues<CpuExitReason>())
        {
            if (reason is CpuExitReason.None or CpuExitReason.InstructionLimit)
                continue;
            long n = _exits[(int)reason];
            if (n != 0)
                parts.Add((reason.ToString().ToLowerInvariant(), n));
        }
        w.WriteLine("exits: " + Join(parts));
    }

    private static string Join(IEnumerable<(string Name, long Count)> counts)
    {
        var parts = counts.Select(e => string.Create(CultureInfo.InvariantCulture, $"{e.Name} {e.Count}")).ToList();
        return parts.Count == 0 ? "none" : string.Join(", ", parts);
    }
}
