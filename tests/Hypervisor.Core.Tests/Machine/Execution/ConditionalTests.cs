using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Tests.Support;
using Hypervisor.Core.Tests.Support.Data;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

/// <summary>CMOVcc and SETcc for all sixteen conditions (Exec.Conditional.cs).</summary>
public class ConditionalTests
{
    private const ulong Data = GuestMachine.DataBase;
    private const ulong Old = 0xAAAA_AAAA_AAAA_AAAA, New = 0x5555_5555_5555_5555;

    // Opcodes: CMOVcc is 0F 40+cc /r, SETcc is 0F 90+cc /0 (SDM vol. 2 appendix B.1.4.7).
    private static byte[] Cmov64(int cc, byte modrm) => new byte[] { 0x48, 0x0F, (byte)(0x40 + cc), modrm };
    private static byte[] Setcc(int cc, byte modrm) => new byte[] { 0x0F, (byte)(0x90 + cc), modrm };

    [Test]
    public void Cmovcc_EveryFlagCombination_MovesExactlyWhenConditionHolds([Range(0, 15)] int cc)
    {
        var combos = RefFlags.ConditionCombinations().ToArray();
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            for (int k = 0; k < combos.Length; k++)
            {
                a.mov(rcx, Old);
                a.mov(rdx, New);
                RefFlags.Load(a, combos[k]);
                a.db(Cmov64(cc, 0xCA)); // cmovcc rcx, rdx
                a.mov(__qword_ptr[Data + (ulong)k * 8], rcx);
            }
        });
        for (int k = 0; k < combos.Length; k++)
        {
            ulong expected = RefFlags.Condition(cc, combos[k]) ? New : Old;
            Assert.That(m.Memory.ReadU64(Data + (ulong)k * 8), Is.EqualTo(expected), $"flags 0x{combos[k]:x}");
        }
    }

    [Test]
    public void Setcc_EveryFlagCombination_StoresConditionAsByte([Range(0, 15)] int cc)
    {
        var combos = RefFlags.ConditionCombinations().ToArray();
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            a.mov(rcx, Old);
            for (int k = 0; k < combos.Length; k++)
            {
                RefFlags.Load(a, combos[k]);
                a.db(Setcc(cc, 0xC1)); // setcc cl
                a.mov(__qword_ptr[Data + (ulong)k * 8], rcx);
            }
        });
        for (int k = 0; k < combos.Length; k++)
        {
            ulong expected = (Old & ~0xFFUL) | (RefFlags.Condition(cc, combos[k]) ? 1UL : 0);
            Assert.That(m.Memory.ReadU64(Data + (ulong)k * 8), Is.EqualTo(expected), $"flags 0x{combos[k]:x}");
        }
    }

    /// <summary>Operand pairs around the unsigned and signed boundaries of each size.</summary>
    private static IEnumerable<(ulong A, ulong B)> ComparePairs(int size)
    {
        ulong mask = RefFlags.Mask(size), sign = RefFlags.Sign(size);
        ulong[] values = { 0, 1, 2, sign - 1, sign, sign + 1, mask - 1, mask };
        foreach (ulong x in values)
            foreach (ulong y in values)
                yield return (x, y);
    }

    [Test]
    public void Setcc_AfterCmp_MatchesFlagsOfTheSubtraction([Range(0, 15)] int cc, [Values(1, 2, 4, 8)] int size)
    {
        // CMP leaves its operands pending and conditions are evaluated from them directly.
        var pairs = ComparePairs(size).ToArray();
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            for (int k = 0; k < pairs.Length; k++)
            {
                a.mov(rcx, pairs[k].A);
                a.mov(rdx, pairs[k].B);
                switch (size)
                {
                    case 1: a.cmp(cl, dl); break;
                    case 2: a.cmp(cx, dx); break;
                    case 4: a.cmp(ecx, edx); break;
                    default: a.cmp(rcx, rdx); break;
                }
                a.db(Setcc(cc, 0xC0)); // setcc al
                a.mov(__byte_ptr[Data + (ulong)k], al);
            }
        });
        var results = new byte[pairs.Length];
        m.Memory.Read(Data, results);
        for (int k = 0; k < pairs.Length; k++)
        {
            bool expected = RefFlags.Condition(cc, RefFlags.Sub(pairs[k].A, pairs[k].B, size));
            Assert.That(results[k], Is.EqualTo(expected ? 1 : 0), $"cmp 0x{pairs[k].A:x}, 0x{pairs[k].B:x}");
        }
    }

    [TestCase(2, true)]
    [TestCase(2, false)]
    [TestCase(4, true)]
    [TestCase(4, false)]
    [TestCase(8, true)]
    [TestCase(8, false)]
    public void Cmovcc_RegisterSizes_WriteOnlyWhatTheSizeWrites(int size, bool condition)
    {
        // cmovz with ZF set or clear. A false 32-bit CMOV still zero-extends its destination.
        const ulong flagsSet = F.ZF | F.CF | F.OF;
        ulong flags = condition ? flagsSet : flagsSet & ~F.ZF;
        using var m = new GuestMachine(GuestMode.Long64);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rcx, Old);
            a.mov(rdx, New);
            RefFlags.Load(a, flags);
            switch (size)
            {
                case 2: a.cmove(cx, dx); break;
                case 4: a.cmove(ecx, edx); break;
                default: a.cmove(rcx, rdx); break;
            }
        });
        ulong v = condition ? New : Old;
        ulong expected = size switch
        {
            2 => (Old & ~0xFFFFUL) | (v & 0xFFFF),
            4 => v & 0xFFFF_FFFF,
            _ => v,
        };
        Assert.That(cpu.GetGpr(Gpr.Rcx), Is.EqualTo(expected));
        Assert.That(m.Flags & F.Status, Is.EqualTo(flags));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Cmovcc_MemorySource_MovesWhenConditionHolds(bool condition)
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.WriteU64(Data, New);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rbx, Data);
            a.mov(rcx, Old);
            a.mov(rsi, Old);
            a.mov(edx, condition ? 1 : 2);
            a.cmp(edx, 1);
            a.cmove(rcx, __qword_ptr[rbx]);
            a.cmovne(esi, __dword_ptr[rbx]);
        });
        Assert.That(cpu.GetGpr(Gpr.Rcx), Is.EqualTo(condition ? New : Old));
        Assert.That(cpu.GetGpr(Gpr.Rsi), Is.EqualTo((condition ? Old : New) & 0xFFFF_FFFF));
    }

    [Test]
    public void Cmovcc_FalseConditionWithUnreadableSource_StillFaults()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        GuestPages.MakeFaultingRegions(m.Memory);
        ExceptionTrap.Install(m.Memory, m.Cpu);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rbx, GuestPages.NotPresent + 0x10);
            a.mov(rcx, Old);
            a.xor(eax, eax);                     // ZF = 1: cmovne is false
            a.cmovne(ecx, __dword_ptr[rbx]);
        });
        var caught = ExceptionTrap.Caught(m.Memory);
        Assert.That(caught?.Vector, Is.EqualTo(Vector.PF));
        Assert.That(caught?.ErrorCode, Is.EqualTo(0UL)); // not present, read, supervisor
        Assert.That(GuestPages.InstructionAt(m.Memory, caught!.Value.Rip).Mnemonic, Is.EqualTo(Mnemonic.Cmovne));
        Assert.That(cpu.GetGpr(Gpr.Rcx), Is.EqualTo(Old), "the faulting CMOV must not zero-extend");
        Assert.That(cpu.Cr2, Is.EqualTo(GuestPages.NotPresent + 0x10));
    }

    [Test]
    public void Setcc_Destinations_WriteOneByteOnly()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.WriteU64(Data, Old);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rax, Old);
            a.mov(r8, Old);
            a.mov(rbx, Data);
            a.stc();
            a.setb(ah);
            a.setb(r8b);
            a.setb(__byte_ptr[rbx + 1]);
            a.setae(__byte_ptr[rbx + 2]);
        });
        Assert.That(m.Rax, Is.EqualTo((Old & ~0xFF00UL) | 0x0100));
        Assert.That(cpu.GetGpr(Gpr.R8), Is.EqualTo((Old & ~0xFFUL) | 1));
        Assert.That(m.Memory.ReadU64(Data), Is.EqualTo((Old & ~0xFF_FF00UL) | 0x00_0100));
    }

    [Test]
    public void Setcc_ReadOnlyMemory_FaultsOnWrite()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        GuestPages.MakeFaultingRegions(m.Memory);
        ExceptionTrap.Install(m.Memory, m.Cpu);
        m.RunToHlt(a =>
        {
            a.mov(rbx, GuestPages.ReadOnly);
            a.sete(__byte_ptr[rbx]);
        });
        var caught = ExceptionTrap.Caught(m.Memory);
        Assert.That(caught?.Vector, Is.EqualTo(Vector.PF));
        Assert.That(caught?.ErrorCode, Is.EqualTo(3UL));
    }
}
