using System.Diagnostics;
using System.Globalization;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Host.Runtime;

/// <summary>
/// What one run did: instructions retired, wall time, and CPU exits by kind (KVM keeps the same
/// kind of counters per vCPU). Budget slices the host itself asks for are not counted as exits.
/// </summary>
public sealed class RunStatistics
{
    private readonly long[] _exits = new long[Enum.GetValues<CpuExitReason>().Length];
    private readonly Stopwatch _wall = new();

    public ulong InstructionsRetired { get; set; }
    public TimeSpan WallTime => _wall.Elapsed;

    public long Exits(CpuExitReason reason) => _exits[(int)reason];

    internal void CountExit(CpuExitReason reason) => _exits[(int)reason]++;
    internal void StartClock() => _wall.Start();
    internal void StopClock() => _wall.Stop();

    public double Mips => WallTime.TotalSeconds > 0 ? InstructionsRetired / WallTime.TotalSeconds / 1e6 : 0;

    /// <summary>The <c>--stats</c> report.</summary>
    public void WriteTo(TextWriter w)
    {
        var c = CultureInfo.InvariantCulture;
        w.WriteLine(string.Create(c, $"instructions retired: {InstructionsRetired}"));
        w.WriteLine(string.Create(c, $"wall time: {WallTime.TotalSeconds:F3} s"));
        w.WriteLine(string.Create(c, $"MIPS: {Mips:F1}"));
        var parts = new List<string>();
        foreach (var reason in Enum.GetValues<CpuExitReason>())
        {
            if (reason is CpuExitReason.None or CpuExitReason.InstructionLimit)
                continue;
            long n = _exits[(int)reason];
            if (n != 0)
                parts.Add(string.Create(c, $"{reason.ToString().ToLowerInvariant()} {n}"));
        }
        w.WriteLine("exits: " + (parts.Count == 0 ? "none" : string.Join(", ", parts)));
    }
}
