using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Cpu;

/// <summary>
/// A boot sector's journey (SDM vol. 3 §10.9, §10.8.5): real mode → protected mode (LGDT, CR0.PE,
/// far jump) → IA-32e compatibility mode (PAE, CR3, EFER.LME, CR0.PG) → 64-bit mode (far jump to
/// an L=1 segment) → back to compatibility mode → protected mode (CR0.PG off) → 16-bit protected →
/// real mode. Each stage writes a letter to port 0xE9.
/// </summary>
public class ModeTransitionTests
{
    private const ulong GdtPtr = 0x600, FarPtr = 0x610;
    private const ulong Pm32 = 0x8000, Long64 = 0x9000, Compat = 0xA000, Pm16 = 0xB000, BackToReal = 0xC000;
    private const ulong Pml4 = 0x100000;

    private static void Place(GuestMachine m, int bits, ulong address, Action<Assembler> build)
    {
        var a = new Assembler(bits);
        build(a);
        var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), address);
        m.Memory.Write(address, stream.ToArray());
    }

    private static void IdentityMapFirstGigabyte(GuestMachine m)
    {
        m.Memory.WriteU64(Pml4, (Pml4 + 0x1000) | 3);
        m.Memory.WriteU64(Pml4 + 0x1000, (Pml4 + 0x2000) | 3);
        var pd = new byte[4096];
        for (int e = 0; e < 512; e++)
            BitConverter.GetBytes(((ulong)e << 21) | 0x83).CopyTo(pd, e * 8);
        m.Memory.Write(Pml4 + 0x2000, pd);
    }

    [Test]
    public void RealToLongModeAndBack()
    {
        using var m = new GuestMachine(GuestMode.Real);
        m.Cpu.Gdtr = default; // the guest loads it
        IdentityMapFirstGigabyte(m);
        m.Memory.Write(GdtPtr, BitConverter.GetBytes((ushort)(9 * 8 - 1)));
        m.Memory.WriteU32(GdtPtr + 2, (uint)GuestMachine.GdtBase);
        m.Memory.WriteU32(FarPtr, (uint)Compat);
        m.Memory.Write(FarPtr + 4, BitConverter.GetBytes((ushort)0x18));

        Place(m, 32, Pm32, a =>
        {
            a.mov(ax, 0x10);
            a.mov(ds, ax);
            a.mov(ss, ax);
            a.mov(esp, 0x80000);
            a.mov(al, (byte)'P');
            a.@out(0xE9, al);
            a.mov(eax, cr4);
            a.or(eax, (int)Cr4.Pae);
            a.mov(cr4, eax);
            a.mov(eax, (uint)Pml4);
            a.mov(cr3, eax);
            a.mov(ecx, MsrIndex.Efer);
            a.rdmsr();
            a.or(eax, (int)Efer.Lme);
            a.wrmsr();
            a.mov(eax, cr0);
            a.or(eax, unchecked((int)Cr0.Pg));
            a.mov(cr0, eax);             // IA-32e mode is active: compatibility mode
            a.mov(ecx, MsrIndex.Efer);
            a.rdmsr();
            a.mov(ebp, eax);             // EFER with LMA, seen from compatibility mode
            a.jmp(0x08, (uint)Long64);
        });
        Place(m, 64, Long64, a =>
        {
            a.mov(r15, 0x1234_5678_9ABC_DEF0);
            a.mov(al, (byte)'L');
            a.@out(0xE9, al);
            a.mov(rax, FarPtr);
            a.jmp(__fword_ptr[rax]);     // m16:32 → 0x18:Compat
        });
        Place(m, 32, Compat, a =>
        {
            a.mov(al, (byte)'C');
            a.@out(0xE9, al);
            a.mov(eax, cr0);
            a.and(eax, 0x7FFFFFFF);
            a.mov(cr0, eax);             // leaves IA-32e mode
            a.mov(ecx, MsrIndex.Efer);
            a.rdmsr();
            a.and(eax, ~(int)Efer.Lme);
            a.wrmsr();
            a.jmp(0x20, (uint)Pm16);
        });
        Place(m, 16, Pm16, a =>
        {
            a.mov(ax, 0x28);
            a.mov(ds, ax);
            a.mov(ss, ax);
            a.mov(eax, cr0);
            a.and(eax, ~1);
            a.mov(cr0, eax);             // real mode, with 16-bit segment caches
            a.jmp(0, (uint)BackToReal);
        });
        Place(m, 16, BackToReal, a =>
        {
            a.xor(ax, ax);
            a.mov(ds, ax);
            a.mov(ss, ax);
            a.mov(sp, 0x7000);
            a.mov(al, (byte)'R');
            a.@out(0xE9, al);
            a.hlt();
        });

        var exit = SystemGuest.Run(m, a =>
        {
            a.xor(ax, ax);
            a.mov(ds, ax);
            a.lgdt(__[(uint)GdtPtr]);
            a.mov(eax, cr0);
            a.or(eax, 1);
            a.mov(cr0, eax);
            a.jmp(0x18, (uint)Pm32);
        });

        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.That(m.Output.ToString(), Is.EqualTo("PLCR"));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbp) & (Efer.Lme | Efer.Lma), Is.EqualTo(Efer.Lme | Efer.Lma));
        Assert.That(m.Cpu.GetGpr(Gpr.R15), Is.EqualTo(0x1234_5678_9ABC_DEF0), "R15 written in 64-bit mode");
        Assert.That(m.Cpu.IsProtectedMode, Is.False);
        Assert.That(m.Cpu.IsLongMode, Is.False);
        Assert.That(m.Cpu.Efer & Efer.Lme, Is.Zero);
        Assert.That(m.Cpu.CodeBits, Is.EqualTo(16));
        Assert.That(exit.Address, Is.EqualTo(BackToReal + 13), "HLT after six instructions of real-mode code");
    }

    [Test]
    public void EnablingLongModeFrom64BitCodeSegment_Gp()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        IdentityMapFirstGigabyte(m);
        m.Cpu.WriteCr4(Cr4.Pae);
        m.Cpu.WriteCr3(Pml4);
        m.Cpu.WriteEfer(Efer.Lme);
        m.Cpu.SetSegment(SegReg.Cs, new Segment { Selector = 0x08, Limit = 0xFFFFFFFF, Attributes = 0xA09B });
        Assert.That(m.Cpu.WriteCr0(m.Cpu.Cr0 | Cr0.Pg), Is.False, "CS.L=1 while activating IA-32e mode");
        m.Cpu.SetSegment(SegReg.Cs, new Segment { Selector = 0x18, Limit = 0xFFFFFFFF, Attributes = 0xC09B });
        Assert.That(m.Cpu.WriteCr0(m.Cpu.Cr0 | Cr0.Pg), Is.True);
        Assert.That(m.Cpu.IsLongMode, Is.True);
        Assert.That(m.Cpu.WriteCr4(0), Is.False, "PAE cannot be cleared in IA-32e mode");
        Assert.That(m.Cpu.WriteEfer(0), Is.False, "LME cannot change while paging is on");
    }

    [Test]
    public void EnablingLongModeWithoutPae_Gp()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        m.Cpu.WriteEfer(Efer.Lme);
        Assert.That(m.Cpu.WriteCr0(m.Cpu.Cr0 | Cr0.Pg), Is.False);
        Assert.That(m.Cpu.IsPaging, Is.False);
    }
}
