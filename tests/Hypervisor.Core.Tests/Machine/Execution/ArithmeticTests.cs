using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Hypervisor.Core.Tests.Support.AluReference;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

/// <summary>ADD/ADC/SUB/SBB/CMP/NEG/INC/DEC: SDM vol. 2A/2B. All six status flags are defined.</summary>
public class ArithmeticTests
{
    private InstructionRunner _run = null!;

    [OneTimeSetUp]
    public void SetUp() => _run = new InstructionRunner();

    [OneTimeTearDown]
    public void TearDown() => _run.Dispose();

    /// <summary>Garbage above the operand so the tests see what each size does to the rest of the register.</summary>
    private const ulong High = 0xDEAD_BEEF_CAFE_F00D;

    /// <summary>What a write of <paramref name="v"/> at <paramref name="size"/> leaves in a register that held <paramref name="old"/>:
    /// 8/16-bit writes keep the rest, 32-bit writes zero bits 63:32 (SDM vol. 1 §3.4.1.1).</summary>
    internal static ulong Merge(ulong old, ulong v, int size) => size == 4 ? v & 0xFFFF_FFFF : (old & ~Mask(size)) | (v & Mask(size));

    /// <summary>The SDM's definition of ADD/ADC/SUB/SBB: CF from the unsigned result, OF from the signed one,
    /// AF from the low nibble, computed on wide integers.</summary>
    internal static (ulong Result, ulong Flags) Reference(bool subtract, int size, ulong a, ulong b, ulong carryIn)
    {
        a &= Mask(size);
        b &= Mask(size);
        Int128 unsignedResult = subtract ? (Int128)a - b - carryIn : (Int128)a + b + carryIn;
        Int128 signedResult = subtract ? (Int128)Signed(a, size) - Signed(b, size) - carryIn : (Int128)Signed(a, size) + Signed(b, size) + carryIn;
        long nibble = subtract ? (long)(a & 0xF) - (long)(b & 0xF) - (long)carryIn : (long)(a & 0xF) + (long)(b & 0xF) + (long)carryIn;
        ulong r = (ulong)(unsignedResult & (Int128)Mask(size));
        Int128 min = -((Int128)1 << (size * 8 - 1)), max = ((Int128)1 << (size * 8 - 1)) - 1;
        ulong f = Szp(r, size)
            | If(unsignedResult < 0 || unsignedResult > Mask(size), C)
            | If(signedResult < min || signedResult > max, O)
            | If(nibble < 0 || nibble > 0xF, A);
        return (r, f);
    }

    // ---- Hand-computed cases: one row per rule, every size ---------------------------------------

    [TestCase("Add", 1, 0x7FUL, 0x01UL, 0, 0x80UL, "A S O")]              // positive overflow
    [TestCase("Add", 1, 0xFFUL, 0x01UL, 0, 0x00UL, "C P A Z")]            // carry out, zero
    [TestCase("Add", 2, 0x8000UL, 0x8000UL, 0, 0x0000UL, "C P Z O")]      // negative overflow
    [TestCase("Add", 4, 0xFFFF_FFFFUL, 0xFFFF_FFFFUL, 0, 0xFFFF_FFFEUL, "C A S")]
    [TestCase("Add", 8, 0x7FFF_FFFF_FFFF_FFFFUL, 1UL, 0, 0x8000_0000_0000_0000UL, "P A S O")]
    [TestCase("Adc", 1, 0xFFUL, 0x00UL, 1, 0x00UL, "C P A Z")]            // the carry-in alone carries out
    [TestCase("Adc", 2, 0x7FFFUL, 0x0000UL, 1, 0x8000UL, "P A S O")]
    [TestCase("Adc", 4, 0xFFFF_FFFFUL, 0xFFFF_FFFFUL, 1, 0xFFFF_FFFFUL, "C P A S")]
    [TestCase("Adc", 8, 1UL, 2UL, 0, 3UL, "P")]
    [TestCase("Sub", 1, 0x00UL, 0x01UL, 0, 0xFFUL, "C P A S")]            // borrow
    [TestCase("Sub", 1, 0x80UL, 0x01UL, 0, 0x7FUL, "A O")]                // negative minus positive overflows
    [TestCase("Sub", 2, 0x1234UL, 0x1234UL, 0, 0x0000UL, "P Z")]
    [TestCase("Sub", 4, 0x7FFF_FFFFUL, 0xFFFF_FFFFUL, 0, 0x8000_0000UL, "C P S O")]
    [TestCase("Sub", 8, 0UL, 0x8000_0000_0000_0000UL, 0, 0x8000_0000_0000_0000UL, "C P S O")]
    [TestCase("Sbb", 1, 0x00UL, 0x00UL, 1, 0xFFUL, "C P A S")]            // the borrow-in alone borrows
    [TestCase("Sbb", 2, 0x8000UL, 0x0000UL, 1, 0x7FFFUL, "P A O")]
    [TestCase("Sbb", 4, 5UL, 5UL, 1, 0xFFFF_FFFFUL, "C P A S")]
    [TestCase("Sbb", 8, 0x10UL, 0x01UL, 1, 0x0EUL, "A")]
    public void AddSub_HandComputed_ResultAndFlags(string op, int size, ulong a, ulong b, int carryIn, ulong expected, string flags)
    {
        var code = CodeOf(op + "_rm{0}_r{0}", size);
        var r = _run.Run(Insn(Instruction.Create(code, Reg(0, size), Reg(3, size))), rax: a, rbx: b, flags: carryIn == 1 ? C : 0);
        Assert.That(r.Rax & Mask(size), Is.EqualTo(expected));
        Assert.That(Names(r.Arith), Is.EqualTo(Names(Flags(flags))));
    }

    [TestCase(1, 0x10UL, 0x20UL, "C P S")]
    [TestCase(2, 0x8000UL, 0x0001UL, "P A O")]
    [TestCase(4, 7UL, 7UL, "P Z")]
    [TestCase(8, 0x8000_0000_0000_0000UL, 0x7FFF_FFFF_FFFF_FFFFUL, "A O")]
    public void Cmp_HandComputed_SetsFlagsKeepsOperands(int size, ulong a, ulong b, string flags)
    {
        var r = _run.Run(Insn(Instruction.Create(CodeOf("Cmp_rm{0}_r{0}", size), Reg(0, size), Reg(3, size))), rax: a | (High & ~Mask(size)), rbx: b);
        Assert.That(r.Rax, Is.EqualTo(a | (High & ~Mask(size))), "CMP writes nothing");
        Assert.That(Names(r.Arith), Is.EqualTo(Names(Flags(flags))));
    }

    // ---- Every size against the definition ---------------------------------------------------------

    [TestCase("Add", false, false)]
    [TestCase("Adc", false, true)]
    [TestCase("Sub", true, false)]
    [TestCase("Sbb", true, true)]
    [TestCase("Cmp", true, false)]
    public void AddSub_EdgeValuesEverySize_MatchDefinition(string op, bool subtract, bool usesCarry)
    {
        foreach (int size in Sizes)
            foreach (ulong a in Edges(size))
                foreach (ulong b in Edges(size))
                    foreach (ulong cin in new ulong[] { 0, 1 })
                    {
                        var code = CodeOf(op + "_rm{0}_r{0}", size);
                        ulong rax = a | (High & ~Mask(size));
                        var r = _run.Run(Insn(Instruction.Create(code, Reg(0, size), Reg(3, size))), rax: rax, rbx: b, flags: cin == 1 ? C | Z : Z);
                        var (res, f) = Reference(subtract, size, a, b, usesCarry ? cin : 0);
                        string what = $"{op}{size * 8} {a:x},{b:x} CF={cin}";
                        Assert.That(r.Rax, Is.EqualTo(op == "Cmp" ? rax : Merge(rax, res, size)), what);
                        Assert.That(Names(r.Arith), Is.EqualTo(Names(f)), what);
                    }
    }

    [Test]
    public void Neg_EdgeValuesEverySize_FlagsOfZeroMinusOperand()
    {
        foreach (int size in Sizes)
            foreach (ulong a in Edges(size))
            {
                ulong rax = a | (High & ~Mask(size));
                var r = _run.Run(Insn(Instruction.Create(CodeOf("Neg_rm{0}", size), Reg(0, size))), rax: rax);
                var (res, f) = Reference(true, size, 0, a, 0);
                Assert.That(r.Rax, Is.EqualTo(Merge(rax, res, size)), $"neg{size * 8} {a:x}");
                Assert.That(Names(r.Arith), Is.EqualTo(Names(f)), $"neg{size * 8} {a:x}");
                Assert.That((r.Flags & C) != 0, Is.EqualTo(a != 0), "SDM: CF = (operand != 0)");
            }
    }

    [TestCase("Inc", false)]
    [TestCase("Dec", true)]
    public void IncDec_EdgeValuesEverySize_KeepCarry(string op, bool subtract)
    {
        foreach (int size in Sizes)
            foreach (ulong a in Edges(size))
                foreach (ulong cf in new[] { 0UL, C })
                {
                    ulong rax = a | (High & ~Mask(size));
                    var r = _run.Run(Insn(Instruction.Create(CodeOf(op + "_rm{0}", size), Reg(0, size))), rax: rax, flags: cf);
                    var (res, f) = Reference(subtract, size, a, 1, 0);
                    string what = $"{op}{size * 8} {a:x} CF={cf}";
                    Assert.That(r.Rax, Is.EqualTo(Merge(rax, res, size)), what);
                    Assert.That(Names(r.Arith), Is.EqualTo(Names((f & ~C) | cf)), what);
                }
    }

    // ---- Operand forms ---------------------------------------------------------------------------

    [Test]
    public void Add_HighByteRegisters_TouchOnlyBits15To8()
    {
        var r = _run.Run(a => a.add(ah, bh), rax: 0x1111_F0AA, rbx: 0x2222_20BB);
        Assert.That(r.Rax, Is.EqualTo(0x1111_10AAUL));
        Assert.That(Names(r.Arith), Is.EqualTo("C"));
    }

    [TestCase(-1, 0x1_0000_0000UL, 0xFFFF_FFFFUL)]            // imm8 sign-extended to 64 bits
    [TestCase(int.MinValue, 0x1UL, 0xFFFF_FFFF_8000_0001UL)]  // imm32 sign-extended to 64 bits
    public void Add_Imm_IsSignExtendedToOperandSize(int imm, ulong value, ulong expected)
    {
        var r = _run.Run(a => a.add(rax, imm), rax: value);
        Assert.That(r.Rax, Is.EqualTo(expected));
    }

    [Test]
    public void Sub_Imm8To16_SignExtendsWithinTheWord()
    {
        var r = _run.Run(a => a.sub(ax, -2), rax: 0xAAAA_0005);
        Assert.That(r.Rax, Is.EqualTo(0xAAAA_0007UL));
        Assert.That(Names(r.Arith), Is.EqualTo("C A"), "5 - 0xFFFE borrows, and so does 5 - 0xE");
    }

    [Test]
    public void Adc_MemoryDestination_ReadModifyWrite()
    {
        _run.WriteData(0, 0x1122_3344_FFFF_FFFF);
        var r = _run.Run(a => a.adc(__dword_ptr[rbx], ecx), rbx: InstructionRunner.Data, rcx: 0, flags: C);
        Assert.That(_run.ReadData(0, 8), Is.EqualTo(0x1122_3344_0000_0000UL), "only the dword changes");
        Assert.That(Names(r.Arith), Is.EqualTo("C P A Z"));
    }

    [Test]
    public void Sbb_RegisterFromMemory_ReadsTheSource()
    {
        _run.WriteData(8, 0x0000_0000_0000_0003);
        var r = _run.Run(a => a.sbb(rax, __qword_ptr[rbx + 8]), rax: 3, rbx: InstructionRunner.Data, flags: C);
        Assert.That(r.Rax, Is.EqualTo(ulong.MaxValue));
        Assert.That(Names(r.Arith), Is.EqualTo("C P A S"));
    }

    [Test]
    public void Sub_MemoryImm_WritesWordOnly()
    {
        _run.WriteData(16, 0xFFFF_0000);
        var r = _run.Run(a => a.sub(__word_ptr[rbx + 16], 1), rbx: InstructionRunner.Data);
        Assert.That(_run.ReadData(16, 4), Is.EqualTo(0xFFFF_FFFFUL));
        Assert.That(Names(r.Arith), Is.EqualTo("C P A S"));
    }

    [Test]
    public void IncNegDec_MemoryOperands()
    {
        _run.WriteData(24, 0x7F);
        _run.WriteData(32, 0x1);
        _run.WriteData(40, 0);
        _run.Run(a =>
        {
            a.inc(__byte_ptr[rbx + 24]);
            a.neg(__word_ptr[rbx + 32]);
            a.dec(__qword_ptr[rbx + 40]);
        }, rbx: InstructionRunner.Data);
        Assert.That(_run.ReadData(24, 8), Is.EqualTo(0x80UL));
        Assert.That(_run.ReadData(32, 8), Is.EqualTo(0xFFFFUL));
        Assert.That(_run.ReadData(40, 8), Is.EqualTo(ulong.MaxValue));
    }

    [Test]
    public void LockAdd_MemoryDestination_Works()
    {
        _run.WriteData(48, 40);
        var r = _run.Run(a => a.@lock.add(__dword_ptr[rbx + 48], ecx), rbx: InstructionRunner.Data, rcx: 2);
        Assert.That(r.Faulted, Is.False);
        Assert.That(_run.ReadData(48, 4), Is.EqualTo(42UL));
    }

    [TestCase(new byte[] { 0xF0, 0x01, 0xD8 }, TestName = "Lock_AddRegisterDestination_IsUd")]       // lock add eax, ebx
    [TestCase(new byte[] { 0xF0, 0x39, 0x03 }, TestName = "Lock_CmpMemory_IsUd")]                    // lock cmp [rbx], eax
    [TestCase(new byte[] { 0xF0, 0x48, 0xF7, 0xD8 }, TestName = "Lock_NegRegister_IsUd")]           // lock neg rax
    public void Lock_NotAllowedForm_RaisesUd(byte[] bytes)
    {
        var r = _run.Run(a => a.db(bytes), rax: 5, rbx: InstructionRunner.Data);
        Assert.That(r.Vector, Is.EqualTo(Vector.UD));
        Assert.That(r.FaultRip, Is.EqualTo(_run.CodeStart));
        Assert.That(r.Rax, Is.EqualTo(5UL));
    }

    [Test]
    public void Add_ReadOnlyMemoryDestination_FaultsWithoutChangingFlags()
    {
        using var run = new InstructionRunner();
        const ulong ro = 0x60_0000;
        run.Machine.Memory.WriteU64(ro, 0x7F);
        run.MakeReadOnly2M(ro);
        var r = run.Run(a => a.add(__byte_ptr[rbx], al), rax: 1, rbx: ro, flags: C | Z | O);
        Assert.That(r.Vector, Is.EqualTo(Vector.PF));
        Assert.That(r.ErrorCode, Is.EqualTo(0x3UL), "present, write");
        Assert.That(run.Cpu.Cr2, Is.EqualTo(ro));
        Assert.That(r.FaultRip, Is.EqualTo(run.CodeStart));
        Assert.That(run.Machine.Memory.ReadU64(ro), Is.EqualTo(0x7FUL));
        Assert.That(Names(r.Arith), Is.EqualTo("C Z O"), "a faulting instruction changes no flags");
    }

    // ---- Flags carried between instructions ----------------------------------------------------------

    [Test]
    public void Adc_AfterSub_UsesItsBorrow()
    {
        // 128-bit subtraction: rdx:rax - 0:1 with rax = 0 borrows from the high half.
        var r = _run.Run(a =>
        {
            a.sub(rax, rbx);
            a.sbb(rdx, 0);
        }, rax: 0, rbx: 1, rdx: 5);
        Assert.That(r.Rax, Is.EqualTo(ulong.MaxValue));
        Assert.That(r.Rdx, Is.EqualTo(4UL));
        Assert.That(Names(r.Arith), Is.EqualTo(""), "5 - 0 - 1 = 4: no borrow, odd parity");
    }

    [Test]
    public void Inc_AfterAdd_KeepsItsCarry()
    {
        var r = _run.Run(a =>
        {
            a.add(al, bl);   // 0xFF + 1: CF=1
            a.inc(ecx);      // CF stays 1
            a.adc(edx, 0);   // consumes it
        }, rax: 0xFF, rbx: 1, rcx: 0x7FFF_FFFF, rdx: 0);
        Assert.That(r.Rcx, Is.EqualTo(0x8000_0000UL));
        Assert.That(r.Rdx, Is.EqualTo(1UL));
    }

    [Test]
    public void AddAdc_RealMode_OperandSizePrefixSelects32Bits()
    {
        using var run = new InstructionRunner(GuestMode.Real);
        var r = run.Run(a =>
        {
            a.add(eax, ebx);  // 66-prefixed in 16-bit code
            a.adc(dx, cx);
        }, rax: 0xFFFF_FFFF, rbx: 1, rcx: 0x10, rdx: 0x20);
        Assert.That(r.Rax, Is.EqualTo(0UL));
        Assert.That(r.Rdx, Is.EqualTo(0x31UL));
    }
}
