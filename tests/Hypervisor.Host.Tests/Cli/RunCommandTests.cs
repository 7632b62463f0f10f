using Hypervisor.Host.Cli;
using Hypervisor.Host.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Host.Tests.Cli;

public class RunCommandTests
{
    private static string SingleLine(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1), text);
        return lines[0];
    }

    [Test]
    public void Run_Hello_PrintsGreetingAndExitsThroughDebugExit()
    {
        var o = InProcessHv.Invoke("run", Path.Combine(RepositoryPaths.SampleImages, "hello.elf"));
        Assert.That(o.SerialText, Is.EqualTo("Hello from hv!\n"));
        Assert.That(o.Status, Is.EqualTo(1));
        Assert.That(o.Error, Is.Empty);
    }

    [Test]
    public void Run_Halt_Status0()
    {
        var o = InProcessHv.RunImage(TestImages.Aout(a => a.hlt()));
        Assert.That(o.Status, Is.EqualTo(ExitCodes.Halted));
        Assert.That(o.Error, Is.Empty);
    }

    [Test]
    public void Run_TripleFault_Status3WithOneLineReason()
    {
        var o = InProcessHv.RunImage(TestImages.Aout(a => { a.mov(ax, 0x40); a.mov(ds, ax); }));
        Assert.That(o.Status, Is.EqualTo(ExitCodes.Shutdown));
        Assert.That(SingleLine(o.Error), Does.StartWith("hv: guest shutdown: triple fault"));
    }

    [Test]
    public void Run_Unimplemented_Status4WithCpuReport()
    {
        var o = InProcessHv.RunImage(TestImages.Aout(a => a.fsin()));
        Assert.That(o.Status, Is.EqualTo(ExitCodes.InternalError));
        Assert.That(SingleLine(o.Error), Does.StartWith("hv: unimplemented instruction 'fsin' (d9 fe) at cs:rip 0008:"));
    }

    [Test]
    public void Run_MaxInstructions_Status6()
    {
        var o = InProcessHv.RunImage(TestImages.Aout(a => { var l = a.CreateLabel(); a.Label(ref l); a.jmp(l); }), "--max-instructions", "50");
        Assert.That(o.Status, Is.EqualTo(ExitCodes.InstructionLimit));
        Assert.That(SingleLine(o.Error), Is.EqualTo("hv: instruction limit of 50 reached at cs:rip 0008:100020"));
    }

    [Test]
    public void Run_Stats_ReportsOnStderr()
    {
        var o = InProcessHv.Invoke("run", Path.Combine(RepositoryPaths.SampleImages, "hello.elf"), "--stats");
        Assert.That(o.Status, Is.EqualTo(1));
        Assert.That(o.Error, Does.Match(@"^instructions retired: \d+\nwall time: \d+\.\d{3} s\nMIPS: \d+\.\d\n"
            + @"exit reason  count  kind\nKVM_EXIT_IO     38  to userspace\nVMEXIT_IOIO     38  svm exit\nVMEXIT_NPF       1  svm exit\n$"));
        Assert.That(o.SerialText, Is.EqualTo("Hello from hv!\n"), "stats never mix into the guest's output");
    }

    [Test]
    public void Run_StatsBare_ReportsCpuExits()
    {
        var o = InProcessHv.Invoke("run", Path.Combine(RepositoryPaths.SampleImages, "hello.elf"), "--stats", "--vendor", "bare");
        Assert.That(o.Status, Is.EqualTo(1));
        Assert.That(o.Error, Does.Match(@"^instructions retired: \d+\nwall time: \d+\.\d{3} s\nMIPS: \d+\.\d\nexit reason  count  kind\nio              38  cpu exit\n$"));
    }

    [TestCase("svm")]
    [TestCase("vmx")]
    [TestCase("bare")]
    public void Run_Vendor_SameGuestOutputAndStatus(string vendor)
    {
        var o = InProcessHv.Invoke("run", Path.Combine(RepositoryPaths.SampleImages, "hello.elf"), "--vendor", vendor);
        Assert.That((o.Status, o.SerialText, o.Error), Is.EqualTo((1, "Hello from hv!\n", "")));
    }

    [Test]
    public void Run_VmxOnAnAmdModel_Status2()
    {
        var o = InProcessHv.Invoke("run", Path.Combine(RepositoryPaths.SampleImages, "hello.elf"), "--vendor", "vmx", "--host-cpu", "zen4");
        Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(SingleLine(o.Error), Does.Contain("--vendor vmx on host CPU model zen4: host CPU model zen4 has no VMX"));
        Assert.That(o.Serial, Is.Empty);
    }

    [Test]
    public void Run_UnknownHostCpu_Status2ListingTheModels()
    {
        var o = InProcessHv.Invoke("run", Path.Combine(RepositoryPaths.SampleImages, "hello.elf"), "--host-cpu", "zen9");
        Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(o.Error, Does.StartWith("hv: --host-cpu: unknown host CPU model 'zen9'; the models are: zen5 (").And.Contain(", zen4 ("));
        Assert.That(o.Serial, Is.Empty);
    }

    [TestCase("host,+eraps", "zen4", "hv: --cpu +eraps: host CPU model zen4 does not support eraps (CPUID 0x80000021.0:Eax[24]): KVM_GET_SUPPORTED_CPUID does not report it")]
    [TestCase("host,+npt", "zen5", "hv: --cpu +npt: host CPU model zen5 does not support npt (CPUID 0x8000000a.0:Edx[0]): KVM_GET_SUPPORTED_CPUID does not report it")]
    public void Run_CpuFeatureTheHostLacks_Status2NothingRuns(string cpu, string model, string message)
    {
        var o = InProcessHv.Invoke("run", Path.Combine(RepositoryPaths.SampleImages, "hello.elf"), "--cpu", cpu, "--host-cpu", model);
        Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(SingleLine(o.Error), Is.EqualTo(message));
        Assert.That(o.Serial, Is.Empty);
    }

    [Test]
    public void Run_CpuUnknownFeature_Status2()
    {
        var o = InProcessHv.Invoke("run", Path.Combine(RepositoryPaths.SampleImages, "hello.elf"), "--cpu", "host,-warp_drive");
        Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(o.Error, Does.StartWith("hv: --cpu: unknown CPU feature 'warp_drive'; known features: "));
    }

    [Test]
    public void Run_CpuEditsAndIntercepts_GuestStillRuns()
    {
        var o = InProcessHv.Invoke("run", Path.Combine(RepositoryPaths.SampleImages, "system64.bin"),
            "--cpu", "host,-eraps,-pcid,-invpcid", "--intercept", "cr3,invpcid", "--host-cpu", "zen5");
        Assert.That(o.Status, Is.EqualTo(1), o.Error);
        Assert.That(o.Error, Is.Empty);
    }

    [TestCase("--cpu", "host")]
    [TestCase("--intercept", "cr3,invpcid")]
    public void Run_HypervisorOptionOnBare_Status2(string option, string value)
    {
        var o = InProcessHv.Invoke("run", Path.Combine(RepositoryPaths.SampleImages, "hello.elf"), "--vendor", "bare", option, value);
        Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(SingleLine(o.Error), Does.StartWith("hv: --cpu and --intercept configure the hypervisor's guest"));
    }

    [Test]
    public void Run_MemoryTooSmallForImage_Status2()
    {
        var o = InProcessHv.Invoke("run", Path.Combine(RepositoryPaths.SampleImages, "hello.elf"), "--memory", "1M");
        Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(SingleLine(o.Error), Does.EndWith("is outside guest memory [0x0, 0x100000)"));
    }

    [Test]
    public void Run_MissingFile_Status2()
    {
        var o = InProcessHv.Invoke("run", "/nonexistent/kernel.elf");
        Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(SingleLine(o.Error), Is.EqualTo("hv: /nonexistent/kernel.elf: no such file"));
    }

    [Test]
    public void Run_Directory_Status2()
    {
        var o = InProcessHv.Invoke("run", Path.GetTempPath());
        Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(SingleLine(o.Error), Does.StartWith("hv: "));
    }

    /// <summary>Every kind of image error: one line naming the problem, status 2, no guest output.</summary>
    private static IEnumerable<TestCaseData> BrokenImages()
    {
        byte[] good = TestImages.Aout(a => { a.mov(dx, 0x3F8); a.mov(al, (byte)'!'); a.@out(dx, al); a.hlt(); });
        yield return new TestCaseData(Array.Empty<byte>(), "truncated: the file is empty").SetName("Run_EmptyFile_Status2");
        yield return new TestCaseData(good[..10], "truncated: the file is 10 bytes").SetName("Run_TruncatedHeader_Status2");
        yield return new TestCaseData(good[..36], "truncated: load_addr..load_end_addr").SetName("Run_TruncatedBody_Status2");
        yield return new TestCaseData(new byte[100], "no multiboot header").SetName("Run_NoHeader_Status2");
        yield return new TestCaseData(TestImages.Patch32(good, 8, 0), "multiboot header at file offset 0x0: bad checksum").SetName("Run_BadChecksum_Status2");
        byte[] noKludge = TestImages.Patch32(TestImages.Patch32(good, 4, 0), 8, unchecked(0u - 0x1BADB002));
        yield return new TestCaseData(noKludge, "bad magic at file offset 0x0").SetName("Run_NotElfWithoutKludge_Status2");
        yield return new TestCaseData(TestImages.Aout(a => a.hlt(), bssSize: 300 << 20), "image larger than memory").SetName("Run_ImageLargerThanMemory_Status2");
        yield return new TestCaseData(RawElf.Build(32, 0x100000, new RawSegment(0x100000, new byte[16]), new RawSegment(0x20000000, new byte[16])),
            "program header 1 (PT_LOAD [0x20000000, 0x20000010)) is outside guest memory").SetName("Run_SegmentOutsideMemory_Status2");
        yield return new TestCaseData(RawElf.Build(32, 0x100000, new RawSegment(0x100000, new byte[0x100]), new RawSegment(0x1000F0, new byte[16])),
            "overlap").SetName("Run_OverlappingSegments_Status2");
        yield return new TestCaseData(TestImages.Patch32(good, 28, 0x200000), "entry point 0x200000 is outside the loaded code").SetName("Run_EntryOutsideCode_Status2");
        // ELF64 without a multiboot header: the 64-bit loader's own errors.
        byte[] elf64 = RawElf.Build(64, 0x200000, multiboot: false, new RawSegment(0x200000, new byte[16]));
        yield return new TestCaseData(elf64[..100], "truncated: the program header table [0x40, 0x78) extends past the end of the file (0x64)").SetName("Run_TruncatedElf64_Status2");
        yield return new TestCaseData(RawElf.Build(64, 0x2000, multiboot: false, new RawSegment(0x2000, new byte[16])),
            "overlaps [0x1000, 0x9000), where hv puts the 64-bit boot GDT, TSS, page tables and stack").SetName("Run_Elf64OverBootStructures_Status2");
        yield return new TestCaseData(RawElf.Build(64, 0x210000, multiboot: false, new RawSegment(0x200000, new byte[16])),
            "entry point 0x210000 is outside the loaded code").SetName("Run_Elf64EntryOutsideCode_Status2");
    }

    [TestCaseSource(nameof(BrokenImages))]
    public void Run_BrokenImage_Status2OneLineNothingRuns(byte[] image, string message)
    {
        var o = InProcessHv.RunImage(image);
        Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(SingleLine(o.Error), Does.StartWith("hv: ").And.Contain(message));
        Assert.That(o.Serial, Is.Empty);
    }
}
