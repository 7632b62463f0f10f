using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Hypervisor.Core.Tests.Support.AluReference;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

/// <summary>AND/OR/XOR/TEST/NOT (SDM vol. 2A/2B): CF=OF=0 and SF/ZF/PF from the result; AF is
/// undefined in the SDM and 0 here as in QEMU; NOT changes no flag.</summary>
public class LogicalTests
{
    private InstructionRunner _run = null!;

    [OneTimeSetUp]
    public void SetUp() => _run = new InstructionRunner();

    [OneTimeTearDown]
    public void TearDown() => _run.Dispose();

    private const ulong High = 0x0123_4567_89AB_CDEF;

    private static ulong Apply(string op, ulong a, ulong b) => op switch
    {
        "And" or "Test" => a & b,
        "Or" => a | b,
        _ => a ^ b,
    };

    [TestCase("And", 1, 0xF0UL, 0x0FUL, 0x00UL, "P Z")]
    [TestCase("And", 2, 0x8081UL, 0xFF01UL, 0x8001UL, "S")]
    [TestCase("Or", 4, 0x8000_0000UL, 0x0000_0003UL, 0x8000_0003UL, "P S")]
    [TestCase("Xor", 8, ulong.MaxValue, ulong.MaxValue, 0UL, "P Z")]
    [TestCase("Xor", 1, 0x0FUL, 0x08UL, 0x07UL, "")]
    [TestCase("Test", 8, 0x8000_0000_0000_0000UL, ulong.MaxValue, 0x8000_0000_0000_0000UL, "P S")]
    public void Logic_HandComputed_ResultAndFlags(string op, int size, ulong a, ulong b, ulong expected, string flags)
    {
        // Every status flag set beforehand: CF, OF and AF must come out 0.
        var r = _run.Run(Insn(Instruction.Create(CodeOf(op + "_rm{0}_r{0}", size), Reg(0, size), Reg(3, size))), rax: a, rbx: b, flags: RFlags.Arith);
        Assert.That(r.Rax & Mask(size), Is.EqualTo(op == "Test" ? a : expected));
        Assert.That(Apply(op, a, b), Is.EqualTo(expected), "the row itself");
        Assert.That(Names(r.Arith), Is.EqualTo(Names(Flags(flags))));
    }

    [TestCase("And")]
    [TestCase("Or")]
    [TestCase("Xor")]
    [TestCase("Test")]
    public void Logic_EdgeValuesEverySize_MatchDefinition(string op)
    {
        foreach (int size in Sizes)
            foreach (ulong a in Edges(size))
                foreach (ulong b in Edges(size))
                {
                    ulong rax = a | (High & ~Mask(size));
                    var r = _run.Run(Insn(Instruction.Create(CodeOf(op + "_rm{0}_r{0}", size), Reg(0, size), Reg(3, size))), rax: rax, rbx: b, flags: C | A | O);
                    ulong res = Apply(op, a, b) & Mask(size);
                    string what = $"{op}{size * 8} {a:x},{b:x}";
                    Assert.That(r.Rax, Is.EqualTo(op == "Test" ? rax : ArithmeticTests.Merge(rax, res, size)), what);
                    Assert.That(Names(r.Arith), Is.EqualTo(Names(Szp(res, size))), what);
                }
    }

    [TestCase(0UL)]
    [TestCase(C | P | A | Z | S | O)]
    public void Not_EverySize_InvertsAndKeepsFlags(ulong flags)
    {
        foreach (int size in Sizes)
            foreach (ulong a in Edges(size))
            {
                ulong rax = a | (High & ~Mask(size));
                var r = _run.Run(Insn(Instruction.Create(CodeOf("Not_rm{0}", size), Reg(0, size))), rax: rax, flags: flags);
                Assert.That(r.Rax, Is.EqualTo(ArithmeticTests.Merge(rax, ~a, size)), $"not{size * 8} {a:x}");
                Assert.That(r.Arith, Is.EqualTo(flags), "NOT affects no flags");
            }
    }

    [Test]
    public void Not_AfterLazyFlags_KeepsThem()
    {
        // The flags of the SUB are still pending when NOT runs; they must survive it.
        var r = _run.Run(a =>
        {
            a.sub(eax, ebx);
            a.not(rcx);
        }, rax: 1, rbx: 2, rcx: 0);
        Assert.That(r.Rcx, Is.EqualTo(ulong.MaxValue));
        Assert.That(Names(r.Arith), Is.EqualTo("C P A S"));
    }

    [Test]
    public void And_Imm8SignExtended_MasksTo64Bits()
    {
        var r = _run.Run(a => a.and(rax, -16), rax: 0xFFFF_FFFF_FFFF_FFFF);
        Assert.That(r.Rax, Is.EqualTo(0xFFFF_FFFF_FFFF_FFF0UL));
        Assert.That(Names(r.Arith), Is.EqualTo("P S"));
    }

    [Test]
    public void Or_Imm32_In64BitForm_IsSignExtended()
    {
        var r = _run.Run(a => a.or(rax, unchecked((int)0x8000_0000)), rax: 1);
        Assert.That(r.Rax, Is.EqualTo(0xFFFF_FFFF_8000_0001UL));
    }

    [Test]
    public void Xor_SameRegister32_ZeroesWholeRegister()
    {
        var r = _run.Run(a => a.xor(eax, eax), rax: ulong.MaxValue, flags: C | O);
        Assert.That(r.Rax, Is.Zero);
        Assert.That(Names(r.Arith), Is.EqualTo("P Z"));
    }

    [Test]
    public void Test_MemoryImm_ReadsOnly()
    {
        _run.WriteData(0, 0x0000_8000);
        var r = _run.Run(a => a.test(__word_ptr[rbx], 0x8000), rbx: InstructionRunner.Data);
        Assert.That(Names(r.Arith), Is.EqualTo("P S"));
        Assert.That(_run.ReadData(0, 8), Is.EqualTo(0x8000UL));
    }

    [Test]
    public void AndOrXor_MemoryDestination_ReadModifyWrite()
    {
        _run.WriteData(8, 0xFF00_FF00_FF00_FF00);
        _run.WriteData(16, 0x0000_0000_0000_0001);
        _run.WriteData(24, 0xAAAA_AAAA_AAAA_AAAA);
        _run.Run(a =>
        {
            a.and(__dword_ptr[rbx + 8], 0x0FF0_0FF0);
            a.or(__byte_ptr[rbx + 16], cl);
            a.@lock.xor(__qword_ptr[rbx + 24], rdx);
        }, rbx: InstructionRunner.Data, rcx: 0x80, rdx: ulong.MaxValue);
        Assert.That(_run.ReadData(8, 8), Is.EqualTo(0xFF00_FF00_0F00_0F00UL));
        Assert.That(_run.ReadData(16, 8), Is.EqualTo(0x81UL));
        Assert.That(_run.ReadData(24, 8), Is.EqualTo(0x5555_5555_5555_5555UL));
    }

    [Test]
    public void LockNot_MemoryDestination_Works()
    {
        _run.WriteData(32, 0x0F);
        var r = _run.Run(a => a.@lock.not(__byte_ptr[rbx + 32]), rbx: InstructionRunner.Data);
        Assert.That(r.Faulted, Is.False);
        Assert.That(_run.ReadData(32, 8), Is.EqualTo(0xF0UL));
    }

    [TestCase(new byte[] { 0xF0, 0x85, 0x03 }, TestName = "Lock_TestMemory_IsUd")]        // lock test [rbx], eax
    [TestCase(new byte[] { 0xF0, 0x31, 0xC0 }, TestName = "Lock_XorRegister_IsUd")]       // lock xor eax, eax
    [TestCase(new byte[] { 0xF0, 0xF7, 0xD0 }, TestName = "Lock_NotRegister_IsUd")]       // lock not eax
    public void Lock_NotAllowedForm_RaisesUd(byte[] bytes)
    {
        var r = _run.Run(a => a.db(bytes), rax: 7, rbx: InstructionRunner.Data);
        Assert.That(r.Vector, Is.EqualTo(Vector.UD));
        Assert.That(r.Rax, Is.EqualTo(7UL));
    }
}
