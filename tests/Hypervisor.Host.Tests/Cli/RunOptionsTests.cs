using System.CommandLine;
using Hypervisor.Host.Cli;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Tests.Support;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Host.Tests.Cli;

/// <summary>The <c>hv run</c> options for what the kernel gets and how the run is shown:
/// --append, --initrd, --module, --load, --quiet, --log-level, and the progress line.</summary>
public class RunOptionsTests
{
    private static readonly HostConsole Quiet = new(Stream.Null, TextWriter.Null, TextWriter.Null);

    [Test]
    public void Parse_BootOptions()
    {
        var (p, run) = InProcessHv.ParseRun("run", "k.bin", "--append", "console=ttyS0 quiet", "--initrd", "initrd.img",
            "--module", "a.bin,x=1", "--module", "b.bin", "--load", "flat:0x200000,mode=64", "-q", "--log-level", "debug");
        Assert.That(p.Errors, Is.Empty);
        Assert.That(p.GetValue(run.Append), Is.EqualTo("console=ttyS0 quiet"));
        Assert.That(p.GetValue(run.Initrd)!.Name, Is.EqualTo("initrd.img"));
        Assert.That(p.GetValue(run.Module), Is.EqualTo(new[] { "a.bin,x=1", "b.bin" }));
        Assert.That(p.GetValue(run.Load), Is.EqualTo(new FlatLoadSpec(0x200000, 0x200000, 64)));
        Assert.That(p.GetValue(run.Quiet), Is.True);
        Assert.That(p.GetValue(run.LogLevelOption), Is.EqualTo(LogLevel.Debug));
    }

    [Test]
    public void Parse_Defaults_NoBootOptions()
    {
        var (p, run) = InProcessHv.ParseRun("run", "k.bin");
        Assert.That((p.GetValue(run.Append), p.GetValue(run.Initrd), p.GetValue(run.Module), p.GetValue(run.Load), p.GetValue(run.Quiet), p.GetValue(run.LogLevelOption)),
            Is.EqualTo(((string?)null, (FileInfo?)null, Array.Empty<string>(), (FlatLoadSpec?)null, false, (LogLevel?)null)));
    }

    [TestCase("--load", "flat:0x1000,mode=16", "--load: mode '16' is not 32 or 64")]
    [TestCase("--load", "bzimage:0x1000", "--load: 'bzimage:0x1000' is not flat:ADDR[,entry=ADDR][,mode=32|64] (flat is the only loader --load knows)")]
    [TestCase("--log-level", "chatty", "--log-level: 'chatty' is not a level; use trace, debug, information, warning, error, critical or none")]
    public void Parse_BadValue_IsAParseErrorStatus2(string option, string value, string message)
    {
        var o = InProcessHv.Invoke("run", Path.Combine(RepositoryPaths.SampleImages, "hello.elf"), option, value);
        Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(o.Error, Does.StartWith($"hv: {message}\n"));
        Assert.That(o.Serial, Is.Empty);
    }

    [Test]
    public void LogLevel_ChangesTheHostsMinimumLevel()
    {
        var levels = new List<LogLevel>();
        var console = new HostConsole(new MemoryStream(), new StringWriter(), new StringWriter());
        int status = HvCommandLine.Invoke(["run", Path.Combine(RepositoryPaths.SampleImages, "hello.elf"), "--log-level", "trace"],
            console, NullLoggerFactory.Instance, levels.Add);
        Assert.That((status, levels), Is.EqualTo((1, new List<LogLevel> { LogLevel.Trace })));
    }

    private static HvOutcome RunLoop(bool terminal, params string[] options)
    {
        // A loop long enough for several slices, stopped by the instruction budget.
        byte[] image = TestImages.Aout(a => { var l = a.CreateLabel(); a.Label(ref l); a.jmp(l); });
        string path = Path.Combine(Path.GetTempPath(), $"hv-test-{Guid.NewGuid():N}.bin");
        File.WriteAllBytes(path, image);
        try
        {
            var serial = new MemoryStream();
            var error = new StringWriter();
            var console = new HostConsole(serial, new StringWriter(), error) { ErrorIsTerminal = terminal, ProgressInterval = TimeSpan.Zero };
            int status = HvCommandLine.Invoke(["run", path, "--max-instructions", "20000000", .. options], console, NullLoggerFactory.Instance);
            return new HvOutcome(status, serial.ToArray(), "", error.ToString());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void Progress_OnATerminal_RewrittenInPlaceThenErased()
    {
        var o = RunLoop(terminal: true);
        Assert.That(o.Status, Is.EqualTo(ExitCodes.InstructionLimit));
        Assert.That(o.Error, Does.Match(@"^(\r\u001b\[Khv: [\d,]+ instructions retired, \d+\.\d MIPS){2,}\r\u001b\[Khv: instruction limit of 20000000 reached at "),
            "at least two refreshes (4M-instruction slices), then the line is erased before the message");
    }

    [Test]
    public void Progress_NotATerminalOrQuiet_NothingExtra()
    {
        Assert.That(RunLoop(terminal: false).Error, Does.StartWith("hv: instruction limit of 20000000 reached at "));
        Assert.That(RunLoop(terminal: true, "--quiet").Error, Does.StartWith("hv: instruction limit of 20000000 reached at "));
    }
}
