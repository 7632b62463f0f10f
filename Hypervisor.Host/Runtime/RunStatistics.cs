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

    /// <summary>The <c>--stats</c> report: instructions, wall time and MIPS, then a table of the
    /// exits by reason, one row each: under a vendor the exits that reached userspace (KVM_EXIT_*)
    /// and then every #VMEXIT by the vendor's name, most frequent first; on the bare machine the
    /// CPU's exits by kind.</summary>
    public void WriteTo(TextWriter w)
    {
        var c = CultureInfo.InvariantCulture;
        w.WriteLine(string.Create(c, $"instructions retired: {InstructionsRetired}"));
        w.WriteLine(string.Create(c, $"wall time: {WallTime.TotalSeconds:F3} s"));
        w.WriteLine(string.Create(c, $"MIPS: {Mips:F1}"));
        var rows = new List<(string Reason, long Count, string Where)>();
        if (Vendor != null)
        {
            rows.AddRange(UserspaceExits.Select(e => (KvmName(e.Reason), e.Count, "to userspace")));
            rows.AddRange(VendorExits.Select(e => (e.Name, e.Count, $"{Vendor} exit")));
        }
        else
        {
            foreach (var reason in Enum.GetValues<CpuExitReason>())
            {
                long n = _exits[(int)reason];
                if (n != 0 && reason is not (CpuExitReason.None or CpuExitReason.InstructionLimit))
                    rows.Add((reason.ToString().ToLowerInvariant(), n, "cpu exit"));
            }
        }
        if (rows.Count == 0)
        {
            w.WriteLine("exits: none");
            return;
        }
        int reasonWidth = Math.Max("exit reason".Length, rows.Max(r => r.Reason.Length));
        int countWidth = Math.Max("count".Length, rows.Max(r => r.Count.ToString(c).Length));
        w.WriteLine($"{"exit reason".PadRight(reasonWidth)}  {"count".PadLeft(countWidth)}  kind");
        foreach (var (reason, count, where) in rows)
            w.WriteLine($"{reason.PadRight(reasonWidth)}  {count.ToString(c).PadLeft(countWidth)}  {where}");
    }
}
