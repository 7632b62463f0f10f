using System.Text;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Service;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Host.Tests.Service;

/// <summary>One VM on its own thread: start, pause, resume, stop, and how it ends by itself.</summary>
[TestFixture(VendorKind.Svm)]
[TestFixture(VendorKind.Vmx)]
[TestFixture(VendorKind.Bare)]
public class ManagedVmTests(VendorKind vendor)
{
    private static readonly ServiceOptions Options = new() { SliceInstructions = 20_000, SerialBufferBytes = 4096 };
    private ServiceGuests _guests = null!;

    [SetUp]
    public void SetUp() => _guests = new ServiceGuests();

    [TearDown]
    public void TearDown() => _guests.Dispose();

    private ManagedVm Create(string image) =>
        ManagedVm.Create("vm-1", new VmSpec { Image = image, Vendor = vendor, Memory = 16 << 20 }, Options, NullLoggerFactory.Instance);

    [Test]
    public void HostCpu_IsTheVendorsOwnModelByDefault()
    {
        using var vm = Create(ServiceGuests.Hello);
        Assert.That(vm.Spec.EffectiveHostCpu, Is.EqualTo(VendorKinds.DefaultHostCpu(vendor)));
    }

    private static void WaitFor(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition())
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), $"timed out waiting for {what}");
            Thread.Sleep(5);
        }
    }

    [Test]
    public void Hello_RunsToItsDebugExitAndKeepsItsSerialOutput()
    {
        using var vm = Create(ServiceGuests.Hello);
        Assert.That(vm.State, Is.EqualTo(VmState.Created));
        Assert.That(vm.TryAct(VmAction.Start, out _), Is.True);
        WaitFor(() => VmStates.IsFinal(vm.State), "the guest to end");
        Assert.That(vm.State, Is.EqualTo(VmState.Stopped));
        Assert.That(vm.End, Is.EqualTo(new RunResult(RunEnd.DebugExit, 0)));
        Assert.That(Encoding.ASCII.GetString(vm.Serial.ToArray()), Is.EqualTo("Hello from hv!\n"));
    }

    [Test]
    public void PauseResume_HoldsTheGuestAndGoesOnWhereItWas()
    {
        using var vm = Create(_guests.Forever);
        vm.TryAct(VmAction.Start, out _);
        WaitFor(() => vm.Serial.TotalWritten >= 3, "some output");
        Assert.That(vm.TryAct(VmAction.Pause, out string conflict), Is.True, conflict);
        Assert.That(vm.State, Is.EqualTo(VmState.Paused));
        ulong held = vm.Instructions;
        long printed = vm.Serial.TotalWritten;
        Thread.Sleep(100);
        Assert.That(vm.Instructions, Is.EqualTo(held), "a paused guest retires nothing");
        Assert.That(vm.Serial.TotalWritten, Is.EqualTo(printed));

        Assert.That(vm.TryAct(VmAction.Resume, out conflict), Is.True, conflict);
        WaitFor(() => vm.Serial.TotalWritten > printed, "output after resume");
        Assert.That(vm.TryAct(VmAction.Stop, out conflict), Is.True, conflict);
        Assert.That(vm.State, Is.EqualTo(VmState.Stopped));
        Assert.That(vm.End!.Value.End, Is.EqualTo(RunEnd.Stopped));
    }

    [Test]
    public void PausedAndResumedOften_EndsExactlyAsAnUninterruptedRun()
    {
        string image = Path.Combine(Support.RepositoryPaths.SampleImages, "flow64.bin");
        var reference = Support.TestMachines.RunImage(MachineOptions.ForVendor(vendor), File.ReadAllBytes(image), memory: 16 << 20);
        using var vm = Create(image);
        vm.TryAct(VmAction.Start, out _);
        int pauses = 0;
        while (vm.TryAct(VmAction.Pause, out _))
        {
            pauses++;
            vm.TryAct(VmAction.Resume, out _);
        }
        WaitFor(() => VmStates.IsFinal(vm.State), "the guest to end");
        Assert.That(vm.End, Is.EqualTo(reference.Result));
        Assert.That(vm.Instructions, Is.EqualTo(reference.Stats.InstructionsRetired));
        Assert.That(vm.Serial.ToArray(), Is.EqualTo(reference.Serial));
        Assert.That(pauses, Is.GreaterThan(0), "the guest ended before the first pause");
    }

    [Test]
    public void ActionInTheWrongState_IsRefusedWithTheReason()
    {
        using var vm = Create(_guests.Forever);
        Assert.That(vm.TryAct(VmAction.Pause, out string conflict), Is.False);
        Assert.That(conflict, Is.EqualTo("cannot pause VM vm-1: it is created (start it first)"));
        Assert.That(vm.TryAct(VmAction.Resume, out _), Is.False);
        vm.TryAct(VmAction.Start, out _);
        Assert.That(vm.TryAct(VmAction.Start, out conflict), Is.False);
        Assert.That(conflict, Does.Contain("it is running"));
        vm.TryAct(VmAction.Stop, out _);
        Assert.That(vm.TryAct(VmAction.Stop, out conflict), Is.False);
        Assert.That(conflict, Does.Contain("its run is over"));
    }

    [Test]
    public void StopBeforeStart_EndsItWithoutRunning()
    {
        using var vm = Create(_guests.Forever);
        Assert.That(vm.TryAct(VmAction.Stop, out _), Is.True);
        Assert.That(vm.State, Is.EqualTo(VmState.Stopped));
        Assert.That(vm.Instructions, Is.Zero);
    }

    [Test]
    public void TripleFault_FailsThisVmOnly()
    {
        using var bad = Create(ServiceGuests.Triple);
        using var good = Create(_guests.Forever);
        good.TryAct(VmAction.Start, out _);
        bad.TryAct(VmAction.Start, out _);
        WaitFor(() => VmStates.IsFinal(bad.State), "the triple fault");
        Assert.That(bad.State, Is.EqualTo(VmState.Failed));
        Assert.That(bad.End!.Value.End, Is.EqualTo(RunEnd.Shutdown));
        long printed = good.Serial.TotalWritten;
        WaitFor(() => good.Serial.TotalWritten > printed, "the other VM to go on");
        Assert.That(good.State, Is.EqualTo(VmState.Running));
    }

    [Test]
    public void Dispose_WhileRunning_EndsItsThread()
    {
        var vm = Create(_guests.Forever);
        vm.TryAct(VmAction.Start, out _);
        WaitFor(() => vm.Instructions > 0, "the guest to run");
        vm.Dispose();
        Assert.That(vm.State, Is.EqualTo(VmState.Stopped));
    }

    [Test]
    public void BadImage_IsAFieldErrorAndNothingIsCreated()
    {
        string path = _guests.Write("junk.bin", new byte[64]);
        var e = Assert.Throws<VmRequestException>(() => Create(path))!;
        Assert.That(e.Errors.Keys, Is.EqualTo(new[] { "image" }));
        Assert.That(e.Errors["image"][0], Does.StartWith(path + ": "));
        var missing = Assert.Throws<VmRequestException>(() => Create(Path.Combine(_guests.Directory, "none.elf")))!;
        Assert.That(missing.Errors["image"][0], Does.EndWith("no such file"));
    }
}
