using Hypervisor.Host.Bench;
using Hypervisor.Host.Cli;
using Hypervisor.Host.Tests.Differential;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Tests.Support;

namespace Hypervisor.Host.Tests.Bench;

public class BenchTests
{
    private static (RunResult Result, ulong Instructions) RunOnce(BenchWorkload w, uint n) => RunOnce(w.Build(n));

    private static (RunResult Result, ulong Instructions) RunOnce(byte[] image, MachineOptions? options = null)
    {
        var (r, _, stats) = TestMachines.RunImage(options ?? new MachineOptions(), image, MemorySize.DefaultBytes, 2_000_000_000);
        return (r, stats.InstructionsRetired);
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
        using var vm = VirtualMachine.Create(MemorySize.DefaultBytes, Stream.Null);
        vm.Load(k);
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

    [TestCase(VendorKind.Svm)]
    [TestCase(VendorKind.Bare)]
    public void BenchCommand_RunsOnTheChosenMachine(VendorKind vendor)
    {
        var output = new StringWriter();
        var cmd = new BenchCommand(new HostConsole(Stream.Null, output, TextWriter.Null), Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        Assert.That(cmd.Run(withQemu: false, minSeconds: 0.01, new MachineOptions { Vendor = vendor }), Is.EqualTo(0));
        Assert.That(output.ToString().Split('\n').Count(l => l.EndsWith(" -", StringComparison.Ordinal)), Is.EqualTo(BenchWorkloads.All.Count));
    }

    [Test]
    public void CpuidLoop_ExitsOncePerIteration_NopLoopNever()
    {
        var options = new MachineOptions();
        var (r, _, stats) = TestMachines.RunImage(options, BenchWorkloads.CpuidLoop(1000));
        Assert.That(r, Is.EqualTo(new RunResult(RunEnd.DebugExit, 0)));
        Assert.That(stats.VendorExits, Does.Contain(("VMEXIT_CPUID", 1000L)));
        // Only the debug-exit write reaches userspace: every CPUID is handled inside the hypervisor.
        Assert.That(stats.UserspaceExits, Is.EqualTo(new[] { (Hypervisor.Core.X86.KvmExitReason.Io, 1L) }));
        var (rn, _, nop) = TestMachines.RunImage(options, BenchWorkloads.NopLoop(1000));
        Assert.That(rn, Is.EqualTo(new RunResult(RunEnd.DebugExit, 0)));
        // The NOP loop exits only for the debug-exit write and the one demand-paging fault (2 MiB).
        Assert.That(nop.VendorExits.Select(e => e.Name), Is.EqualTo(new[] { "VMEXIT_IOIO", "VMEXIT_NPF" }));
        // The NOP loop retires every instruction; the CPUID loop all but the intercepted CPUIDs.
        Assert.That(nop.InstructionsRetired - stats.InstructionsRetired, Is.EqualTo(1000));
        Assert.That(nop.InstructionsRetired, Is.EqualTo(1 + 1000UL * BenchWorkloads.ExitLoopInstructions + 1));
    }

    [TestCase("zen5", VendorKind.Svm)]
    [TestCase("zen4", VendorKind.Svm)]
    [TestCase("diamond-rapids", VendorKind.Vmx)]
    public void ExitBench_ReportsExitsPerSecondAndNsPerRoundTrip(string model, VendorKind vendor)
    {
        var output = new StringWriter();
        var cmd = new BenchCommand(new HostConsole(Stream.Null, output, TextWriter.Null), Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        Assert.That(cmd.RunExits(withQemu: false, minSeconds: 0.02, new MachineOptions { Vendor = vendor, HostCpu = Hypervisor.Core.Machine.Models.HostCpuModel.Find(model)! }), Is.EqualTo(0));
        var lines = output.ToString().Split('\n');
        Assert.That(lines[0], Does.Match(@"^workload\s+host cpu\s+iterations\s+exits\s+s\s+exits/s\s+ns/iteration$"));
        var row = System.Text.RegularExpressions.Regex.Match(lines[1], $@"^cpuid-exit\s+{model}\s+(\d+)\s+(\d+)\s+\d+\.\d{{3}}\s+\d+\s+\d+\.\d$");
        Assert.That(row.Success, Is.True, lines[1]);
        Assert.That(row.Groups[2].Value, Is.EqualTo(row.Groups[1].Value), "one exit per iteration");
        Assert.That(lines[2], Does.Match($@"^nop-loop\s+{model}\s+\d+\s+0\s+\d+\.\d{{3}}\s+-\s+\d+\.\d$"));
        Assert.That(lines[3], Does.Match(@"^exit round trip \(VM exit, CPUID emulated in the hypervisor, VM entry\): \d+\.\d ns, \d+ exits/s;$"));
    }

    [TestCase(true, VendorKind.Svm, "drop --qemu")]
    [TestCase(false, VendorKind.Bare, "use --vendor svm or vmx, not bare")]
    public void ExitBench_WithoutAVendorModule_Status2(bool qemu, VendorKind vendor, string message)
    {
        var error = new StringWriter();
        var cmd = new BenchCommand(new HostConsole(Stream.Null, TextWriter.Null, error), Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        Assert.That(cmd.RunExits(qemu, 0.01, new MachineOptions { Vendor = vendor }), Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(error.ToString(), Does.Contain(message));
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
