using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Hypervisor.Core.Tests.Support.SystemGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

/// <summary>SYSCALL/SYSRET in long, compatibility and legacy mode; IRET in real, protected and long mode.</summary>
public class SyscallIretTests
{
    private const ulong UserCode = 0x50000;
    private const ulong Kernel = 0x5F000; // SYSCALL entry
    // STAR[47:32] = 0x08 gives SYSCALL CS 0x08 / SS 0x10. With STAR[63:48] = 0x20, SYSRET to 64-bit
    // mode loads CS 0x30|3 and SS 0x28|3; with 0x40, SYSRET to 32-bit code loads CS 0x40|3.
    private static ulong Star(ushort sysret, ushort syscall, uint legacyEip = 0) => ((ulong)sysret << 48) | ((ulong)syscall << 32) | legacyEip;

    private static GuestMachine Long()
    {
        var m = new GuestMachine(GuestMode.Long64);
        InstallIdt(m);
        InstallTss64(m);
        return m;
    }

    [Test]
    public void Syscall_Long64_EntersLstarWithRcxR11AndMaskedFlags()
    {
        using var m = Long();
        m.Cpu.Msr.Star = Star(0x28, 0x08);
        m.Cpu.Msr.Lstar = Kernel;
        m.Cpu.Msr.Sfmask = RFlags.If | RFlags.Df;
        Place(m, Kernel, a => a.hlt());
        var exit = SystemGuest.Run(m, a =>
        {
            a.sti();
            a.syscall();
        });
        Assert.That(exit.Address, Is.EqualTo(Kernel));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(GuestMachine.CodeBase + 3));
        Assert.That(m.Cpu.GetGpr(Gpr.R11), Is.EqualTo(RFlags.Fixed1 | RFlags.If));
        Assert.That(m.Cpu.GetRFlags() & RFlags.If, Is.Zero);
        Assert.That(m.Cpu.GetSegment(SegReg.Cs).Selector, Is.EqualTo(0x08));
        Assert.That(m.Cpu.GetSegment(SegReg.Ss).Selector, Is.EqualTo(0x10));
        Assert.That(m.Cpu.CodeBits, Is.EqualTo(64));
    }

    [Test]
    public void Syscall_WithoutEferSce_Ud()
    {
        using var m = Long();
        m.Cpu.WriteEfer(m.Cpu.Efer & ~Efer.Sce);
        var exit = SystemGuest.Run(m, a => a.syscall());
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.UD));
    }

    [Test]
    public void SysretqThenSyscall_RoundTripThroughUserMode()
    {
        using var m = Long();
        // SYSRET to 64-bit: CS = STAR[63:48] + 16 = 0x30|3, SS = STAR[63:48] + 8 = 0x38|3.
        m.Cpu.Msr.Star = Star(0x20, 0x08);
        m.Cpu.Msr.Lstar = Kernel;
        Place(m, Kernel, a => a.hlt());
        Place(m, UserCode, a =>
        {
            a.mov(r12, rsp);
            a.syscall();
        });
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rcx, UserCode);
            a.mov(r11d, 0x202);
            a.sysretq();
        });
        Assert.That(exit.Address, Is.EqualTo(Kernel));
        Assert.That(m.Cpu.GetGpr(Gpr.R11) & RFlags.If, Is.Not.Zero, "user RFLAGS came from R11");
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(UserCode + 5), "after MOV R12, RSP (3 bytes) and SYSCALL");
        Assert.That(m.Cpu.Cpl, Is.EqualTo(0));
    }

    [Test]
    public void Sysretq_LoadsRing3SegmentsAndFlagsFromR11()
    {
        using var m = Long();
        m.Cpu.Msr.Star = Star(0x20, 0x08);
        Place(m, UserCode, a => a.nop());
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rcx, UserCode);
            a.mov(r11d, 0x30ED7); // every flag SYSRET keeps, plus RF (cleared)
            a.sysretq();
        }, maxInstructions: 4);
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.InstructionLimit));
        Assert.That(m.Cpu.Rip, Is.EqualTo(UserCode + 1));
        Assert.That(m.Cpu.Cpl, Is.EqualTo(3));
        Assert.That(m.Cpu.GetSegment(SegReg.Cs).Selector, Is.EqualTo(0x33));
        Assert.That(m.Cpu.GetSegment(SegReg.Ss).Selector, Is.EqualTo(0x2B));
        Assert.That(m.Cpu.GetRFlags(), Is.EqualTo(0xED7UL), "RF and VM dropped");
    }

    [Test]
    public void Sysretd_ReturnsToCompatibilityMode()
    {
        using var m = Long();
        m.Cpu.Msr.Star = Star(0x40, 0x08); // CS = 0x43 (user code32), SS = 0x4B
        Place(m, UserCode, a => a.nop());
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rcx, 0xFFFF_FFFF_0000_0000 | UserCode); // upper half ignored
            a.sysret();
        }, maxInstructions: 2);
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.InstructionLimit));
        Assert.That(m.Cpu.CodeBits, Is.EqualTo(32));
        Assert.That(m.Cpu.Rip, Is.EqualTo(UserCode));
        Assert.That(m.Cpu.GetSegment(SegReg.Cs).Selector, Is.EqualTo(0x43));
    }

    [Test]
    public void Sysretq_NonCanonicalRcx_Gp0InRing0()
    {
        using var m = Long();
        m.Cpu.Msr.Star = Star(0x20, 0x08);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rcx, 0x0000_8000_0000_0000UL);
            a.sysretq();
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.GP));
        Assert.That(Frame(m, 0), Is.EqualTo(0));
        Assert.That(Frame(m, 2), Is.EqualTo(KernelCode64), "the fault is taken at CPL 0");
    }

    [Test]
    public void Syscall_CompatibilityMode_AmdUsesCstar()
    {
        using var m = Long();
        m.Cpu.Msr.Star = Star(0x40, 0x08);
        m.Cpu.Msr.Cstar = Kernel;
        Place(m, Kernel, a => a.hlt());
        // Enter compatibility mode at CPL 0 through a far return to code32 (0x18).
        var code32 = new Assembler(32);
        code32.syscall();
        var stream = new MemoryStream();
        code32.Assemble(new StreamCodeWriter(stream), UserCode);
        m.Memory.Write(UserCode, stream.ToArray());
        var exit = SystemGuest.Run(m, a =>
        {
            a.push((int)KernelData);
            a.push((int)GuestMachine.StackTop);
            a.push(2);
            a.push((int)KernelCode32);
            a.push((int)UserCode);
            a.iretq();
        });
        Assert.That(exit.Address, Is.EqualTo(Kernel));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(UserCode + 2));
        Assert.That(m.Cpu.CodeBits, Is.EqualTo(64));
    }

    [Test]
    public void SyscallSysret_LegacyProtectedMode_Amd()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        InstallIdt(m);
        m.Cpu.WriteEfer(Efer.Sce);
        m.Cpu.Msr.Star = Star(0x40, 0x18, (uint)Kernel);
        Place(m, Kernel, a =>
        {
            a.mov(esi, ecx);  // return EIP
            a.mov(ecx, (uint)UserCode);
            a.sysret();
        });
        Place(m, UserCode, a => a.mov(edi, 0x77));
        var exit = SystemGuest.Run(m, a =>
        {
            a.sti();
            a.syscall();
        }, maxInstructions: 6);
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.InstructionLimit));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsi), Is.EqualTo(GuestMachine.CodeBase + 3));
        Assert.That(m.Cpu.GetGpr(Gpr.Rdi), Is.EqualTo(0x77));
        Assert.That(m.Cpu.Cpl, Is.EqualTo(3));
        Assert.That(m.Cpu.GetSegment(SegReg.Cs).Selector, Is.EqualTo(0x43));
        Assert.That(m.Cpu.GetRFlags() & RFlags.If, Is.Not.Zero, "legacy SYSRET sets IF");
    }

    // ---- IRET ----

    [Test]
    public void Iret_RealMode_PopsIpCsFlags()
    {
        using var m = new GuestMachine(GuestMode.Real);
        Place(m, 0x20000, a => a.mov(bx, 0x55));
        var exit = SystemGuest.Run(m, a =>
        {
            a.push(0x0202);     // FLAGS with IF
            a.push(0x2000);     // CS
            a.push(0);          // IP
            a.iret();
        }, maxInstructions: 5);
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.InstructionLimit));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x55));
        Assert.That(m.Cpu.GetSegment(SegReg.Cs).Base, Is.EqualTo(0x20000));
        Assert.That(m.Cpu.GetRFlags() & RFlags.If, Is.Not.Zero);
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(0x7000));
    }

    [Test]
    public void Iretd_Protected32_ToRing3_NullsDataSegmentsItCannotUse()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        InstallIdt(m);
        Place(m, UserCode, a => a.nop());
        var exit = SystemGuest.Run(m, a =>
        {
            a.push((int)UserData);
            a.push((int)UserStack);
            a.push(0x3202);         // IOPL 3, IF
            a.push((int)UserCode32);
            a.push((int)UserCode);
            a.iretd();
        }, maxInstructions: 7);
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.InstructionLimit));
        Assert.That(m.Cpu.Cpl, Is.EqualTo(3));
        Assert.That(m.Cpu.GetSegment(SegReg.Ss).Selector, Is.EqualTo(UserData));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(UserStack));
        Assert.That(m.Cpu.GetSegment(SegReg.Ds).Selector, Is.EqualTo(0), "DPL 0 data is nulled at CPL 3");
        Assert.That(m.Cpu.GetRFlags() & (RFlags.Iopl | RFlags.If), Is.EqualTo(RFlags.Iopl | RFlags.If), "loaded at CPL 0");
    }

    [Test]
    public void Iretd_FromRing3_CannotRaiseIoplOrIf()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        InstallIdt(m);
        Place(m, UserCode, a =>
        {
            a.push((int)UserData);
            a.push((int)UserStack - 0x100);
            a.push(0x3202);          // asks for IOPL 3 and IF
            a.push((int)UserCode32);
            a.push((int)UserCode + 0x80);
            a.iretd();
        });
        Place(m, UserCode + 0x80, a => a.nop());
        var exit = SystemGuest.Run(m, a =>
        {
            a.push((int)UserData);
            a.push((int)UserStack);
            a.push(2);
            a.push((int)UserCode32);
            a.push((int)UserCode);
            a.iretd();
        }, maxInstructions: 13);
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.InstructionLimit));
        Assert.That(m.Cpu.Rip, Is.EqualTo(UserCode + 0x81));
        Assert.That(m.Cpu.GetRFlags() & (RFlags.Iopl | RFlags.If), Is.Zero);
    }

    [Test]
    public void Iret_ToMoreprivilegedCs_GpSelector()
    {
        using var m = Long();
        Place(m, UserCode, a =>
        {
            a.push((int)KernelData);
            a.push((int)GuestMachine.StackTop);
            a.push(2);
            a.push((int)KernelCode64);
            a.push((int)GuestMachine.CodeBase);
            a.iretq();
        });
        var exit = SystemGuest.Run(m, a =>
        {
            a.push((int)UserData);
            a.push((int)UserStack);
            a.push(2);
            a.push((int)UserCode64);
            a.push((int)UserCode);
            a.iretq();
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.GP));
        Assert.That(Frame(m, 0), Is.EqualTo(KernelCode64));
    }

    [Test]
    public void Iretq_SamePrivilege_PopsSsRsp()
    {
        using var m = Long();
        Place(m, UserCode, a => a.nop());
        var exit = SystemGuest.Run(m, a =>
        {
            a.push(0);                              // null SS is allowed returning to 64-bit CPL 0
            a.push(0x7F000);
            a.push(2);
            a.push((int)KernelCode64);
            a.push((int)UserCode);
            a.iretq();
        }, maxInstructions: 7);
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.InstructionLimit));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(0x7F000));
        Assert.That(m.Cpu.GetSegment(SegReg.Ss).Selector, Is.EqualTo(0));
    }

    [Test]
    public void Iretq_NullSsToRing3_Gp0()
    {
        using var m = Long();
        var exit = SystemGuest.Run(m, a =>
        {
            a.push(0);
            a.push((int)UserStack);
            a.push(2);
            a.push((int)UserCode64);
            a.push((int)UserCode);
            a.iretq();
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.GP));
        Assert.That(Frame(m, 0), Is.EqualTo(0));
    }

    [Test]
    public void Iretq_WithNt_Gp0()
    {
        using var m = Long();
        m.Cpu.SetRFlags(RFlags.Fixed1 | RFlags.Nt);
        var exit = SystemGuest.Run(m, a => a.iretq());
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.GP));
    }

    [Test]
    public void IntThenIretq_ResumesAfterTheInt()
    {
        using var m = Long();
        Place(m, HandlerBase + 0x40 * 16, a =>
        {
            a.mov(r13d, 1);
            a.iretq();
        });
        var exit = SystemGuest.Run(m, a =>
        {
            a.@int(0x40);
            a.mov(r14d, 2);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(VectorOf(m, exit), Is.EqualTo(-1));
        Assert.That(m.Cpu.GetGpr(Gpr.R13), Is.EqualTo(1));
        Assert.That(m.Cpu.GetGpr(Gpr.R14), Is.EqualTo(2));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(GuestMachine.StackTop));
    }

    [Test]
    public void Iretd_ToVirtual8086Mode_StopsWithAClearReport()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        var exit = SystemGuest.Run(m, a =>
        {
            for (int k = 0; k < 4; k++) a.push(0); // GS, FS, DS, ES
            a.push(0);
            a.push(0x7000);
            a.push(0x20002);        // VM
            a.push(0);
            a.push(0);
            a.iretd();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Unimplemented));
        Assert.That(exit.Message, Does.Contain("virtual-8086"));
        Assert.That(m.Cpu.IsV86Mode, Is.False);
    }
}
