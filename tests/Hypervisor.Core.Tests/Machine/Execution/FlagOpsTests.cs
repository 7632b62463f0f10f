using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using Hypervisor.Core.Tests.Support.Data;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

/// <summary>CLC STC CMC CLD STD LAHF SAHF (Exec.FlagOps.cs).</summary>
public class FlagOpsTests
{
    private static IEnumerable<ulong> SomeFlagPatterns() => new[]
    {
        0UL, F.CF, F.Status, F.Status & ~F.CF, F.ZF | F.SF | F.OF, F.PF | F.AF | F.CF,
    };

    private static ulong RunFlags(ulong initial, Action<Assembler> insn)
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            RefFlags.Load(a, initial);
            insn(a);
        });
        return m.Flags;
    }

    [TestCaseSource(nameof(SomeFlagPatterns))]
    public void Clc_AnyFlags_ClearsOnlyCf(ulong initial) =>
        Assert.That(RunFlags(initial, a => a.clc()) & F.Status, Is.EqualTo(initial & ~F.CF));

    [TestCaseSource(nameof(SomeFlagPatterns))]
    public void Stc_AnyFlags_SetsOnlyCf(ulong initial) =>
        Assert.That(RunFlags(initial, a => a.stc()) & F.Status, Is.EqualTo(initial | F.CF));

    [TestCaseSource(nameof(SomeFlagPatterns))]
    public void Cmc_AnyFlags_ComplementsOnlyCf(ulong initial) =>
        Assert.That(RunFlags(initial, a => a.cmc()) & F.Status, Is.EqualTo(initial ^ F.CF));

    [Test]
    public void Cmc_AfterLazyFlags_ComplementsComputedCarry()
    {
        // CF pending from an addition that carries: CMC must see it before complementing.
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            a.mov(eax, 0xFFFF_FFFF);
            a.add(eax, 1);
            a.cmc();
        });
        Assert.That(m.Flags & F.Status, Is.EqualTo(RefFlags.Add(0xFFFF_FFFF, 1, 4) & ~F.CF));
    }

    [TestCase(false, false)]
    [TestCase(false, true)]
    [TestCase(true, false)]
    [TestCase(true, true)]
    public void CldStd_DirectionFlag_SetOrClearedWithoutTouchingStatusFlags(bool startSet, bool std)
    {
        const ulong status = F.CF | F.ZF | F.OF;
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            if (startSet) a.std();
            RefFlags.Load(a, status);
            if (std) a.std(); else a.cld();
        });
        Assert.That(m.Flags & (F.DF | F.Status), Is.EqualTo((std ? F.DF : 0) | status));
    }

    [TestCaseSource(nameof(SomeFlagPatterns))]
    public void Lahf_64BitMode_CopiesFlagsIntoAhWithBit1Set(ulong initial)
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            a.mov(rax, 0x1111_2222_3333_4444);
            RefFlags.Load(a, initial);
            a.lahf();
        });
        ulong ah = (initial & (F.SF | F.ZF | F.AF | F.PF | F.CF)) | 2;
        Assert.That(m.Rax, Is.EqualTo(0x1111_2222_3333_0044UL | (ah << 8)));
        Assert.That(m.Flags & F.Status, Is.EqualTo(initial));
    }

    [Test]
    public void Lahf_AfterLazyFlags_MaterializesThem()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            a.mov(al, 0x0F);
            a.sub(al, 0x10); // borrow, AF, SF, PF from 0xFF
            a.lahf();
        });
        ulong ah = (RefFlags.Sub(0x0F, 0x10, 1) & (F.SF | F.ZF | F.AF | F.PF | F.CF)) | 2;
        Assert.That((m.Rax >> 8) & 0xFF, Is.EqualTo(ah));
    }

    [TestCase(0x00, false)]
    [TestCase(0xFF, false)]
    [TestCase(0xD5, true)]
    [TestCase(0x2A, true)]
    [TestCase(0x41, false)]
    public void Sahf_AnyAh_LoadsFiveFlagsAndKeepsOf(int ahValue, bool of)
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            RefFlags.Load(a, of ? F.OF : 0);
            a.mov(ah, (byte)ahValue);
            a.sahf();
        });
        ulong expected = ((ulong)ahValue & (F.SF | F.ZF | F.AF | F.PF | F.CF)) | (of ? F.OF : 0);
        Assert.That(m.Flags & F.Status, Is.EqualTo(expected));
        Assert.That(m.Flags & 0x2A, Is.EqualTo(2UL), "bits 1, 3 and 5 keep their fixed values");
    }

    [Test]
    public void LahfSahf_ProtectedMode_Work()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        m.RunToHlt(a =>
        {
            a.mov(ah, 0xC5);  // SF ZF PF CF
            a.sahf();
            a.mov(eax, 0);
            a.lahf();
        });
        Assert.That(m.Rax & 0xFFFF_FFFF, Is.EqualTo(0xC700UL));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void LahfSahf_64BitModeWithoutCpuidBit_RaiseUd(bool lahf)
    {
        using var m = new ModelMachine(ModelMachine.DefaultWith(0x8000_0001, 'c', 0, present: false));
        m.Cpu.SetGpr(Gpr.Rax, 0x1234);
        var exit = m.Run(a =>
        {
            if (lahf) a.lahf(); else a.sahf();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Caught?.Vector, Is.EqualTo(Vector.UD));
        Assert.That(m.Caught?.Rip, Is.EqualTo(GuestMachine.CodeBase));
        Assert.That(m.Cpu.GetGpr(Gpr.Rax), Is.EqualTo(0x1234UL));
    }

    [Test]
    public void LahfSahf_64BitModeWithCpuidBit_Work()
    {
        using var m = new ModelMachine(ModelMachine.DefaultWith(0x8000_0001, 'c', 0, present: true));
        var exit = m.Run(a =>
        {
            a.mov(ah, 0x41); // ZF CF
            a.sahf();
            a.mov(eax, 0);
            a.lahf();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Caught, Is.Null);
        Assert.That(m.Cpu.GetGpr(Gpr.Rax), Is.EqualTo(0x4300UL));
    }
}
