using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

public class StringTests
{
    // Offsets below 64 KiB so 16-bit addressing reaches them with DS = ES = 0 in every mode.
    private const ulong Src = 0x8000, Dst = 0x9000;

    /// <summary>Every mode with its default and its 67h address size.</summary>
    private static IEnumerable<TestCaseData> Layouts()
    {
        foreach (var (mode, addr) in new[] { (GuestMode.Real, 2), (GuestMode.Real, 4), (GuestMode.Protected32, 4), (GuestMode.Protected32, 2), (GuestMode.Long64, 8), (GuestMode.Long64, 4) })
            foreach (bool down in new[] { false, true })
                foreach (int size in new[] { 1, 2, 4, 8 })
                    if (size < 8 || mode == GuestMode.Long64)
                        yield return new TestCaseData(mode, addr, down, size).SetName($"RepMovs_{mode}_Addr{addr * 8}_{(down ? "Down" : "Up")}_Size{size}");
    }

    /// <summary>High bits a register keeps beside the address-size part: 16-bit addressing
    /// leaves them alone, a 32-bit write in 64-bit mode clears them.</summary>
    private static (ulong Initial, ulong Kept) UpperBits(GuestMode mode, int addr) => (mode, addr) switch
    {
        (_, 2) => (0x5A5A_0000UL, 0x5A5A_0000UL),
        (GuestMode.Long64, 4) => (0xDEAD_BEEF_0000_0000UL, 0UL),
        _ => (0UL, 0UL),
    };

    private static Instruction Movs(int size, int addr, Register seg, RepPrefixKind rep) => size switch
    {
        1 => Instruction.CreateMovsb(addr * 8, seg, rep),
        2 => Instruction.CreateMovsw(addr * 8, seg, rep),
        4 => Instruction.CreateMovsd(addr * 8, seg, rep),
        _ => Instruction.CreateMovsq(addr * 8, seg, rep),
    };

    [TestCaseSource(nameof(Layouts))]
    public void RepMovs_CopiesAndUpdatesRegistersInAddressSize(GuestMode mode, int addr, bool down, int size)
    {
        using var m = new GuestMachine(mode);
        const int n = 5;
        var data = new byte[n * size];
        for (int k = 0; k < data.Length; k++) data[k] = (byte)(k + 1);
        m.Memory.Write(Src, data);
        var (upper, kept) = UpperBits(mode, addr);
        ulong first = down ? (ulong)((n - 1) * size) : 0;
        m.Cpu.SetGpr(Gpr.Rsi, upper | (Src + first));
        m.Cpu.SetGpr(Gpr.Rdi, upper | (Dst + first));
        m.Cpu.SetGpr(Gpr.Rcx, upper | n);
        if (down) m.Cpu.SetRFlags(RFlags.Fixed1 | RFlags.Df);
        m.RunToHlt(a => a.AddInstruction(Movs(size, addr, Register.None, RepPrefixKind.Repe)));
        var copy = new byte[data.Length];
        m.Memory.Read(Dst, copy);
        Assert.That(copy, Is.EqualTo(data));
        long delta = (down ? -1 : 1) * n * size;
        Assert.That(m.Cpu.GetGpr(Gpr.Rsi), Is.EqualTo(kept | (ulong)((long)(Src + first) + delta)));
        Assert.That(m.Cpu.GetGpr(Gpr.Rdi), Is.EqualTo(kept | (ulong)((long)(Dst + first) + delta)));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(kept));
    }

    [Test]
    public void Movsb_Addr16_Protected32_IndexWrapsWithinSixteenBits()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        m.Memory.Write(0xFFFF, new byte[] { 0x11, 0x22 }); // 0x10000 must not be read
        m.Memory.Write(0x0000, new byte[] { 0x33 });
        m.Cpu.SetGpr(Gpr.Rsi, 0x0001_FFFF);
        m.Cpu.SetGpr(Gpr.Rdi, 0x0001_9000);
        m.Cpu.SetGpr(Gpr.Rcx, 2);
        m.RunToHlt(a => a.AddInstruction(Instruction.CreateMovsb(16, Register.None, RepPrefixKind.Repe)));
        Assert.That(m.Memory.ReadU32(0x9000) & 0xFFFF, Is.EqualTo(0x3311));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsi), Is.EqualTo(0x0001_0001), "SI wrapped to 1, bits above kept");
        Assert.That(m.Cpu.GetGpr(Gpr.Rdi), Is.EqualTo(0x0001_9002));
    }

    [Test]
    public void RepWithZeroCount_ChangesNothing()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.Write(Src, new byte[] { 1, 2, 3 });
        m.Cpu.SetGpr(Gpr.Rsi, Src);
        m.Cpu.SetGpr(Gpr.Rdi, Dst);
        m.Cpu.SetGpr(Gpr.Rax, 0x61);
        m.Cpu.SetGpr(Gpr.Rcx, 0);
        m.Cpu.SetRFlags(RFlags.Fixed1 | RFlags.Cf | RFlags.Zf);
        m.RunToHlt(a =>
        {
            a.rep.movsb();
            a.rep.stosb();
            a.rep.lodsb();
            a.repe.cmpsb();
            a.repne.scasb();
        });
        Assert.That(m.Memory.ReadU32(Dst), Is.Zero);
        Assert.That(m.Cpu.GetGpr(Gpr.Rsi), Is.EqualTo(Src));
        Assert.That(m.Cpu.GetGpr(Gpr.Rdi), Is.EqualTo(Dst));
        Assert.That(m.Rax, Is.EqualTo(0x61));
        Assert.That(m.Flags & (RFlags.Cf | RFlags.Zf), Is.EqualTo(RFlags.Cf | RFlags.Zf), "flags untouched");
    }

    [Test]
    public void MovsWithFsOverride_Long64_ReadsSourceThroughFsOnly()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Cpu.SetSegment(SegReg.Fs, new Segment { Selector = 0x10, Base = 0x300000, Limit = 0xFFFFFFFF, Attributes = 0xC093 });
        m.Memory.Write(0x300000 + Src, new byte[] { 0xAB, 0xCD });
        m.Cpu.SetGpr(Gpr.Rsi, Src);
        m.Cpu.SetGpr(Gpr.Rdi, Dst);
        m.Cpu.SetGpr(Gpr.Rcx, 2);
        m.RunToHlt(a => a.AddInstruction(Instruction.CreateMovsb(64, Register.FS, RepPrefixKind.Repe)));
        Assert.That(m.Memory.ReadU32(Dst) & 0xFFFF, Is.EqualTo(0xCDAB), "destination is ES:RDI, not FS");
    }

    [Test]
    public void RepMovsbOverlappingForward_ReplicatesLikeByteByByte()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.Write(Src, new byte[] { 0x7E, 0, 0, 0, 0, 0, 0, 0, 0, 0 });
        m.Cpu.SetGpr(Gpr.Rsi, Src);
        m.Cpu.SetGpr(Gpr.Rdi, Src + 1);
        m.Cpu.SetGpr(Gpr.Rcx, 9);
        m.RunToHlt(a =>
        {
            a.movsb();    // one element through the ordinary path first, so the pages are in the fast TLB
            a.dec(rcx);
            a.rep.movsb();
        });
        var got = new byte[10];
        m.Memory.Read(Src, got);
        Assert.That(got, Is.All.EqualTo(0x7E));
    }

    [Test]
    public void RepMovsbLargeForward_CopiesAcrossManyPages()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        const int n = 0x23456;
        var data = new byte[n];
        new Random(7).NextBytes(data);
        m.Memory.Write(0x400123, data);
        m.Cpu.SetGpr(Gpr.Rsi, 0x400123);
        m.Cpu.SetGpr(Gpr.Rdi, 0x600FFF);
        m.Cpu.SetGpr(Gpr.Rcx, n);
        m.RunToHlt(a => a.rep.movsb());
        var got = new byte[n];
        m.Memory.Read(0x600FFF, got);
        Assert.That(got, Is.EqualTo(data));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.Zero);
        Assert.That(m.Cpu.GetGpr(Gpr.Rdi), Is.EqualTo(0x600FFFUL + n));
    }

    [Test]
    public void RepMovsbLongBackward_CompletesAcrossRestarts()
    {
        // Backward copies go element by element: 10000 elements take several executions.
        using var m = new GuestMachine(GuestMode.Long64);
        const int n = 10000;
        var data = new byte[n];
        new Random(3).NextBytes(data);
        m.Memory.Write(0x400000, data);
        m.Cpu.SetGpr(Gpr.Rsi, 0x400000 + n - 1);
        m.Cpu.SetGpr(Gpr.Rdi, 0x500000 + n - 1);
        m.Cpu.SetGpr(Gpr.Rcx, n);
        m.Cpu.SetRFlags(RFlags.Fixed1 | RFlags.Df);
        m.RunToHlt(a => a.rep.movsb());
        var got = new byte[n];
        m.Memory.Read(0x500000, got);
        Assert.That(got, Is.EqualTo(data));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsi), Is.EqualTo(0x400000UL - 1));
    }

    [TestCase(1, 0x5AUL)]
    [TestCase(2, 0x5A6BUL)]
    [TestCase(4, 0x5A6B_7C8DUL)]
    [TestCase(8, 0x5A6B_7C8D_9EAF_B0C1UL)]
    public void RepStos_FillsElementsUpAndDown(int size, ulong value)
    {
        foreach (bool down in new[] { false, true })
        {
            using var m = new GuestMachine(GuestMode.Long64);
            const int n = 700; // crosses a page boundary going up
            ulong start = 0x400F00;
            m.Cpu.SetGpr(Gpr.Rax, value | 0xFF00_0000_0000_0000UL * (size < 8 ? 1UL : 0UL));
            m.Cpu.SetGpr(Gpr.Rdi, down ? start + (ulong)((n - 1) * size) : start);
            m.Cpu.SetGpr(Gpr.Rcx, n);
            if (down) m.Cpu.SetRFlags(RFlags.Fixed1 | RFlags.Df);
            m.RunToHlt(a => a.AddInstruction(size switch
            {
                1 => Instruction.CreateStosb(64, RepPrefixKind.Repe),
                2 => Instruction.CreateStosw(64, RepPrefixKind.Repe),
                4 => Instruction.CreateStosd(64, RepPrefixKind.Repe),
                _ => Instruction.CreateStosq(64, RepPrefixKind.Repe),
            }));
            var got = new byte[(n + 1) * size];
            m.Memory.Read(start, got);
            for (int k = 0; k < n; k++)
                Assert.That(BitConverter.ToUInt64(got.AsSpan(k * size, size).ToArray().Concat(new byte[8 - size]).ToArray()), Is.EqualTo(value), $"element {k}");
            Assert.That(got.AsSpan(n * size).ToArray(), Is.All.Zero, "nothing past the last element");
            Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.Zero);
        }
    }

    [Test]
    public void RepLods_LeavesLastElementInAccumulator()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        m.Memory.Write(Src, new byte[] { 1, 0, 2, 0, 3, 0 });
        m.Cpu.SetGpr(Gpr.Rax, 0xFFFF_FFFF);
        m.Cpu.SetGpr(Gpr.Rsi, Src);
        m.Cpu.SetGpr(Gpr.Rcx, 3);
        m.RunToHlt(a => a.rep.lodsw());
        Assert.That(m.Rax, Is.EqualTo(0xFFFF_0003), "LODSW writes AX only");
        Assert.That(m.Cpu.GetGpr(Gpr.Rsi), Is.EqualTo(Src + 6));
    }

    // ---- CMPS / SCAS termination ----

    [TestCase("abcdefgh", "abcXefgh", 8, 4, false, false, TestName = "RepeCmpsb_StopsAtFirstDifference")]
    [TestCase("abcAefgh", "abcdefgh", 8, 4, false, true, TestName = "RepeCmpsb_StopsAtDifferenceWithBorrow")]
    [TestCase("abcdefgh", "abcdefgh", 8, 0, true, false, TestName = "RepeCmpsb_AllEqualRunsOut")]
    [TestCase("abcde", "abcde", 3, 0, true, false, TestName = "RepeCmpsb_CountLimitsCompare")]
    [TestCase("aaaa", "bbba", 4, 0, true, false, TestName = "RepneCmpsb_StopsAtLastPositionEqual")]
    [TestCase("aaXa", "bbXb", 4, 1, true, false, TestName = "RepneCmpsb_StopsAtFirstEqual")]
    public void Cmpsb_Termination(string s1, string s2, int count, int left, bool zf, bool cf)
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.Write(Src, System.Text.Encoding.ASCII.GetBytes(s1));
        m.Memory.Write(Dst, System.Text.Encoding.ASCII.GetBytes(s2));
        m.Cpu.SetGpr(Gpr.Rsi, Src);
        m.Cpu.SetGpr(Gpr.Rdi, Dst);
        m.Cpu.SetGpr(Gpr.Rcx, (ulong)count);
        bool repne = TestContext.CurrentContext.Test.Name.StartsWith("Repne");
        m.RunToHlt(a => { if (repne) a.repne.cmpsb(); else a.repe.cmpsb(); });
        ulong done = (ulong)(count - left);
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo((ulong)left));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsi), Is.EqualTo(Src + done));
        Assert.That(m.Cpu.GetGpr(Gpr.Rdi), Is.EqualTo(Dst + done));
        Assert.That((m.Flags & RFlags.Zf) != 0, Is.EqualTo(zf), "ZF");
        Assert.That((m.Flags & RFlags.Cf) != 0, Is.EqualTo(cf), "CF of the last compare");
    }

    [Test]
    public void CmpsFlags_AreThoseOfSourceMinusDestination()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.WriteU32(Src, 0x8000_0000);
        m.Memory.WriteU32(Dst, 0x0000_0001);
        m.Cpu.SetGpr(Gpr.Rsi, Src);
        m.Cpu.SetGpr(Gpr.Rdi, Dst);
        m.RunToHlt(a => a.cmpsd());
        // 0x80000000 - 1 = 0x7FFFFFFF: OF (sign change), no CF, SF 0, PF (0xFF even), AF (borrow from bit 4).
        Assert.That(m.Flags & RFlags.Arith, Is.EqualTo(RFlags.Of | RFlags.Pf | RFlags.Af));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsi), Is.EqualTo(Src + 4));
    }

    [TestCase(1, 0x00UL, 6UL, 14UL, true, TestName = "RepneScasb_FindsTerminator")]
    [TestCase(1, 0x7AUL, 20UL, 0UL, false, TestName = "RepneScasb_NotFoundRunsOut")]
    [TestCase(2, 0x6C6CUL, 2UL, 18UL, true, TestName = "RepneScasw_FindsWord")]
    [TestCase(8, 0x0000_0021_6F6C_6C65UL, 0UL, 0UL, false, TestName = "RepneScasq_ComparesQwords")]
    public void RepneScas_Termination(int size, ulong value, ulong scanned, ulong left, bool zf)
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.Write(Dst, System.Text.Encoding.ASCII.GetBytes("hello\0world, hello, and more"));
        m.Cpu.SetGpr(Gpr.Rax, value);
        m.Cpu.SetGpr(Gpr.Rdi, Dst);
        m.Cpu.SetGpr(Gpr.Rcx, size == 8 ? 3UL : 20UL);
        m.RunToHlt(a => a.AddInstruction(size switch
        {
            1 => Instruction.CreateScasb(64, RepPrefixKind.Repne),
            2 => Instruction.CreateScasw(64, RepPrefixKind.Repne),
            _ => Instruction.CreateScasq(64, RepPrefixKind.Repne),
        }));
        if (size == 8) scanned = 3;
        Assert.That(m.Cpu.GetGpr(Gpr.Rdi), Is.EqualTo(Dst + scanned * (ulong)size));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(left));
        Assert.That((m.Flags & RFlags.Zf) != 0, Is.EqualTo(zf));
    }

    [Test]
    public void RepeScasb_Addr16_Real_UsesCxAndDi()
    {
        using var m = new GuestMachine(GuestMode.Real);
        m.Memory.Write(Dst, new byte[] { 7, 7, 7, 8, 7 });
        m.Cpu.SetGpr(Gpr.Rax, 7);
        m.Cpu.SetGpr(Gpr.Rdi, 0x1234_0000 | Dst);
        m.Cpu.SetGpr(Gpr.Rcx, 0x4321_0005);
        m.RunToHlt(a => a.repe.scasb());
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(0x4321_0001));
        Assert.That(m.Cpu.GetGpr(Gpr.Rdi), Is.EqualTo(0x1234_0000 | (Dst + 4)));
        Assert.That((m.Flags & RFlags.Zf) == 0, Is.True);
    }

    // ---- Faults and exits in the middle of a repeated instruction ----

    [Test]
    public void RepMovsbFaultMidway_Long64_LeavesProgressAndRestarts()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        FaultStubs.Install(m);
        const int n = 0x200;
        var data = new byte[n];
        new Random(11).NextBytes(data);
        m.Memory.Write(0x400000, data);
        FaultStubs.SetPagePresent(m, 0x501000, false);
        m.Cpu.SetGpr(Gpr.Rsi, 0x400000);
        m.Cpu.SetGpr(Gpr.Rdi, 0x500F00);
        m.Cpu.SetGpr(Gpr.Rcx, n);
        var (exit, _) = FaultStubs.Run(m, a => { a.rep.movsb(); a.mov(eax, 0x600D); a.hlt(); });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.PF));
        Assert.That(FaultStubs.Frame(m, 0), Is.EqualTo(2), "#PF error code: write to a not-present page");
        Assert.That(m.Cpu.Cr2, Is.EqualTo(0x501000));
        Assert.That(FaultStubs.Frame(m, 1), Is.EqualTo(GuestMachine.CodeBase), "RIP is the REP MOVSB");
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(n - 0x100UL), "elements done before the fault");
        Assert.That(m.Cpu.GetGpr(Gpr.Rsi), Is.EqualTo(0x400100));
        Assert.That(m.Cpu.GetGpr(Gpr.Rdi), Is.EqualTo(0x501000));

        // The handler's job, done by the host: map the page and return to the instruction.
        FaultStubs.SetPagePresent(m, 0x501000, true);
        m.Cpu.Rip = FaultStubs.Frame(m, 1);
        m.Cpu.SetGpr(Gpr.Rsp, FaultStubs.Frame(m, 4));
        exit = m.Run();
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Rax, Is.EqualTo(0x600D));
        var got = new byte[n];
        m.Memory.Read(0x500F00, got);
        Assert.That(got, Is.EqualTo(data));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.Zero);
    }

    [Test]
    public void RepCmpsbFaultOnFirstElement_ChangesNoRegister()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        FaultStubs.Install(m);
        FaultStubs.SetPagePresent(m, 0x501000, false);
        m.Cpu.SetGpr(Gpr.Rsi, 0x400000);
        m.Cpu.SetGpr(Gpr.Rdi, 0x501000);
        m.Cpu.SetGpr(Gpr.Rcx, 0xFFFF_FFFF_0000_0010);
        var (exit, _) = FaultStubs.Run(m, a => a.AddInstruction(Instruction.CreateCmpsb(32, Register.None, RepPrefixKind.Repe)));
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.PF));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(0xFFFF_FFFF_0000_0010), "no element done: not even the upper half is cleared");
        Assert.That(m.Cpu.GetGpr(Gpr.Rdi), Is.EqualTo(0x501000));
    }

    [Test]
    public void RepStosbToMmio_ExitsPerElementAndContinues()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        const ulong mmio = 0x4000_0000; // identity-mapped, no RAM behind it
        m.Cpu.SetGpr(Gpr.Rax, 0x5C);
        m.Cpu.SetGpr(Gpr.Rdi, mmio);
        m.Cpu.SetGpr(Gpr.Rcx, 3);
        var a = m.NewAssembler();
        a.rep.stosb();
        a.hlt();
        FaultStubs.Load(m, a);
        var seen = new List<(ulong Gpa, ulong Data, ulong Rcx)>();
        CpuExit exit;
        while ((exit = m.Cpu.Run(1000)).Reason == CpuExitReason.Mmio)
            seen.Add((exit.Address, exit.Data, m.Cpu.GetGpr(Gpr.Rcx)));
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(seen, Is.EqualTo(new[] { (mmio, 0x5CUL, 2UL), (mmio + 1, 0x5CUL, 1UL), (mmio + 2, 0x5CUL, 0UL) }));
    }

    [Test]
    public void RepMovsbIntoTranslatedCode_NewCodeRuns()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        const ulong f = 0x30000;
        FaultStubs.Place(m, f, a => { a.mov(eax, 1); a.ret(); });
        m.Memory.Write(Src, new byte[] { 0xB8, 0x99, 0, 0, 0 }); // mov eax, 0x99
        m.RunToHlt(a =>
        {
            a.call(f);                 // translates f
            a.mov(ebx, eax);
            a.mov(esi, (uint)Src);
            a.mov(edi, (uint)f);
            a.mov(ecx, 5);
            a.rep.movsb();             // patches f
            a.call(f);
        });
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(1));
        Assert.That(m.Rax, Is.EqualTo(0x99));
    }
}
