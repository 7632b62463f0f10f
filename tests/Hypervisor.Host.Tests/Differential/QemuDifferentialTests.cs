using System.Text;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Reference;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Tests.Support;

namespace Hypervisor.Host.Tests.Differential;

/// <summary>
/// Runs every committed sample image under hv (as a VM under SVM, hv run's default) and under
/// QEMU's software CPU (qemu-oracle) and
/// compares the serial output byte for byte and the exit status. QEMU is the reference: a
/// difference is a bug in hv unless the sample documents why the two may differ.
/// </summary>
[Category("Differential")]
public class QemuDifferentialTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private const ulong Memory = 256UL << 20;
    private const ulong MaxInstructions = 1_000_000_000;

    internal static QemuOracle RequireOracle()
    {
        var oracle = QemuOracle.Find(out string why);
        if (oracle == null)
            Unavailable($"qemu-oracle not found: {why}");
        return oracle!;
    }

    /// <summary>Skips on a developer machine without QEMU; fails in CI, where shared/ sits beside
    /// the clone and .ci/run installs QEMU, so a missing reference is a broken set-up.</summary>
    internal static void Unavailable(string why)
    {
        if (Environment.GetEnvironmentVariable("CI") is "true" or "1")
            Assert.Fail(why);
        Assert.Ignore(why);
    }

    private static IEnumerable<TestCaseData> Images() =>
        RepositoryPaths.SampleImageFiles().Select(f => new TestCaseData(f).SetArgDisplayNames(Path.GetFileName(f)));

    /// <summary>The image under hv, as <c>hv run</c> runs it by default (a VM under SVM), keeping how
    /// the run ended: named by its path (the first word of the command line, as QEMU gives it).</summary>
    private static (RunResult Result, byte[] Serial) RunHv(string image, LoadOptions? options = null)
    {
        var kernel = BootImageLoader.Load(File.ReadAllBytes(image), Memory, options ?? new LoadOptions { Name = image });
        var serial = new MemoryStream();
        using var vm = VirtualMachine.Create(Memory, serial);
        Assert.That(vm, Is.InstanceOf<SvmMachine>(), "the default machine is a VM under SVM");
        vm.Load(kernel);
        return (vm.Run(MaxInstructions), serial.ToArray());
    }

    [TestCaseSource(nameof(Images))]
    public void Image_UnderHvAndQemu_SameSerialOutputAndStatus(string image) => Compare(image, RunHv(image), []);

    /// <summary>The command line and modules: hv's <c>--append</c> and <c>--initrd</c>/<c>--module</c>
    /// against QEMU's <c>-append</c> and <c>-initrd "FILE ARGS,FILE ARGS"</c>.</summary>
    [Test]
    public void CommandLineSample_WithAppendAndModules_SameAsQemu()
    {
        string image = Path.Combine(RepositoryPaths.SampleImages, "cmdline.bin");
        string dir = Directory.CreateTempSubdirectory("hv-diff-").FullName;
        try
        {
            string first = Path.Combine(dir, "initrd.img"), second = Path.Combine(dir, "notes.txt");
            File.WriteAllBytes(first, new byte[5000]);
            File.WriteAllText(second, "a module's first line\nand its second\n");
            var options = new LoadOptions
            {
                Name = image,
                Append = "console=ttyS0 root=/dev/vda quiet",
                Modules =
                [
                    new MultibootModule(first, File.ReadAllBytes(first), first),
                    new MultibootModule(second, File.ReadAllBytes(second), $"{second} key=value two words"),
                ],
            };
            Compare(image, RunHv(image, options),
                ["-append", "console=ttyS0 root=/dev/vda quiet", "-initrd", $"{first},{second} key=value two words"]);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void Compare(string image, (RunResult Result, byte[] Serial) hv, IReadOnlyList<string> qemuArguments)
    {
        var oracle = RequireOracle();
        var (result, serial) = hv;
        int? expected = DifferentialStatus.ExpectedQemuStatus(result);
        Assert.That(expected, Is.Not.Null, $"hv ended with {result}, which QEMU cannot reproduce");

        var qemu = oracle.Run(image, Timeout, (int)(Memory >> 20), qemuArguments);
        if (qemu.ExitStatus == 2 && qemu.Stderr.StartsWith("qemu-oracle:", StringComparison.Ordinal))
            Unavailable(qemu.Stderr.Trim()); // the script itself could not run QEMU (not installed, cannot install)
        Assert.That(qemu.TimedOut, Is.False, $"QEMU did not finish within {Timeout.TotalSeconds} s: {qemu.Stderr}");
        Assert.Multiple(() =>
        {
            Assert.That(Encoding.Latin1.GetString(serial), Is.EqualTo(Encoding.Latin1.GetString(qemu.Serial)), "serial output");
            Assert.That(qemu.ExitStatus, Is.EqualTo(expected), $"exit status (hv: {result}); QEMU stderr: {qemu.Stderr}");
        });
    }
}
