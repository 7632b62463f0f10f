using Hypervisor.Host.Cli;
using Hypervisor.Host.Tests.Support;

namespace Hypervisor.Host.Tests.Snapshots;

/// <summary>hv run --snapshot-out / --snapshot-at-exit, hv restore, hv snapshot show and diff.</summary>
public class SnapshotCommandTests
{
    private string _dir = "";
    private static string Hello => Path.Combine(RepositoryPaths.SampleImages, "hello.elf");

    [SetUp]
    public void CreateDirectory() => _dir = Directory.CreateTempSubdirectory("hv-snap-cli-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_dir, recursive: true);

    private string F(string name) => Path.Combine(_dir, name);

    [Test]
    public void RunTwice_SameImage_SnapshotFilesBitIdentical()
    {
        var a = InProcessHv.Invoke("run", Hello, "-m", "16M", "--snapshot-out", F("a.snap"));
        var b = InProcessHv.Invoke("run", Hello, "-m", "16M", "--snapshot-out", F("a2.snap"));
        Assert.That((a.Status, b.Status), Is.EqualTo((1, 1)), a.Error + b.Error);
        // The memory file's name is inside the snapshot: compare with it renamed.
        string left = File.ReadAllText(F("a.snap")).Replace("a.snap.mem", "X");
        string right = File.ReadAllText(F("a2.snap")).Replace("a2.snap.mem", "X");
        Assert.That(SnapshotBody(right), Is.EqualTo(SnapshotBody(left)));
        Assert.That(File.ReadAllBytes(F("a2.snap.mem")), Is.EqualTo(File.ReadAllBytes(F("a.snap.mem"))));
    }

    // Everything but the checksum line (which covers the differing file name).
    private static string SnapshotBody(string text) => text[..text.LastIndexOf("\"checksum\"", StringComparison.Ordinal)];

    [Test]
    public void SnapshotAtEachExit_RestoreAndRunOn_EndsIdenticalToTheWholeRun()
    {
        var whole = InProcessHv.Invoke("run", Hello, "-m", "16M", "--snapshot-out", F("whole.snap"));
        Assert.That(whole.Status, Is.EqualTo(1), whole.Error);
        foreach (int n in new[] { 1, 2, 5, 9, 14 })
        {
            var first = InProcessHv.Invoke("run", Hello, "-m", "16M", "--snapshot-at-exit", n.ToString(), "--snapshot-out", F($"at{n}.snap"));
            Assert.That(first.Status, Is.EqualTo(ExitCodes.Halted), first.Error);
            var second = InProcessHv.Invoke("restore", F($"at{n}.snap"), "--snapshot-out", F($"end{n}.snap"));
            Assert.That(second.Status, Is.EqualTo(1), second.Error);
            // The guest's output is split between the two runs, and whole.
            Assert.That(first.SerialText + second.SerialText, Is.EqualTo("Hello from hv!\n"));
            var diff = InProcessHv.Invoke("snapshot", "diff", F("whole.snap"), F($"end{n}.snap"));
            Assert.That(diff.Status, Is.EqualTo(0), $"after exit {n}:\n{diff.Out}{diff.Error}");
            Assert.That(diff.Out.Trim(), Is.EqualTo("identical"));
        }
    }

    [Test]
    public void Vmx_SnapshotAtAnExit_RestoreAndRunOn_EndsIdenticalToTheWholeRun()
    {
        var whole = InProcessHv.Invoke("run", Hello, "-m", "16M", "--vendor", "vmx", "--snapshot-out", F("whole.snap"));
        Assert.That(whole.Status, Is.EqualTo(1), whole.Error);
        foreach (int n in new[] { 1, 6 })
        {
            var first = InProcessHv.Invoke("run", Hello, "-m", "16M", "--vendor", "vmx", "--snapshot-at-exit", n.ToString(), "--snapshot-out", F($"at{n}.snap"));
            Assert.That(first.Status, Is.EqualTo(ExitCodes.Halted), first.Error);
            Assert.That(File.ReadAllText(F($"at{n}.snap")), Does.Contain("\"vmcs\": {"));
            var second = InProcessHv.Invoke("restore", F($"at{n}.snap"), "--snapshot-out", F($"end{n}.snap"));
            Assert.That(second.Status, Is.EqualTo(1), second.Error);
            var diff = InProcessHv.Invoke("snapshot", "diff", F("whole.snap"), F($"end{n}.snap"));
            Assert.That(diff.Out.Trim(), Is.EqualTo("identical"), $"after exit {n}:\n{diff.Out}{diff.Error}");
        }
    }

    [Test]
    public void Diff_DifferentPoints_ListsOnlyDifferingFieldsByPath_Status8()
    {
        InProcessHv.Invoke("run", Hello, "-m", "16M", "--snapshot-at-exit", "3", "--snapshot-out", F("3.snap"));
        InProcessHv.Invoke("run", Hello, "-m", "16M", "--snapshot-at-exit", "4", "--snapshot-out", F("4.snap"));
        var d = InProcessHv.Invoke("snapshot", "diff", F("3.snap"), F("4.snap"));
        Assert.That(d.Status, Is.EqualTo(ExitCodes.SnapshotsDiffer), d.Error);
        var lines = d.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Some.StartsWith("regs.rip: "));
        Assert.That(lines, Has.Some.StartsWith("exits.byReason[0].count: "));
        Assert.That(lines, Has.None.StartsWith("vendor").And.None.StartsWith("cpuid").And.None.StartsWith("memory.file"));
    }

    [Test]
    public void Show_PrintsTables()
    {
        InProcessHv.Invoke("run", Hello, "-m", "16M", "--snapshot-out", F("s.snap"));
        var s = InProcessHv.Invoke("snapshot", "show", F("s.snap"));
        Assert.That(s.Status, Is.EqualTo(0), s.Error);
        Assert.That(s.Out, Does.StartWith("hv snapshot v1  vendor svm  host CPU zen5  checksum ok"));
        Assert.That(s.Out, Does.Contain("Segments      selector  base").And.Contain("RAP ").And.Contain("Exits to userspace").And.Contain("KVM_EXIT_IO"));
        Assert.That(s.Out, Does.Contain("Memory        s.snap.mem  16 MiB"));
    }

    [Test]
    public void Restore_CorruptedFile_Status2_NothingRuns()
    {
        InProcessHv.Invoke("run", Hello, "-m", "16M", "--snapshot-at-exit", "2", "--snapshot-out", F("c.snap"));
        var bytes = File.ReadAllBytes(F("c.snap"));
        bytes[bytes.Length / 3] ^= 0x04;
        File.WriteAllBytes(F("c.snap"), bytes);
        var r = InProcessHv.Invoke("restore", F("c.snap"));
        Assert.That(r.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(r.Error, Does.StartWith("hv: restore: ").And.Contain("nothing was restored"));
        Assert.That(r.Serial, Is.Empty);
    }

    [Test]
    public void SnapshotAtExit_WithoutOut_UsageError()
    {
        var r = InProcessHv.Invoke("run", Hello, "--snapshot-at-exit", "2");
        Assert.That(r.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(r.Error, Does.Contain("--snapshot-at-exit needs --snapshot-out"));
    }

    [Test]
    public void Clock_Host_Accepted_Other_Refused()
    {
        Assert.That(InProcessHv.Invoke("run", Hello, "-m", "16M", "--clock", "host").Status, Is.EqualTo(1));
        var r = InProcessHv.Invoke("run", Hello, "--clock", "wall");
        Assert.That(r.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
    }
}
