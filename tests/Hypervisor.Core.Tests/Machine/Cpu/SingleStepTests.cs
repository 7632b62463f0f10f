using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Hypervisor.Core.Tests.Support.SystemGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Cpu;

/// <summary>RFLAGS.TF: a #DB trap after each instruction that starts with TF set (SDM vol. 3 §17.3.1.4).</summary>
public class SingleStepTests
{
    private const ulong Target = 0x50000;
    private const ulong Dr6Bs = 1UL << 14;

    /// <summary>IRETQ at CPL 0 to <see cref="Target"/> with TF set in the popped RFLAGS.</summary>
    private static CpuExit RunTraced(GuestMachine m, Action<Assembler> target)
    {
        Place(m, Target, target);
        return SystemGuest.Run(m, a =>
        {
            a.mov(rax, rsp);
            a.push((int)KernelData);
            a.push(rax);
            a.push(0x102);
            a.push((int)KernelCode64);
            a.push((int)Target);
            a.iretq();       // TF was clear when IRETQ started: no trap after it
        });
    }

    private static GuestMachine Long()
    {
        var m = new GuestMachine(GuestMode.Long64);
        InstallIdt(m);
        return m;
    }

    [Test]
    public void Tf_TrapsAfterTheFirstInstruction()
    {
        using var m = Long();
        var exit = RunTraced(m, a =>
        {
            a.mov(ebx, 7);
            a.nop();
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.DB));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(7));
        Assert.That(Frame(m, 0), Is.EqualTo(Target + 5), "a trap: the frame points at the next instruction");
        Assert.That(Frame(m, 2), Is.EqualTo(0x102UL));
        Assert.That(m.Cpu.Dr[6] & Dr6Bs, Is.EqualTo(Dr6Bs));
        Assert.That(m.Cpu.GetRFlags() & RFlags.Tf, Is.Zero, "delivery clears TF");
    }

    [Test]
    public void Tf_FaultingInstruction_DeliversTheFaultOnly()
    {
        using var m = Long();
        var exit = RunTraced(m, a => a.ud2());
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.UD));
        Assert.That(Frame(m, 0), Is.EqualTo(Target));
        Assert.That(m.Cpu.Dr[6] & Dr6Bs, Is.Zero);
    }

    [Test]
    public void Tf_SoftwareInterrupt_NoTrapAfterIt()
    {
        using var m = Long();
        var exit = RunTraced(m, a => a.@int(0x40));
        Assert.That(VectorOf(m, exit), Is.EqualTo(0x40));
        Assert.That(Frame(m, 0), Is.EqualTo(Target + 2));
    }

    [Test]
    public void Tf_PortOutput_ExitsFirstThenTraps()
    {
        using var m2 = Long();
        Place(m2, Target, a => a.@out(0xE9, al));
        var asm = m2.NewAssembler();
        asm.mov(al, (byte)'y');
        asm.mov(rcx, rsp);
        asm.push((int)KernelData);
        asm.push(rcx);
        asm.push(0x102);
        asm.push((int)KernelCode64);
        asm.push((int)Target);
        asm.iretq();
        m2.Load(asm);
        var io = m2.Cpu.Run();
        Assert.That(io.Reason, Is.EqualTo(CpuExitReason.Io));
        Assert.That(m2.Cpu.Rip, Is.EqualTo(Target + 2), "OUT completed before the exit");
        var exit = m2.Run();
        Assert.That(VectorOf(m2, exit), Is.EqualTo(Vector.DB));
        Assert.That(Frame(m2, 0), Is.EqualTo(Target + 2));
    }

    [Test]
    public void Tf_RealMode_TrapsThroughTheIvt()
    {
        using var m = new GuestMachine(GuestMode.Real);
        InstallIdt(m);
        Place(m, GuestMachine.CodeBase + 0x100, a =>
        {
            a.nop();
            a.hlt();
        });
        var exit = SystemGuest.Run(m, a =>
        {
            a.push(0x0102);
            a.push(cs);
            a.push(0x100);  // IP of the traced NOP in this code segment
            a.iret();
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.DB));
        Assert.That(Frame(m, 0, 2), Is.EqualTo(0x101UL));
        Assert.That(Frame(m, 2, 2), Is.EqualTo(0x102UL));
    }
}
