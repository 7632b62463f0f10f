using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86;
using Hypervisor.Svm.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Svm.Tests;

/// <summary>Every fault condition of the common MOV CR3 / INVPCID emulation (KVM-FACTS §3), with the
/// instructions intercepted so the common code, not the hardware, decides. The guest's handlers
/// record the vector in R15 and halt.</summary>
public class Cr3InvpcidFaultTests
{
    private const ulong Idt = 0x3000, Handlers = 0x4000, Desc = SvmGuest.DataBase;

    private static SvmGuest Guest(Func<IReadOnlyList<CpuidEntry>, IReadOnlyList<CpuidEntry>>? editCpuid = null)
    {
        var g = new SvmGuest(vmOptions: new VmOptions { InterceptCr3AndInvpcid = true }, editCpuid: editCpuid);
        // Handler for vector v at Handlers + v*16: mov r15d, v; hlt.
        foreach (int v in new[] { Vector.UD, Vector.GP, Vector.PF })
        {
            ulong h = Handlers + (ulong)v * 16;
            g.Vm.Memory.Write(h, new byte[] { 0x41, 0xBF, (byte)v, 0, 0, 0, 0xF4 });
            ulong lo = (h & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | (((h >> 16) & 0xFFFF) << 48);
            g.Vm.Memory.WriteU64(Idt + (ulong)v * 16, lo);
            g.Vm.Memory.WriteU64(Idt + (ulong)v * 16 + 8, h >> 32);
        }
        var s = g.Vcpu.GetSregs();
        s.Idt = new DescriptorTable { Base = Idt, Limit = 0xFFF };
        g.Vcpu.SetSregs(s);
        return g;
    }

    /// <summary>Runs to HLT; returns the vector a handler recorded, or -1 when no handler ran.</summary>
    private static int Vector_(SvmGuest g, Action<Assembler> code)
    {
        g.Load(a => { a.mov(r15d, -1); code(a); a.hlt(); });
        var exit = g.Run();
        Assert.That(exit.Reason, Is.EqualTo(KvmExitReason.Hlt), exit.ToString());
        return (int)(int)g.Vcpu.ReadGpr(15);
    }

    private static void Invpcid(Assembler a, int type, ulong pcidQword, ulong address, ulong descriptor = Desc)
    {
        a.mov(rax, pcidQword);
        a.mov(__qword_ptr[descriptor], rax);
        a.mov(rax, address);
        a.mov(__qword_ptr[descriptor + 8], rax);
        a.mov(ecx, type);
        a.mov(rax, descriptor);
        a.invpcid(rcx, __[rax]);
    }

    [Test]
    public void MovCr3_ReservedBitAboveMaxPhysAddr_Gp()
    {
        using var g = Guest();
        Assert.That(Vector_(g, a => { a.mov(rax, cr3); a.bts(rax, 52); a.mov(cr3, rax); }), Is.EqualTo(Vector.GP));
    }

    [Test]
    public void MovCr3_Valid_NoFault()
    {
        using var g = Guest();
        Assert.That(Vector_(g, a => { a.mov(rax, cr3); a.mov(cr3, rax); }), Is.EqualTo(-1));
    }

    [Test]
    public void Invpcid_GuestCapsWithoutInvpcid_Ud()
    {
        using var g = Guest(c => c.Select(e => e.Function == 7 && e.Index == 0 ? e with { Ebx = e.Ebx & ~(1u << 10) } : e).ToList());
        Assert.That(Vector_(g, a => Invpcid(a, 2, 0, 0)), Is.EqualTo(Vector.UD));
    }

    [Test]
    public void Invpcid_DescriptorPcidBits63To12Set_Gp()
    {
        using var g = Guest();
        Assert.That(Vector_(g, a => Invpcid(a, 2, 0x1000, 0)), Is.EqualTo(Vector.GP));
    }

    [Test]
    public void Invpcid_Type0NonCanonicalAddress_Gp()
    {
        using var g = Guest();
        Assert.That(Vector_(g, a => Invpcid(a, 0, 0, 0x8000_0000_0000_0000)), Is.EqualTo(Vector.GP));
    }

    [TestCase(0)]
    [TestCase(1)]
    public void Invpcid_PcideOffAndPcidNonZero_Gp(int type)
    {
        using var g = Guest();
        Assert.That(Vector_(g, a => Invpcid(a, type, 5, 0x1000)), Is.EqualTo(Vector.GP));
    }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void Invpcid_ValidTypes_NoFault(int type)
    {
        using var g = Guest();
        Assert.That(Vector_(g, a => Invpcid(a, type, 0, 0x1000)), Is.EqualTo(-1));
    }

    [Test]
    public void Invpcid_Type4_Gp()
    {
        using var g = Guest();
        Assert.That(Vector_(g, a => Invpcid(a, 4, 0, 0x1000)), Is.EqualTo(Vector.GP));
    }

    [Test]
    public void Invpcid_DescriptorOnUnmappedPage_PfWithItsAddress()
    {
        // The harness maps the first 16 MiB; a descriptor at 1 GiB faults while being read.
        using var g = Guest();
        g.Load(a => { a.mov(r15d, -1); a.mov(ecx, 2); a.mov(eax, 0x4000_0000); a.invpcid(rcx, __[rax]); a.hlt(); });
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(((int)g.Vcpu.ReadGpr(15), g.Vcpu.Cr2), Is.EqualTo((Vector.PF, 0x4000_0000UL)));
    }

    [Test]
    public void SetCr3_PaePagingWithReservedPdpteBits_Refused()
    {
        // 32-bit PAE paging: the four PDPTEs are loaded and checked when CR3 is written.
        using var g = new SvmGuest();
        const ulong pdpt = 0x6000, pd = 0x7000;
        var mem = g.Vm.Memory;
        mem.WriteU64(pd, 0x83);
        mem.WriteU64(pdpt, pd | 1);
        var s = g.Vcpu.GetSregs();
        s.Efer = Efer.Nxe;
        s.Cr4 = Cr4.Pae;
        s.Cr3 = pdpt;
        s.Cs = new Segment { Selector = 0x18, Limit = 0xFFFFFFFF, Attributes = 0xC09B };
        g.Vcpu.SetSregs(s);
        Assert.That(ControlRegisters.SetCr3(g.Vcpu, pdpt), Is.True, "a valid PDPT");
        mem.WriteU64(pdpt + 8, 0x2000 | 1 | (1UL << 5)); // present with reserved bit 5
        Assert.That(ControlRegisters.SetCr3(g.Vcpu, pdpt + 0), Is.False);
    }
}
