using System.Numerics;
using Hypervisor.Core.Machine.Cpu;
using Vector = Hypervisor.Core.Machine.Cpu.Vector;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Hypervisor.Core.Tests.Support.AluReference;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

/// <summary>
/// MUL/IMUL/DIV/IDIV (SDM vol. 2A/2B). Multiplies: CF=OF=1 when the upper half is significant;
/// SF/ZF/PF (of the low half) and AF=0 are undefined in the SDM and QEMU's values here. Divides:
/// #DE for a zero divisor or a quotient that does not fit, with no register changed; the flags
/// (undefined) are left as they were, as in QEMU.
/// </summary>
public class MulDivTests
{
    private InstructionRunner _run = null!;

    [OneTimeSetUp]
    public void SetUp() => _run = new InstructionRunner();

    [OneTimeTearDown]
    public void TearDown() => _run.Dispose();

    private const ulong High = 0x7777_6666_5555_4444;

    /// <summary>Low and high halves of the exact product, and whether the high half is significant.</summary>
    private static (ulong Low, ulong HighHalf, bool Overflow) Product(bool signed, int size, ulong a, ulong b)
    {
        int bits = size * 8;
        BigInteger p = signed ? (BigInteger)Signed(a, size) * Signed(b, size) : (BigInteger)(a & Mask(size)) * (b & Mask(size));
        var modulus = BigInteger.One << (2 * bits);
        BigInteger u = ((p % modulus) + modulus) % modulus;
        ulong low = (ulong)(u & Mask(size)), high = (ulong)((u >> bits) & Mask(size));
        bool overflow = signed ? p != Signed(low, size) : high != 0;
        return (low, high, overflow);
    }

    private static ulong MulFlags(ulong low, bool overflow, int size) => Szp(low, size) | If(overflow, C | O);

    [TestCase(1, 0x10UL, 0x10UL, 0x0100UL, "C P Z O")]           // AX = 0x100: AH significant, AL zero
    [TestCase(2, 0xFFFFUL, 0xFFFFUL, 0xFFFE_0001UL, "C O")]       // DX:AX
    [TestCase(4, 0x1_0000UL, 0x1_0000UL, 0x1_0000_0000UL, "C P Z O")]
    [TestCase(4, 3UL, 5UL, 15UL, "P")]                             // EDX = 0: no overflow
    public void Mul_HandComputed(int size, ulong a, ulong b, ulong product, string flags)
    {
        var r = _run.Run(Insn(Instruction.Create(CodeOf("Mul_rm{0}", size), Reg(3, size))), rax: a, rbx: b, rdx: High, flags: A);
        ulong got = size == 1 ? r.Rax & 0xFFFF : ((r.Rdx & Mask(size)) << (size * 8)) | (r.Rax & Mask(size));
        Assert.That(got, Is.EqualTo(product));
        Assert.That(Names(r.Arith), Is.EqualTo(Names(Flags(flags))));
    }

    [Test]
    public void Mul64_FullProductInRdxRax()
    {
        var r = _run.Run(a => a.mul(rbx), rax: ulong.MaxValue, rbx: ulong.MaxValue);
        Assert.That(r.Rax, Is.EqualTo(1UL));
        Assert.That(r.Rdx, Is.EqualTo(0xFFFF_FFFF_FFFF_FFFEUL));
        Assert.That(Names(r.Arith), Is.EqualTo("C O"));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void MulImul_OneOperand_EverySize_MatchProduct(bool signed)
    {
        string name = signed ? "Imul" : "Mul";
        foreach (int size in Sizes)
            foreach (ulong a in Edges(size))
                foreach (ulong b in Edges(size))
                {
                    ulong rax = a | (High & ~Mask(size)), rdx = High;
                    var r = _run.Run(Insn(Instruction.Create(CodeOf(name + "_rm{0}", size), Reg(3, size))), rax: rax, rbx: b, rdx: rdx, flags: A | Z);
                    var (low, high, overflow) = Product(signed, size, a, b);
                    string what = $"{name}{size * 8} {a:x}*{b:x}";
                    if (size == 1)
                    {
                        // AX = AL * r/m8; DX untouched.
                        Assert.That(r.Rax, Is.EqualTo((rax & ~0xFFFFUL) | (high << 8) | low), what);
                        Assert.That(r.Rdx, Is.EqualTo(rdx), what);
                    }
                    else
                    {
                        Assert.That(r.Rax, Is.EqualTo(ArithmeticTests.Merge(rax, low, size)), what);
                        Assert.That(r.Rdx, Is.EqualTo(ArithmeticTests.Merge(rdx, high, size)), what);
                    }
                    Assert.That(Names(r.Arith), Is.EqualTo(Names(MulFlags(low, overflow, size))), what);
                }
    }

    [Test]
    public void Imul_TwoOperand_EverySize_TruncatesAndFlagsOverflow()
    {
        foreach (int size in new[] { 2, 4, 8 })
            foreach (ulong a in Edges(size))
                foreach (ulong b in Edges(size))
                {
                    ulong rcx = a | (High & ~Mask(size));
                    var r = _run.Run(Insn(Instruction.Create(CodeOf("Imul_r{0}_rm{0}", size), Reg(1, size), Reg(3, size))), rcx: rcx, rbx: b, rdx: High);
                    var (low, _, overflow) = Product(true, size, a, b);
                    string what = $"imul{size * 8} {a:x},{b:x}";
                    Assert.That(r.Rcx, Is.EqualTo(ArithmeticTests.Merge(rcx, low, size)), what);
                    Assert.That(r.Rdx, Is.EqualTo(High), "the two-operand form leaves DX alone");
                    Assert.That(Names(r.Arith), Is.EqualTo(Names(MulFlags(low, overflow, size))), what);
                }
    }

    [TestCase(2, "Imul_r{0}_rm{0}_imm8", -128)]
    [TestCase(2, "Imul_r{0}_rm{0}_imm16", 0x7FFF)]
    [TestCase(4, "Imul_r{0}_rm{0}_imm8", 127)]
    [TestCase(4, "Imul_r{0}_rm{0}_imm32", -0x1234_5678)]
    [TestCase(8, "Imul_r{0}_rm{0}_imm8", -1)]
    [TestCase(8, "Imul_r{0}_rm{0}_imm32", int.MinValue)]
    public void Imul_ThreeOperand_SignExtendedImmediate(int size, string code, int imm)
    {
        foreach (ulong a in Edges(size))
        {
            var r = _run.Run(Insn(Instruction.Create(CodeOf(code, size), Reg(2, size), Reg(3, size), imm)), rbx: a, rdx: High);
            var (low, _, overflow) = Product(true, size, a, (ulong)(long)imm);
            string what = $"imul{size * 8} {a:x}*{imm}";
            Assert.That(r.Rdx, Is.EqualTo(ArithmeticTests.Merge(High, low, size)), what);
            Assert.That(r.Rbx, Is.EqualTo(a), "the source is not changed");
            Assert.That(Names(r.Arith), Is.EqualTo(Names(MulFlags(low, overflow, size))), what);
        }
    }

    [Test]
    public void Imul_MemorySource()
    {
        _run.WriteData(0, unchecked((ulong)-3L));
        var r = _run.Run(a => a.imul(rcx, __qword_ptr[rbx], 7), rbx: InstructionRunner.Data);
        Assert.That(r.Rcx, Is.EqualTo(unchecked((ulong)-21L)));
        Assert.That(Names(r.Arith), Is.EqualTo("P S"), "low byte 0xEB has six bits set");
    }

    // ---- Division ---------------------------------------------------------------------------------

    /// <summary>The dividend DIV/IDIV see: AX for bytes, else DX:AX, EDX:EAX or RDX:RAX.</summary>
    private static BigInteger Dividend(bool signed, int size, ulong rax, ulong rdx)
    {
        if (size == 1)
            return signed ? (short)rax : (ushort)rax;
        int bits = size * 8;
        BigInteger u = ((BigInteger)(rdx & Mask(size)) << bits) | (rax & Mask(size));
        if (signed && (rdx & Msb(size)) != 0)
            u -= BigInteger.One << (2 * bits);
        return u;
    }

    [TestCase(false)]
    [TestCase(true)]
    public void DivIdiv_EverySize_QuotientRemainderOrDe(bool signed)
    {
        string name = signed ? "Idiv" : "Div";
        var dividendHighs = new ulong[] { 0, 1, 0x7F, 0x80, ulong.MaxValue, 0x1234_5678_9ABC_DEF0 };
        foreach (int size in Sizes)
            foreach (ulong rdxIn in dividendHighs)
                foreach (ulong raxLow in Edges(size))
                    foreach (ulong d in Edges(size))
                    {
                        ulong rax = raxLow | (High & ~Mask(size)), rdx = size == 1 ? High : rdxIn;
                        if (size == 1)
                            rax = (rax & ~0xFF00UL) | ((rdxIn & 0xFF) << 8); // the byte form divides AX
                        ulong flags = C | Z | S; // must survive
                        var r = _run.Run(Insn(Instruction.Create(CodeOf(name + "_rm{0}", size), Reg(3, size))), rax: rax, rbx: d, rdx: rdx, flags: flags);
                        string what = $"{name}{size * 8} rdx={rdx:x} rax={rax:x} / {d:x}";
                        BigInteger n = Dividend(signed, size, rax, rdx), dv = signed ? Signed(d, size) : d & Mask(size);
                        bool de = dv.IsZero;
                        BigInteger q = 0, rem = 0;
                        if (!de)
                        {
                            q = BigInteger.DivRem(n, dv, out rem); // truncates toward zero; remainder has the dividend's sign
                            BigInteger lo = signed ? -(BigInteger.One << (size * 8 - 1)) : 0;
                            BigInteger hi = signed ? (BigInteger.One << (size * 8 - 1)) - 1 : Mask(size);
                            de = q < lo || q > hi;
                        }
                        if (de)
                        {
                            Assert.That(r.Vector, Is.EqualTo(Vector.DE), what);
                            Assert.That(r.FaultRip, Is.EqualTo(_run.CodeStart), what + ": #DE is a fault");
                            Assert.That((r.Rax, r.Rdx), Is.EqualTo((rax, rdx)), what + ": nothing written");
                        }
                        else
                        {
                            Assert.That(r.Faulted, Is.False, what);
                            ulong uq = (ulong)(q & Mask(size)), ur = (ulong)(rem & Mask(size));
                            if (size == 1)
                            {
                                Assert.That(r.Rax, Is.EqualTo((rax & ~0xFFFFUL) | (ur << 8) | uq), what);
                            }
                            else
                            {
                                Assert.That(r.Rax, Is.EqualTo(ArithmeticTests.Merge(rax, uq, size)), what);
                                Assert.That(r.Rdx, Is.EqualTo(ArithmeticTests.Merge(rdx, ur, size)), what);
                            }
                        }
                        Assert.That(r.Arith, Is.EqualTo(flags), what + ": flags unchanged");
                    }
    }

    [TestCase(1, 0xFF80UL, 0UL, 0xFFUL, TestName = "Idiv8_MinByMinusOne_IsDe")]      // -128 / -1
    [TestCase(2, 0x8000UL, 0xFFFFUL, 0xFFFFUL, TestName = "Idiv16_MinByMinusOne_IsDe")]
    [TestCase(4, 0x8000_0000UL, 0xFFFF_FFFFUL, 0xFFFF_FFFFUL, TestName = "Idiv32_MinByMinusOne_IsDe")]
    [TestCase(8, 0x8000_0000_0000_0000UL, ulong.MaxValue, ulong.MaxValue, TestName = "Idiv64_MinByMinusOne_IsDe")]
    public void Idiv_MostNegativeByMinusOne_RaisesDe(int size, ulong rax, ulong rdx, ulong divisor)
    {
        var r = _run.Run(Insn(Instruction.Create(CodeOf("Idiv_rm{0}", size), Reg(3, size))), rax: rax, rbx: divisor, rdx: rdx);
        Assert.That(r.Vector, Is.EqualTo(Vector.DE));
        Assert.That((r.Rax, r.Rdx), Is.EqualTo((rax, rdx)));
    }

    [Test]
    public void Div64_128By64_UsesRdx()
    {
        // (2^64 * 5 + 7) / 6 = 0xD555_5555_5555_5556 rem 3.
        var r = _run.Run(a => a.div(rbx), rax: 7, rdx: 5, rbx: 6);
        Assert.That(r.Rax, Is.EqualTo(0xD555_5555_5555_5556UL));
        Assert.That(r.Rdx, Is.EqualTo(3UL));
    }

    [Test]
    public void Idiv64_Negative128By64_TruncatesTowardZero()
    {
        // -(2^64 + 1) / 3 = -6148914691236517205 rem -2.
        var r = _run.Run(a => a.idiv(rbx), rax: ulong.MaxValue, rdx: unchecked((ulong)-2L), rbx: 3);
        Assert.That((long)r.Rax, Is.EqualTo(-6148914691236517205L));
        Assert.That((long)r.Rdx, Is.EqualTo(-2L));
    }

    [Test]
    public void Div64_QuotientOf2To64_IsDe()
    {
        var r = _run.Run(a => a.div(rbx), rax: 0, rdx: 1, rbx: 1);
        Assert.That(r.Vector, Is.EqualTo(Vector.DE));
    }

    [Test]
    public void Div_ByZeroInMemory_IsDe()
    {
        _run.WriteData(0, 0);
        var r = _run.Run(a => a.div(__dword_ptr[rbx]), rax: 1, rbx: InstructionRunner.Data);
        Assert.That(r.Vector, Is.EqualTo(Vector.DE));
        Assert.That(r.FaultRip, Is.EqualTo(_run.CodeStart));
    }

    [Test]
    public void Div_ByZeroWithoutIdt_EscalatesToShutdown()
    {
        // No usable IDT: #DE cannot be delivered and escalates to a triple fault (SDM vol. 3 §6.15).
        using var m = new GuestMachine(GuestMode.Long64);
        m.Cpu.Idtr = new DescriptorTable { Base = 0, Limit = 0 };
        var a = m.NewAssembler();
        a.xor(ecx, ecx);
        a.div(ecx);
        a.hlt();
        m.Load(a);
        var exit = m.Run();
        Assert.That(exit.Reason, Is.EqualTo(Hypervisor.Core.Machine.Decoding.CpuExitReason.Shutdown));
        Assert.That(exit.Message, Does.Contain("triple fault"));
    }

    [Test]
    public void DivIdiv_RealMode_ByteAndWordForms()
    {
        using var run = new InstructionRunner(GuestMode.Real);
        var r = run.Run(a =>
        {
            a.div(bl);     // AX 1000 / 7 = 142 rem 6
            a.mov(dx, 0xFFFF);
            a.mov(si, ax); // keep AH:AL
            a.mov(ax, unchecked((ushort)-1000));
            a.idiv(cx);    // DX:AX = -1000 / 7 = -142 rem -6
        }, rax: 1000, rbx: 7, rcx: 7);
        Assert.That(run.Cpu.GetGpr(Gpr.Rsi) & 0xFFFF, Is.EqualTo((6UL << 8) | 142));
        Assert.That(r.Rax & 0xFFFF, Is.EqualTo(unchecked((ulong)(ushort)-142)));
        Assert.That(r.Rdx & 0xFFFF, Is.EqualTo(unchecked((ulong)(ushort)-6)));
    }

    [Test]
    public void Div_RealMode_ByZero_DeliveredThroughIvt()
    {
        using var run = new InstructionRunner(GuestMode.Real);
        var r = run.Run(a => a.div(bl), rax: 5, rbx: 0);
        Assert.That(r.Vector, Is.EqualTo(Vector.DE));
        Assert.That(r.FaultRip, Is.EqualTo(run.CodeStart));
    }
}
