using Hypervisor.Host.Bench;
using Hypervisor.Host.Cli;
using Hypervisor.Host.Tests.Differential;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;

namespace Hypervisor.Host.Tests.Bench;

public class BenchTests
{
    private static (RunResult Result, ulong Instructions) RunOnce(BenchWorkload w, uint n)
    {
        var k = MultibootKernel.Check(w.Build(n), MemorySize.DefaultBytes);
        using var vm = new VirtualMachine(MemorySize.DefaultBytes, Stream.Null);
        k.LoadInto(vm.Memory, vm.Cpu);
        var r = vm.Run(2_000_000_000);
        return (r, vm.Statistics.InstructionsRetired);
    }

    private static IEnumerable<TestCaseData> Workloads() =>
        BenchWorkloads.All.Select(w => new TestCaseData(w).SetArgDisplayNames(w.Name));

    [TestCaseSource(nameof(Workloads))]
    public void Workload_EndsThroughDebugExitWithLinearCount(BenchWorkload w)
    {
        var (r1, c1) = RunOnce(w, 1);
        var (r2, c2) = RunOnce(w, 2);
        var (r3, c3) = RunOnce(w, 3);
        Assert.That(new[] { r1, r2, r3 }, Is.All.EqualTo(new RunResult(RunEnd.DebugExit, 0)));
        Assert.That(c3 - c2, Is.EqualTo(c2 - c1));
        Assert.That(c2 - c1, Is.GreaterThanOrEqualTo(9), "each loop iteration does real work");
    }

    [Test]
    public void AluLoop_CountIsNineInstructionsPerIteration()
    {
        var (_, c1) = RunOnce(BenchWorkloads.All[0], 1);
        var (_, c2) = RunOnce(BenchWorkloads.All[0], 1000);
        Assert.That(c2 - c1, Is.EqualTo(999UL * 9));
    }

    [Test]
    public void Memory64M_TouchesEveryLineOfTheRegion()
    {
        var k = MultibootKernel.Check(BenchWorkloads.All[2].Build(1), MemorySize.DefaultBytes);
        using var vm = new VirtualMachine(MemorySize.DefaultBytes, Stream.Null);
        k.LoadInto(vm.Memory, vm.Cpu);
        vm.Run();
        // Each line was incremented by the loop count (1) from zero.
        Assert.That(vm.Memory.ReadU32(BenchWorkloads.MemoryStart), Is.EqualTo(1));
        Assert.That(vm.Memory.ReadU32(BenchWorkloads.MemoryStart + BenchWorkloads.MemoryBytes - BenchWorkloads.MemoryStride), Is.EqualTo(1));
        Assert.That(vm.Memory.ReadU32(BenchWorkloads.MemoryStart + BenchWorkloads.MemoryBytes), Is.EqualTo(0));
    }

    [Test]
    public void BenchCommand_WithoutQemu_PrintsTableRowPerWorkload()
    {
        var output = new StringWriter();
        var cmd = new BenchCommand(new HostConsole(Stream.Null, output, TextWriter.Null), Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        Assert.That(cmd.Run(withQemu: false, minSeconds: 0.01), Is.EqualTo(0));
        var lines = output.ToString().Split('\n');
        Assert.That(lines[0], Does.Match(@"^workload\s+instructions\s+hv s\s+hv MIPS\s+qemu s\s+qemu MIPS\s+ratio$"));
        foreach (var w in BenchWorkloads.All)
            Assert.That(lines.Count(l => l.StartsWith(w.Name + " ", StringComparison.Ordinal) && l.EndsWith(" -", StringComparison.Ordinal)), Is.EqualTo(1), w.Name);
    }

    [Test, Category("Differential")]
    public void BenchCommand_WithQemu_ReportsRatios()
    {
        QemuDifferentialTests.RequireOracle();
        var output = new StringWriter();
        var cmd = new BenchCommand(new HostConsole(Stream.Null, output, TextWriter.Null), Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        Assert.That(cmd.Run(withQemu: true, minSeconds: 0.05), Is.EqualTo(0));
        foreach (var w in BenchWorkloads.All)
            Assert.That(output.ToString(), Does.Match($@"\n{w.Name} +\d+ +\d+\.\d+ +\d+\.\d +\d+\.\d+ +\d+\.\d +\d+\.\d+\n"));
    }
}
