using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Hypervisor.Core.Tests.Support.AluReference;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

/// <summary>
/// SHL/SAL/SHR/SAR/ROL/ROR/RCL/RCR and SHLD/SHRD (SDM vol. 2B). The reference below follows the
/// SDM's pseudo-code (one bit per loop turn). Where the SDM leaves a flag undefined the expected
/// value is QEMU TCG's, named as such: AF=0; OF for counts above 1 (SHL: CF XOR MSB(result),
/// SHR/SAR: 0, rotates: the count-1 formula); CF for SHL/SHR past the operand width (the loop's 0).
/// </summary>
public class ShiftTests
{
    private InstructionRunner _run = null!;

    [OneTimeSetUp]
    public void SetUp() => _run = new InstructionRunner();

    [OneTimeTearDown]
    public void TearDown() => _run.Dispose();

    private const ulong High = 0xA5A5_5A5A_C3C3_3C3C;
    private static readonly int[] Counts = { 0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 18, 31, 32, 33, 63, 64, 65, 0xFF };

    /// <summary>Result and status flags after one shift or rotate, from the SDM's loops.
    /// <paramref name="flagsIn"/> is returned unchanged where the instruction leaves flags alone.</summary>
    internal static (ulong Result, ulong Flags) Reference(string op, int size, ulong dest, int countOperand, ulong flagsIn)
    {
        int bits = size * 8;
        ulong mask = Mask(size), msb = Msb(size);
        dest &= mask;
        int count = countOperand & (size == 8 ? 0x3F : 0x1F);
        ulong cf = flagsIn & C, d = dest;
        switch (op)
        {
            case "Shl" or "Sal" or "Shr" or "Sar":
            {
                if (count == 0)
                    return (dest, flagsIn);
                for (int k = 0; k < count; k++)
                {
                    if (op is "Shl" or "Sal")
                    {
                        cf = (d & msb) != 0 ? C : 0;
                        d = (d << 1) & mask;
                    }
                    else
                    {
                        cf = (d & 1) != 0 ? C : 0;
                        d = op == "Sar" ? (d >> 1) | (d & msb) : d >> 1;
                    }
                }
                ulong of = op switch
                {
                    "Shl" or "Sal" => If((cf != 0) != ((d & msb) != 0), O), // SDM for count 1, QEMU for the rest
                    "Shr" => If(count == 1 && (dest & msb) != 0, O),          // SDM: MSB of the original; QEMU: 0 beyond 1
                    _ => 0,                                                  // SAR: 0
                };
                return (d, Szp(d, size) | cf | of); // AF: QEMU's 0
            }
            case "Rol" or "Ror":
            {
                if (count == 0)
                    return (dest, flagsIn);
                for (int k = 0; k < count % bits; k++)
                    d = op == "Rol" ? ((d << 1) | (d >> (bits - 1))) & mask : (d >> 1) | ((d & 1) << (bits - 1));
                // Flags change for any non-zero masked count, even one that is a multiple of the width.
                bool newCf = op == "Rol" ? (d & 1) != 0 : (d & msb) != 0;
                bool of = op == "Rol" ? ((d & msb) != 0) != newCf : ((d & msb) != 0) != ((d & (msb >> 1)) != 0);
                return (d, (flagsIn & ~(C | O)) | If(newCf, C) | If(of, O));
            }
            default: // Rcl, Rcr: a (width + 1)-bit rotation through CF
            {
                int tempCount = size switch { 1 => count % 9, 2 => count % 17, _ => count };
                if (tempCount == 0)
                    return (dest, flagsIn);
                ulong carry = cf != 0 ? 1UL : 0;
                for (int k = 0; k < tempCount; k++)
                {
                    if (op == "Rcl")
                    {
                        ulong outBit = (d & msb) != 0 ? 1UL : 0;
                        d = ((d << 1) | carry) & mask;
                        carry = outBit;
                    }
                    else
                    {
                        ulong outBit = d & 1;
                        d = (d >> 1) | (carry << (bits - 1));
                        carry = outBit;
                    }
                }
                // OF: MSB(original) XOR MSB(result), which is the SDM's formula when the count is 1.
                bool of = ((dest ^ d) & msb) != 0;
                return (d, (flagsIn & ~(C | O)) | If(carry != 0, C) | If(of, O));
            }
        }
    }

    private static readonly string[] ShiftOps = { "Shl", "Sal", "Shr", "Sar", "Rol", "Ror", "Rcl", "Rcr" };

    // ---- Hand-computed rows --------------------------------------------------------------------

    [TestCase("Shl", 1, 0x81UL, 1, 0UL, 0x02UL, "C O")]                  // MSB out to CF; sign changed
    [TestCase("Shl", 2, 0x4001UL, 1, 0UL, 0x8002UL, "S O")]
    [TestCase("Shl", 4, 0x0000_0001UL, 31, 0UL, 0x8000_0000UL, "P S O")] // OF per QEMU: CF(0) XOR MSB(1)
    [TestCase("Shl", 8, 0x3UL, 63, 0UL, 0x8000_0000_0000_0000UL, "C P S")]
    [TestCase("Shr", 1, 0x81UL, 1, 0UL, 0x40UL, "C O")]                  // OF = MSB of the original
    [TestCase("Shr", 4, 0x8000_0000UL, 31, 0UL, 0x1UL, "")]
    [TestCase("Shr", 2, 0xFFFFUL, 16, 0UL, 0x0UL, "C P Z")]              // whole word out; last bit out was bit 15
    [TestCase("Sar", 1, 0x81UL, 1, 0UL, 0xC0UL, "C P S")]                // sign copied, OF=0
    [TestCase("Sar", 8, 0x8000_0000_0000_0000UL, 63, 0UL, ulong.MaxValue, "P S")]
    [TestCase("Rol", 1, 0x81UL, 1, 0UL, 0x03UL, "C O")]                  // CF = LSB; OF = MSB(0) XOR CF(1); PF untouched
    [TestCase("Ror", 1, 0x01UL, 1, 0UL, 0x80UL, "C O")]
    [TestCase("Rol", 4, 0x8000_0001UL, 4, RFlags.Arith, 0x18UL, "P A Z S")]
    [TestCase("Rcl", 1, 0x80UL, 1, RFlags.Cf, 0x01UL, "C O")]            // 1:0x80 -> CF=1, 0x01
    [TestCase("Rcr", 2, 0x0001UL, 1, 0UL, 0x0000UL, "C")]                // OF = MSB(1) XOR CF(0) = 0
    [TestCase("Rcl", 1, 0x55UL, 9, 0UL, 0x55UL, "")]                     // 9 mod 9 = 0: nothing changes
    [TestCase("Rcr", 8, 0x1UL, 64, RFlags.Zf, 0x1UL, "Z")]              // 64 masks to 0
    public void Shift_HandComputed(string op, int size, ulong value, int count, ulong flagsIn, ulong expected, string flags)
    {
        var code = CodeOf(op + "_rm{0}_CL", size);
        var r = _run.Run(Insn(Instruction.Create(code, Reg(0, size), Register.CL)), rax: value, rcx: (ulong)count, flags: flagsIn);
        Assert.That(r.Rax & Mask(size), Is.EqualTo(expected));
        Assert.That(Names(r.Arith), Is.EqualTo(Names(Flags(flags))));
        Assert.That(Reference(op, size, value, count, flagsIn), Is.EqualTo((expected, Flags(flags))), "the reference agrees with the row");
    }

    // ---- Every size, count and form against the reference -------------------------------------------

    [Test]
    public void ShiftByCl_EverySizeAndCount_MatchesReference([ValueSource(nameof(ShiftOps))] string op)
    {
        foreach (int size in Sizes)
            foreach (ulong v in Edges(size))
                foreach (int count in Counts)
                    foreach (ulong flagsIn in new[] { 0UL, C | P | A | Z | S | O })
                    {
                        ulong rax = v | (High & ~Mask(size));
                        var code = CodeOf(op + "_rm{0}_CL", size);
                        // Bits of RCX above CL are not part of the count.
                        var r = _run.Run(Insn(Instruction.Create(code, Reg(0, size), Register.CL)), rax: rax, rcx: (ulong)count | 0xFF00, flags: flagsIn);
                        var (res, f) = Reference(op, size, v, count, flagsIn);
                        string what = $"{op}{size * 8} {v:x} cl={count} flags={Names(flagsIn)}";
                        // Count 0 still writes the destination back: a 32-bit register has bits 63:32 cleared.
                        Assert.That(r.Rax, Is.EqualTo(ArithmeticTests.Merge(rax, res, size)), what);
                        Assert.That(Names(r.Arith), Is.EqualTo(Names(f)), what);
                    }
    }

    [Test]
    public void ShiftByImm8_EverySize_MatchesReference([ValueSource(nameof(ShiftOps))] string op)
    {
        foreach (int size in Sizes)
            foreach (int count in new[] { 0, 1, 5, 9, 17, 31, 33, 63, 64, 200 })
            {
                const ulong v = 0x8123_4567_89AB_CDEF;
                var code = CodeOf(op + "_rm{0}_imm8", size);
                var r = _run.Run(Insn(Instruction.Create(code, Reg(3, size), count)), rbx: v, flags: C | O);
                var (res, f) = Reference(op, size, v, count, C | O);
                string what = $"{op}{size * 8} imm={count}";
                Assert.That(r.Rbx, Is.EqualTo(ArithmeticTests.Merge(v, res, size)), what);
                Assert.That(Names(r.Arith), Is.EqualTo(Names(f)), what);
            }
    }

    [Test]
    public void ShiftByOne_EverySize_MatchesReference([ValueSource(nameof(ShiftOps))] string op)
    {
        foreach (int size in Sizes)
            foreach (ulong v in Edges(size))
                foreach (ulong flagsIn in new[] { 0UL, C })
                {
                    var code = CodeOf(op + "_rm{0}_1", size);
                    var r = _run.Run(Insn(Instruction.Create(code, Reg(2, size), 1)), rdx: v, flags: flagsIn);
                    var (res, f) = Reference(op, size, v, 1, flagsIn);
                    string what = $"{op}{size * 8} {v:x},1 CF={flagsIn}";
                    Assert.That(r.Rdx & Mask(size), Is.EqualTo(res), what);
                    Assert.That(Names(r.Arith), Is.EqualTo(Names(f)), what);
                }
    }

    [Test]
    public void Shift_MemoryDestination_EverySize()
    {
        foreach (int size in Sizes)
            foreach (string op in ShiftOps)
            {
                const ulong v = 0x0102_0408_1020_4080;
                _run.WriteData(0, v);
                var mem = new MemoryOperand(Register.RBX);
                var r = _run.Run(Insn(Instruction.Create(CodeOf(op + "_rm{0}_CL", size), mem, Register.CL)), rbx: InstructionRunner.Data, rcx: 3, flags: C);
                var (res, f) = Reference(op, size, v, 3, C);
                Assert.That(_run.ReadData(0, 8), Is.EqualTo((v & ~Mask(size)) | res), $"{op}{size * 8} [mem]");
                Assert.That(Names(r.Arith), Is.EqualTo(Names(f)), $"{op}{size * 8} [mem]");
            }
    }

    [Test]
    public void Shift_HighByteRegister()
    {
        var r = _run.Run(a => a.rol(ah, 4), rax: 0x1234_A5C3);
        Assert.That(r.Rax, Is.EqualTo(0x1234_5AC3UL));
    }

    [Test]
    public void Shl32_CountMaskedToZero_ClearsUpperHalfKeepsFlags()
    {
        // CL = 32 masks to 0 for a 32-bit operand: no flag changes, but the register is written.
        var r = _run.Run(a => a.shl(eax, cl), rax: 0xFFFF_FFFF_8000_0001, rcx: 32, flags: A | O);
        Assert.That(r.Rax, Is.EqualTo(0x8000_0001UL));
        Assert.That(Names(r.Arith), Is.EqualTo("A O"));
    }

    [Test]
    public void Shl64_CountMaskedTo6Bits()
    {
        var r = _run.Run(a => a.shl(rax, cl), rax: 1, rcx: 0x41);
        Assert.That(r.Rax, Is.EqualTo(2UL));
    }

    [Test]
    public void Rcl_ChainedAfterShr_TakesItsCarry()
    {
        // A 128-bit shift right by one: SHR the high half, RCR the low half through CF.
        var r = _run.Run(a =>
        {
            a.shr(rdx, 1);
            a.rcr(rax, 1);
        }, rax: 0x2, rdx: 0x3);
        Assert.That(r.Rdx, Is.EqualTo(1UL));
        Assert.That(r.Rax, Is.EqualTo(0x8000_0000_0000_0001UL));
    }

    [Test]
    public void Shl_ReadOnlyMemory_FaultsWithoutChangingFlags()
    {
        using var run = new InstructionRunner();
        const ulong ro = 0x60_0000;
        run.Machine.Memory.WriteU64(ro, 0x40);
        run.MakeReadOnly2M(ro);
        var r = run.Run(a => a.shl(__dword_ptr[rbx], 1), rbx: ro, flags: Z);
        Assert.That(r.Vector, Is.EqualTo(Vector.PF));
        Assert.That(r.ErrorCode, Is.EqualTo(0x3UL));
        Assert.That(run.Machine.Memory.ReadU64(ro), Is.EqualTo(0x40UL));
        Assert.That(Names(r.Arith), Is.EqualTo("Z"));
    }

    // ---- SHLD / SHRD -----------------------------------------------------------------------------

    /// <summary>SHLD/SHRD per the SDM for counts up to the width. Counts of 17..31 on 16-bit operands
    /// (undefined) draw on dest:src:dest as QEMU does. CF is the last bit out; OF is the SDM's sign
    /// change for a count of 1, QEMU's MSB(destination shifted by count-1) XOR MSB(result) otherwise,
    /// where QEMU's 64-bit SHRD shifts the destination alone.</summary>
    internal static (ulong Result, ulong Flags) DoubleReference(bool left, int size, ulong dest, ulong src, int countOperand, ulong flagsIn)
    {
        int bits = size * 8;
        ulong mask = Mask(size), msb = Msb(size);
        dest &= mask;
        src &= mask;
        int count = countOperand & (size == 8 ? 0x3F : 0x1F);
        if (count == 0)
            return (dest, flagsIn);
        // The bit string the destination window slides over.
        UInt128 x = size == 2 ? ((UInt128)dest << 32) | ((UInt128)src << 16) | dest
            : left ? ((UInt128)dest << bits) | src : ((UInt128)src << bits) | dest;
        int windowLow = size == 2 && left ? 32 : left ? bits : 0;
        ulong Window(UInt128 v) => (ulong)(v >> windowLow) & mask;
        ulong r, beforeLast;
        if (left)
        {
            r = Window(x << count);
            beforeLast = Window(x << (count - 1));
        }
        else
        {
            r = Window(x >> count);
            beforeLast = size == 8 ? dest >> (count - 1) : Window(x >> (count - 1));
        }
        bool cf = left ? (beforeLast & msb) != 0 : (beforeLast & 1) != 0;
        bool of = ((beforeLast ^ r) & msb) != 0;
        return (r, Szp(r, size) | If(cf, C) | If(of, O));
    }

    [TestCase(true, 2, 0x1234UL, 0xABCDUL, 4, 0x234AUL, "C O")]
    [TestCase(true, 4, 0x8000_0000UL, 0xFFFF_FFFFUL, 1, 0x0000_0001UL, "C O")]
    [TestCase(true, 8, 0x0FUL, 0xF000_0000_0000_0000UL, 60, 0xFFUL << 56, "P S O")]
    [TestCase(false, 2, 0x1234UL, 0xABCDUL, 4, 0xD123UL, "S")]
    [TestCase(false, 4, 0x0000_0001UL, 0UL, 1, 0UL, "C P Z")]
    [TestCase(false, 8, 0x8000_0000_0000_0000UL, 1UL, 1, 0xC000_0000_0000_0000UL, "P S")]
    [TestCase(false, 2, 0x1234UL, 0xABCDUL, 20, 0x4ABCUL, "C O")]              // count > 16: (dest:src:dest) >> 20
    [TestCase(true, 2, 0x1234UL, 0xABCDUL, 20, 0xBCD1UL, "P S O")]             // count > 16: (dest:src:dest) << 20
    public void ShldShrd_HandComputed(bool left, int size, ulong dest, ulong src, int count, ulong expected, string flags)
    {
        var code = CodeOf((left ? "Shld" : "Shrd") + "_rm{0}_r{0}_CL", size);
        var r = _run.Run(Insn(Instruction.Create(code, Reg(0, size), Reg(3, size), Register.CL)), rax: dest, rbx: src, rcx: (ulong)count);
        Assert.That(r.Rax & Mask(size), Is.EqualTo(expected));
        Assert.That(r.Rbx, Is.EqualTo(src), "the source is not changed");
        Assert.That(Names(r.Arith), Is.EqualTo(Names(Flags(flags))));
        Assert.That(DoubleReference(left, size, dest, src, count, 0), Is.EqualTo((expected, Flags(flags))), "the reference agrees with the row");
    }

    [TestCase(true)]
    [TestCase(false)]
    public void ShldShrd_EverySizeAndCount_MatchesReference(bool left)
    {
        string name = left ? "Shld" : "Shrd";
        foreach (int size in new[] { 2, 4, 8 })
            foreach (ulong dest in Edges(size))
                foreach (ulong src in new[] { 0UL, Mask(size), 0x9C3B_1F86_E7D2_0A45UL & Mask(size) })
                    foreach (int count in Counts)
                    {
                        ulong rax = dest | (High & ~Mask(size));
                        bool useImm = count % 2 == 1;
                        var insn = useImm
                            ? Instruction.Create(CodeOf(name + "_rm{0}_r{0}_imm8", size), Reg(0, size), Reg(3, size), count)
                            : Instruction.Create(CodeOf(name + "_rm{0}_r{0}_CL", size), Reg(0, size), Reg(3, size), Register.CL);
                        var r = _run.Run(Insn(insn), rax: rax, rbx: src, rcx: (ulong)count, flags: A | Z);
                        var (res, f) = DoubleReference(left, size, dest, src, count, A | Z);
                        string what = $"{name}{size * 8} {dest:x},{src:x},{count}";
                        Assert.That(r.Rax, Is.EqualTo(ArithmeticTests.Merge(rax, res, size)), what);
                        Assert.That(Names(r.Arith), Is.EqualTo(Names(f)), what);
                    }
    }

    [Test]
    public void Shld_MemoryDestination()
    {
        _run.WriteData(8, 0x1111_2222_3333_4444);
        _run.Run(a => a.shld(__dword_ptr[rbx + 8], ecx, 8), rbx: InstructionRunner.Data, rcx: 0xAB00_0000);
        Assert.That(_run.ReadData(8, 8), Is.EqualTo(0x1111_2222_3344_44ABUL));
    }
}
