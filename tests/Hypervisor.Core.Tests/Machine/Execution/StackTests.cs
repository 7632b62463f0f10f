using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

public class StackTests
{
    private const ulong Top = GuestMachine.StackTop;

    // ---- PUSH / POP forms ----

    [Test]
    public void PushImm8_Long64_SignExtendsToOperandSize()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            a.push(-2);             // pushq imm8
            a.db(0x66, 0x6A, 0xFD); // pushw imm8 (-3)
        });
        Assert.That(m.Memory.ReadU64(Top - 8), Is.EqualTo(0xFFFF_FFFF_FFFF_FFFEUL));
        Assert.That(m.Memory.ReadU32(Top - 10) & 0xFFFF, Is.EqualTo(0xFFFD));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(Top - 10));
    }

    [Test]
    public void PushPopFs_Long64_MoveEightBytesAndLoadSelector()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.WriteU64(Top - 8, ulong.MaxValue); // the push must overwrite all eight bytes
        m.RunToHlt(a =>
        {
            a.push(fs);
            a.mov(rbx, rsp);
            a.push(0x10);
            a.pop(gs);
            a.db(0x66, 0x0F, 0xA0); // pushw fs
        });
        Assert.That(m.Memory.ReadU64(Top - 8), Is.EqualTo(0x10UL), "selector zero-extended");
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(Top - 8));
        Assert.That(m.Cpu.GetSegment(SegReg.Gs).Selector, Is.EqualTo(0x10));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(Top - 10));
    }

    [Test]
    public void PushRspAndPopRsp_UseTheRightValues()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            a.push(rsp);                     // pushes the old RSP
            a.pop(rbx);
            a.mov(rax, 0x12345);
            a.push(rax);
            a.pop(rsp);                      // RSP = the popped value
        });
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(Top));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(0x12345));
    }

    [Test]
    public void PopToMemoryThroughRsp_AddressesWithIncrementedRsp()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            a.push(0x11);
            a.push(0x22);
            a.pop(__qword_ptr[rsp]);         // pops 0x22, then stores it at the new RSP (over 0x11)
            a.push(__qword_ptr[rsp]);        // PUSH [RSP] reads with the old RSP
        });
        Assert.That(m.Memory.ReadU64(Top - 8), Is.EqualTo(0x22));
        Assert.That(m.Memory.ReadU64(Top - 16), Is.EqualTo(0x22));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(Top - 16));
    }

    [Test]
    public void PopToUnmappedMemory_Long64_FaultsAndKeepsRsp()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        FaultStubs.Install(m);
        FaultStubs.SetPagePresent(m, 0x500000, false);
        var (exit, _) = FaultStubs.Run(m, a =>
        {
            a.push(0x11);
            a.mov(eax, 0x500000);
            a.pop(__qword_ptr[rax]);
            a.hlt();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.PF));
        Assert.That(FaultStubs.Frame(m, 4), Is.EqualTo(Top - 8), "RSP as before the POP");
    }

    [Test]
    public void PushPopO16_Protected32_MoveTwoBytes()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        m.RunToHlt(a =>
        {
            a.mov(eax, 0xAAAA_1234);
            a.push(ax);
            a.mov(ebx, 0xBBBB_0000);
            a.pop(bx);
        });
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0xBBBB_1234));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(Top));
    }

    [Test]
    public void PopSs_Protected32_LoadsSsAndAdvancesEsp()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        m.RunToHlt(a =>
        {
            a.push(0x10);
            a.pop(ss);
        });
        Assert.That(m.Cpu.GetSegment(SegReg.Ss).Selector, Is.EqualTo(0x10));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(Top));
    }

    // ---- PUSHA / POPA ----

    [TestCase(GuestMode.Protected32, 4)]
    [TestCase(GuestMode.Real, 2)]
    public void PushaPopa_SaveAllAndRestoreAllButSp(GuestMode mode, int w)
    {
        using var m = new GuestMachine(mode);
        ulong top = mode == GuestMode.Real ? 0x7000UL : Top;
        ulong[] values = { 0x1111_0001, 0x2222_0002, 0x3333_0003, 0x4444_0004, 0, 0x6666_0006, 0x7777_0007, 0x8888_0008 };
        for (int r = 0; r < 8; r++)
            if (r != Gpr.Rsp) m.Cpu.SetGpr(r, values[r]);
        ulong mask = w == 4 ? 0xFFFF_FFFFUL : 0xFFFF;
        m.RunToHlt(a =>
        {
            if (w == 4) a.pushad(); else a.pusha();
            a.mov(eax, 0); a.mov(ecx, 0); a.mov(edx, 0); a.mov(ebx, 0); a.mov(ebp, 0); a.mov(esi, 0); a.mov(edi, 0);
            a.mov(ebp, esp);
            // Garbage in the SP slot: POPA skips it.
            if (w == 4) a.mov(__dword_ptr[ebp + 3 * w], 0x5A5A5A5A);
            else a.mov(__word_ptr[ebp + 3 * w], 0x5A5A);
            if (w == 4) a.popad(); else a.popa();
        });
        // Layout from the top: AX CX DX BX SP BP SI DI.
        for (int k = 0; k < 8; k++)
        {
            ulong slot = top - (ulong)((k + 1) * w);
            ulong got = m.Memory.ReadU32(slot) & mask;
            if (k == Gpr.Rsp) continue; // overwritten by the test
            Assert.That(got, Is.EqualTo(values[k] & mask), $"slot of register {k}");
        }
        for (int r = 0; r < 8; r++)
        {
            if (r == Gpr.Rsp) continue;
            Assert.That(m.Cpu.GetGpr(r) & mask, Is.EqualTo(values[r] & mask), $"register {r}");
        }
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(top));
    }

    [Test]
    public void Pusha_PushesSpValueBeforeTheFirstPush()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        m.RunToHlt(a => a.pushad());
        Assert.That(m.Memory.ReadU32(Top - 20), Is.EqualTo((uint)Top));
    }

    [Test]
    public void Pusha_Long64_IsInvalid()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        FaultStubs.Install(m);
        var (exit, _) = FaultStubs.Run(m, a => a.db(0x60));
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.UD));
    }

    // ---- ENTER / LEAVE ----

    [TestCase(0, 0x20)]
    [TestCase(1, 0x10)]
    [TestCase(3, 0x20)]
    [TestCase(33, 0)] // nesting level is taken mod 32
    public void Enter_Long64_BuildsDisplayAndFrame(int level, int alloc)
    {
        using var m = new GuestMachine(GuestMode.Long64);
        const ulong bp = 0x7F000;
        m.Memory.WriteU64(bp - 8, 0x1111);
        m.Memory.WriteU64(bp - 16, 0x2222);
        m.Cpu.SetGpr(Gpr.Rbp, bp);
        m.RunToHlt(a => a.enter((ushort)alloc, (byte)level));
        int lv = level & 31;
        Assert.That(m.Memory.ReadU64(Top - 8), Is.EqualTo(bp), "old RBP");
        if (lv >= 2) Assert.That(m.Memory.ReadU64(Top - 16), Is.EqualTo(0x1111));
        if (lv >= 3) Assert.That(m.Memory.ReadU64(Top - 24), Is.EqualTo(0x2222));
        if (lv >= 1) Assert.That(m.Memory.ReadU64(Top - 8 - 8 * (ulong)lv), Is.EqualTo(Top - 8), "frame pointer pushed last");
        Assert.That(m.Cpu.GetGpr(Gpr.Rbp), Is.EqualTo(Top - 8));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(Top - 8 - 8 * (ulong)lv - (ulong)alloc));
    }

    [Test]
    public void EnterLevel2_Real_UsesWordsAndSp()
    {
        using var m = new GuestMachine(GuestMode.Real);
        m.Memory.Write(0x5FFE, new byte[] { 0xAA, 0xAA });
        m.Cpu.SetGpr(Gpr.Rbp, 0x6000);
        m.RunToHlt(a => a.enter(4, 2));
        Assert.That(m.Memory.ReadU32(0x6FFE) & 0xFFFF, Is.EqualTo(0x6000));
        Assert.That(m.Memory.ReadU32(0x6FFC) & 0xFFFF, Is.EqualTo(0xAAAA));
        Assert.That(m.Memory.ReadU32(0x6FFA) & 0xFFFF, Is.EqualTo(0x6FFE));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbp), Is.EqualTo(0x6FFE));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(0x6FF6));
    }

    [TestCase(GuestMode.Real)]
    [TestCase(GuestMode.Protected32)]
    [TestCase(GuestMode.Long64)]
    public void EnterThenLeave_RestoresFrame(GuestMode mode)
    {
        using var m = new GuestMachine(mode);
        ulong top = mode == GuestMode.Real ? 0x7000UL : Top;
        m.Cpu.SetGpr(Gpr.Rbp, 0x6543);
        m.RunToHlt(a =>
        {
            a.enter(0x40, 1);
            a.leave();
        });
        Assert.That(m.Cpu.GetGpr(Gpr.Rbp), Is.EqualTo(0x6543));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(top));
    }

    [Test]
    public void EnterWithUnmappedNewTop_Long64_FaultsAndChangesNoRegister()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        FaultStubs.Install(m);
        FaultStubs.SetPagePresent(m, 0x7E000, false); // the page of the new stack top only
        m.Cpu.SetGpr(Gpr.Rbp, 0x1234);
        var (exit, _) = FaultStubs.Run(m, a => { a.enter(0x1000, 0); a.hlt(); });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.PF));
        Assert.That(m.Cpu.Cr2, Is.EqualTo(Top - 8 - 0x1000));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbp), Is.EqualTo(0x1234));
        Assert.That(FaultStubs.Frame(m, 4), Is.EqualTo(Top));
    }

    // ---- PUSHF / POPF ----

    [Test]
    public void Pushfq_ImageHasNeitherVmNorRf()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Cpu.SetRFlags(RFlags.Fixed1 | RFlags.Rf | RFlags.Cf | RFlags.Ac);
        m.RunToHlt(a => a.pushfq());
        Assert.That(m.Memory.ReadU64(Top - 8), Is.EqualTo(RFlags.Fixed1 | RFlags.Cf | RFlags.Ac));
    }

    [Test]
    public void Pushf_MaterializesLazyArithmeticFlags()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            a.mov(eax, 0x7FFF_FFFF);
            a.add(eax, 1);   // OF SF AF PF set, ZF CF clear
            a.db(0x66, 0x9C); // pushf (16-bit)
        });
        Assert.That(m.Memory.ReadU32(Top - 2) & 0xFFFF, Is.EqualTo(RFlags.Fixed1 | RFlags.Of | RFlags.Sf | RFlags.Af | RFlags.Pf));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(Top - 2));
    }

    private const ulong Iopl3 = RFlags.Iopl;

    /// <summary>POPFQ at each privilege (SDM "POPF" Operation): which bits the image may change.</summary>
    [TestCase(0, 0UL, RFlags.If | Iopl3 | RFlags.Ac | RFlags.Id | RFlags.Cf | RFlags.Nt, RFlags.If | Iopl3 | RFlags.Ac | RFlags.Id | RFlags.Cf | RFlags.Nt, TestName = "Popfq_Cpl0_ChangesIfIoplAcId")]
    [TestCase(3, 0UL, RFlags.If | Iopl3 | RFlags.Ac | RFlags.Cf, RFlags.Ac | RFlags.Cf, TestName = "Popfq_Cpl3AboveIopl_KeepsIfAndIopl")]
    [TestCase(3, RFlags.If, Iopl3, RFlags.If, TestName = "Popfq_Cpl3AboveIopl_CannotClearIf")]
    [TestCase(3, Iopl3, RFlags.If, RFlags.If | Iopl3, TestName = "Popfq_Cpl3AtIopl3_ChangesIfButNotIopl")]
    [TestCase(0, RFlags.Vif | RFlags.Vip, RFlags.Vm | RFlags.Rf, RFlags.Vif | RFlags.Vip, TestName = "Popfq_NeverLoadsVmRfVifVip")]
    public void Popfq_PrivilegeRules(int cpl, ulong initial, ulong image, ulong expected)
    {
        using var m = new GuestMachine(GuestMode.Long64);
        FaultStubs.Install(m);
        m.Cpu.SetRFlags(RFlags.Fixed1 | initial);
        if (cpl == 3)
        {
            m.Cpu.SetSegment(SegReg.Ss, new Segment { Selector = 0x3B, Limit = 0xFFFFFFFF, Attributes = 0xC0F3 });
            m.Cpu.SetSegment(SegReg.Cs, new Segment { Selector = 0x33, Limit = 0xFFFFFFFF, Attributes = 0xA0FB });
        }
        var a = m.NewAssembler();
        a.mov(rax, image | RFlags.Fixed1);
        a.push(rax);
        a.popfq();
        a.pushfq();
        a.pop(rbx);
        a.hlt(); // at CPL 3 this is #GP: the stub halts with RBX intact
        FaultStubs.Load(m, a);
        var exit = m.Run();
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        ulong relevant = RFlags.Cf | RFlags.If | Iopl3 | RFlags.Nt | RFlags.Ac | RFlags.Id | RFlags.Vm | RFlags.Rf | RFlags.Vif | RFlags.Vip;
        // RBX holds the PUSHFQ image (never VM or RF); VIF/VIP are checked on the live flags.
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx) & relevant & ~(RFlags.Vif | RFlags.Vip), Is.EqualTo(expected & ~(RFlags.Vif | RFlags.Vip)));
        if ((expected & (RFlags.Vif | RFlags.Vip)) != 0)
            Assert.That(m.Cpu.GetGpr(Gpr.Rbx) & (RFlags.Vif | RFlags.Vip), Is.EqualTo(expected & (RFlags.Vif | RFlags.Vip)));
    }

    [Test]
    public void PopfO16_Long64_LoadsOnlyLowSixteenBits()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Cpu.SetRFlags(RFlags.Fixed1 | RFlags.Ac);
        m.RunToHlt(a =>
        {
            a.db(0x66, 0x6A, 0x01); // pushw 1 (CF)
            a.db(0x66, 0x9D);       // popf (16-bit)
        });
        Assert.That(m.Flags, Is.EqualTo(RFlags.Fixed1 | RFlags.Cf | RFlags.Ac), "AC (bit 18) survives a 16-bit POPF");
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(Top));
    }

    [TestCase(2)]
    [TestCase(4)]
    public void Popf_Real_ChangesIoplAndIf(int size)
    {
        using var m = new GuestMachine(GuestMode.Real);
        ulong image = RFlags.Fixed1 | Iopl3 | RFlags.If | RFlags.Nt | RFlags.Df | (size == 4 ? RFlags.Ac | RFlags.Rf : 0);
        m.RunToHlt(a =>
        {
            if (size == 4) { a.mov(eax, (uint)image); a.push(eax); a.popfd(); }
            else { a.push((short)image); a.popf(); }
        });
        Assert.That(m.Flags, Is.EqualTo(image & ~RFlags.Rf), "RF is cleared, everything else loaded");
    }

    // ---- Virtual-8086 mode ----

    /// <summary>Runs 16-bit code in virtual-8086 mode (CS = 0x1000, SS = 0, SP = 0x7000). The
    /// code ends with HLT, which raises #GP at CPL 3; virtual-8086 delivery is not supported, so
    /// the run stops with an internal error at the faulting instruction.</summary>
    private static CpuExit RunV86(GuestMachine m, ulong iopl, ulong extraFlags, Action<Assembler> build)
    {
        m.Cpu.SetRFlags(RFlags.Fixed1 | RFlags.Vm | (iopl << 12) | extraFlags);
        var a = new Assembler(16);
        build(a);
        a.hlt();
        FaultStubs.Load(m, a);
        m.Cpu.SetSegment(SegReg.Cs, new Segment { Selector = 0x1000, Base = 0x10000, Limit = 0xFFFF, Attributes = 0xF3 });
        foreach (int s in new[] { SegReg.Ss, SegReg.Ds, SegReg.Es })
            m.Cpu.SetSegment(s, new Segment { Selector = 0, Base = 0, Limit = 0xFFFF, Attributes = 0xF3 });
        m.Cpu.Rip = 0;
        m.Cpu.SetGpr(Gpr.Rsp, 0x7000);
        return m.Run();
    }

    [Test]
    public void Pushf_V86WithIoplBelow3_RaisesGp()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        var exit = RunV86(m, 0, 0, a => a.pushf());
        Assert.That(exit.Message, Does.Contain("#GP").And.Contain("virtual-8086"));
        Assert.That(m.Cpu.Rip, Is.Zero, "stopped at the PUSHF");
    }

    [Test]
    public void Pushf_V86WithVme_ShowsVifAsIfAndIopl3()
    {
        // CR4.VME is writable only on a model whose CPUID lists VME (leaf 1 EDX[1]).
        using var m = new GuestMachine(GuestMode.Protected32, Support.Data.ModelMachine.DefaultWith(1, 'd', 1, present: true));
        Assert.That(m.Cpu.WriteCr4(Cr4.Vme), Is.True);
        var exit = RunV86(m, 0, RFlags.Vif, a => a.pushf());
        Assert.That(exit.Message, Does.Contain("#GP").And.Contain("virtual-8086"));
        Assert.That(m.Cpu.Rip, Is.EqualTo(1), "PUSHF done, stopped at the HLT");
        Assert.That(m.Memory.ReadU32(0x6FFE) & 0xFFFF, Is.EqualTo(RFlags.Fixed1 | RFlags.If | Iopl3));
    }

    [Test]
    public void Popf_V86WithIopl3_ChangesIfButNotIopl()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        RunV86(m, 3, 0, a => { a.push((short)(RFlags.Fixed1 | RFlags.If | RFlags.Cf)); a.popf(); });
        Assert.That(m.Flags & (RFlags.If | Iopl3 | RFlags.Cf | RFlags.Vm), Is.EqualTo(RFlags.If | Iopl3 | RFlags.Cf | RFlags.Vm));
    }

    [Test]
    public void Popfd_V86WithIoplBelow3_RaisesGp()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        var exit = RunV86(m, 0, 0, a => { a.push((short)0); a.push((short)0); a.popfd(); });
        Assert.That(exit.Message, Does.Contain("#GP").And.Contain("virtual-8086"));
        Assert.That(m.Cpu.Rip, Is.EqualTo(4), "stopped at the POPFD");
    }
}
