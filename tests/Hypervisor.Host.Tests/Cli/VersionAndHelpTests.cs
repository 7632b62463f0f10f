using Hypervisor.Host.Cli;
using Hypervisor.Host.Tests.Support;

namespace Hypervisor.Host.Tests.Cli;

public class VersionAndHelpTests
{
    [Test]
    public void Version_PrintsVersionAndCommit()
    {
        var o = InProcessHv.Invoke("--version");
        Assert.That(o.Status, Is.EqualTo(0));
        Assert.That(o.Out, Does.Match(@"^0\.5\.0(\+[0-9a-f]{7,40})?\n$"), "the version, then + and the git commit when the build knew it");
    }

    [Test]
    public void Help_ListsEveryExitStatus()
    {
        var o = InProcessHv.Invoke("--help");
        Assert.That(o.Status, Is.EqualTo(0));
        foreach (string row in new[] { "0 ", "(v<<1)|1", "2 ", "3 ", "4 ", "5 ", "6 " })
            Assert.That(o.Out, Does.Contain("\n    " + row), row);
    }

    [Test]
    public void RunHelp_NamesTheBootOptions()
    {
        var o = InProcessHv.Invoke("run", "--help");
        Assert.That(o.Status, Is.EqualTo(0));
        foreach (string option in new[] { "--append", "--initrd", "--module", "--load", "--quiet", "--log-level", "--stats" })
            Assert.That(o.Out, Does.Contain(option), option);
    }

    [Test]
    public void ExitCodes_AreDistinct()
    {
        int[] codes = [ExitCodes.Halted, ExitCodes.UsageOrImageError, ExitCodes.Shutdown, ExitCodes.InternalError, ExitCodes.ServiceFailure, ExitCodes.InstructionLimit];
        Assert.That(codes, Is.Unique);
    }
}
