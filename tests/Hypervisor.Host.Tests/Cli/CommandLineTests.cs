using System.CommandLine;
using Hypervisor.Host.Cli;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Host.Tests.Cli;

public class CommandLineTests
{

    [Test]
    public void Run_Defaults_256MiBNoLimitNoStats()
    {
        var (p, run) = InProcessHv.ParseRun("run", "kernel.elf");
        Assert.That(p.Errors, Is.Empty);
        Assert.That(p.GetValue(run.Image)!.Name, Is.EqualTo("kernel.elf"));
        Assert.That(p.GetValue(run.Memory).Bytes, Is.EqualTo(256UL << 20));
        Assert.That(p.GetValue(run.MaxInstructions), Is.Null);
        Assert.That(p.GetValue(run.Stats), Is.False);
        Assert.That(p.GetValue(run.Vendor), Is.EqualTo("svm"));
        Assert.That(p.GetValue(run.HostCpu), Is.Null, "not given: the vendor's default model (zen5 for svm)");
        Assert.That(MachineCommandOptions.ModelOf(p.GetValue(run.HostCpu), VendorKind.Svm).Name, Is.EqualTo("zen5"));
        Assert.That(MachineCommandOptions.ModelOf(p.GetValue(run.HostCpu), VendorKind.Vmx).Name, Is.EqualTo("diamond-rapids"));
        Assert.That(p.GetValue(run.Cpu), Is.Null, "-cpu host unedited");
        Assert.That(p.GetValue(run.Intercept), Is.Null);
    }

    [Test]
    public void Run_MachineOptions_AreParsed()
    {
        var (p, run) = InProcessHv.ParseRun("run", "k.bin", "--vendor", "bare", "--host-cpu", "zen4", "--cpu", "host,-eraps,+pcid", "--intercept", "invpcid,cr3");
        Assert.That(p.Errors, Is.Empty);
        Assert.That(p.GetValue(run.Vendor), Is.EqualTo("bare"));
        Assert.That(p.GetValue(run.HostCpu), Is.EqualTo("zen4"));
        Assert.That(p.GetValue(run.Cpu)!.ToString(), Is.EqualTo("host,-eraps,+pcid"));
        Assert.That(p.GetValue(run.Intercept), Is.EqualTo("invpcid,cr3"));
    }

    [TestCase("--vendor", "kvm", "--vendor: 'kvm' is not a vendor this command takes; use svm, vmx, bare")]
    [TestCase("--host-cpu", "zen9", "--host-cpu: unknown host CPU model 'zen9'; the models are: zen5 (AMD Zen 5-class processor with ERAPS (64-entry RAP)), zen4 (AMD Zen 4-class processor without ERAPS (32-entry RAP))")]
    [TestCase("--cpu", "host,+frob", "--cpu: unknown CPU feature 'frob'")]
    [TestCase("--cpu", "qemu64", "--cpu: 'qemu64' is not a CPU model hv offers")]
    [TestCase("--intercept", "cr3", "--intercept: cr3 alone cannot be intercepted")]
    [TestCase("--intercept", "cr3,cr4", "--intercept: unknown intercept 'cr4'; hv can add: cr3,invpcid")]
    public void Run_BadMachineOption_IsAParseError(string option, string value, string message)
    {
        var (p, _) = InProcessHv.ParseRun("run", "k.bin", option, value);
        Assert.That(p.Errors.Select(e => e.Message), Has.Some.StartsWith(message));
    }

    [TestCase("cr3,invpcid", true)]
    [TestCase("INVPCID, cr3", true)]
    [TestCase("cr3,invpcid,cr3", true)]
    [TestCase("invpcid", false)]
    [TestCase("", false)]
    public void TryParseIntercepts_CrThreeAndInvpcidTogether(string text, bool ok)
    {
        Assert.That(RunCommand.TryParseIntercepts(text, out bool on, out string error), Is.EqualTo(ok), error);
        Assert.That(on, Is.EqualTo(ok));
    }

    [Test]
    public void Run_AllOptions_AreParsed()
    {
        var (p, run) = InProcessHv.ParseRun("run", "k.bin", "--memory", "1G", "--max-instructions", "5000", "--stats");
        Assert.That(p.Errors, Is.Empty);
        Assert.That(p.GetValue(run.Memory).Bytes, Is.EqualTo(1UL << 30));
        Assert.That(p.GetValue(run.MaxInstructions), Is.EqualTo(5000));
        Assert.That(p.GetValue(run.Stats), Is.True);
    }

    [Test]
    public void Run_ShortMemoryAlias_IsAccepted()
    {
        var (p, run) = InProcessHv.ParseRun("run", "k.bin", "-m", "64M");
        Assert.That(p.GetValue(run.Memory).Bytes, Is.EqualTo(64UL << 20));
    }

    [Test]
    public void Run_BadMemory_IsAParseError()
    {
        var (p, _) = InProcessHv.ParseRun("run", "k.bin", "--memory", "lots");
        Assert.That(p.Errors.Select(e => e.Message), Has.Some.Contains("--memory: 'lots' is not a memory size"));
    }

    [TestCase]
    [TestCase("run")]
    [TestCase("run", "a", "b")]
    [TestCase("run", "k.bin", "--max-instructions", "many")]
    [TestCase("run", "k.bin", "--max-instructions", "-5")]
    [TestCase("run", "k.bin", "--frobnicate")]
    [TestCase("explode")]
    [TestCase("bench", "--min-seconds", "0")]
    [TestCase("bench", "--vendor", "xen")]
    [TestCase("caps", "--host-cpu")]
    [TestCase("run", "k.bin", "--host-cpu", "zen9")]
    [TestCase("run", "k.bin", "--cpu", "host,+nosuchfeature")]
    public void Invoke_UsageError_Status2WithMessage(params string[] args)
    {
        var o = InProcessHv.Invoke(args);
        Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(o.Error, Does.StartWith("hv: ").And.Contain("hv --help"));
        Assert.That(o.Serial, Is.Empty);
    }

    [Test]
    public void Help_ListsEveryExitStatus()
    {
        var o = InProcessHv.Invoke("--help");
        Assert.That(o.Status, Is.EqualTo(0));
        Assert.That(o.Out, Does.Contain("Exit status:"));
        foreach (string line in new[] { "0 ", "(v<<1)|1", "2 ", "3 ", "4 ", "6 " })
            Assert.That(o.Out, Does.Contain("\n    " + line));
        Assert.That(o.Out, Does.Contain("run <IMAGE>").And.Contain("bench").And.Contain("caps"));
    }

    [Test]
    public void RunHelp_ShowsDefaultMemoryAsSize()
    {
        var o = InProcessHv.Invoke("run", "--help");
        Assert.That(o.Status, Is.EqualTo(0));
        Assert.That(o.Out, Does.Contain("--memory <SIZE>").And.Contain("[default: 256M]").And.Contain("--max-instructions <N>").And.Contain("--stats"));
        Assert.That(o.Out, Does.Contain("--vendor <svm|vmx|bare>").And.Contain("[default: svm]").And.Contain("--host-cpu <NAME>").And.Contain("(default: zen5 for svm and bare, diamond-rapids for vmx)"));
        Assert.That(o.Out, Does.Contain("--cpu <host[,+feature|,-feature...]>").And.Contain("--intercept <cr3,invpcid>"));
    }

    [Test]
    public void ExitCodes_ForEveryRunEnd_AreTheDocumentedOnes()
    {
        Assert.That(ExitCodes.For(new(RunEnd.Halted)), Is.EqualTo(0));
        Assert.That(ExitCodes.For(new(RunEnd.DebugExit, 0)), Is.EqualTo(1));
        Assert.That(ExitCodes.For(new(RunEnd.DebugExit, 0x2A)), Is.EqualTo(0x55));
        Assert.That(ExitCodes.For(new(RunEnd.Shutdown)), Is.EqualTo(3));
        Assert.That(ExitCodes.For(new(RunEnd.Unimplemented)), Is.EqualTo(4));
        Assert.That(ExitCodes.For(new(RunEnd.InternalError)), Is.EqualTo(4));
        Assert.That(ExitCodes.For(new(RunEnd.InstructionLimit)), Is.EqualTo(6));
    }
}
