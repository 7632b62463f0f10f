using System.Globalization;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Host.Cli;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Hypervisor.Svm.Hardware;
using Hypervisor.Vmx.Hardware;

namespace Hypervisor.Host.Bench;

/// <summary>What <c>hv bench --exits</c> measured: <see cref="Iterations"/> CPUID exits in
/// <see cref="Seconds"/>, and the same loop with NOP instead (no exit) in <see cref="NopSeconds"/>.</summary>
public sealed record ExitBenchResult(string HostCpu, ulong Iterations, long CpuidExits, double Seconds, double NopSeconds)
{
    public double ExitsPerSecond => CpuidExits / Seconds;

    /// <summary>Wall time per iteration of the CPUID loop: one exit round trip (#VMEXIT, the
    /// hypervisor's CPUID emulation, VMRUN) plus the guest's three other loop instructions.</summary>
    public double NsPerExit => Seconds * 1e9 / CpuidExits;

    /// <summary>The guest's own share of an iteration, from the NOP loop.</summary>
    public double NopNsPerIteration => NopSeconds * 1e9 / Iterations;
}

/// <summary>
/// Measures exit round trips under a vendor module: a guest runs CPUID in a loop; every CPUID
/// is intercepted and emulated in the hypervisor (handled without a trip to userspace, as KVM
/// handles it), so the loop's wall time is nearly all exit cost. The loop count grows until one
/// run lasts the minimum time; the count of CPUID exits is checked against it.
/// </summary>
public sealed class ExitBenchRunner(double minSeconds, TextWriter progress, MachineOptions machine)
{
    private const ulong GuestMemory = 16UL << 20;
    // The vendor's name of the CPUID exit, as its statistics count it.
    private readonly string CpuidExitName = machine.Vendor == VendorKind.Vmx
        ? VmxExitReasons.Name(VmxExitReason.Cpuid)
        : SvmExitCodes.Name(SvmExitCode.Cpuid);

    public ExitBenchResult Measure()
    {
        if (machine.Vendor == VendorKind.Bare)
            throw new InvalidOperationException("the exit benchmark needs a vendor module (--vendor svm or vmx)");
        uint n = 1000;
        (double Seconds, long CpuidExits) run;
        while (true)
        {
            run = Run(BenchWorkloads.CpuidLoop(n));
            if (run.Seconds >= minSeconds || n == uint.MaxValue)
                break;
            n = BenchRunner.Grow(n, minSeconds / Math.Max(run.Seconds, 1e-4));
        }
        if (run.CpuidExits != n)
            throw new InvalidOperationException($"the CPUID loop of {n} iterations took {run.CpuidExits} {CpuidExitName} exits; every CPUID must exit once");
        var nop = Run(BenchWorkloads.NopLoop(n));
        if (nop.CpuidExits != 0)
            throw new InvalidOperationException($"the NOP loop took {nop.CpuidExits} {CpuidExitName} exits");
        progress.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  cpuid-exit: {n} iterations in {run.Seconds:F3} s; nop loop: {nop.Seconds:F3} s"));
        return new ExitBenchResult(machine.HostCpu.Name, n, run.CpuidExits, run.Seconds, nop.Seconds);
    }

    private (double Seconds, long CpuidExits) Run(byte[] image)
    {
        var kernel = MultibootKernel.Check(image, GuestMemory);
        using var vm = VirtualMachine.Create(GuestMemory, Stream.Null, machine);
        vm.Load(kernel);
        var r = vm.Run();
        if (r.End != RunEnd.DebugExit || r.DebugExitValue != 0)
            throw new InvalidOperationException($"the exit benchmark guest ended with {r} instead of writing 0 to isa-debug-exit");
        long exits = 0;
        foreach (var (name, count) in vm.Statistics.VendorExits)
        {
            if (name == CpuidExitName)
                exits = count;
        }
        return (vm.Statistics.WallTime.TotalSeconds, exits);
    }

    /// <summary>The <c>hv bench --exits</c> report.</summary>
    public static void WriteReport(TextWriter w, ExitBenchResult r)
    {
        var c = CultureInfo.InvariantCulture;
        w.WriteLine($"{"workload",-12} {"host cpu",-8} {"iterations",12} {"exits",12} {"s",8} {"exits/s",12} {"ns/iteration",13}");
        w.WriteLine(string.Create(c, $"{"cpuid-exit",-12} {r.HostCpu,-8} {r.Iterations,12} {r.CpuidExits,12} {r.Seconds,8:F3} {r.ExitsPerSecond,12:F0} {r.NsPerExit,13:F1}"));
        w.WriteLine(string.Create(c, $"{"nop-loop",-12} {r.HostCpu,-8} {r.Iterations,12} {0,12} {r.NopSeconds,8:F3} {"-",12} {r.NopNsPerIteration,13:F1}"));
        w.WriteLine(string.Create(c,
            $"exit round trip (VM exit, CPUID emulated in the hypervisor, VM entry): {r.NsPerExit:F1} ns, {r.ExitsPerSecond:F0} exits/s;"));
        w.WriteLine(string.Create(c,
            $"the same loop with NOP for CPUID (no exit) takes {r.NopNsPerIteration:F1} ns per iteration: the guest's own share."));
    }
}
