using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Host.Tests.Runtime;

/// <summary><see cref="VirtualMachine.RequestStop"/> from another thread: the run ends early with
/// RunEnd.Stopped and the guest goes on from there at the next run.</summary>
[TestFixture(VendorKind.Svm)]
[TestFixture(VendorKind.Vmx)]
[TestFixture(VendorKind.Bare)]
public class VirtualMachineStopTests(VendorKind vendor)
{
    private const ulong Mem = 16 << 20;

    private static readonly byte[] Forever = TestImages.Aout(a =>
    {
        var top = a.CreateLabel();
        a.Label(ref top);
        a.inc(eax);
        a.jmp(top);
    });

    [Test]
    public void RequestStop_EndsTheRunLongBeforeItsSliceAndTheGuestGoesOn()
    {
        // One slice would take minutes: only the request can end the run in time.
        using var vm = TestMachines.Create(MachineOptions.ForVendor(vendor), Mem, Stream.Null, slice: 1UL << 40);
        vm.Load(MultibootKernel.Check(Forever, Mem));
        var run = Task.Run(() => vm.Run());
        SpinWait.SpinUntil(() => vm.InstructionsRetired > 10_000, TimeSpan.FromSeconds(20));
        vm.RequestStop();
        Assert.That(run.Wait(TimeSpan.FromSeconds(20)), Is.True, "the run did not stop");
        Assert.That(run.Result.End, Is.EqualTo(RunEnd.Stopped), run.Result.ToString());
        Assert.That(run.Result.Message, Does.StartWith("stopped at cs:rip"));

        ulong held = vm.InstructionsRetired;
        var next = vm.Run(1000);
        Assert.That(next.End, Is.EqualTo(RunEnd.InstructionLimit), "the request was consumed by the run it stopped");
        Assert.That(vm.InstructionsRetired, Is.EqualTo(held + 1000));
    }

    [Test]
    public void RequestStop_BetweenRuns_EndsTheNextRunEarly()
    {
        using var vm = TestMachines.Create(MachineOptions.ForVendor(vendor), Mem, Stream.Null, slice: 5000);
        vm.Load(MultibootKernel.Check(Forever, Mem));
        vm.RequestStop();
        var r = vm.Run(1_000_000);
        Assert.That(r.End, Is.EqualTo(RunEnd.Stopped));
        Assert.That(vm.InstructionsRetired, Is.LessThanOrEqualTo(5000UL), "at the latest at the end of the first slice");
    }
}
