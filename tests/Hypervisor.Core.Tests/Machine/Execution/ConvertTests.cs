using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Tests.Support;
using Hypervisor.Core.Tests.Support.Data;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

/// <summary>CBW CWDE CDQE CWD CDQ CQO (Exec.Convert.cs).</summary>
public class ConvertTests
{
    // RAX values whose low byte, word and doubleword sit on both sides of each sign boundary.
    private static readonly ulong[] Accumulators =
    {
        0x0000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 0x1234_5678_9ABC_DE7F, 0x1234_5678_9ABC_DE80,
        0xFEDC_BA98_7654_7FFF, 0xFEDC_BA98_7654_8000, 0x0123_4567_7FFF_FFFF, 0x0123_4567_8000_0000,
        0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000,
    };

    private const ulong RdxInit = 0x5A5A_5A5A_5A5A_5A5A;

    private static ulong SignExtend(ulong v, int size) => size switch
    {
        1 => (ulong)(sbyte)v,
        2 => (ulong)(short)v,
        4 => (ulong)(int)v,
        _ => v,
    };

    /// <summary>Runs one conversion in 64-bit mode; flags are loaded first and must survive.</summary>
    private static (ulong Rax, ulong Rdx, ulong Flags) Run64(Action<Assembler> insn, ulong acc)
    {
        const ulong flags = F.CF | F.PF | F.SF | F.OF;
        using var m = new GuestMachine(GuestMode.Long64);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rax, acc);
            a.mov(rdx, RdxInit);
            RefFlags.Load(a, flags);
            insn(a);
        });
        Assert.That(m.Flags & F.Status, Is.EqualTo(flags), "conversions leave the flags alone");
        return (m.Rax, cpu.GetGpr(Gpr.Rdx), m.Flags);
    }

    [TestCaseSource(nameof(Accumulators))]
    public void Cbw_64BitMode_ExtendsAlIntoAxKeepingUpperBits(ulong rax)
    {
        var r = Run64(a => a.cbw(), rax);
        Assert.That(r.Rax, Is.EqualTo((rax & ~0xFFFFUL) | (SignExtend(rax & 0xFF, 1) & 0xFFFF)));
        Assert.That(r.Rdx, Is.EqualTo(RdxInit));
    }

    [TestCaseSource(nameof(Accumulators))]
    public void Cwde_64BitMode_ExtendsAxIntoEaxAndZeroExtends(ulong rax)
    {
        var r = Run64(a => a.cwde(), rax);
        Assert.That(r.Rax, Is.EqualTo(SignExtend(rax & 0xFFFF, 2) & 0xFFFF_FFFF));
    }

    [TestCaseSource(nameof(Accumulators))]
    public void Cdqe_64BitMode_ExtendsEaxIntoRax(ulong rax)
    {
        var r = Run64(a => a.cdqe(), rax);
        Assert.That(r.Rax, Is.EqualTo(SignExtend(rax & 0xFFFF_FFFF, 4)));
    }

    [TestCaseSource(nameof(Accumulators))]
    public void Cwd_64BitMode_FillsDxWithSignOfAx(ulong rax)
    {
        var r = Run64(a => a.cwd(), rax);
        ulong fill = (rax & 0x8000) != 0 ? 0xFFFFUL : 0;
        Assert.That(r.Rdx, Is.EqualTo((RdxInit & ~0xFFFFUL) | fill));
        Assert.That(r.Rax, Is.EqualTo(rax));
    }

    [TestCaseSource(nameof(Accumulators))]
    public void Cdq_64BitMode_FillsEdxWithSignOfEaxAndZeroExtends(ulong rax)
    {
        var r = Run64(a => a.cdq(), rax);
        Assert.That(r.Rdx, Is.EqualTo((rax & 0x8000_0000) != 0 ? 0xFFFF_FFFFUL : 0));
        Assert.That(r.Rax, Is.EqualTo(rax));
    }

    [TestCaseSource(nameof(Accumulators))]
    public void Cqo_64BitMode_FillsRdxWithSignOfRax(ulong rax)
    {
        var r = Run64(a => a.cqo(), rax);
        Assert.That(r.Rdx, Is.EqualTo((rax & 0x8000_0000_0000_0000) != 0 ? ulong.MaxValue : 0));
        Assert.That(r.Rax, Is.EqualTo(rax));
    }

    [TestCase(0x1234_5680u, 0xABCD_1234u)]
    [TestCase(0x8765_007Fu, 0xABCD_1234u)]
    [TestCase(0x0000_00FFu, 0x0000_0000u)]
    public void Conversions_RealMode_UseOperandSizeOfTheMode(uint eaxInit, uint edxInit)
    {
        // In real mode CBW and CWD are the plain forms; CWDE and CDQ carry the 66 prefix.
        using var m = new GuestMachine(GuestMode.Real);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(eax, eaxInit);
            a.mov(edx, edxInit);
            a.cbw();
            a.cwd();
            a.mov(esi, eax);
            a.mov(edi, edx);
            a.cwde();
            a.cdq();
        });
        ulong ax16 = SignExtend(eaxInit & 0xFF, 1) & 0xFFFF;
        ulong cwdeEax = SignExtend(ax16, 2) & 0xFFFF_FFFF;
        Assert.That(cpu.GetGpr(Gpr.Rsi) & 0xFFFF_FFFF, Is.EqualTo((eaxInit & 0xFFFF_0000UL) | ax16));
        Assert.That(cpu.GetGpr(Gpr.Rdi) & 0xFFFF_FFFF, Is.EqualTo((edxInit & 0xFFFF_0000UL) | ((ax16 & 0x8000) != 0 ? 0xFFFFUL : 0)));
        Assert.That(m.Rax & 0xFFFF_FFFF, Is.EqualTo(cwdeEax));
        Assert.That(cpu.GetGpr(Gpr.Rdx) & 0xFFFF_FFFF, Is.EqualTo((cwdeEax & 0x8000_0000) != 0 ? 0xFFFF_FFFFUL : 0));
    }
}
