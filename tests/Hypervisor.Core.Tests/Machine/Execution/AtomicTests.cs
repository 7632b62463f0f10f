using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using Hypervisor.Core.Tests.Support.Data;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

/// <summary>XADD, CMPXCHG, CMPXCHG8B, CMPXCHG16B (Exec.Atomic.cs).</summary>
public class AtomicTests
{
    private const ulong Data = GuestMachine.DataBase;
    private const ulong Above = 0xA5A5_A5A5_A5A5_A5A5;

    private static ulong Merge(ulong old, ulong value, int size) => size switch
    {
        1 => (old & ~0xFFUL) | (value & 0xFF),
        2 => (old & ~0xFFFFUL) | (value & 0xFFFF),
        4 => value & 0xFFFF_FFFF,
        _ => value,
    };

    /// <summary>Memory after a store of <paramref name="size"/> bytes over <paramref name="old"/>.</summary>
    private static ulong Stored(ulong old, ulong value, int size) =>
        (old & ~RefFlags.Mask(size)) | (value & RefFlags.Mask(size));

    /// <summary>Operand pairs that carry, overflow, give zero and half-carry at each size.</summary>
    private static readonly (ulong A, ulong B)[] Pairs =
    {
        (0x0000_0000_0000_0001, 0x0000_0000_0000_0001),
        (0xFFFF_FFFF_FFFF_FFFF, 0x0000_0000_0000_0001),
        (0x7FFF_FFFF_FFFF_FFFF, 0x0000_0000_0000_0001),
        (0x8000_0000_8000_8080, 0x8000_0000_8000_8080),
        (0x1234_5678_7FFF_7F0F, 0x0FED_CBA9_0001_0001),
        (0x0000_0000_0000_0000, 0x0000_0000_0000_0000),
    };

    private static IEnumerable<TestCaseData> PairsAtEverySize()
    {
        foreach (int size in new[] { 1, 2, 4, 8 })
            foreach (var (a, b) in Pairs)
                yield return new TestCaseData(size, a, b);
    }

    // ---- XADD ----------------------------------------------------------------------------------

    /// <summary>xadd rcx, rdx at the size (the 8-bit form uses CL, DL).</summary>
    private static void XaddRegisters(Assembler a, int size)
    {
        switch (size)
        {
            case 1: a.xadd(cl, dl); break;
            case 2: a.xadd(cx, dx); break;
            case 4: a.xadd(ecx, edx); break;
            default: a.xadd(rcx, rdx); break;
        }
    }

    /// <summary>[lock] xadd [rbx], rdx at the size.</summary>
    private static void XaddMemory(Assembler a, int size, bool locked)
    {
        var p = locked ? a.@lock : a;
        switch (size)
        {
            case 1: p.xadd(__byte_ptr[rbx], dl); break;
            case 2: p.xadd(__word_ptr[rbx], dx); break;
            case 4: p.xadd(__dword_ptr[rbx], edx); break;
            default: p.xadd(__qword_ptr[rbx], rdx); break;
        }
    }

    [TestCaseSource(nameof(PairsAtEverySize))]
    public void Xadd_Registers_ExchangeThenAddWithAddFlags(int size, ulong dest, ulong src)
    {
        using var m = new GuestMachine(GuestMode.Long64);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rcx, dest);
            a.mov(rdx, src);
            XaddRegisters(a, size);
        });
        Assert.That(cpu.GetGpr(Gpr.Rcx), Is.EqualTo(Merge(dest, dest + src, size)));
        Assert.That(cpu.GetGpr(Gpr.Rdx), Is.EqualTo(Merge(src, dest, size)));
        Assert.That(m.Flags & F.Status, Is.EqualTo(RefFlags.Add(dest, src, size)));
    }

    [TestCaseSource(nameof(PairsAtEverySize))]
    public void Xadd_Memory_StoresSumAndReturnsOldValue(int size, ulong dest, ulong src)
    {
        foreach (bool locked in new[] { false, true })
        {
            using var m = new GuestMachine(GuestMode.Long64);
            m.Memory.WriteU64(Data, dest);
            m.Memory.WriteU64(Data + 8, Above);
            var cpu = m.RunToHlt(a =>
            {
                a.mov(rbx, Data);
                a.mov(rdx, src);
                XaddMemory(a, size, locked);
            });
            Assert.That(m.Memory.ReadU64(Data), Is.EqualTo(Stored(dest, dest + src, size)));
            Assert.That(m.Memory.ReadU64(Data + 8), Is.EqualTo(Above));
            Assert.That(cpu.GetGpr(Gpr.Rdx), Is.EqualTo(Merge(src, dest, size)));
            Assert.That(m.Flags & F.Status, Is.EqualTo(RefFlags.Add(dest, src, size)));
        }
    }

    [Test]
    public void Xadd_SameRegisterTwice_KeepsTheSum()
    {
        // SRC ← DEST happens before DEST ← SUM, so the sum wins.
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            a.mov(rax, 0xFFFF_FFFF_8000_0001);
            a.xadd(eax, eax);
        });
        Assert.That(m.Rax, Is.EqualTo(2UL));
        Assert.That(m.Flags & F.Status, Is.EqualTo(RefFlags.Add(0x8000_0001, 0x8000_0001, 4)));
    }

    [Test]
    public void Xadd_HighByteRegisters_UseBits15To8()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rax, 0x1111_1111_1111_F011);
            a.mov(rbx, 0x2222_2222_2222_2022);
            a.xadd(ah, bh);
        });
        Assert.That(m.Rax, Is.EqualTo(0x1111_1111_1111_1011UL));
        Assert.That(cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x2222_2222_2222_F022UL));
        Assert.That(m.Flags & F.Status, Is.EqualTo(RefFlags.Add(0xF0, 0x20, 1)));
    }

    [Test]
    public void Xadd_ReadOnlyMemory_FaultsWithSourceAndFlagsUnchanged()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        GuestPages.MakeFaultingRegions(m.Memory);
        ExceptionTrap.Install(m.Memory, m.Cpu);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rbx, GuestPages.ReadOnly);
            a.mov(rdx, 0x77);
            RefFlags.Load(a, F.ZF | F.PF);
            a.@lock.xadd(__qword_ptr[rbx], rdx);
        });
        var caught = ExceptionTrap.Caught(m.Memory);
        Assert.That(caught?.Vector, Is.EqualTo(Vector.PF));
        Assert.That(caught?.ErrorCode, Is.EqualTo(3UL));
        Assert.That(caught!.Value.Rflags & F.Status, Is.EqualTo(F.ZF | F.PF));
        Assert.That(cpu.GetGpr(Gpr.Rdx), Is.EqualTo(0x77UL));
    }

    [Test]
    public void Xadd_LockWithRegisterDestination_RaisesUd()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        ExceptionTrap.Install(m.Memory, m.Cpu);
        m.RunToHlt(a => a.db(0xF0, 0x0F, 0xC1, 0xD1)); // lock xadd ecx, edx
        Assert.That(ExceptionTrap.Caught(m.Memory)?.Vector, Is.EqualTo(Vector.UD));
    }

    // ---- CMPXCHG -------------------------------------------------------------------------------

    /// <summary>cmpxchg rcx, rdx at the size.</summary>
    private static void CmpxchgRegisters(Assembler a, int size)
    {
        switch (size)
        {
            case 1: a.cmpxchg(cl, dl); break;
            case 2: a.cmpxchg(cx, dx); break;
            case 4: a.cmpxchg(ecx, edx); break;
            default: a.cmpxchg(rcx, rdx); break;
        }
    }

    /// <summary>[lock] cmpxchg [rbx], rdx at the size.</summary>
    private static void CmpxchgMemory(Assembler a, int size, bool locked)
    {
        var p = locked ? a.@lock : a;
        switch (size)
        {
            case 1: p.cmpxchg(__byte_ptr[rbx], dl); break;
            case 2: p.cmpxchg(__word_ptr[rbx], dx); break;
            case 4: p.cmpxchg(__dword_ptr[rbx], edx); break;
            default: p.cmpxchg(__qword_ptr[rbx], rdx); break;
        }
    }

    private const ulong Src = 0x5A5A_5A5A_5A5A_5A5A;

    /// <summary>Accumulator and destination: equal at every size, or different only in the lowest
    /// byte, or equal in the low byte and different above it (which is equal at size 1).</summary>
    private static IEnumerable<TestCaseData> CompareCases()
    {
        foreach (int size in new[] { 1, 2, 4, 8 })
        {
            yield return new TestCaseData(size, 0x1234_5678_9ABC_DEF0UL, 0x1234_5678_9ABC_DEF0UL);
            yield return new TestCaseData(size, 0x1234_5678_9ABC_DEF0UL, 0x1234_5678_9ABC_DEF1UL);
            yield return new TestCaseData(size, 0x8000_0000_0000_0080UL, 0x0000_0000_0000_0080UL);
            yield return new TestCaseData(size, 0x0000_0000_0000_0000UL, 0xFFFF_FFFF_FFFF_FFFFUL);
        }
    }

    [TestCaseSource(nameof(CompareCases))]
    public void Cmpxchg_RegisterDestination_ExchangesOnlyOnEqual(int size, ulong acc, ulong dest)
    {
        using var m = new GuestMachine(GuestMode.Long64);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rax, acc);
            a.mov(rcx, dest);
            a.mov(rdx, Src);
            CmpxchgRegisters(a, size);
        });
        bool equal = ((acc ^ dest) & RefFlags.Mask(size)) == 0;
        // Equal: only the destination is written. Not equal: only the accumulator (QEMU TCG; the
        // register destination is not even zero-extended).
        Assert.That(cpu.GetGpr(Gpr.Rcx), Is.EqualTo(equal ? Merge(dest, Src, size) : dest));
        Assert.That(m.Rax, Is.EqualTo(equal ? acc : Merge(acc, dest, size)));
        Assert.That(m.Flags & F.Status, Is.EqualTo(RefFlags.Sub(acc, dest, size)));
    }

    [TestCaseSource(nameof(CompareCases))]
    public void Cmpxchg_MemoryDestination_StoresSourceOnEqualElseLoadsAccumulator(int size, ulong acc, ulong dest)
    {
        foreach (bool locked in new[] { false, true })
        {
            using var m = new GuestMachine(GuestMode.Long64);
            m.Memory.WriteU64(Data, dest);
            m.Memory.WriteU64(Data + 8, Above);
            m.RunToHlt(a =>
            {
                a.mov(rax, acc);
                a.mov(rbx, Data);
                a.mov(rdx, Src);
                CmpxchgMemory(a, size, locked);
            });
            bool equal = ((acc ^ dest) & RefFlags.Mask(size)) == 0;
            Assert.That(m.Memory.ReadU64(Data), Is.EqualTo(equal ? Stored(dest, Src, size) : dest));
            Assert.That(m.Memory.ReadU64(Data + 8), Is.EqualTo(Above));
            Assert.That(m.Rax, Is.EqualTo(equal ? acc : Merge(acc, dest, size)));
            Assert.That(m.Flags & F.Status, Is.EqualTo(RefFlags.Sub(acc, dest, size)));
        }
    }

    [Test]
    public void Cmpxchg_HighByteDestination_ComparesWithAl()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rax, 0x0505);        // AL = AH = 5
            a.mov(rcx, 0x99);
            a.cmpxchg(ah, cl);
        });
        Assert.That(m.Rax, Is.EqualTo(0x9905UL));
        Assert.That(m.Flags & F.Status, Is.EqualTo(RefFlags.Sub(5, 5, 1)));
    }

    [Test]
    public void Cmpxchg_FailingCompareOnReadOnlyPage_FaultsBecauseMemoryIsAlwaysWritten()
    {
        // "The destination operand receives a write cycle without regard to the result of the
        // comparison" (SDM "CMPXCHG"): even a failing compare faults on a read-only page.
        using var m = new GuestMachine(GuestMode.Long64);
        GuestPages.MakeFaultingRegions(m.Memory);
        ExceptionTrap.Install(m.Memory, m.Cpu);
        m.Memory.WriteU64(GuestPages.ReadOnly, 0x1111);
        m.RunToHlt(a =>
        {
            a.mov(rax, 0x2222);
            a.mov(rbx, GuestPages.ReadOnly);
            a.mov(rdx, Src);
            a.cmpxchg(__qword_ptr[rbx], rdx);
        });
        var caught = ExceptionTrap.Caught(m.Memory);
        Assert.That(caught?.Vector, Is.EqualTo(Vector.PF));
        Assert.That(caught?.ErrorCode, Is.EqualTo(3UL));
        Assert.That(GuestPages.InstructionAt(m.Memory, caught!.Value.Rip).Mnemonic, Is.EqualTo(Mnemonic.Cmpxchg));
        Assert.That(m.Rax, Is.EqualTo(0x2222UL), "the accumulator is loaded only after the store");
    }

    // ---- CMPXCHG8B / CMPXCHG16B ----------------------------------------------------------------

    private const ulong StatusOthers = F.CF | F.PF | F.AF | F.SF | F.OF;

    [TestCase(GuestMode.Long64, true)]
    [TestCase(GuestMode.Long64, false)]
    [TestCase(GuestMode.Protected32, true)]
    [TestCase(GuestMode.Protected32, false)]
    public void Cmpxchg8b_EqualOrNot_ExchangesOrLoadsEdxEax(GuestMode mode, bool equal)
    {
        const ulong mem = 0x1122_3344_5566_7788;
        ulong expected = equal ? mem : mem ^ 0x1_0000_0000;
        using var m = new GuestMachine(mode);
        m.Memory.WriteU64(Data, mem);
        m.Memory.WriteU64(Data + 8, Above);
        var cpu = m.RunToHlt(a =>
        {
            if (mode == GuestMode.Long64)
            {
                a.mov(rax, 0xFFFF_FFFF_0000_0000 | (expected & 0xFFFF_FFFF));
                a.mov(rdx, 0xFFFF_FFFF_0000_0000 | (expected >> 32));
                a.mov(rbx, 0xEEEE_EEEE_AAAA_BBBB);
                a.mov(rcx, 0xEEEE_EEEE_CCCC_DDDD);
                a.mov(rdi, Data);
                RefFlags.Load(a, StatusOthers | (equal ? 0 : F.ZF));
                a.cmpxchg8b(__qword_ptr[rdi]);
            }
            else
            {
                a.mov(eax, (uint)expected);
                a.mov(edx, (uint)(expected >> 32));
                a.mov(ebx, 0xAAAA_BBBB);
                a.mov(ecx, 0xCCCC_DDDD);
                a.mov(edi, (uint)Data);
                RefFlags.Load(a, StatusOthers | (equal ? 0 : F.ZF));
                a.cmpxchg8b(__qword_ptr[edi]);
            }
        });
        Assert.That(m.Memory.ReadU64(Data), Is.EqualTo(equal ? 0xCCCC_DDDD_AAAA_BBBBUL : mem));
        Assert.That(m.Memory.ReadU64(Data + 8), Is.EqualTo(Above));
        Assert.That(m.Flags & F.Status, Is.EqualTo(StatusOthers | (equal ? F.ZF : 0)));
        if (mode == GuestMode.Long64)
        {
            // Success leaves RDX:RAX alone; failure writes EAX and EDX, zero-extending them.
            Assert.That(m.Rax, Is.EqualTo(equal ? 0xFFFF_FFFF_0000_0000 | (expected & 0xFFFF_FFFF) : mem & 0xFFFF_FFFF));
            Assert.That(cpu.GetGpr(Gpr.Rdx), Is.EqualTo(equal ? 0xFFFF_FFFF_0000_0000 | (expected >> 32) : mem >> 32));
        }
        else
        {
            Assert.That(m.Rax & 0xFFFF_FFFF, Is.EqualTo(mem & 0xFFFF_FFFF));
            Assert.That(cpu.GetGpr(Gpr.Rdx) & 0xFFFF_FFFF, Is.EqualTo(mem >> 32));
        }
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Cmpxchg16b_EqualOrNot_ExchangesOrLoadsRdxRax(bool equal)
    {
        const ulong lo = 0x0123_4567_89AB_CDEF, hi = 0xFEDC_BA98_7654_3210;
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.WriteU64(Data + 0x10, lo);
        m.Memory.WriteU64(Data + 0x18, hi);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rax, lo);
            a.mov(rdx, equal ? hi : hi ^ 0x8000_0000_0000_0000);
            a.mov(rbx, 0xAAAA_AAAA_BBBB_BBBB);
            a.mov(rcx, 0xCCCC_CCCC_DDDD_DDDD);
            a.mov(rdi, Data + 0x10);
            RefFlags.Load(a, StatusOthers | (equal ? 0 : F.ZF));
            a.@lock.cmpxchg16b(__xmmword_ptr[rdi]);
        });
        Assert.That(m.Memory.ReadU64(Data + 0x10), Is.EqualTo(equal ? 0xAAAA_AAAA_BBBB_BBBBUL : lo));
        Assert.That(m.Memory.ReadU64(Data + 0x18), Is.EqualTo(equal ? 0xCCCC_CCCC_DDDD_DDDDUL : hi));
        // Success leaves RDX:RAX as they were (equal to memory); failure loads them from memory.
        Assert.That(m.Rax, Is.EqualTo(lo));
        Assert.That(cpu.GetGpr(Gpr.Rdx), Is.EqualTo(hi));
        Assert.That(m.Flags & F.Status, Is.EqualTo(StatusOthers | (equal ? F.ZF : 0)));
    }

    [Test]
    public void Cmpxchg16b_FailingCompare_LoadsBothHalves()
    {
        const ulong lo = 0x0123_4567_89AB_CDEF, hi = 0xFEDC_BA98_7654_3210;
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.WriteU64(Data, lo);
        m.Memory.WriteU64(Data + 8, hi);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rax, 0);
            a.mov(rdx, 0);
            a.mov(rdi, Data);
            a.cmpxchg16b(__xmmword_ptr[rdi]);
        });
        Assert.That(m.Rax, Is.EqualTo(lo));
        Assert.That(cpu.GetGpr(Gpr.Rdx), Is.EqualTo(hi));
        Assert.That(m.Flags & F.ZF, Is.EqualTo(0UL));
    }

    [TestCase(8UL, 0UL)]
    [TestCase(1UL, 0UL)]
    [TestCase(0UL, 8UL)]
    public void Cmpxchg16b_MisalignedLinearAddress_RaisesGp0BeforeAnyAccess(ulong offsetMisalign, ulong fsBase)
    {
        // The check is on the linear address: an aligned offset in a misaligned FS segment faults too.
        using var m = new GuestMachine(GuestMode.Long64);
        ExceptionTrap.Install(m.Memory, m.Cpu);
        var fs = m.Cpu.GetSegment(SegReg.Fs);
        fs.Base = fsBase;
        m.Cpu.SetSegment(SegReg.Fs, fs);
        m.Memory.WriteU64(Data + 0x20, 0);
        var cpu = m.RunToHlt(a =>
        {
            a.xor(eax, eax);
            a.xor(edx, edx);
            a.mov(rbx, 1);
            a.mov(rcx, 2);
            a.mov(rdi, Data + 0x20 + offsetMisalign);
            RefFlags.Load(a, F.CF);
            a.db(0x64, 0xF0, 0x48, 0x0F, 0xC7, 0x0F); // lock cmpxchg16b fs:[rdi]
        });
        var caught = ExceptionTrap.Caught(m.Memory);
        Assert.That(caught?.Vector, Is.EqualTo(Vector.GP));
        Assert.That(caught?.ErrorCode, Is.EqualTo(0UL));
        Assert.That(GuestPages.InstructionAt(m.Memory, caught!.Value.Rip).Mnemonic, Is.EqualTo(Mnemonic.Cmpxchg16b));
        Assert.That(caught!.Value.Rflags & F.Status, Is.EqualTo(F.CF), "ZF is not touched");
        Assert.That(m.Memory.ReadU64(Data + 0x20), Is.EqualTo(0UL));
        Assert.That(m.Memory.ReadU64(Data + 0x28), Is.EqualTo(0UL));
    }

    [Test]
    public void Cmpxchg16b_FsBaseRealignsOffset_Succeeds()
    {
        // Offset 8 off alignment plus an FS base of 8: the linear address is aligned.
        using var m = new GuestMachine(GuestMode.Long64);
        var fs = m.Cpu.GetSegment(SegReg.Fs);
        fs.Base = 8;
        m.Cpu.SetSegment(SegReg.Fs, fs);
        m.RunToHlt(a =>
        {
            a.xor(eax, eax);
            a.xor(edx, edx);
            a.mov(rbx, 1);
            a.mov(rcx, 2);
            a.mov(rdi, Data + 8);
            a.db(0x64, 0x48, 0x0F, 0xC7, 0x0F); // cmpxchg16b fs:[rdi]
        });
        Assert.That(m.Memory.ReadU64(Data + 0x10), Is.EqualTo(1UL));
        Assert.That(m.Memory.ReadU64(Data + 0x18), Is.EqualTo(2UL));
        Assert.That(m.Flags & F.ZF, Is.EqualTo(F.ZF));
    }

    [TestCase(new byte[] { 0x0F, 0xC7, 0xC9 }, TestName = "Cmpxchg8b_RegisterOperand_RaisesUd")]
    [TestCase(new byte[] { 0x48, 0x0F, 0xC7, 0xC9 }, TestName = "Cmpxchg16b_RegisterOperand_RaisesUd")]
    public void CompareExchangeBytes_RegisterOperand_RaisesUd(byte[] code)
    {
        using var m = new GuestMachine(GuestMode.Long64);
        ExceptionTrap.Install(m.Memory, m.Cpu);
        m.RunToHlt(a => a.db(code));
        Assert.That(ExceptionTrap.Caught(m.Memory)?.Vector, Is.EqualTo(Vector.UD));
        Assert.That(ExceptionTrap.Caught(m.Memory)?.Rip, Is.EqualTo(GuestMachine.CodeBase));
    }

    [Test]
    public void Cmpxchg16b_WithoutCx16_RaisesUd()
    {
        using var m = new ModelMachine(ModelMachine.DefaultWith(1, 'c', 13, present: false));
        m.Cpu.SetGpr(Gpr.Rdi, Data);
        var exit = m.Run(a => a.cmpxchg16b(__xmmword_ptr[rdi]));
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Caught?.Vector, Is.EqualTo(Vector.UD));
    }

    [Test]
    public void Cmpxchg8b_FailingCompareOnReadOnlyPage_Faults()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        GuestPages.MakeFaultingRegions(m.Memory);
        ExceptionTrap.Install(m.Memory, m.Cpu);
        m.Memory.WriteU64(GuestPages.ReadOnly, 0x1111);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(eax, 0x2222);
            a.xor(edx, edx);
            a.mov(rdi, GuestPages.ReadOnly);
            a.cmpxchg8b(__qword_ptr[rdi]);
        });
        Assert.That(ExceptionTrap.Caught(m.Memory)?.Vector, Is.EqualTo(Vector.PF));
        Assert.That(ExceptionTrap.Caught(m.Memory)?.ErrorCode, Is.EqualTo(3UL));
        Assert.That(m.Rax, Is.EqualTo(0x2222UL));
    }
}
