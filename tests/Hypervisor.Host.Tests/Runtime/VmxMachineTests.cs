using Hypervisor.Host.Cli;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Tests.Support;
using Hypervisor.Vmx;
using Hypervisor.Vmx.Hardware;

namespace Hypervisor.Host.Tests.Runtime;

/// <summary>The KVM_RUN loop of <see cref="KvmMachine"/> under the VMX module: what a failed VM entry
/// becomes for the user.</summary>
public class VmxMachineTests
{
    private const ulong Mem = 16UL << 20;

    [Test]
    public void InvalidGuestState_FailEntryWithHardwareReason_Status4()
    {
        var kernel = MultibootKernel.Check(File.ReadAllBytes(Path.Combine(RepositoryPaths.SampleImages, "hello.elf")), Mem);
        using var vm = (VmxMachine)VirtualMachine.Create(Mem, Stream.Null, MachineOptions.ForVendor(VendorKind.Vmx));
        vm.Load(kernel);
        VmxOps.ToVmx(vm.Vcpu).Vmcs[VmcsField.VmcsLinkPointer] = 0; // must be all ones without VMCS shadowing
        var r = vm.Run();
        Assert.That(r.End, Is.EqualTo(RunEnd.InternalError));
        Assert.That(r.Message, Does.Contain("VMCS link pointer").And.Contain("(KVM_EXIT_FAIL_ENTRY, hardware_entry_failure_reason 0x80000021)"));
        Assert.That(ExitCodes.For(r), Is.EqualTo(ExitCodes.InternalError));
    }

    [Test]
    public void Hello_RunsUnderVmx_WithVmxExitNamesInTheStatistics()
    {
        var (r, serial, stats) = TestMachines.RunImage(MachineOptions.ForVendor(VendorKind.Vmx), File.ReadAllBytes(Path.Combine(RepositoryPaths.SampleImages, "hello.elf")));
        Assert.That((r.End, System.Text.Encoding.ASCII.GetString(serial)), Is.EqualTo((RunEnd.DebugExit, "Hello from hv!\n")));
        Assert.That(stats.Vendor, Is.EqualTo("vmx"));
        Assert.That(stats.VendorExits.Select(e => e.Name), Has.Some.EqualTo("EXIT_REASON_IO_INSTRUCTION"));
    }
}
