using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Translation;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Translation;

/// <summary>Compiled blocks must be indistinguishable from interpreted ones: random blocks are
/// run both ways and every register, the flags and memory compared.</summary>
[NonParallelizable]
public class BlockCompilerTests
{
    private static readonly AssemblerRegister64[] R64 = { rax, rcx, rdx, rbx, rsi, rdi, r8, r9 };
    private static readonly AssemblerRegister32[] R32 = { eax, ecx, edx, ebx, esi, edi, r8d, r9d };
    private static readonly AssemblerRegister16[] R16 = { ax, cx, dx, bx, si, di, r8w, r9w };
    private static readonly AssemblerRegister8[] R8 = { al, cl, dl, bl, ah, ch, r8b, r9b };

    private static void RandomInstruction(Assembler a, Random r)
    {
        int size = r.Next(4);
        int x = r.Next(8), y = r.Next(8);
        int imm = r.Next(6) switch { 0 => 0, 1 => -1, 2 => int.MinValue, 3 => r.Next(256), _ => r.Next() };
        int op = r.Next(12);
        // Memory forms go through the called executors; [r10] is a scratch qword.
        if (op == 11)
        {
            switch (r.Next(3))
            {
                case 0: a.add(__qword_ptr[r10], R64[x]); break;
                case 1: a.sub(R32[x], __dword_ptr[r10]); break;
                default: a.mov(__qword_ptr[r10], R64[x]); break;
            }
            return;
        }
        switch (size)
        {
            case 0:
                switch (op)
                {
                    case 0: a.add(R64[x], R64[y]); break;
                    case 1: a.sub(R64[x], imm); break;
                    case 2: a.cmp(R64[x], R64[y]); break;
                    case 3: a.and(R64[x], imm); break;
                    case 4: a.or(R64[x], R64[y]); break;
                    case 5: a.xor(R64[x], imm); break;
                    case 6: a.test(R64[x], R64[y]); break;
                    case 7: a.mov(R64[x], R64[y]); break;
                    case 8: a.inc(R64[x]); break;
                    case 9: a.dec(R64[x]); break;
                    default: a.mov(R64[x], (ulong)(long)imm * 0x10001); break;
                }
                break;
            case 1:
                switch (op)
                {
                    case 0: a.add(R32[x], R32[y]); break;
                    case 1: a.sub(R32[x], imm); break;
                    case 2: a.cmp(R32[x], imm); break;
                    case 3: a.and(R32[x], R32[y]); break;
                    case 4: a.or(R32[x], imm); break;
                    case 5: a.xor(R32[x], R32[y]); break;
                    case 6: a.test(R32[x], imm); break;
                    case 7: a.mov(R32[x], R32[y]); break;
                    case 8: a.inc(R32[x]); break;
                    case 9: a.dec(R32[x]); break;
                    default: a.nop(); break;
                }
                break;
            case 2:
                switch (op)
                {
                    case 0: a.add(R16[x], R16[y]); break;
                    case 1: a.sub(R16[x], (short)imm); break;
                    case 2: a.cmp(R16[x], R16[y]); break;
                    case 8: a.inc(R16[x]); break;
                    case 9: a.dec(R16[x]); break;
                    default: a.mov(R16[x], (ushort)imm); break;
                }
                break;
            default:
                // Keep AH..BH and the REX byte registers apart (they cannot share an instruction).
                var b1 = R8[x]; var b2 = R8[y];
                bool high1 = x is 4 or 5, high2 = y is 4 or 5, rex1 = x >= 6, rex2 = y >= 6;
                if ((high1 && rex2) || (high2 && rex1)) b2 = b1;
                switch (op)
                {
                    case 0: a.add(b1, b2); break;
                    case 1: a.sub(b1, (sbyte)imm); break;
                    case 2: a.cmp(b1, b2); break;
                    case 8: a.inc(b1); break;
                    case 9: a.dec(b1); break;
                    default: a.xor(b1, b2); break;
                }
                break;
        }
    }

    private static readonly Action<Assembler, Iced.Intel.Label>[] Jccs =
    {
        (a, l) => a.jo(l), (a, l) => a.jno(l), (a, l) => a.jb(l), (a, l) => a.jae(l), (a, l) => a.je(l), (a, l) => a.jne(l),
        (a, l) => a.jbe(l), (a, l) => a.ja(l), (a, l) => a.js(l), (a, l) => a.jns(l), (a, l) => a.jp(l), (a, l) => a.jnp(l),
        (a, l) => a.jl(l), (a, l) => a.jge(l), (a, l) => a.jle(l), (a, l) => a.jg(l),
    };

    /// <summary>A loop whose body is random; the loop counter is R11 so the body cannot break it.</summary>
    private static string Run(int seed, bool compiled, ulong maxInstructions = 1_000_000)
    {
        bool savedEnabled = BlockCompiler.Enabled;
        int savedThreshold = BlockCompiler.Threshold;
        BlockCompiler.Enabled = compiled;
        BlockCompiler.Threshold = 0;
        try
        {
            var r = new Random(seed);
            using var m = new GuestMachine(GuestMode.Long64);
            for (int k = 0; k < 8; k++)
                m.Cpu.SetGpr(k == 4 ? 8 : k, (ulong)r.NextInt64() ^ ((ulong)r.Next(2) << 63));
            m.Cpu.SetGpr(Gpr.R10, GuestMachine.DataBase);
            var a = m.NewAssembler();
            var top = a.CreateLabel();
            var skip = a.CreateLabel();
            a.mov(r11, 50);
            a.Label(ref top);
            int count = r.Next(1, 20);
            for (int k = 0; k < count; k++)
                RandomInstruction(a, r);
            // The instruction before the branch sets the flags it tests, in one of the forms the
            // compiler decides directly, and every seed tries another of the 16 conditions.
            int x = r.Next(8), y = r.Next(8);
            switch (r.Next(7))
            {
                case 0: a.cmp(R64[x], R64[y]); break;
                case 1: a.cmp(R32[x], R32[r.Next(2) == 0 ? x : y]); break;
                case 2: a.sub(R16[x], R16[y]); break;
                case 3: a.test(R32[x], R32[y]); break;
                case 4: a.add(R64[x], R64[y]); break;
                case 5: a.dec(R32[x]); break;
                default: a.inc(R16[x]); break;
            }
            Jccs[seed % 16](a, skip);
            a.add(r12, 1);
            a.Label(ref skip);
            for (int k = 0; k < 3; k++)
                RandomInstruction(a, r);
            a.pushfq();
            a.pop(r13);
            a.xor(r14, r13);              // accumulate flags of every iteration
            a.sub(r11, 1);
            a.jne(top);
            a.hlt();
            m.Load(a);
            var exit = m.Run(maxInstructions);
            var s = new System.Text.StringBuilder($"{exit.Reason} retired={m.Cpu.InstructionsRetired} rip={m.Cpu.Rip:x} flags={m.Cpu.GetRFlags():x}");
            for (int g = 0; g < 16; g++)
                s.Append($" r{g}={m.Cpu.GetGpr(g):x}");
            s.Append($" mem={m.Memory.ReadU64(GuestMachine.DataBase):x}");
            return s.ToString();
        }
        finally
        {
            BlockCompiler.Enabled = savedEnabled;
            BlockCompiler.Threshold = savedThreshold;
        }
    }

    [Test]
    public void RandomBlocks_CompiledEqualsInterpreted([Range(1, 96)] int seed)
    {
        Assert.That(Run(seed, compiled: true), Is.EqualTo(Run(seed, compiled: false)));
    }

    [Test]
    public void SelfLoop_StopsExactlyAtInstructionBudget([Values(1UL, 7UL, 100UL, 1001UL, 4097UL)] ulong budget)
    {
        Assert.That(Run(99, compiled: true, budget), Is.EqualTo(Run(99, compiled: false, budget)));
    }
}
