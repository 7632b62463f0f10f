using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86;
using Hypervisor.Vmx.Hardware;
using Hypervisor.Vmx.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmx.Tests;

/// <summary>APX's R16..R31 under VMX (KVM-FACTS §5): they live in the vCPU cache and are switched
/// on entry and exit only when the host has APX and guest XCR0[19] is set.</summary>
public class EgprTests
{
    // REX2 forms Iced 1.22 cannot encode: D5, payload M0 R4 X4 B4 W R3 X3 B3, opcode, ModRM.
    private static readonly byte[] MovRaxR16 = [0xD5, 0x18, 0x8B, 0xC0]; // mov rax, r16 (B4 = 1, W = 1)
    private static readonly byte[] MovR16Rbx = [0xD5, 0x18, 0x89, 0xD8]; // mov r16, rbx

    private static Action<Assembler> EnableXsave => a => { a.mov(rax, cr4); a.bts(rax, 18); a.mov(cr4, rax); };

    private static Action<Assembler> Xsetbv(uint xcr0) => a => { a.xor(ecx, ecx); a.mov(eax, xcr0); a.xor(edx, edx); a.xsetbv(); };

    private const uint Apx = 0x80001; // x87 | APX

    [Test]
    public void HostValue_LoadedOnEntry_GuestValueSurvivesExits_ProcessorZeroedAfterExit()
    {
        using var g = new VmxGuest();
        var regs = g.Vcpu.GetRegs();
        Assert.That(regs.Egprs, Is.Not.Null, "the host reads and writes R16..R31 through KVM_GET/SET_REGS");
        regs.Egprs![0] = 0xABCD;
        g.LoadPieces(EnableXsave, Xsetbv(Apx),
            (Action<Assembler>)(a => { a.xor(ecx, ecx); a.xgetbv(); a.mov(r10, rax); }),
            MovRaxR16, (Action<Assembler>)(a => { a.mov(r8, rax); a.mov(ebx, 0x5555); }),
            MovR16Rbx, (Action<Assembler>)(a => { a.xor(eax, eax); a.cpuid(); }),
            MovRaxR16, (Action<Assembler>)(a => a.hlt()));
        regs = g.Vcpu.GetRegs() with { Egprs = regs.Egprs };
        g.Vcpu.SetRegs(regs);
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.Multiple(() =>
        {
            Assert.That(g.Vcpu.ReadGpr(10), Is.EqualTo((ulong)Apx), "guest XGETBV reads the guest's XCR0 (loaded on entry)");
            Assert.That(g.Vcpu.ReadGpr(8), Is.EqualTo(0xABCDUL), "the host's R16 reached the guest");
            Assert.That(g.Vcpu.ReadGpr(0), Is.EqualTo(0x5555UL), "R16 survived the CPUID exit");
            Assert.That(g.Vcpu.GetRegs().Egprs![0], Is.EqualTo(0x5555UL), "and is in the vCPU cache");
            Assert.That(g.Vcpu.Cpu.GetExtendedGpr(16), Is.Zero, "nothing of the guest's stays in the processor");
            Assert.That(g.Vcpu.Cpu.Xcr0, Is.EqualTo(1UL), "the host's XCR0 is back after the exit");
            Assert.That(g.Exits(VmxExitReason.Cpuid), Is.EqualTo(1));
        });
    }

    [Test]
    public void Xcr0ApxOffThenOn_ValuesPreserved()
    {
        using var g = new VmxGuest();
        g.LoadPieces(EnableXsave, Xsetbv(Apx), (Action<Assembler>)(a => a.mov(ebx, 0x7777)), MovR16Rbx,
            Xsetbv(1), (Action<Assembler>)(a => { a.xor(eax, eax); a.cpuid(); }),
            Xsetbv(Apx), MovRaxR16, (Action<Assembler>)(a => a.hlt()));
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(g.Vcpu.ReadGpr(0), Is.EqualTo(0x7777UL));
        Assert.That(g.Exits(VmxExitReason.Xsetbv), Is.EqualTo(3));
    }

    [Test]
    public void Xcr0ApxOff_NotSwitched_CacheKeepsValueWhileGuestRuns()
    {
        using var g = new VmxGuest();
        g.LoadPieces(EnableXsave, Xsetbv(Apx), (Action<Assembler>)(a => a.mov(ebx, 0x9999)), MovR16Rbx,
            Xsetbv(1), (Action<Assembler>)(a => a.hlt()));
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(VmxOps.SwitchesEgprs(g.Vcpu), Is.False);
        Assert.That(g.Vcpu.Regs.Read(VcpuReg.R16), Is.EqualTo(0x9999UL));
        Assert.That(g.Vmx.EgprsLoaded, Is.False, "the last entry did not load them");
    }

    [Test]
    public void ModelWithoutApx_RejectsXcr0Bit19()
    {
        using var g = new VmxGuest(HostCpuModel.GraniteRapids);
        Assert.That(g.Vcpu.HasApx, Is.False);
        Assert.That(() => g.Vcpu.SetXcr0(Apx), Throws.TypeOf<KvmException>());
        g.LoadPieces(EnableXsave, Xsetbv(Apx), (Action<Assembler>)(a => a.hlt()));
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Shutdown), "#GP from XSETBV, with no IDT");
        Assert.That(g.Vcpu.Xcr0, Is.EqualTo(1UL));
        Assert.That(g.Vcpu.GetRegs().Egprs, Is.Null, "no R16..R31 in KVM_GET_REGS without APX");
    }
}
