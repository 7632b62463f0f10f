using System.Diagnostics;
using System.Globalization;
using Hypervisor.Core.Snapshots;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Host.Bench;

/// <summary>One row of <c>hv bench --snapshot</c>: milliseconds for each step, best of the repeats.</summary>
public sealed record SnapshotBenchResult(string Guest, ulong MemoryBytes, int NonZeroChunks, double CaptureMs, double SaveMs,
    double LoadMs, double RestoreMs, double FirstExitMs, double CaptureCpuMs, double RestoreCpuMs)
{
    /// <summary>From reading the file to the guest's first instruction after it: what the issue's
    /// "restore and first instruction" target measures.</summary>
    public double RestoreToFirstInstructionMs => LoadMs + RestoreMs + FirstExitMs;
}

/// <summary>
/// <c>hv bench --snapshot</c>: a 256 MiB VM under SVM runs a guest to its end (one that touches
/// almost nothing, and the 64 MiB memory workload), then: capture (vCPU, devices, memory copy and
/// hashes), save (JSON and the sparse memory file), load (read and check the JSON), restore into a
/// new VM (memory read in and verified chunk by chunk) and run to the guest's next exit.
/// </summary>
public sealed class SnapshotBenchRunner(int repeats, TextWriter progress)
{
    public const ulong MemoryBytes = 256UL << 20;

    public IReadOnlyList<SnapshotBenchResult> Measure()
    {
        var rows = new List<SnapshotBenchResult>
        {
            Measure("empty", BenchWorkloads.Empty()),
            Measure("memory-64m", BenchWorkloads.All.Single(w => w.Name == "memory-64m").Build(1)),
        };
        return rows;
    }

    private SnapshotBenchResult Measure(string name, byte[] image)
    {
        string dir = Directory.CreateTempSubdirectory("hv-bench-snap-").FullName;
        try
        {
            string path = Path.Combine(dir, "bench.snap");
            double capture = double.MaxValue, save = double.MaxValue, load = double.MaxValue, restore = double.MaxValue, first = double.MaxValue;
            double captureCpu = double.MaxValue, restoreCpu = double.MaxValue;
            int nonZero = 0;
            for (int k = 0; k < repeats; k++)
            {
                progress.WriteLine($"  {name}: repeat {k + 1} of {repeats}");
                using (var vm = (KvmMachine)VirtualMachine.Create(MemoryBytes, Stream.Null, new MachineOptions(), NullLoggerFactory.Instance))
                {
                    vm.Load(MultibootKernel.Check(image, MemoryBytes));
                    var end = vm.Run(2_000_000_000);
                    if (end.End != RunEnd.DebugExit)
                        throw new InvalidOperationException($"the {name} guest ended with {end} instead of its debug exit");
                    var cpu0 = CpuMs();
                    var sw = Stopwatch.StartNew();
                    var snap = vm.CaptureSnapshot();
                    capture = Math.Min(capture, sw.Elapsed.TotalMilliseconds);
                    captureCpu = Math.Min(captureCpu, CpuMs() - cpu0);
                    nonZero = snap.Memory!.Chunks.Count - snap.Memory.ZeroChunks;
                    sw.Restart();
                    snap.Save(path);
                    save = Math.Min(save, sw.Elapsed.TotalMilliseconds);
                }
                double cpu1 = CpuMs();
                var total = Stopwatch.StartNew();
                var loaded = MachineSnapshot.Load(path);
                load = Math.Min(load, total.Elapsed.TotalMilliseconds);
                var step = Stopwatch.StartNew();
                using var restored = KvmMachine.FromSnapshot(loaded, Stream.Null, NullLoggerFactory.Instance);
                restore = Math.Min(restore, step.Elapsed.TotalMilliseconds);
                step.Restart();
                // The OUT to isa-debug-exit completes and the guest runs to its next exit.
                restored.Vcpu.InstructionBudget = 1_000_000;
                restored.Vcpu.Run();
                first = Math.Min(first, step.Elapsed.TotalMilliseconds);
                restoreCpu = Math.Min(restoreCpu, CpuMs() - cpu1);
                if (restored.Vcpu.Cpu.InstructionsRetired == 0)
                    throw new InvalidOperationException("the restored guest did not run");
            }
            return new SnapshotBenchResult(name, MemoryBytes, nonZero, capture, save, load, restore, first, captureCpu, restoreCpu);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Processor time of the whole process: on a loaded machine it says more than wall time.</summary>
    private static double CpuMs() => Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds;

    public static void WriteReport(TextWriter w, IReadOnlyList<SnapshotBenchResult> rows)
    {
        var c = CultureInfo.InvariantCulture;
        w.WriteLine($"{"guest",-12} {"memory",7} {"touched",8} {"capture",8} {"save",8} {"load",8} {"restore",8} {"1st insn",8} {"restore+1st",12} {"cpu: capture",13} {"restore+1st",12}");
        foreach (var r in rows)
            w.WriteLine(string.Create(c, $"{r.Guest,-12} {r.MemoryBytes >> 20,4} MiB {r.NonZeroChunks,4} MiB {r.CaptureMs,8:F1} {r.SaveMs,8:F1} {r.LoadMs,8:F1} {r.RestoreMs,8:F1} {r.FirstExitMs,8:F2} {r.RestoreToFirstInstructionMs,9:F1} ms {r.CaptureCpuMs,10:F1} ms {r.RestoreCpuMs,9:F1} ms"));
        w.WriteLine("Milliseconds, best of the repeats. touched = non-zero 1 MiB chunks of guest memory. capture copies and");
        w.WriteLine("hashes guest memory (SHA-256 of all of it, XXH3 per chunk); save writes non-zero chunks only; restore");
        w.WriteLine("builds a new VM and reads each non-zero chunk into it, verifying its XXH3; restore+1st = load + restore");
        w.WriteLine("+ running to the guest's next exit. cpu: processor time of the process for the same steps (on a loaded");
        w.WriteLine("host, wall time includes waiting for a core).");
    }
}
