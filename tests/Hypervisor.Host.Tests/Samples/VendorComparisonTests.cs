using System.Collections.Concurrent;
using System.Text;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Host.Cli;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Tests.Support;

namespace Hypervisor.Host.Tests.Samples;

/// <summary>
/// Every committed sample image (the differential suite) gives the same serial output and the
/// same end (and so exit status) as a VM under SVM or VMX as on the bare machine: the hypervisor
/// is invisible to a guest that does not ask for it. Several configurations of each vendor run:
/// every host CPU model, and the one where CR3 writes and INVPCID go through the hypervisor's
/// emulation. And every image gives the same output and status under SVM as under VMX (the
/// issue's proof that one common layer serves both vendors).
/// </summary>
public class VendorComparisonTests
{
    private static readonly ConcurrentDictionary<string, (RunResult Result, byte[] Serial)> BareRuns = new();

    private static readonly (string Name, MachineOptions Options)[] VendorConfigurations =
    [
        ("svm-zen5", new MachineOptions()),
        ("svm-zen4", new MachineOptions { HostCpu = HostCpuModel.Zen4 }),
        ("svm-zen5-intercept-cr3-invpcid", new MachineOptions { InterceptCr3AndInvpcid = true }),
        ("vmx-diamond-rapids", MachineOptions.ForVendor(VendorKind.Vmx)),
        ("vmx-granite-rapids", new MachineOptions { Vendor = VendorKind.Vmx, HostCpu = HostCpuModel.GraniteRapids }),
        ("vmx-diamond-rapids-intercept-cr3-invpcid", MachineOptions.ForVendor(VendorKind.Vmx) with { InterceptCr3AndInvpcid = true }),
    ];

    private static IEnumerable<TestCaseData> Cases() =>
        from image in RepositoryPaths.SampleImageFiles()
        from config in VendorConfigurations
        select new TestCaseData(image, config.Options).SetArgDisplayNames(Path.GetFileName(image), config.Name);

    private static IEnumerable<TestCaseData> Images() =>
        from image in RepositoryPaths.SampleImageFiles()
        select new TestCaseData(image).SetArgDisplayNames(Path.GetFileName(image));

    private static (RunResult Result, byte[] Serial) Bare(string image) =>
        BareRuns.GetOrAdd(image, path =>
        {
            var (r, serial, _) = TestMachines.RunImage(new MachineOptions { Vendor = VendorKind.Bare }, File.ReadAllBytes(path));
            return (r, serial);
        });

    [TestCaseSource(nameof(Cases))]
    public void Sample_UnderVendor_SameOutputAndStatusAsBare(string image, MachineOptions vendor)
    {
        var bare = Bare(image);
        var (result, serial, stats) = TestMachines.RunImage(vendor, File.ReadAllBytes(image));
        Assert.That(bare.Result.End, Is.AnyOf(RunEnd.DebugExit, RunEnd.Shutdown, RunEnd.Halted), $"bare: {bare.Result}");
        Assert.Multiple(() =>
        {
            Assert.That(Encoding.Latin1.GetString(serial), Is.EqualTo(Encoding.Latin1.GetString(bare.Serial)), "serial output");
            Assert.That((result.End, result.DebugExitValue), Is.EqualTo((bare.Result.End, bare.Result.DebugExitValue)), $"{VendorKinds.Name(vendor.Vendor)}: {result}; bare: {bare.Result}");
            Assert.That(ExitCodes.For(result), Is.EqualTo(ExitCodes.For(bare.Result)), "exit status");
            Assert.That(stats.Vendor, Is.EqualTo(VendorKinds.Name(vendor.Vendor)), "it really ran under the vendor module");
        });
    }

    [TestCaseSource(nameof(Images))]
    public void Sample_UnderVmx_SameOutputAndStatusAsUnderSvm(string image)
    {
        var bytes = File.ReadAllBytes(image);
        var (svm, svmSerial, svmStats) = TestMachines.RunImage(MachineOptions.ForVendor(VendorKind.Svm), bytes);
        var (vmx, vmxSerial, vmxStats) = TestMachines.RunImage(MachineOptions.ForVendor(VendorKind.Vmx), bytes);
        Assert.Multiple(() =>
        {
            Assert.That(Encoding.Latin1.GetString(vmxSerial), Is.EqualTo(Encoding.Latin1.GetString(svmSerial)), "serial output");
            Assert.That((vmx.End, vmx.DebugExitValue), Is.EqualTo((svm.End, svm.DebugExitValue)), $"vmx: {vmx}; svm: {svm}");
            Assert.That(ExitCodes.For(vmx), Is.EqualTo(ExitCodes.For(svm)), "exit status");
            Assert.That((svmStats.Vendor, vmxStats.Vendor), Is.EqualTo(("svm", "vmx")));
            Assert.That(vmxStats.VendorExits.Sum(e => e.Count), Is.GreaterThan(0), "the guest exited to the VMX module");
        });
    }
}
