using System.Collections.Concurrent;
using System.Text;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Host.Cli;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Tests.Support;

namespace Hypervisor.Host.Tests.Samples;

/// <summary>
/// Every committed sample image (the differential suite) gives the same serial output and the
/// same end (and so exit status) as a VM under SVM as on the bare machine: the hypervisor is
/// invisible to a guest that does not ask for it. Several SVM configurations run: both host CPU
/// models, and the one where CR3 writes and INVPCID go through the hypervisor's emulation.
/// </summary>
public class VendorComparisonTests
{
    private static readonly ConcurrentDictionary<string, (RunResult Result, byte[] Serial)> BareRuns = new();

    private static readonly (string Name, MachineOptions Options)[] SvmConfigurations =
    [
        ("svm-zen5", new MachineOptions()),
        ("svm-zen4", new MachineOptions { HostCpu = HostCpuModel.Zen4 }),
        ("svm-zen5-intercept-cr3-invpcid", new MachineOptions { InterceptCr3AndInvpcid = true }),
    ];

    private static IEnumerable<TestCaseData> Cases() =>
        from image in RepositoryPaths.SampleImageFiles()
        from config in SvmConfigurations
        select new TestCaseData(image, config.Options).SetArgDisplayNames(Path.GetFileName(image), config.Name);

    private static (RunResult Result, byte[] Serial) Bare(string image) =>
        BareRuns.GetOrAdd(image, path =>
        {
            var (r, serial, _) = TestMachines.RunImage(new MachineOptions { Vendor = VendorKind.Bare }, File.ReadAllBytes(path));
            return (r, serial);
        });

    [TestCaseSource(nameof(Cases))]
    public void Sample_UnderSvm_SameOutputAndStatusAsBare(string image, MachineOptions svm)
    {
        var bare = Bare(image);
        var (result, serial, stats) = TestMachines.RunImage(svm, File.ReadAllBytes(image));
        Assert.That(bare.Result.End, Is.AnyOf(RunEnd.DebugExit, RunEnd.Shutdown, RunEnd.Halted), $"bare: {bare.Result}");
        Assert.Multiple(() =>
        {
            Assert.That(Encoding.Latin1.GetString(serial), Is.EqualTo(Encoding.Latin1.GetString(bare.Serial)), "serial output");
            Assert.That((result.End, result.DebugExitValue), Is.EqualTo((bare.Result.End, bare.Result.DebugExitValue)), $"svm: {result}; bare: {bare.Result}");
            Assert.That(ExitCodes.For(result), Is.EqualTo(ExitCodes.For(bare.Result)), "exit status");
            Assert.That(stats.Vendor, Is.EqualTo("svm"), "it really ran under the vendor module");
        });
    }
}
