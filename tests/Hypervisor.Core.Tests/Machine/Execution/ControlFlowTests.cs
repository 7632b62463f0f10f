using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

public class ControlFlowTests
{
    private static ulong StackTopFor(GuestMode mode) => mode == GuestMode.Real ? 0x7000 : GuestMachine.StackTop;

    [TestCase(GuestMode.Real)]
    [TestCase(GuestMode.Protected32)]
    [TestCase(GuestMode.Long64)]
    public void CallRelRet_EveryMode_ReturnsAfterCallAndRestoresStack(GuestMode mode)
    {
        using var m = new GuestMachine(mode);
        m.RunToHlt(a =>
        {
            var f = a.CreateLabel();
            var end = a.CreateLabel();
            a.mov(eax, 1);
            a.call(f);
            a.add(eax, 0x100); // runs after the return
            a.jmp(end);
            a.Label(ref f);
            a.add(eax, 0x10);
            a.ret();
            a.Label(ref end);
        });
        Assert.That(m.Rax & 0xFFFF, Is.EqualTo(0x111));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(StackTopFor(mode)));
    }

    [Test]
    public void CallRel_Long64_PushesEightByteReturnAddress()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        var (exit, _) = FaultStubs.Run(m, a =>
        {
            var f = a.CreateLabel();
            a.call(f);
            a.Label(ref f);
            a.hlt();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(GuestMachine.StackTop - 8));
        Assert.That(m.Memory.ReadU64(GuestMachine.StackTop - 8), Is.EqualTo(GuestMachine.CodeBase + 5));
    }

    /// <summary>Assembles a routine at a fixed address (so tests can use it as a constant).</summary>
    private static void Place(GuestMachine m, ulong address, Action<Assembler> build)
    {
        var a = m.NewAssembler();
        build(a);
        var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), address);
        m.Memory.Write(address, stream.ToArray());
    }

    private const ulong F1 = 0x30000, F2 = 0x30100, Table = 0x30200, Done = 0x30300;

    [Test]
    public void IndirectForms_Long64_RegisterAndMemoryTargets()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        Place(m, F1, a => { a.add(ebx, 1); a.ret(); });
        Place(m, F2, a => { a.add(ebx, 0x10); a.ret(); });
        Place(m, Done, a => { a.add(ebx, 0x1000); a.hlt(); });
        m.Memory.WriteU64(Table, F2);
        m.Memory.WriteU64(Table + 8, Done);
        var (exit, _) = FaultStubs.Run(m, a =>
        {
            a.xor(ebx, ebx);
            a.mov(rax, F1);
            a.call(rax);                          // CALL r64
            a.mov(ecx, (uint)Table);
            a.call(__qword_ptr[rcx]);             // CALL m64
            a.mov(edx, 8);
            a.jmp(__qword_ptr[rcx + rdx]);        // JMP m64
            a.add(ebx, 0x100);                    // skipped
            a.hlt();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x1011));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(GuestMachine.StackTop));
    }

    [TestCase(GuestMode.Real)]
    [TestCase(GuestMode.Protected32)]
    public void IndirectForms_Legacy_RegisterAndMemoryTargets(GuestMode mode)
    {
        using var m = new GuestMachine(mode);
        bool real = mode == GuestMode.Real;
        // Real mode code runs with CS = 0x1000 (base 0x10000): put the routines in that segment.
        ulong f1 = GuestMachine.CodeBase + 0x800, table = GuestMachine.CodeBase + 0x900;
        Place(m, f1, a => { a.add(ebx, 1); a.ret(); });
        uint target = (uint)(real ? f1 - GuestMachine.CodeBase : f1);
        m.Memory.WriteU32(table, target);
        uint tableOffset = (uint)(real ? table - GuestMachine.CodeBase : table);
        var (exit, _) = FaultStubs.Run(m, a =>
        {
            if (real)
            {
                a.mov(ax, (ushort)(GuestMachine.CodeBase >> 4));
                a.mov(ds, ax);
                a.xor(ebx, ebx);
                a.mov(ax, (ushort)target);
                a.call(ax);
                a.call(__word_ptr[tableOffset]);
            }
            else
            {
                a.xor(ebx, ebx);
                a.mov(eax, target);
                a.call(eax);
                a.call(__dword_ptr[tableOffset]);
            }
            a.hlt();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(2));
    }

    [Test]
    public void CallRspIndirect_UsesRspBeforeThePush()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        Place(m, F1, a => { a.mov(ebx, 0x77); a.hlt(); });
        var (exit, _) = FaultStubs.Run(m, a =>
        {
            a.mov(rax, F1);
            a.push(rax);
            a.call(__qword_ptr[rsp]); // reads [old RSP] = F1
            a.hlt();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x77));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(GuestMachine.StackTop - 16));
    }

    [TestCase(GuestMode.Real, 2)]
    [TestCase(GuestMode.Protected32, 4)]
    [TestCase(GuestMode.Long64, 8)]
    public void RetImm16_ReleasesParameterBytes(GuestMode mode, int width)
    {
        using var m = new GuestMachine(mode);
        m.RunToHlt(a =>
        {
            var f = a.CreateLabel();
            var end = a.CreateLabel();
            a.call(f);
            a.jmp(end);
            a.Label(ref f);
            a.ret(6);
            a.Label(ref end);
        });
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(StackTopFor(mode) + 6));
    }

    [Test]
    public void JmpRel16_Protected32_WrapsEipToSixteenBits()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        // Target code at 0x500: mov eax, 0x1234; hlt.
        m.Memory.Write(0x500, new byte[] { 0xB8, 0x34, 0x12, 0x00, 0x00, 0xF4 });
        var a = m.NewAssembler();
        // o16 jmp rel16 at 0x10000: next IP 0x10004, target (0x10004 + 0x04FC) & 0xFFFF = 0x0500.
        a.db(0x66, 0xE9, 0xFC, 0x04);
        FaultStubs.Load(m, a);
        var exit = m.Run();
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Rax, Is.EqualTo(0x1234));
        Assert.That(m.Cpu.Rip, Is.EqualTo(0x506));
    }

    [Test]
    public void CallAndRetO16_Protected32_PushTwoBytesAndTruncateEip()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        // At 0x600: o16 ret (pops two bytes: the low half of the return address 0x10004 = 0x0004).
        m.Memory.Write(0x600, new byte[] { 0x66, 0xC3 });
        // At 0x0004: hlt.
        m.Memory.Write(0x4, new byte[] { 0xF4 });
        var a = m.NewAssembler();
        // o16 call rel16 at 0x10000: next IP 0x10004, target 0x0600.
        a.db(0x66, 0xE8, 0xFC, 0x05);
        FaultStubs.Load(m, a);
        var exit = m.Run();
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.Rip, Is.EqualTo(0x5));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(GuestMachine.StackTop));
        Assert.That(m.Memory.ReadU32(GuestMachine.StackTop - 4) >> 16, Is.EqualTo(0x0004), "CALL o16 pushed IP as a word");
    }

    [Test]
    public void OperandSizeOverride_Long64_NearBranchStays64Bit()
    {
        // Intel ignores 66h on near branches in 64-bit mode (the decoder is in Intel mode): the
        // target is not truncated and RET still pops eight bytes.
        using var m = new GuestMachine(GuestMode.Long64);
        var a = m.NewAssembler();
        a.db(0x66, 0xE8, 0x01, 0x00, 0x00, 0x00); // o16 call +1 (decoded as call rel32)
        a.hlt();                                   // at CodeBase + 6 : return lands here
        a.db(0x66, 0xC3);                          // at CodeBase + 7 : o16 ret
        FaultStubs.Load(m, a);
        var exit = m.Run();
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.Rip, Is.EqualTo(GuestMachine.CodeBase + 7));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(GuestMachine.StackTop));
    }

    [TestCase("jmp")]
    [TestCase("call")]
    [TestCase("ret")]
    public void NonCanonicalTarget_Long64_RaisesGpWithRipAndRspUnchanged(string kind)
    {
        using var m = new GuestMachine(GuestMode.Long64);
        FaultStubs.Install(m);
        var (exit, r) = FaultStubs.Run(m, a =>
        {
            var at = a.CreateLabel();
            a.mov(rax, 0x0000_8000_0000_0000UL);
            a.push(rax);
            a.Label(ref at);
            switch (kind)
            {
                case "jmp": a.jmp(rax); break;
                case "call": a.call(rax); break;
                default: a.ret(); break;
            }
            a.hlt();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.GP));
        Assert.That(FaultStubs.Frame(m, 0), Is.EqualTo(0), "error code");
        Assert.That(FaultStubs.Frame(m, 1), Is.EqualTo(GuestMachine.CodeBase + 10 + 1), "RIP of the branch");
        Assert.That(FaultStubs.Frame(m, 4), Is.EqualTo(GuestMachine.StackTop - 8), "RSP as before the branch");
        Assert.That(m.Cpu.Rap.Calls + m.Cpu.Rap.Returns, Is.Zero);
    }

    [TestCase("jmp")]
    [TestCase("jcc")]
    [TestCase("call")]
    [TestCase("ret")]
    public void TargetBeyondCsLimit_Protected32_RaisesGp(string kind)
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        FaultStubs.Install(m);
        // A 32-bit code segment with limit 0x1FFFF (byte granular): the code at 0x10000 fits.
        ushort small = FaultStubs.SetGdtEntry(m, 9, 0, 0x1FFFF, 0x9B, 0x4);
        var (exit, r) = FaultStubs.Run(m, a =>
        {
            var body = a.CreateLabel();
            a.jmp(small, (uint)(GuestMachine.CodeBase + 7)); // far jmp ptr16:32 is 7 bytes
            a.Label(ref body);
            a.mov(eax, 0x20000);
            a.push(eax);
            a.cmp(eax, eax);
            switch (kind)
            {
                case "jmp": a.jmp(eax); break;
                case "jcc": a.db(0x0F, 0x84); a.dd(0x20000 - (uint)(GuestMachine.CodeBase + 7 + 5 + 1 + 2 + 6)); break;
                case "call": a.call(eax); break;
                default: a.ret(); break;
            }
            a.hlt();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.GP));
        Assert.That(FaultStubs.Frame(m, 0), Is.EqualTo(0));
        Assert.That(FaultStubs.Frame(m, 1), Is.EqualTo(GuestMachine.CodeBase + 7 + 5 + 1 + 2), "EIP of the branch");
        Assert.That(FaultStubs.Frame(m, 2), Is.EqualTo(small));
    }

    [Test]
    public void O32JmpBeyondLimit_Real_RaisesGp()
    {
        using var m = new GuestMachine(GuestMode.Real);
        FaultStubs.Install(m);
        var (exit, _) = FaultStubs.Run(m, a =>
        {
            a.mov(eax, 0x12345);
            a.jmp(eax);
            a.hlt();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.GP));
        Assert.That(FaultStubs.Frame(m, 0), Is.EqualTo(6), "IP of the jmp (after the 6-byte mov)");
    }

    [Test]
    public void RecursiveCalls_Rap_PredictsEveryReturn()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Cpu.Rap.Clear();
        m.Cpu.Rap.ResetCounters();
        const int depth = 20;
        m.RunToHlt(a =>
        {
            var f = a.CreateLabel();
            var leaf = a.CreateLabel();
            var end = a.CreateLabel();
            a.mov(ecx, depth);
            a.xor(eax, eax);
            a.call(f);
            a.jmp(end);
            a.Label(ref f);           // f: if (ecx == 0) return; ecx--; f(); eax++; return
            a.test(ecx, ecx);
            a.je(leaf);
            a.dec(ecx);
            a.call(f);
            a.inc(eax);
            a.Label(ref leaf);
            a.ret();
            a.Label(ref end);
        });
        Assert.That(m.Rax, Is.EqualTo(depth));
        var rap = m.Cpu.Rap;
        Assert.That(rap.Calls, Is.EqualTo(depth + 1));
        Assert.That(rap.Returns, Is.EqualTo(depth + 1));
        Assert.That(rap.Predictions, Is.EqualTo(depth + 1));
        Assert.That(rap.Mispredictions, Is.Zero);
    }

    [Test]
    public void ReturnToAnotherAddress_Rap_CountsMisprediction()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Cpu.Rap.Clear();
        m.Cpu.Rap.ResetCounters();
        m.RunToHlt(a =>
        {
            var f = a.CreateLabel();
            var other = a.CreateLabel();
            a.call(f);
            a.Label(ref other);
            a.jmp(other); // never reached: the return skips it
            a.hlt();
            a.Label(ref f);
            a.add(__qword_ptr[rsp], 2); // skip the jmp
            a.ret();
        });
        Assert.That(m.Cpu.Rap.Mispredictions, Is.EqualTo(1));
        Assert.That(m.Cpu.Rap.Predictions, Is.Zero);
    }

    // ---- LOOPcc and JrCXZ: the counter width is the address size ----

    private static void Branch(Assembler a, Code code, Label target) => a.AddInstruction(Instruction.CreateBranch(code, target.Id));

    [TestCase(GuestMode.Real, Code.Loop_rel8_16_CX, 0xABCD_0003UL, 3, 0xABCD_0000UL)]
    [TestCase(GuestMode.Real, Code.Loop_rel8_16_ECX, 0x0000_0003UL, 3, 0UL)]
    [TestCase(GuestMode.Protected32, Code.Loop_rel8_32_ECX, 0x0000_0003UL, 3, 0UL)]
    [TestCase(GuestMode.Protected32, Code.Loop_rel8_32_CX, 0x1234_0003UL, 3, 0x1234_0000UL)]
    [TestCase(GuestMode.Long64, Code.Loop_rel8_64_RCX, 0x3UL, 3, 0UL)]
    [TestCase(GuestMode.Long64, Code.Loop_rel8_64_ECX, 0xFFFF_FFFF_0000_0003UL, 3, 0UL)] // ECX write zero-extends
    [TestCase(GuestMode.Real, Code.Loop_rel8_16_CX, 0x7777_0000UL, 65536, 0x7777_0000UL)] // CX = 0 runs 65536 times
    public void Loop_CounterWidthFromAddressSize(GuestMode mode, Code code, ulong rcx, int iterations, ulong finalRcx)
    {
        using var m = new GuestMachine(mode);
        m.Cpu.SetGpr(Gpr.Rcx, rcx);
        m.RunToHlt(a =>
        {
            var top = a.CreateLabel();
            a.xor(ebx, ebx);
            a.Label(ref top);
            a.inc(ebx);
            Branch(a, code, top);
        });
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo((ulong)iterations));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(finalRcx));
    }

    [TestCase(Code.Loopne_rel8_64_RCX, 10UL, 5UL, 5UL, true)]  // stops when ebx == 5 (ZF = 1)
    [TestCase(Code.Loopne_rel8_64_RCX, 3UL, 3UL, 0UL, false)]  // count runs out first
    [TestCase(Code.Loope_rel8_64_RCX, 10UL, 4UL, 6UL, false)]  // stops when bit 2 of ebx sets (ZF = 0)
    [TestCase(Code.Loope_rel8_64_RCX, 2UL, 2UL, 0UL, true)]    // count runs out first
    public void LoopeLoopne_StopOnZfOrCount(Code code, ulong rcx, ulong iterations, ulong finalRcx, bool zf)
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Cpu.SetGpr(Gpr.Rcx, rcx);
        m.RunToHlt(a =>
        {
            var top = a.CreateLabel();
            a.xor(ebx, ebx);
            a.Label(ref top);
            a.inc(ebx);
            if (code == Code.Loopne_rel8_64_RCX) a.cmp(ebx, 5);
            else a.test(ebx, 4);
            Branch(a, code, top);
        });
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(iterations));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(finalRcx));
        Assert.That((m.Flags & RFlags.Zf) != 0, Is.EqualTo(zf), "LOOPcc leaves the flags of the compare");
    }

    [TestCase(GuestMode.Real, Code.Jcxz_rel8_16, 0x1_0000UL, true)]
    [TestCase(GuestMode.Real, Code.Jecxz_rel8_16, 0x1_0000UL, false)]
    [TestCase(GuestMode.Protected32, Code.Jecxz_rel8_32, 0x1_0000UL, false)]
    [TestCase(GuestMode.Protected32, Code.Jcxz_rel8_32, 0x1_0000UL, true)]
    [TestCase(GuestMode.Long64, Code.Jrcxz_rel8_64, 0x1_0000_0000UL, false)]
    [TestCase(GuestMode.Long64, Code.Jecxz_rel8_64, 0x1_0000_0000UL, true)]
    [TestCase(GuestMode.Long64, Code.Jrcxz_rel8_64, 0UL, true)]
    public void JrcxzFamily_TestsCounterOfAddressSize(GuestMode mode, Code code, ulong rcx, bool taken)
    {
        using var m = new GuestMachine(mode);
        m.Cpu.SetGpr(Gpr.Rcx, rcx);
        m.RunToHlt(a =>
        {
            var t = a.CreateLabel();
            a.mov(eax, 1);
            Branch(a, code, t);
            a.mov(eax, 2);
            a.Label(ref t);
        });
        Assert.That(m.Rax & 0xFFFF, Is.EqualTo(taken ? 1 : 2));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(rcx), "JrCXZ never changes the counter");
    }

    [Test]
    public void LoopTargetBeyondCsLimit_Protected32_RaisesGpAndKeepsEcx()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        FaultStubs.Install(m);
        // Code segment limit ends just after the loop instruction: a backward loop is fine,
        // but this one branches forward past the limit.
        ushort small = FaultStubs.SetGdtEntry(m, 9, 0, (uint)GuestMachine.CodeBase + 0x10, 0x9B, 0x4);
        m.Cpu.SetGpr(Gpr.Rcx, 5);
        var a = m.NewAssembler();
        a.jmp(small, (uint)(GuestMachine.CodeBase + 7));
        a.db(0xE2, 0x40); // loop +0x40: beyond the limit
        FaultStubs.Load(m, a);
        var exit = m.Run();
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.GP));
        Assert.That(FaultStubs.Frame(m, 1), Is.EqualTo(GuestMachine.CodeBase + 7));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(5));
    }

    [TestCase(0x8UL, true)]   // CF=0 ZF=0: ja taken
    [TestCase(0x9UL, false)]
    public void Jcc_Taken_FollowsCondition(ulong compareWith, bool taken)
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            var t = a.CreateLabel();
            a.mov(eax, 9);
            a.mov(ecx, (uint)compareWith);
            a.cmp(eax, ecx);
            a.mov(eax, 1);
            a.ja(t);
            a.mov(eax, 2);
            a.Label(ref t);
        });
        Assert.That(m.Rax, Is.EqualTo(taken ? 1 : 2));
    }
}
