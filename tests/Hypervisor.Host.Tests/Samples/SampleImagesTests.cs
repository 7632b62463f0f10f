using Hypervisor.Host.Tests.Support;
using Hypervisor.Samples;

namespace Hypervisor.Host.Tests.Samples;

/// <summary>The committed sample images are exactly what SampleBuilder builds, and each behaves
/// as documented under hv. (The differential tests compare them with QEMU.)</summary>
public class SampleImagesTests
{
    private static IEnumerable<TestCaseData> AllSamples() =>
        Sample.All.Select(s => new TestCaseData(s).SetArgDisplayNames(s.FileName));

    [TestCaseSource(nameof(AllSamples))]
    public void CommittedImage_MatchesRebuild(Sample sample)
    {
        string path = Path.Combine(RepositoryPaths.SampleImages, sample.FileName);
        Assert.That(File.Exists(path), Is.True, $"{path} is missing: run 'dotnet run --project samples/SampleBuilder'");
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(sample.Build()),
            $"{sample.FileName} differs from what SampleBuilder builds: run 'dotnet run --project samples/SampleBuilder' and commit samples/images");
    }

    [Test]
    public void ImagesDirectory_HoldsOnlyBuiltSamples()
    {
        var committed = RepositoryPaths.SampleImageFiles().Select(Path.GetFileName);
        Assert.That(committed, Is.EquivalentTo(Sample.All.Select(s => s.FileName)));
    }

    [Test]
    public void Build_IsDeterministic()
    {
        foreach (var s in Sample.All)
            Assert.That(s.Build(), Is.EqualTo(s.Build()), s.FileName);
    }

    [TestCase("hello.elf", 1, "Hello from hv!\n")]
    [TestCase("mbinfo.bin", 1,
        "multiboot magic ok\nflags: memory fields and memory map present\n"
        + "mem_lower matches the available region at 0\nmem_upper matches the available region at 1 MiB\n")]
    [TestCase("uart.bin", 1,
        "lcr=03 ier=00 iir=c1 lsr=60 msr=b0\nscr=5a dll=01 dlm=00\nthre interrupt: iir=c2 then c1\n"
        + "loopback: lsr=61 rbr=ae lsr=60 msr[7:4]=d0\nuart ok\n")]
    [TestCase("cmdline.bin", 1, "cmdline: []\nmodules: 0\n")]
    [TestCase("ports.bin", 0x69, "in al, 0x2f8: ff\nin eax, 0x2f8: ffffffff\nexit with a 16-bit write of 0x1234\n")]
    [TestCase("triple.bin", 3, "loading DS with a selector beyond the GDT limit\n")]
    public void Sample_UnderHv_PrintsAndExitsAsDocumented(string file, int status, string output)
    {
        var o = InProcessHv.Invoke("run", Path.Combine(RepositoryPaths.SampleImages, file));
        Assert.That(o.SerialText, Is.EqualTo(output));
        Assert.That(o.Status & 0xFF, Is.EqualTo(status));
    }

    [Test]
    public void CommandLineSample_WithAppendAndModules_PrintsThem()
    {
        string dir = Directory.CreateTempSubdirectory("hv-cmdline-").FullName;
        try
        {
            string initrd = Path.Combine(dir, "initrd.img"), notes = Path.Combine(dir, "notes.txt");
            File.WriteAllBytes(initrd, new byte[5000]);
            File.WriteAllText(notes, new string('x', 70) + "\nsecond line\n");
            var o = InProcessHv.Invoke("run", Path.Combine(RepositoryPaths.SampleImages, "cmdline.bin"),
                "--append", "console=ttyS0 quiet", "--initrd", initrd, "--module", $"{notes},key=value two");
            Assert.That(o.SerialText, Is.EqualTo(
                "cmdline: [console=ttyS0 quiet]\nmodules: 2\n"
                + "module: [] page-aligned, 5000 bytes, first line: [" + new string('\0', 64) + "]\n"
                + "module: [key=value two] page-aligned, 83 bytes, first line: [" + new string('x', 64) + "]\n"));
            Assert.That(o.Status, Is.EqualTo(1), o.Error);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
