using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Tests.Support;
using Hypervisor.Testing;

namespace Hypervisor.Host.Tests.Snapshots;

/// <summary>Golden snapshots of the sample guests at their end: every register, the RAP, the
/// vendor structure, exits, devices and a memory digest, reviewed once and compared on every run.
/// The CPUID table is scrubbed: it is the host CPU model's business, not the guest's.</summary>
public class SampleGoldenTests
{
    private static readonly string[] Samples = ["hello.elf", "alu64.bin", "flow64.bin", "system64.bin", "uart.bin", "legacy32.bin"];

    private static IEnumerable<TestCaseData> Cases() =>
        from vendor in new[] { VendorKind.Svm, VendorKind.Vmx }
        from sample in Samples
        select new TestCaseData(vendor, sample);

    [TestCaseSource(nameof(Cases))]
    public void Sample_EndState_MatchesGolden(VendorKind vendor, string sample)
    {
        var image = File.ReadAllBytes(Path.Combine(RepositoryPaths.SampleImages, sample));
        const ulong Memory = 16UL << 20;
        using var vm = (KvmMachine)VirtualMachine.Create(Memory, Stream.Null, new MachineOptions { Vendor = vendor, HostCpu = vendor == VendorKind.Vmx ? Core.Machine.Models.HostCpuModel.DefaultIntel : Core.Machine.Models.HostCpuModel.Default });
        vm.Load(MultibootKernel.Check(image, Memory));
        var result = vm.Run(200_000_000);
        Assert.That(result.End, Is.AnyOf(RunEnd.Halted, RunEnd.DebugExit, RunEnd.Shutdown), result.ToString());
        Golden.Verify(vm.CaptureSnapshot(), new Scrubber().Ignore("cpuid", "memory.file"));
    }
}
