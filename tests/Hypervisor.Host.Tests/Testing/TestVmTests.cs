using Hypervisor.Core.Snapshots;
using Hypervisor.Core.X86;
using Hypervisor.Testing;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Host.Tests.Testing;

/// <summary>TestVm and IsExit: running, asserting exits, snapshots and restores through the API.</summary>
public class TestVmTests
{
    /// <summary>Counts down from 6, reporting each value on port 0x80 and keeping a running sum in memory.</summary>
    private static void Countdown(Assembler a)
    {
        var loop = a.CreateLabel();
        a.mov(ecx, 6);
        a.mov(rdi, TestVm.DataBase);
        a.Label(ref loop);
        a.add(__qword_ptr[rdi], rcx);
        a.rdtsc();
        a.mov(edx, 0x80);
        a.mov(eax, ecx);
        a.@out(dx, eax);
        a.dec(ecx);
        a.jnz(loop);
        a.hlt();
    }

    [TestCase(TestVendor.Svm)]
    [TestCase(TestVendor.Vmx)]
    public void Exits_AssertedWithIsExit(TestVendor vendor)
    {
        using var vm = TestVm.Create(vendor).Assemble(Countdown);
        for (uint v = 6; v >= 1; v--)
            Assert.That(vm.RunToExit(), IsExit.Io(port: 0x80, value: v, size: 4));
        Assert.That(vm.RunToExit(), IsExit.Hlt);
        Assert.That(vm.ReadU64(TestVm.DataBase), Is.EqualTo(21));
    }

    [Test]
    public void IsExit_Mismatch_MessageShowsTheActualExit()
    {
        using var vm = TestVm.Create().Assemble(Countdown);
        var e = Assert.Throws<AssertionException>(() => Assert.That(vm.RunToExit(), IsExit.Io(port: 0x81)))!;
        Assert.That(e.Message, Does.Contain("KVM_EXIT_IO out port=0x81").And.Contain("KVM_EXIT_IO out port=0x80 size=4 count=1 data=0x6"));
    }

    [Test]
    public void InfiniteLoop_EndsAsIntr()
    {
        using var vm = TestVm.Create().Assemble(a => { var l = a.CreateLabel(); a.Label(ref l); a.jmp(l); });
        vm.InstructionLimit = 1000;
        Assert.That(vm.RunToExit(), IsExit.Intr);
    }

    [TestCase(TestVendor.Svm)]
    [TestCase(TestVendor.Vmx)]
    public void RestoreAtEveryExit_FinalSnapshotSameAsUninterrupted(TestVendor vendor)
    {
        string whole;
        using (var vm = TestVm.Create(vendor).Assemble(Countdown))
        {
            while (vm.RunToExit().Reason != KvmExitReason.Hlt)
            {
            }
            whole = vm.Snapshot().ToJson();
        }
        for (int k = 0; k <= 6; k++)
        {
            MachineSnapshot mid;
            using (var first = TestVm.Create(vendor).Assemble(Countdown))
            {
                for (int i = 0; i < k; i++)
                    first.RunToExit();
                mid = first.Snapshot();
            }
            using var second = TestVm.FromSnapshot(mid);
            while (second.RunToExit().Reason != KvmExitReason.Hlt)
            {
            }
            Assert.That(second.Snapshot().ToJson(), Is.EqualTo(whole), $"restored after {k} exits");
        }
    }

    [Test]
    public void Vmx_Apx_R16ToR31_InTheSnapshot_AndRestored()
    {
        using var vm = TestVm.Create(TestVendor.Vmx, model: Hypervisor.Core.Machine.Models.HostCpuModel.DiamondRapids).Assemble(Countdown);
        vm.RunToExit();
        for (int r = 16; r < 32; r++)
            vm.Vcpu.WriteGpr(r, 0x1600_0000_0000UL + (ulong)r);   // KVM_SET_REGS with R16..R31
        var snap = vm.Snapshot();
        Assert.That(snap.Content["regs"]!["r31"]!.ToString(), Is.EqualTo("0x000016000000001f"));
        using var other = TestVm.FromSnapshot(snap);
        for (int r = 16; r < 32; r++)
            Assert.That(other.Gpr(r), Is.EqualTo(0x1600_0000_0000UL + (ulong)r), $"R{r}");
        Assert.That(other.Snapshot().ToJson(), Is.EqualTo(snap.ToJson()));
    }

    [Test]
    public void Restore_InPlace_GoesBack()
    {
        using var vm = TestVm.Create().Assemble(Countdown);
        vm.RunToExit();
        var early = vm.Snapshot();
        vm.RunToExit();
        vm.RunToExit();
        vm.Restore(early);
        Assert.That(vm.Snapshot().ToJson(), Is.EqualTo(early.ToJson()));
        Assert.That(vm.RunToExit(), IsExit.Io(port: 0x80, value: 5u));
    }
}
