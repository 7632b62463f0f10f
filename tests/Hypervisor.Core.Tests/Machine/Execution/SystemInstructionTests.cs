using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Hypervisor.Core.Tests.Support.SystemGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

/// <summary>Descriptor-table, CR0-shorthand, control-register and cache instructions.</summary>
public class SystemInstructionTests
{
    private const ulong Data = GuestMachine.DataBase;
    private const ulong UserCode = 0x50000;

    private static GuestMachine Machine(GuestMode mode)
    {
        var m = new GuestMachine(mode);
        InstallIdt(m);
        if (mode == GuestMode.Long64) InstallTss64(m);
        return m;
    }

    /// <summary>Runs <paramref name="user"/> at CPL 3 (64-bit) and returns the exit.</summary>
    private static CpuExit RunUser(GuestMachine m, Action<Assembler> user)
    {
        Place(m, UserCode, user);
        return SystemGuest.Run(m, a =>
        {
            a.push((int)UserData);
            a.push((int)UserStack);
            a.push(2);
            a.push((int)UserCode64);
            a.push((int)UserCode);
            a.iretq();
        });
    }

    private static void AssertGp0(GuestMachine m, CpuExit exit)
    {
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.GP), exit.ToString());
        Assert.That(Frame(m, 0), Is.EqualTo(0));
    }

    [Test]
    public void LgdtSgdt_Long64_RoundTripTenBytes()
    {
        using var m = Machine(GuestMode.Long64);
        m.Memory.Write(Data, BitConverter.GetBytes((ushort)0x1234));
        m.Memory.WriteU64(Data + 2, 0xFFFF_8000_0000_1000);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, Data);
            a.lidt(__[rax]);
            a.sidt(__[rax + 16]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.Idtr.Limit, Is.EqualTo(0x1234));
        Assert.That(m.Cpu.Idtr.Base, Is.EqualTo(0xFFFF_8000_0000_1000));
        Assert.That(m.Memory.ReadU32(Data + 16) & 0xFFFF, Is.EqualTo(0x1234));
        Assert.That(m.Memory.ReadU64(Data + 18), Is.EqualTo(0xFFFF_8000_0000_1000));
    }

    [Test]
    public void Lgdt_NonCanonicalBase_Gp0()
    {
        using var m = Machine(GuestMode.Long64);
        m.Memory.WriteU64(Data + 2, 0x0000_8000_0000_0000);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, Data);
            a.lgdt(__[rax]);
        });
        AssertGp0(m, exit);
        Assert.That(m.Cpu.Gdtr.Base, Is.EqualTo(GuestMachine.GdtBase));
    }

    [Test]
    public void Lgdt_SixteenBitOperand_KeepsTwentyFourBitBase()
    {
        using var m = Machine(GuestMode.Real);
        m.Memory.Write(0x600, new byte[] { 0xFF, 0x00, 0x00, 0x10, 0x00, 0xAB });
        var exit = SystemGuest.Run(m, a =>
        {
            a.xor(ax, ax);
            a.mov(ds, ax);
            a.lgdt(__[0x600]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.Gdtr.Base, Is.EqualTo(0x1000));
        Assert.That(m.Cpu.Gdtr.Limit, Is.EqualTo(0xFF));
    }

    [Test]
    public void Lgdt_Cpl3_Gp0_SgdtAllowed()
    {
        using var m = Machine(GuestMode.Long64);
        var exit = RunUser(m, a =>
        {
            a.mov(rax, Data);
            a.sgdt(__[rax]);
            a.lgdt(__[rax]);
        });
        AssertGp0(m, exit);
        Assert.That(m.Memory.ReadU64(Data + 2), Is.EqualTo(GuestMachine.GdtBase), "SGDT ran at CPL 3");
    }

    [Test]
    public void LtrStr_LoadsTssAndMarksItBusy()
    {
        using var m = Machine(GuestMode.Long64);
        m.Cpu.SetSegment(SegReg.Tr, new Segment { Attributes = 0x8B });
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(ax, TssSelector);
            a.ltr(ax);
            a.mov(rbx, -1L);
            a.str(ebx);
            a.ltr(ax); // now busy: #GP(selector)
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.GP));
        Assert.That(Frame(m, 0), Is.EqualTo(TssSelector));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(TssSelector), "STR r32 zero-extends");
        var tr = m.Cpu.GetSegment(SegReg.Tr);
        Assert.That(tr.Base, Is.EqualTo(TssBase));
        Assert.That(tr.Type, Is.EqualTo(0xB));
        Assert.That((m.Memory.ReadU64(GuestMachine.GdtBase + TssSelector) >> 40) & 0xF, Is.EqualTo(0xB));
    }

    [TestCase((ushort)0x10, Vector.GP, 0x10)]   // a data segment is no TSS
    [TestCase((ushort)0x0, Vector.GP, 0x0)]     // null
    [TestCase((ushort)0x4C, Vector.GP, 0x4C)]   // TI=1
    public void Ltr_InvalidSelector_Faults(ushort selector, int vector, int error)
    {
        using var m = Machine(GuestMode.Long64);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(ax, selector);
            a.ltr(ax);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(vector));
        Assert.That(Frame(m, 0), Is.EqualTo(error));
    }

    [Test]
    public void LldtSldt_LoadsLdtAndNullMakesItUnusable()
    {
        using var m = Machine(GuestMode.Long64);
        SetGdtEntry(m, 11, Descriptor(0x6000, 0xFF, 0x82, 0));
        SetGdtEntry(m, 12, 0);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(ax, 0x58);
            a.lldt(ax);
            a.sldt(ebx);
            a.xor(ecx, ecx);
            a.lldt(cx);
            a.sldt(edx);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x58));
        Assert.That(m.Cpu.GetGpr(Gpr.Rdx), Is.EqualTo(0));
        Assert.That(m.Cpu.GetSegment(SegReg.Ldtr).Present, Is.False);
    }

    [Test]
    public void Lldt_NotPresent_Np()
    {
        using var m = Machine(GuestMode.Long64);
        SetGdtEntry(m, 11, Descriptor(0x6000, 0xFF, 0x02, 0));
        SetGdtEntry(m, 12, 0);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(ax, 0x58);
            a.lldt(ax);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.NP));
        Assert.That(Frame(m, 0), Is.EqualTo(0x58));
    }

    [Test]
    public void Sldt_RealMode_Ud()
    {
        using var m = Machine(GuestMode.Real);
        var exit = SystemGuest.Run(m, a => a.sldt(ax));
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.UD));
    }

    [Test]
    public void LmswSmswClts()
    {
        using var m = Machine(GuestMode.Real);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(ax, 0xE);      // MP, EM, TS; PE not set
            a.lmsw(ax);
            a.smsw(bx);
            a.clts();
            a.smsw(cx);
            a.xor(ax, ax);
            a.lmsw(ax);          // clears MP, EM and TS
            a.smsw(dx);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx) & 0xFFFF, Is.EqualTo(0x1E), "ET is always 1");
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx) & 0xFFFF, Is.EqualTo(0x16));
        Assert.That(m.Cpu.GetGpr(Gpr.Rdx) & 0xFFFF, Is.EqualTo(0x10));
    }

    [Test]
    public void Lmsw_CannotClearPe()
    {
        using var m = Machine(GuestMode.Protected32);
        var exit = SystemGuest.Run(m, a =>
        {
            a.xor(eax, eax);
            a.lmsw(ax);
            a.smsw(ebx);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.Cr0 & Cr0.Pe, Is.EqualTo(Cr0.Pe));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(m.Cpu.Cr0));
    }

    [Test]
    public void MovCr8_Long64_ReadsAndWritesTpr_ReservedBitsGp()
    {
        using var m = Machine(GuestMode.Long64);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(eax, 9);
            a.mov(cr8, rax);
            a.mov(rbx, cr8);
            a.mov(eax, 0x10);
            a.mov(cr8, rax);
        });
        AssertGp0(m, exit);
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(9));
        Assert.That(m.Cpu.Cr8, Is.EqualTo(9));
    }

    [Test]
    public void MovCr8_OutsideLongMode_Ud()
    {
        using var m = Machine(GuestMode.Protected32);
        // LOCK MOV EAX, CR0 is AMD's alternative encoding of MOV EAX, CR8; CR8 is 64-bit only here.
        var exit = SystemGuest.Run(m, a => a.db(0xF0, 0x0F, 0x20, 0xC0));
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.UD));
    }

    [Test]
    public void MovCr_Cpl3_Gp0()
    {
        using var m = Machine(GuestMode.Long64);
        var exit = RunUser(m, a => a.mov(rax, cr0));
        AssertGp0(m, exit);
    }

    [TestCase(0x1UL << 32)]  // CR0[63:32] reserved
    [TestCase(0x20000000UL)] // NW without CD
    [TestCase(0x0UL)]        // clearing PG in 64-bit mode
    public void MovCr0_InvalidValue_Gp0(ulong bits)
    {
        using var m = Machine(GuestMode.Long64);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, bits == 0 ? m.Cpu.Cr0 & ~Cr0.Pg : (m.Cpu.Cr0 & ~Cr0.Cd) | bits);
            a.mov(cr0, rax);
        });
        AssertGp0(m, exit);
    }

    [Test]
    public void MovCr0_ReservedLowBitsAreIgnored()
    {
        using var m = Machine(GuestMode.Protected32);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(eax, cr0);
            a.or(eax, 0x00000400); // bit 10 is reserved
            a.mov(cr0, eax);
            a.mov(ebx, cr0);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx) & 0x400, Is.Zero);
    }

    [Test]
    public void MovCr4_UnsupportedFeatureBit_Gp0()
    {
        using var m = Machine(GuestMode.Long64);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, cr4);
            a.or(rax, (int)Cr4.Vme); // VME is not enumerated by the model
            a.mov(cr4, rax);
        });
        AssertGp0(m, exit);
    }

    [Test]
    public void Wbinvd_Cpl3_Gp0()
    {
        using var m = Machine(GuestMode.Long64);
        var exit = RunUser(m, a => a.wbinvd());
        AssertGp0(m, exit);
    }

    [Test]
    public void Clflush_UnmappedAddress_PageFault()
    {
        using var m = Machine(GuestMode.Long64);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, Data);
            a.clflush(__byte_ptr[rax]);
            a.wbinvd();
            a.invd();
            a.mov(rax, 0x1_0000_0040UL);
            a.clflush(__byte_ptr[rax]);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.PF));
        Assert.That(m.Cpu.Cr2, Is.EqualTo(0x1_0000_0040UL));
        Assert.That(Frame(m, 0), Is.EqualTo(0), "checked as a read");
    }

    [Test]
    public void Ud2_RaisesUd()
    {
        using var m = Machine(GuestMode.Long64);
        var exit = SystemGuest.Run(m, a => a.ud2());
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.UD));
    }

    // ---- LAR, LSL, VERR, VERW, ARPL (protected mode, GDT of GuestMachine plus test entries) ----

    private static GuestMachine ProtectedWithEntries()
    {
        var m = Machine(GuestMode.Protected32);
        SetGdtEntry(m, 9, Descriptor(0x4000, 0x67, 0x89, 0));   // 0x48: 32-bit TSS
        SetGdtEntry(m, 10, Descriptor(0, 0xFFFF, 0x91, 0));     // 0x50: read-only data
        SetGdtEntry(m, 11, Descriptor(0, 0xFFFF, 0x9F, 0));     // 0x58: conforming readable code
        SetGdtEntry(m, 12, Descriptor(0, 0xFFFF, 0x98, 0));     // 0x60: execute-only code
        SetGdtEntry(m, 13, Descriptor(0, 0xFFFF, 0x8E, 0));     // 0x68: interrupt gate (not for LAR)
        return m;
    }

    private static (bool Zf, ulong Value) Probe(GuestMachine m, Action<Assembler> insn)
    {
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(ebx, 0xDEAD);
            insn(a);
            a.mov(eax, 0);
            a.je(a.F);
            a.mov(eax, 1);
            a.AnonymousLabel();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(VectorOf(m, exit), Is.EqualTo(-1));
        return (m.Rax == 0, m.Cpu.GetGpr(Gpr.Rbx));
    }

    [TestCase((ushort)0x10, true, 0x00C09300UL)]    // flat data: G, B, P, DPL0, S, type 3 (limit bits masked)
    [TestCase((ushort)0x48, true, 0x00008900UL)]    // available 32-bit TSS
    [TestCase((ushort)0x68, false, 0xDEADUL)]       // interrupt gate is not accepted
    [TestCase((ushort)0x0, false, 0xDEADUL)]        // null
    [TestCase((ushort)0x1F8, false, 0xDEADUL)]      // beyond the GDT limit: ZF=0, no fault
    [TestCase((ushort)0x13, false, 0xDEADUL)]       // RPL 3 > DPL 0
    public void Lar_ReportsAccessRights(ushort selector, bool zf, ulong value)
    {
        using var m = ProtectedWithEntries();
        var (gotZf, got) = Probe(m, a =>
        {
            a.mov(ecx, selector);
            a.lar(ebx, ecx);
        });
        Assert.That(gotZf, Is.EqualTo(zf));
        Assert.That(got, Is.EqualTo(value));
    }

    [TestCase((ushort)0x10, true, 0xFFFFFFFFUL)]
    [TestCase((ushort)0x48, true, 0x67UL)]
    [TestCase((ushort)0x68, false, 0xDEADUL)]
    public void Lsl_ReportsByteGranularLimit(ushort selector, bool zf, ulong value)
    {
        using var m = ProtectedWithEntries();
        var (gotZf, got) = Probe(m, a =>
        {
            a.mov(ecx, selector);
            a.lsl(ebx, ecx);
        });
        Assert.That(gotZf, Is.EqualTo(zf));
        Assert.That(got, Is.EqualTo(value));
    }

    [TestCase((ushort)0x10, true, true)]
    [TestCase((ushort)0x50, true, false)]   // read-only data
    [TestCase((ushort)0x58, true, false)]   // readable code
    [TestCase((ushort)0x60, false, false)]  // execute-only code
    [TestCase((ushort)0x48, false, false)]  // system segment
    [TestCase((ushort)0x13, false, false)]  // RPL above DPL
    public void VerrVerw_CheckReadAndWriteAccess(ushort selector, bool readable, bool writable)
    {
        using var m = ProtectedWithEntries();
        Assert.That(Probe(m, a => { a.mov(ecx, selector); a.verr(cx); }).Zf, Is.EqualTo(readable), "VERR");
        using var m2 = ProtectedWithEntries();
        Assert.That(Probe(m2, a => { a.mov(ecx, selector); a.verw(cx); }).Zf, Is.EqualTo(writable), "VERW");
    }

    [TestCase(0x10, 0x3, true, 0x13UL)]
    [TestCase(0x13, 0x1, false, 0x13UL)]
    public void Arpl_RaisesRpl(int dest, int src, bool zf, ulong result)
    {
        using var m = ProtectedWithEntries();
        var (gotZf, _) = Probe(m, a =>
        {
            a.mov(ebx, 0xDEAD0000 | (uint)dest);
            a.mov(ecx, src);
            a.arpl(bx, cx);
        });
        Assert.That(gotZf, Is.EqualTo(zf));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0xDEAD0000 | result), "only the low 16 bits change");
    }

    [Test]
    public void Lar_RealMode_Ud()
    {
        using var m = Machine(GuestMode.Real);
        var exit = SystemGuest.Run(m, a => a.lar(ax, cx));
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.UD));
    }
}
