using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using static Hypervisor.Core.Tests.Support.SystemGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Cpu;

/// <summary>Exception and interrupt delivery through the IDT (SDM vol. 3 ch. 6): vectors, error
/// codes with EXT, stack frames, stack switches through the TSS, and the #DF / triple-fault rules.</summary>
public class InterruptDeliveryTests
{
    private const ulong UserCode = 0x50000;
    private const ulong Unmapped = 0x1_0000_0000; // above the 4 GiB the long-mode guest maps

    private static GuestMachine Long()
    {
        var m = new GuestMachine(GuestMode.Long64);
        InstallIdt(m);
        InstallTss64(m);
        return m;
    }

    /// <summary>Kernel code that IRETQs to user code at <see cref="UserCode"/> with the user stack.</summary>
    private static void EnterUser64(Iced.Intel.Assembler a, ulong flags = 2)
    {
        a.push(UserData);
        a.mov(rax, UserStack);
        a.push(rax);
        a.push((int)flags);
        a.push(UserCode64);
        a.mov(rax, UserCode);
        a.push(rax);
        a.iretq();
    }

    [Test]
    public void Ud2_Long64_PushesFaultFrameWithRf()
    {
        using var m = Long();
        var exit = SystemGuest.Run(m, a => a.ud2());
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.UD));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(GuestMachine.StackTop - 40));
        Assert.That(Frame(m, 0), Is.EqualTo(GuestMachine.CodeBase), "RIP of the faulting instruction");
        Assert.That(Frame(m, 1), Is.EqualTo(KernelCode64));
        Assert.That(Frame(m, 2), Is.EqualTo(RFlags.Fixed1 | RFlags.Rf), "fault-class exceptions push RF=1");
        Assert.That(Frame(m, 3), Is.EqualTo(GuestMachine.StackTop));
        Assert.That(Frame(m, 4), Is.EqualTo(KernelData));
        Assert.That(m.Cpu.GetRFlags() & RFlags.Rf, Is.Zero);
    }

    [Test]
    public void GeneralProtection_Long64_PushesErrorCodeZero()
    {
        using var m = Long();
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, 1UL << 40); // reserved CR4 bit
            a.mov(cr4, rax);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.GP));
        Assert.That(Frame(m, 0), Is.EqualTo(0), "error code");
        Assert.That(Frame(m, 1), Is.EqualTo(GuestMachine.CodeBase + 10), "RIP of MOV CR4");
        Assert.That(Frame(m, 4), Is.EqualTo(GuestMachine.StackTop));
    }

    [Test]
    public void FrameIsAlignedTo16_Long64()
    {
        using var m = Long();
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rsp, GuestMachine.StackTop - 8);
            a.ud2();
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.UD));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(GuestMachine.StackTop - 16 - 40));
        Assert.That(Frame(m, 3), Is.EqualTo(GuestMachine.StackTop - 8), "the old RSP, unaligned");
    }

    [Test]
    public void FaultInUserMode_Long64_SwitchesToRsp0AndNullSs()
    {
        using var m = Long();
        Place(m, UserCode, a => a.ud2());
        var exit = SystemGuest.Run(m, a => EnterUser64(a));
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.UD));
        Assert.That(m.Cpu.Cpl, Is.EqualTo(0));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(KernelStack - 40));
        Assert.That(m.Cpu.GetSegment(SegReg.Ss).Selector, Is.EqualTo(0), "SS is null with RPL = new CPL");
        Assert.That(Frame(m, 0), Is.EqualTo(UserCode));
        Assert.That(Frame(m, 1), Is.EqualTo(UserCode64));
        Assert.That(Frame(m, 2), Is.EqualTo(RFlags.Fixed1 | RFlags.Rf));
        Assert.That(Frame(m, 3), Is.EqualTo(UserStack));
        Assert.That(Frame(m, 4), Is.EqualTo(UserData));
    }

    [Test]
    public void IstGate_Long64_SwitchesStackWithoutPrivilegeChange()
    {
        using var m = Long();
        SetGate64(m, Vector.UD, KernelCode64, HandlerBase + Vector.UD * 16, ist: 1);
        var exit = SystemGuest.Run(m, a => a.ud2());
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.UD));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(IstStack - 40));
        Assert.That(Frame(m, 3), Is.EqualTo(GuestMachine.StackTop));
        Assert.That(m.Cpu.GetSegment(SegReg.Ss).Selector, Is.EqualTo(KernelData), "no privilege change: SS kept");
    }

    [Test]
    public void SoftwareInterrupt_GateDplBelowCpl_GpWithIdtErrorCodeWithoutExt()
    {
        using var m = Long();
        Place(m, UserCode, a => a.@int(0x80));
        var exit = SystemGuest.Run(m, a => EnterUser64(a));
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.GP));
        Assert.That(Frame(m, 0), Is.EqualTo(0x80 * 8 + 2), "IDT bit set, EXT clear");
        Assert.That(Frame(m, 1), Is.EqualTo(UserCode), "INT n faults on itself");
    }

    [Test]
    public void SoftwareInterrupt_GateDpl3_DeliversWithReturnAddressAfterInt()
    {
        using var m = Long();
        SetGate64(m, 0x80, KernelCode64, HandlerBase + 0x80 * 16, dpl: 3);
        Place(m, UserCode, a => a.@int(0x80));
        var exit = SystemGuest.Run(m, a => EnterUser64(a));
        Assert.That(VectorOf(m, exit), Is.EqualTo(0x80));
        Assert.That(Frame(m, 0), Is.EqualTo(UserCode + 2));
        Assert.That(Frame(m, 2), Is.EqualTo(RFlags.Fixed1), "software interrupts push RF=0");
    }

    [Test]
    public void Int3AndInt1_Long64_DeliverTrapsAfterTheInstruction()
    {
        using var m = Long();
        var exit = SystemGuest.Run(m, a => a.int3());
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.BP));
        Assert.That(Frame(m, 0), Is.EqualTo(GuestMachine.CodeBase + 1));

        using var m2 = Long();
        exit = SystemGuest.Run(m2, a => a.int1());
        Assert.That(VectorOf(m2, exit), Is.EqualTo(Vector.DB));
        Assert.That(Frame(m2, 0), Is.EqualTo(GuestMachine.CodeBase + 1));
    }

    [Test]
    public void Int1_FromUserThroughDpl0Gate_IsDeliveredWithoutDplCheck()
    {
        using var m = Long();
        Place(m, UserCode, a => a.int1());
        var exit = SystemGuest.Run(m, a => EnterUser64(a));
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.DB));
        Assert.That(Frame(m, 0), Is.EqualTo(UserCode + 1));
    }

    [Test]
    public void NotPresentGate_ForException_NpWithIdtAndExtBits()
    {
        using var m = Long();
        SetGate64(m, Vector.UD, KernelCode64, HandlerBase + Vector.UD * 16, present: false);
        var exit = SystemGuest.Run(m, a => a.ud2());
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.NP));
        Assert.That(Frame(m, 0), Is.EqualTo(Vector.UD * 8 + 2 + 1));
        Assert.That(Frame(m, 1), Is.EqualTo(GuestMachine.CodeBase));
    }

    [Test]
    public void GateTargetNotCode_BenignThenContributory_DeliveredSeriallyWithExt()
    {
        using var m = Long();
        SetGate64(m, Vector.UD, KernelData, HandlerBase + Vector.UD * 16);
        var exit = SystemGuest.Run(m, a => a.ud2());
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.GP));
        Assert.That(Frame(m, 0), Is.EqualTo(KernelData | 1u));
    }

    [Test]
    public void NonCanonicalGateOffset_Long64_GpWithExt()
    {
        using var m = Long();
        SetGate64(m, Vector.UD, KernelCode64, 0x0000_8000_0000_0000);
        var exit = SystemGuest.Run(m, a => a.ud2());
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.GP));
        Assert.That(Frame(m, 0), Is.EqualTo(1));
    }

    [Test]
    public void ContributoryDuringContributory_DoubleFaultWithErrorZero()
    {
        using var m = Long();
        SetGate64(m, Vector.GP, KernelCode64, HandlerBase + Vector.GP * 16, present: false);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, 1UL << 40);
            a.mov(cr4, rax);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.DF));
        Assert.That(Frame(m, 0), Is.EqualTo(0));
        Assert.That(Frame(m, 1), Is.EqualTo(GuestMachine.CodeBase + 10));
    }

    [Test]
    public void PageFault_Long64_SetsCr2AndErrorCode()
    {
        using var m = Long();
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, Unmapped + 0x123);
            a.mov(__qword_ptr[rax], rbx);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.PF));
        Assert.That(m.Cpu.Cr2, Is.EqualTo(Unmapped + 0x123));
        Assert.That(Frame(m, 0), Is.EqualTo(2), "not present, write, supervisor");
        Assert.That(Frame(m, 1), Is.EqualTo(GuestMachine.CodeBase + 10));
    }

    [Test]
    public void PageFaultWhileDeliveringPageFault_DoubleFaultOnIstStack()
    {
        using var m = Long();
        SetGate64(m, Vector.DF, KernelCode64, HandlerBase + Vector.DF * 16, ist: 1);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rsp, Unmapped + 0x1000);
            a.mov(rax, Unmapped + 0x10);
            a.mov(rbx, __qword_ptr[rax]);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.DF));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(IstStack - 48));
        Assert.That(Frame(m, 0), Is.EqualTo(0));
        Assert.That(m.Cpu.Cr2, Is.EqualTo(Unmapped + 0xFF8), "CR2 of the second #PF (the push)");
    }

    [Test]
    public void PageFaultWhileDeliveringGp_DeliveredSerially()
    {
        using var m = Long();
        SetGate64(m, Vector.PF, KernelCode64, HandlerBase + Vector.PF * 16, ist: 1);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rsp, Unmapped + 0x1000);
            a.mov(rax, 1UL << 40);
            a.mov(cr4, rax);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.PF), "contributory then #PF is not a double fault");
        Assert.That(m.Cpu.Cr2, Is.EqualTo(Unmapped + 0xFF8));
        Assert.That(Frame(m, 0), Is.EqualTo(PfErrWrite));
    }

    private const ulong PfErrWrite = 2;

    [Test]
    public void EmptyIdt_TripleFault_ShutsDown()
    {
        using var m = Long();
        m.Cpu.Idtr = new DescriptorTable { Base = GuestMachine.IdtBase, Limit = 0 };
        var exit = SystemGuest.Run(m, a => a.ud2());
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Shutdown));
        Assert.That(exit.Message, Does.Contain("triple fault"));
    }

    [Test]
    public void TrapGate_KeepsIf_InterruptGate_ClearsIf()
    {
        using var m = Long();
        SetGate64(m, 0x40, KernelCode64, HandlerBase + 0x40 * 16, type: 0xF);
        var exit = SystemGuest.Run(m, a =>
        {
            a.sti();
            a.@int(0x40);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(0x40));
        Assert.That(m.Cpu.GetRFlags() & RFlags.If, Is.EqualTo(RFlags.If));

        using var m2 = Long();
        exit = SystemGuest.Run(m2, a =>
        {
            a.sti();
            a.@int(0x40);
        });
        Assert.That(VectorOf(m2, exit), Is.EqualTo(0x40));
        Assert.That(m2.Cpu.GetRFlags() & RFlags.If, Is.Zero);
        Assert.That(Frame(m2, 2), Is.EqualTo(RFlags.Fixed1 | RFlags.If));
    }

    [Test]
    public void ExternalInterrupt_DeliveredBetweenInstructions()
    {
        using var m = Long();
        var a = m.NewAssembler();
        a.nop();
        a.hlt();
        m.Load(a);
        Assert.That(m.Cpu.DeliverExternalInterrupt(0x40), Is.True);
        Assert.That(m.Cpu.Rip, Is.EqualTo(HandlerBase + 0x40 * 16));
        var exit = m.Run();
        Assert.That(VectorOf(m, exit), Is.EqualTo(0x40));
        Assert.That(Frame(m, 0), Is.EqualTo(GuestMachine.CodeBase));
        Assert.That(Frame(m, 2), Is.EqualTo(RFlags.Fixed1), "interrupts push RF as it was");
    }

    [Test]
    public void Ud2_Protected32_PushesThirtyTwoBitFrame()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        InstallIdt(m);
        var exit = SystemGuest.Run(m, a => a.ud2());
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.UD));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(GuestMachine.StackTop - 12));
        Assert.That(Frame(m, 0, 4), Is.EqualTo(GuestMachine.CodeBase));
        Assert.That(Frame(m, 1, 4), Is.EqualTo(KernelCode32));
        Assert.That(Frame(m, 2, 4), Is.EqualTo(RFlags.Fixed1 | RFlags.Rf));
    }

    [Test]
    public void FaultInRing3_Protected32_SwitchesToSs0Esp0()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        InstallIdt(m);
        InstallTss32(m);
        Place(m, UserCode, a => a.ud2());
        var exit = SystemGuest.Run(m, a =>
        {
            a.push(UserData);
            a.push((int)UserStack);
            a.push(2);
            a.push(UserCode32);
            a.push((int)UserCode);
            a.iretd();
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.UD));
        Assert.That(m.Cpu.Cpl, Is.EqualTo(0));
        Assert.That(m.Cpu.GetSegment(SegReg.Ss).Selector, Is.EqualTo(KernelData));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(KernelStack - 20));
        Assert.That(Frame(m, 0, 4), Is.EqualTo(UserCode));
        Assert.That(Frame(m, 1, 4), Is.EqualTo(UserCode32));
        Assert.That(Frame(m, 3, 4), Is.EqualTo(UserStack));
        Assert.That(Frame(m, 4, 4), Is.EqualTo(UserData));
    }

    [Test]
    public void GateOffsetBeyondCsLimit_Protected32_GpWithExt()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        InstallIdt(m);
        SetGate32(m, Vector.UD, 0x20, 0x20000); // code16 has a 64 KiB limit
        var exit = SystemGuest.Run(m, a => a.ud2());
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.GP));
        Assert.That(Frame(m, 0, 4), Is.EqualTo(1));
    }

    [Test]
    public void IntN_RealMode_PushesFlagsCsIpAndClearsIf()
    {
        using var m = new GuestMachine(GuestMode.Real);
        InstallIdt(m);
        var exit = SystemGuest.Run(m, a =>
        {
            a.sti();
            a.@int(0x21);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(0x21));
        Assert.That(m.Cpu.GetSegment(SegReg.Cs).Selector, Is.EqualTo(HandlerBase >> 4));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(0x7000 - 6));
        Assert.That(Frame(m, 0, 2), Is.EqualTo(3), "IP after STI; INT 21h");
        Assert.That(Frame(m, 1, 2), Is.EqualTo(GuestMachine.CodeBase >> 4));
        Assert.That(Frame(m, 2, 2), Is.EqualTo(RFlags.Fixed1 | RFlags.If));
        Assert.That(m.Cpu.GetRFlags() & RFlags.If, Is.Zero);
    }

    [Test]
    public void Ud2_RealMode_PushesIpOfTheFault()
    {
        using var m = new GuestMachine(GuestMode.Real);
        InstallIdt(m);
        var exit = SystemGuest.Run(m, a => a.ud2());
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.UD));
        Assert.That(Frame(m, 0, 2), Is.EqualTo(0));
    }

    [Test]
    public void IvtLimitTooSmall_RealMode_TripleFaults()
    {
        using var m = new GuestMachine(GuestMode.Real);
        InstallIdt(m);
        m.Cpu.Idtr = new DescriptorTable { Base = 0, Limit = 0x10 };
        var exit = SystemGuest.Run(m, a => a.@int(0x21));
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Shutdown));
    }
}
