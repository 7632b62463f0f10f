using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

public class IoTests
{
    private const ulong Buf = 0x8000;

    [Test]
    public void OutIn_KeepTheirExitProtocol()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.InputValue = 0x1234_5678;
        m.RunToHlt(a =>
        {
            a.mov(eax, 0xAB);
            a.@out(0x80, al);
            a.mov(dx, 0x70);
            a.@in(eax, dx);
        });
        Assert.That(m.Outs, Is.EqualTo(new[] { ((ushort)0x80, 0xABUL, 1) }));
        Assert.That(m.Rax, Is.EqualTo(0x1234_5678));
    }

    [TestCase(GuestMode.Real)]
    [TestCase(GuestMode.Protected32)]
    [TestCase(GuestMode.Long64)]
    public void RepOutsb_SendsEachByteAsOneExit(GuestMode mode)
    {
        using var m = new GuestMachine(mode);
        m.Memory.Write(Buf, "hello"u8.ToArray());
        m.Cpu.SetGpr(Gpr.Rsi, Buf);
        m.Cpu.SetGpr(Gpr.Rcx, 5);
        m.Cpu.SetGpr(Gpr.Rdx, 0xE9);
        m.RunToHlt(a => a.rep.outsb());
        Assert.That(m.Output.ToString(), Is.EqualTo("hello"));
        Assert.That(m.Outs.Count, Is.EqualTo(5));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.Zero);
        Assert.That(m.Cpu.GetGpr(Gpr.Rsi), Is.EqualTo(Buf + 5));
    }

    [Test]
    public void RepOutsExits_ShowProgressBetweenElements()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.WriteU64(Buf, 0x0004_0003_0002_0001);
        m.Cpu.SetGpr(Gpr.Rsi, Buf);
        m.Cpu.SetGpr(Gpr.Rcx, 4);
        m.Cpu.SetGpr(Gpr.Rdx, 0x300);
        var a = m.NewAssembler();
        a.rep.outsw();
        a.hlt();
        FaultStubs.Load(m, a);
        var seen = new List<(ushort, ulong, int, ulong, ulong)>();
        CpuExit exit;
        while ((exit = m.Cpu.Run(1000)).Reason == CpuExitReason.Io)
            seen.Add((exit.Port, exit.Data, exit.Size, m.Cpu.GetGpr(Gpr.Rcx), m.Cpu.Rip));
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        ulong rep = GuestMachine.CodeBase, next = GuestMachine.CodeBase + 3;
        Assert.That(seen, Is.EqualTo(new[]
        {
            ((ushort)0x300, 1UL, 2, 3UL, rep), ((ushort)0x300, 2UL, 2, 2UL, rep),
            ((ushort)0x300, 3UL, 2, 1UL, rep), ((ushort)0x300, 4UL, 2, 0UL, next),
        }));
    }

    [Test]
    public void OutsdWithFsOverrideAndDf_ReadsThroughFsGoingDown()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Cpu.SetSegment(SegReg.Fs, new Segment { Selector = 0x10, Base = 0x300000, Limit = 0xFFFFFFFF, Attributes = 0xC093 });
        m.Memory.WriteU64(0x300000 + Buf, 0x2222_2222_1111_1111);
        m.Cpu.SetGpr(Gpr.Rsi, Buf + 4);
        m.Cpu.SetGpr(Gpr.Rcx, 2);
        m.Cpu.SetGpr(Gpr.Rdx, 0x310);
        m.Cpu.SetRFlags(RFlags.Fixed1 | RFlags.Df);
        m.RunToHlt(a => a.AddInstruction(Instruction.CreateOutsd(64, Register.FS, RepPrefixKind.Repe)));
        Assert.That(m.Outs, Is.EqualTo(new[] { ((ushort)0x310, 0x2222_2222UL, 4), ((ushort)0x310, 0x1111_1111UL, 4) }));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsi), Is.EqualTo(Buf - 4));
    }

    [TestCase(1, 0x41UL)]
    [TestCase(2, 0x4142UL)]
    [TestCase(4, 0x4142_4344UL)]
    public void RepIns_StoresEachValueTheHostSupplies(int size, ulong value)
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        m.InputValue = value | 0xFF00_0000_0000_0000UL; // bits above the size are not stored
        m.Cpu.SetGpr(Gpr.Rdi, Buf);
        m.Cpu.SetGpr(Gpr.Rcx, 3);
        m.Cpu.SetGpr(Gpr.Rdx, 0x60);
        m.RunToHlt(a => a.AddInstruction(size switch
        {
            1 => Instruction.CreateInsb(32, RepPrefixKind.Repe),
            2 => Instruction.CreateInsw(32, RepPrefixKind.Repe),
            _ => Instruction.CreateInsd(32, RepPrefixKind.Repe),
        }));
        var got = new byte[4 * size];
        m.Memory.Read(Buf, got);
        for (int k = 0; k < 3; k++)
            Assert.That(got.AsSpan(k * size, size).ToArray(), Is.EqualTo(BitConverter.GetBytes(value).AsSpan(0, size).ToArray()));
        Assert.That(got.AsSpan(3 * size).ToArray(), Is.All.Zero);
        Assert.That(m.Cpu.GetGpr(Gpr.Rdi), Is.EqualTo(Buf + 3 * (ulong)size));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.Zero);
    }

    [Test]
    public void InsbAddr16Down_Real_UsesDiAndDecrements()
    {
        using var m = new GuestMachine(GuestMode.Real);
        m.InputValue = 0x99;
        m.Cpu.SetGpr(Gpr.Rdi, 0x7777_0000 | Buf);
        m.Cpu.SetGpr(Gpr.Rcx, 0x5555_0002);
        m.Cpu.SetRFlags(RFlags.Fixed1 | RFlags.Df);
        m.RunToHlt(a => a.rep.insb());
        Assert.That(m.Memory.ReadU32(Buf - 1) & 0xFFFF, Is.EqualTo(0x9999));
        Assert.That(m.Cpu.GetGpr(Gpr.Rdi), Is.EqualTo(0x7777_0000 | (Buf - 2)));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(0x5555_0000));
    }

    [Test]
    public void RepInsOutsWithZeroCount_LeaveNoExit()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Cpu.SetGpr(Gpr.Rcx, 0);
        var a = m.NewAssembler();
        a.rep.insb();
        a.rep.outsb();
        a.hlt();
        FaultStubs.Load(m, a);
        var exit = m.Cpu.Run(1000);
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
    }

    [Test]
    public void InsToNotPresentPage_FaultsBeforeReadingThePort()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        FaultStubs.Install(m);
        FaultStubs.SetPagePresent(m, 0x501000, false);
        m.Cpu.SetGpr(Gpr.Rdi, 0x501000);
        m.Cpu.SetGpr(Gpr.Rcx, 4);
        var a = m.NewAssembler();
        a.rep.insd();
        a.hlt();
        FaultStubs.Load(m, a);
        var exit = m.Cpu.Run(1000);
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), "no I/O exit before the #PF");
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.PF));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(4));
    }

    [Test]
    public void OutsAtCpl3WithoutPermission_RaisesGp()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        FaultStubs.Install(m);
        m.Cpu.SetSegment(SegReg.Ss, new Segment { Selector = 0x3B, Limit = 0xFFFFFFFF, Attributes = 0xC0F3 });
        m.Cpu.SetSegment(SegReg.Cs, new Segment { Selector = 0x33, Limit = 0xFFFFFFFF, Attributes = 0xA0FB });
        m.Cpu.SetGpr(Gpr.Rcx, 0); // checked even with nothing to send
        m.Cpu.SetGpr(Gpr.Rdx, 0xE9);
        var a = m.NewAssembler();
        a.rep.outsb();
        FaultStubs.Load(m, a);
        var exit = m.Run();
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.GP));
        Assert.That(FaultStubs.Frame(m, 1), Is.EqualTo(GuestMachine.CodeBase));
        Assert.That(m.Outs, Is.Empty);
    }
}
