using System.CommandLine;
using Hypervisor.Host.Cli;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Host.Tests.Cli;

public class CommandLineTests
{
    private static readonly HostConsole Quiet = new(Stream.Null, TextWriter.Null, TextWriter.Null);

    private static (ParseResult Parse, RunCommand Run) ParseRun(params string[] args)
    {
        var root = HvCommandLine.Create(Quiet, NullLoggerFactory.Instance);
        var run = root.Subcommands.OfType<RunCommand>().Single();
        return (root.Parse(args), run);
    }

    [Test]
    public void Run_Defaults_256MiBNoLimitNoStats()
    {
        var (p, run) = ParseRun("run", "kernel.elf");
        Assert.That(p.Errors, Is.Empty);
        Assert.That(p.GetValue(run.Image)!.Name, Is.EqualTo("kernel.elf"));
        Assert.That(p.GetValue(run.Memory).Bytes, Is.EqualTo(256UL << 20));
        Assert.That(p.GetValue(run.MaxInstructions), Is.Null);
        Assert.That(p.GetValue(run.Stats), Is.False);
    }

    [Test]
    public void Run_AllOptions_AreParsed()
    {
        var (p, run) = ParseRun("run", "k.bin", "--memory", "1G", "--max-instructions", "5000", "--stats");
        Assert.That(p.Errors, Is.Empty);
        Assert.That(p.GetValue(run.Memory).Bytes, Is.EqualTo(1UL << 30));
        Assert.That(p.GetValue(run.MaxInstructions), Is.EqualTo(5000));
        Assert.That(p.GetValue(run.Stats), Is.True);
    }

    [Test]
    public void Run_ShortMemoryAlias_IsAccepted()
    {
        var (p, run) = ParseRun("run", "k.bin", "-m", "64M");
        Assert.That(p.GetValue(run.Memory).Bytes, Is.EqualTo(64UL << 20));
    }

    [Test]
    public void Run_BadMemory_IsAParseError()
    {
        var (p, _) = ParseRun("run", "k.bin", "--memory", "lots");
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
        Assert.That(o.Out, Does.Contain("run <IMAGE>").And.Contain("bench"));
    }

    [Test]
    public void RunHelp_ShowsDefaultMemoryAsSize()
    {
        var o = InProcessHv.Invoke("run", "--help");
        Assert.That(o.Status, Is.EqualTo(0));
        Assert.That(o.Out, Does.Contain("--memory <SIZE>").And.Contain("[default: 256M]").And.Contain("--max-instructions <N>").And.Contain("--stats"));
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
