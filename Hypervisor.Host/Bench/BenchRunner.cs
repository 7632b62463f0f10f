using Hypervisor.Host.Cli;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Reference;
using Hypervisor.Host.Runtime;

namespace Hypervisor.Host.Bench;

/// <summary>One row of the <c>hv bench</c> table.</summary>
public sealed record BenchResult(
    string Workload, ulong Instructions, double HvSeconds, double HvMips,
    ulong? QemuInstructions = null, double? QemuSeconds = null, double? QemuMips = null)
{
    /// <summary>hv's MIPS over QEMU's.</summary>
    public double? Ratio => QemuMips is > 0 ? HvMips / QemuMips : null;
}

/// <summary>
/// Measures the workloads. hv counts the instructions it retires; QEMU cannot, so the count of a
/// QEMU run comes from the workload's exact linear count <c>a + b·n</c>, which hv measures at
/// n = 1, 2, 3 (and checks is linear). Each measured run lasts at least the minimum time: the loop
/// count grows until it does. QEMU's time is its wall time less that of an empty image (start-up
/// and shut-down). hv runs each workload on the machine <c>machine</c> describes (by default a VM
/// under SVM, as <c>hv run</c> does).
/// </summary>
public sealed class BenchRunner(double minSeconds, TextWriter progress, MachineOptions? machine = null)
{
    private const ulong GuestMemory = MemorySize.DefaultBytes;
    private static readonly TimeSpan QemuTimeout = TimeSpan.FromMinutes(5);

    public BenchResult Measure(BenchWorkload w, QemuOracle? qemu, double qemuStartup)
    {
        ulong c1 = RunHv(w, 1).Instructions, c2 = RunHv(w, 2).Instructions, c3 = RunHv(w, 3).Instructions;
        if (c3 - c2 != c2 - c1)
            throw new InvalidOperationException($"{w.Name}: instruction count is not linear in n ({c1}, {c2}, {c3})");
        ulong perN = c2 - c1, fixedPart = c1 - perN;

        uint n = 1;
        (ulong Instructions, double Seconds) hv;
        while (true)
        {
            hv = RunHv(w, n);
            if (hv.Seconds >= minSeconds || n == uint.MaxValue)
                break;
            n = Grow(n, minSeconds / Math.Max(hv.Seconds, 1e-4));
        }
        if (hv.Instructions != fixedPart + perN * n)
            throw new InvalidOperationException($"{w.Name}: n = {n} retired {hv.Instructions} instructions, expected {fixedPart + perN * n}");
        var result = new BenchResult(w.Name, hv.Instructions, hv.Seconds, hv.Instructions / hv.Seconds / 1e6);
        progress.WriteLine($"  {w.Name}: hv {hv.Instructions} instructions in {hv.Seconds:F3} s");
        if (qemu == null)
            return result;

        uint nq = n;
        double net;
        while (true)
        {
            net = RunQemu(qemu, w.Build(nq)) - qemuStartup;
            if (net >= minSeconds || nq == uint.MaxValue)
                break;
            nq = Grow(nq, minSeconds / Math.Max(net, 0.02));
        }
        ulong qInstructions = fixedPart + perN * nq;
        progress.WriteLine($"  {w.Name}: qemu {qInstructions} instructions in {net:F3} s (after start-up)");
        return result with { QemuInstructions = qInstructions, QemuSeconds = net, QemuMips = qInstructions / net / 1e6 };
    }

    /// <summary>QEMU's start-up and shut-down time: the fastest of three runs of an empty image.</summary>
    public double MeasureQemuStartup(QemuOracle qemu)
    {
        byte[] empty = BenchWorkloads.Empty();
        double best = double.MaxValue;
        for (int k = 0; k < 3; k++)
            best = Math.Min(best, RunQemu(qemu, empty));
        return best;
    }

    internal static uint Grow(uint n, double factor)
    {
        // Aim 20% past the target so one more run usually suffices; never shrink, never more than x100 a step.
        double f = Math.Clamp(factor * 1.2, 2, 100);
        double next = Math.Ceiling(n * f);
        return next >= uint.MaxValue ? uint.MaxValue : (uint)next;
    }

    private (ulong Instructions, double Seconds) RunHv(BenchWorkload w, uint n)
    {
        var kernel = MultibootKernel.Check(w.Build(n), GuestMemory);
        using var vm = VirtualMachine.Create(GuestMemory, Stream.Null, machine);
        vm.Load(kernel);
        var r = vm.Run();
        if (r.End != RunEnd.DebugExit || r.DebugExitValue != 0)
            throw new InvalidOperationException($"{w.Name}: the guest ended with {r} under hv instead of writing 0 to isa-debug-exit");
        return (vm.Statistics.InstructionsRetired, vm.Statistics.WallTime.TotalSeconds);
    }

    private static double RunQemu(QemuOracle qemu, byte[] image)
    {
        string path = Path.Combine(Path.GetTempPath(), $"hv-bench-{Environment.ProcessId}-{Guid.NewGuid():N}.bin");
        File.WriteAllBytes(path, image);
        try
        {
            var run = qemu.Run(path, QemuTimeout, (int)(GuestMemory >> 20));
            if (run.TimedOut || run.ExitStatus != ExitCodes.DebugExit(0))
                throw new InvalidOperationException($"QEMU ended with status {run.ExitStatus}{(run.TimedOut ? " (timed out)" : "")} instead of 1: {run.Stderr.Trim()}");
            return run.Elapsed.TotalSeconds;
        }
        finally
        {
            File.Delete(path);
        }
    }
}
