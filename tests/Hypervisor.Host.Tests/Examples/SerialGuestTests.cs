using Hypervisor.Testing;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Host.Tests.Examples;

// The example of the README section "Writing integration tests against vCPU snapshots".
public class SerialGuestTests
{
    [TestCase(TestVendor.Svm)]
    [TestCase(TestVendor.Vmx)]
    public void WritesAToCom1_ThenHalts(TestVendor vendor)
    {
        using var vm = TestVm.Create(vendor);
        vm.Assemble(a =>
        {
            a.mov(dx, 0x3f8);          // COM1
            a.mov(al, (byte)'A');
            a.@out(dx, al);            // exits to userspace: the test is the VMM
            a.mov(rbx, 0x1234);
            a.hlt();
        });

        Assert.That(vm.RunToExit(), IsExit.Io(port: 0x3f8, value: 'A', size: 1));
        Assert.That(vm.RunToExit(), IsExit.Hlt);
        Assert.That(vm.Gpr(3), Is.EqualTo(0x1234));  // RBX

        // Compare the whole vCPU with the reviewed golden file beside this test
        // (SerialGuestTests.WritesAToCom1_ThenHalts_Svm.verified.json; HV_ACCEPT=1 accepts a change).
        // The CPUID table and memory hashes are not what this test is about.
        Golden.Verify(vm.Snapshot(), new Scrubber().Ignore("cpuid", "memory"));
    }
}
