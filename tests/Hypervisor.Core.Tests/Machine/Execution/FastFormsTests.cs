using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;

namespace Hypervisor.Core.Tests.Machine.Execution;

/// <summary>The specialized executors must be indistinguishable from the generic ones: every
/// covered mnemonic, size and form runs through both and leaves identical registers, flags and memory.</summary>
[NonParallelizable]
public class FastFormsTests
{
    private static readonly string[] Mnemonics = { "Add", "Sub", "Cmp", "And", "Or", "Xor", "Test", "Mov", "Inc", "Dec" };
    private static readonly int[] Sizes = { 8, 16, 32, 64 };

    public static IEnumerable<TestCaseData> Cases()
    {
        foreach (var m in Mnemonics)
            foreach (int bits in Sizes)
                foreach (var code in CodesFor(m, bits))
                    yield return new TestCaseData(code).SetName($"FastForm_{code}_MatchesGeneric");
    }

    private static IEnumerable<Code> CodesFor(string m, int bits)
    {
        string[] names = m is "Inc" or "Dec"
            ? new[] { $"{m}_rm{bits}", $"{m}_r{bits}" }
            : new[]
            {
                $"{m}_rm{bits}_r{bits}", $"{m}_r{bits}_rm{bits}", $"{m}_rm{bits}_imm{Math.Min(bits, 32)}",
                $"{m}_rm{bits}_imm8", $"{m}_r{bits}_imm{bits}", $"{m}_r{bits}_imm{Math.Min(bits, 32)}",
            };
        foreach (var n in names.Distinct())
            if (Enum.TryParse<Code>(n, out var c) && c.ToOpCode().Mode64)
                yield return c;
    }

    [TestCaseSource(nameof(Cases))]
    public void FastForm_MatchesGeneric(Code code)
    {
        var rng = new Random((int)code);
        for (int trial = 0; trial < 24; trial++)
        {
            ulong a = Interesting(rng), b = Interesting(rng), imm = Interesting(rng);
            var fast = RunOnce(code, a, b, imm, specialize: true);
            var slow = RunOnce(code, a, b, imm, specialize: false);
            Assert.That(fast, Is.EqualTo(slow), $"{code} a=0x{a:x} b=0x{b:x} imm=0x{imm:x}");
        }
    }

    private static ulong Interesting(Random rng) => rng.Next(6) switch
    {
        0 => 0,
        1 => ulong.MaxValue,
        2 => 0x8000_0000_0000_0000UL >> (8 * rng.Next(8)),
        3 => (ulong)rng.Next(256),
        _ => (ulong)rng.NextInt64() ^ ((ulong)rng.Next() << 63),
    };

    private static string RunOnce(Code code, ulong a, ulong b, ulong imm, bool specialize)
    {
        bool saved = BlockTranslator.SpecializeForms;
        BlockTranslator.SpecializeForms = specialize;
        try
        {
            using var m = new GuestMachine(GuestMode.Long64);
            m.Memory.WriteU64(GuestMachine.DataBase, b);
            m.Cpu.SetGpr(Gpr.Rax, a);
            m.Cpu.SetGpr(Gpr.Rcx, b);
            m.Cpu.SetGpr(Gpr.Rsi, GuestMachine.DataBase);
            // Flags before the instruction are all set, so untouched flags are visible too.
            m.Cpu.SetRFlags(RFlags.Fixed1 | RFlags.Arith);
            var asm = m.NewAssembler();
            asm.AddInstruction(Build(code, imm));
            asm.pushfq();
            asm.pop(Iced.Intel.AssemblerRegisters.rdx);
            asm.hlt();
            m.Load(asm);
            var exit = m.Run(100);
            return $"{exit.Reason} rax={m.Cpu.GetGpr(Gpr.Rax):x} rcx={m.Cpu.GetGpr(Gpr.Rcx):x} flags={m.Cpu.GetGpr(Gpr.Rdx):x} mem={m.Memory.ReadU64(GuestMachine.DataBase):x}";
        }
        finally
        {
            BlockTranslator.SpecializeForms = saved;
        }
    }

    /// <summary>Register operands are RAX (destination) and RCX (source); memory is [RSI].</summary>
    private static Instruction Build(Code code, ulong imm)
    {
        var op = OpCodeInfoOf(code);
        var regs = new List<object>();
        int bits = op.OperandSize;
        Register Reg(int index) => (bits == 0 ? 8 : bits) switch
        {
            8 => index == 0 ? Register.AL : Register.CL,
            16 => index == 0 ? Register.AX : Register.CX,
            32 => index == 0 ? Register.EAX : Register.ECX,
            _ => index == 0 ? Register.RAX : Register.RCX,
        };
        var mem = new MemoryOperand(Register.RSI);
        string name = code.ToString();
        bool firstIsRm = name.Contains("_rm") && name.IndexOf("_rm", StringComparison.Ordinal) == name.IndexOf('_');
        bool hasImm = name.Contains("_imm");
        bool useMem = firstIsRm ? (imm & 1) == 0 : name.EndsWith($"_rm{(bits == 0 ? 8 : bits)}", StringComparison.Ordinal) && (imm & 2) == 0;
        int immBits = hasImm ? int.Parse(name[(name.LastIndexOf("imm", StringComparison.Ordinal) + 3)..]) : 0;
        long immValue = immBits switch { 8 => (sbyte)imm, 16 => (short)imm, 32 => (int)imm, _ => (long)imm };
        int opCount = op.OpCount;
        if (opCount == 1)
            return useMem ? Instruction.Create(code, mem) : Instruction.Create(code, Reg(0));
        if (hasImm)
        {
            if (firstIsRm && useMem) return Instruction.Create(code, mem, (int)immValue);
            return immBits == 64 ? Instruction.Create(code, Reg(0), (ulong)immValue) : Instruction.Create(code, Reg(0), immValue);
        }
        if (firstIsRm)
            return useMem ? Instruction.Create(code, mem, Reg(1)) : Instruction.Create(code, Reg(0), Reg(1));
        return useMem ? Instruction.Create(code, Reg(0), mem) : Instruction.Create(code, Reg(0), Reg(1));
    }

    private static OpCodeInfo OpCodeInfoOf(Code code) => code.ToOpCode();
}
