using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.X86;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Host.Tests.Runtime;

/// <summary>The run loop's behaviour, the same on both machines: a VM under SVM and the bare CPU.
/// (Exit statistics differ by design and are tested per machine.)</summary>
[TestFixture(VendorKind.Svm)]
[TestFixture(VendorKind.Bare)]
public class VirtualMachineTests(VendorKind vendor)
{
    private const ulong Mem = 16 << 20;

    private (RunResult Result, VirtualMachine Vm, MemoryStream Serial) Run(Action<Assembler> code, ulong max = 100_000, ulong slice = 1UL << 24)
    {
        var serial = new MemoryStream();
        var vm = TestMachines.Create(vendor, Mem, serial, slice);
        vm.Load(MultibootKernel.Check(TestImages.Aout(code), Mem));
        return (vm.Run(max), vm, serial);
    }

    /// <summary>Exits of one kind that reached the host, counted the machine's way.</summary>
    private static long HostExits(VirtualMachine vm, CpuExitReason bare, KvmExitReason kvm) =>
        vm.Statistics.Vendor == null ? vm.Statistics.Exits(bare) : vm.Statistics.UserspaceExits.Where(e => e.Reason == kvm).Sum(e => e.Count);

    [Test]
    public void Hlt_InterruptsDisabled_EndsHalted()
    {
        var (r, vm, _) = Run(a => a.hlt());
        using (vm)
        {
            Assert.That(r, Is.EqualTo(new RunResult(RunEnd.Halted)));
            Assert.That(HostExits(vm, CpuExitReason.Hlt, KvmExitReason.Hlt), Is.EqualTo(1));
            // Under SVM the HLT is intercepted and emulated by the hypervisor: it never retires in the guest.
            Assert.That(vm.Statistics.InstructionsRetired, Is.EqualTo(vendor == VendorKind.Bare ? 1 : 0));
        }
    }

    [Test]
    public void Hlt_InterruptsEnabled_IsAnInternalErrorSinceNothingCanWakeIt()
    {
        var (r, vm, _) = Run(a => { a.sti(); a.hlt(); });
        vm.Dispose();
        Assert.That(r.End, Is.EqualTo(RunEnd.InternalError));
        Assert.That(r.Message, Does.Contain("interrupts enabled"));
    }

    [Test]
    public void DebugExit_EndsWithTheWrittenValue()
    {
        var (r, vm, _) = Run(a => { a.mov(eax, 0x12345678); a.mov(dx, 0xF4); a.@out(dx, eax); });
        vm.Dispose();
        Assert.That(r, Is.EqualTo(new RunResult(RunEnd.DebugExit, 0x12345678)));
    }

    [Test]
    public void DebugExit_AnyOfItsFourPorts_EndsTheRun()
    {
        var (r, vm, _) = Run(a => { a.mov(eax, 0x1234); a.mov(dx, 0xF6); a.@out(dx, ax); });
        vm.Dispose();
        Assert.That(r, Is.EqualTo(new RunResult(RunEnd.DebugExit, 0x1234)));
    }

    [Test]
    public void SerialOutput_ReachesTheStreamWithoutNewline()
    {
        var (r, vm, serial) = Run(a => { a.mov(dx, 0x3F8); a.mov(al, (byte)'z'); a.@out(dx, al); a.hlt(); });
        vm.Dispose();
        Assert.That(serial.ToArray(), Is.EqualTo(new[] { (byte)'z' }));
    }

    [Test]
    public void UnclaimedMmio_ReadsAllOnes_WritesIgnored()
    {
        var (r, vm, _) = Run(a =>
        {
            a.mov(__dword_ptr[0xF0000000], 0x1234);
            a.mov(eax, __dword_ptr[0xF0000000]);
            a.@out(0xF4, eax);
        });
        using (vm)
        {
            Assert.That(r, Is.EqualTo(new RunResult(RunEnd.DebugExit, 0xFFFFFFFF)));
            Assert.That(HostExits(vm, CpuExitReason.Mmio, KvmExitReason.Mmio), Is.EqualTo(2));
        }
    }

    [Test]
    public void UnimplementedInstruction_EndsWithCpuReport()
    {
        var (r, vm, _) = Run(a => a.fsin());
        vm.Dispose();
        Assert.That(r.End, Is.EqualTo(RunEnd.Unimplemented));
        Assert.That(r.Message, Does.Contain("fsin").And.Contain("d9 fe"));
    }

    [Test]
    public void TripleFault_EndsWithShutdownReason()
    {
        var (r, vm, _) = Run(a => { a.mov(ax, 0x40); a.mov(ds, ax); });
        vm.Dispose();
        Assert.That(r.End, Is.EqualTo(RunEnd.Shutdown));
        Assert.That(r.Message, Does.Contain("triple fault"));
    }

    [Test]
    public void InstructionLimit_StopsAfterExactlyThatMany()
    {
        var (r, vm, _) = Run(a => { var l = a.CreateLabel(); a.Label(ref l); a.jmp(l); }, max: 1000);
        using (vm)
        {
            Assert.That(r.End, Is.EqualTo(RunEnd.InstructionLimit));
            Assert.That(vm.Statistics.InstructionsRetired, Is.EqualTo(1000));
        }
    }

    [Test]
    public void InstructionLimit_ReportsWhereTheGuestStopped()
    {
        var (r, vm, _) = Run(a => { a.nop(); a.nop(); var l = a.CreateLabel(); a.Label(ref l); a.jmp(l); }, max: 7);
        vm.Dispose();
        Assert.That(r.Message, Is.EqualTo("instruction limit of 7 reached at cs:rip 0008:100022"));
    }

    [Test]
    public void Slices_DoNotEndTheRun()
    {
        var (r, vm, _) = Run(a =>
        {
            var l = a.CreateLabel();
            a.mov(ecx, 500);
            a.Label(ref l);
            a.dec(ecx);
            a.jne(l);
            a.@out(0xF4, al);
        }, slice: 7);
        using (vm)
        {
            Assert.That(r.End, Is.EqualTo(RunEnd.DebugExit));
            // The OUT retires on the bare CPU; under SVM it is intercepted before it executes.
            Assert.That(vm.Statistics.InstructionsRetired, Is.EqualTo(vendor == VendorKind.Bare ? 1 + 1000 + 1 : 1 + 1000));
            Assert.That(HostExits(vm, CpuExitReason.Io, KvmExitReason.Io), Is.EqualTo(1));
        }
    }

    [Test]
    public void PortInput_UnclaimedPort_CompletesTheInWithOnes()
    {
        var (r, vm, _) = Run(a => { a.mov(dx, 0x80); a.@in(al, dx); a.@out(0xF4, al); });
        vm.Dispose();
        Assert.That(r, Is.EqualTo(new RunResult(RunEnd.DebugExit, 0xFF)));
    }
}
