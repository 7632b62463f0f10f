using BitOperations = System.Numerics.BitOperations;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using Hypervisor.Core.Tests.Support.Data;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

/// <summary>BT BTS BTR BTC, BSF BSR, POPCNT LZCNT TZCNT (Exec.Bit.cs).</summary>
public class BitTests
{
    private const ulong Data = GuestMachine.DataBase;
    private const ulong Value = 0x8421_0F0F_A5A5_3C3C;

    public enum BitOp { Bt, Bts, Btr, Btc }

    // Encodings (SDM vol. 2 "BT".."BTC"): r/m, r is 0F A3/AB/B3/BB; r/m, imm8 is 0F BA /4../7.
    private static readonly byte[] RegOpcode = { 0xA3, 0xAB, 0xB3, 0xBB };

    private static byte[] SizePrefix(int size) => size switch { 2 => new byte[] { 0x66 }, 8 => new byte[] { 0x48 }, _ => Array.Empty<byte>() };

    /// <summary>op r/m, rcx with r/m = rax (register) or [rbx] (memory).</summary>
    private static byte[] WithRegisterOffset(BitOp op, int size, bool memory) =>
        SizePrefix(size).Concat(new byte[] { 0x0F, RegOpcode[(int)op], memory ? (byte)0x0B : (byte)0xC8 }).ToArray();

    /// <summary>op r/m, imm8 with r/m = rax (register) or [rbx] (memory).</summary>
    private static byte[] WithImmediateOffset(BitOp op, int size, bool memory, byte imm) =>
        SizePrefix(size).Concat(new byte[] { 0x0F, 0xBA, (byte)((memory ? 0x03 : 0xC0) | ((4 + (int)op) << 3)), imm }).ToArray();

    private static ulong Apply(BitOp op, ulong v, int bit) => op switch
    {
        BitOp.Bts => v | (1UL << bit),
        BitOp.Btr => v & ~(1UL << bit),
        BitOp.Btc => v ^ (1UL << bit),
        _ => v,
    };

    /// <summary>Every status flag but CF set, so any change besides CF shows.</summary>
    private const ulong OtherFlags = F.Status & ~F.CF;

    [Test]
    public void BitTest_RegisterOperand_SelectsBitModuloWidth(
        [Values] BitOp op, [Values(2, 4, 8)] int size,
        [Values(0, 5, 15, 16, 31, 33, 63, 64, 0x1234_5677)] long offset, [Values] bool immediate)
    {
        int width = size * 8;
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            a.mov(rax, Value);
            a.mov(rcx, (ulong)offset);
            RefFlags.Load(a, OtherFlags);
            a.db(immediate ? WithImmediateOffset(op, size, false, (byte)offset) : WithRegisterOffset(op, size, false));
        });
        int bit = (int)((immediate ? (byte)offset : offset) & (width - 1));
        ulong low = Value & RefFlags.Mask(size);
        ulong result = Apply(op, low, bit);
        ulong expectedRax = op == BitOp.Bt ? Value
            : size == 2 ? (Value & ~0xFFFFUL) | result
            : result; // 32-bit writes zero-extend
        Assert.That(m.Rax, Is.EqualTo(expectedRax));
        Assert.That(m.Flags & F.Status, Is.EqualTo(OtherFlags | ((low >> bit) & 1)));
    }

    [Test]
    public void BitTest_MemoryWithRegisterOffset_AddressesBeyondTheOperand(
        [Values] BitOp op, [Values(2, 4, 8)] int size,
        [Values(0, 7, 31, 32, 100, 1000, -1, -17, -100, -1000)] long offset)
    {
        const ulong baseAddr = Data + 0x200;
        var image = new byte[0x400];
        for (int k = 0; k < image.Length; k++) image[k] = (byte)(k * 37 + 11);
        int width = size * 8;
        // The register holds the offset in its low operand-size bits; bits above are garbage.
        ulong reg = (0xDEAD_BEEF_0000_0000UL & ~RefFlags.Mask(size)) | ((ulong)offset & RefFlags.Mask(size));
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.Write(Data, image);
        m.RunToHlt(a =>
        {
            a.mov(rbx, baseAddr);
            a.mov(rcx, reg);
            RefFlags.Load(a, OtherFlags);
            a.db(WithRegisterOffset(op, size, true));
        });
        // Unit = floor(offset / width), bit = offset mod width (SDM vol. 1 figure 3-3).
        long unit = offset >> BitOperations.Log2((uint)width);
        int bit = (int)(offset & (width - 1));
        int at = (int)(0x200 + unit * size);
        ulong old = 0;
        for (int b = 0; b < size; b++) old |= (ulong)image[at + b] << (8 * b);
        ulong result = Apply(op, old, bit);
        for (int b = 0; b < size; b++) image[at + b] = (byte)(result >> (8 * b));
        var after = new byte[image.Length];
        m.Memory.Read(Data, after);
        Assert.That(after, Is.EqualTo(image));
        Assert.That(m.Flags & F.Status, Is.EqualTo(OtherFlags | ((old >> bit) & 1)));
    }

    [Test]
    public void BitTest_MemoryWithImmediateOffset_StaysInsideTheOperand(
        [Values] BitOp op, [Values(2, 4, 8)] int size, [Values(0, 9, 17, 33, 63, 255)] int imm)
    {
        int width = size * 8;
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.WriteU64(Data, Value);
        m.Memory.WriteU64(Data + 8, Value);
        m.RunToHlt(a =>
        {
            a.mov(rbx, Data);
            RefFlags.Load(a, OtherFlags);
            a.db(WithImmediateOffset(op, size, true, (byte)imm));
        });
        int bit = imm & (width - 1);
        ulong mask = RefFlags.Mask(size);
        ulong result = Apply(op, Value & mask, bit);
        Assert.That(m.Memory.ReadU64(Data), Is.EqualTo((Value & ~mask) | result));
        Assert.That(m.Memory.ReadU64(Data + 8), Is.EqualTo(Value));
        Assert.That(m.Flags & F.Status, Is.EqualTo(OtherFlags | ((Value >> bit) & 1)));
    }

    [Test]
    public void BitTest_RealModeNegativeOffset_WrapsWithin64KSegment()
    {
        // bts word [bx], cx with BX = 2 and CX = -32: word unit -2, so the word at DS:0xFFFE, bit 0.
        using var m = new GuestMachine(GuestMode.Real);
        m.Memory.WriteU32(0x2_FFFC, 0x8000_0000);
        m.RunToHlt(a =>
        {
            a.mov(ax, 0x2000);
            a.mov(ds, ax);
            a.mov(bx, 2);
            a.mov(cx, 0xFFE0);
            a.bts(__word_ptr[bx], cx);
        });
        Assert.That(m.Memory.ReadU32(0x2_FFFC), Is.EqualTo(0x8001_0000u));
        Assert.That(m.Flags & F.CF, Is.EqualTo(0UL));
    }

    [Test]
    public void BitTest_LockedMemoryForm_Works()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            a.mov(rbx, Data);
            a.mov(ecx, 70);
            a.@lock.bts(__dword_ptr[rbx], ecx); // dword 2, bit 6
        });
        Assert.That(m.Memory.ReadU32(Data + 8), Is.EqualTo(0x40u));
        Assert.That(m.Flags & F.CF, Is.EqualTo(0UL));
    }

    [Test]
    public void BitTest_LockedBt_RaisesUd()
    {
        // BT only reads: LOCK is not allowed on it (SDM "LOCK").
        using var m = new GuestMachine(GuestMode.Long64);
        ExceptionTrap.Install(m.Memory, m.Cpu);
        m.RunToHlt(a =>
        {
            a.mov(rbx, Data);
            a.db(0xF0, 0x0F, 0xA3, 0x0B); // lock bt [rbx], ecx
        });
        Assert.That(ExceptionTrap.Caught(m.Memory)?.Vector, Is.EqualTo(Vector.UD));
    }

    // ---- BSF / BSR -----------------------------------------------------------------------------

    private static readonly ulong[] ScanSources =
    {
        1, 2, 0x8000, 0x8000_0000, 0x8000_0000_0000_0000, 0x0000_0100_0000_0000, 0x0010_0000_0100_1000,
        0xFFFF_FFFF_FFFF_FFFF, 0x1234_0000_0000_0000, 0x0000_0000_0000_0060, 0x0000_8001_0000_0000,
    };

    /// <summary>QEMU's flags for BSF/BSR: as a logical operation on the source.</summary>
    private static ulong ScanFlags(ulong src, int size) => RefFlags.Szp(src, size);

    private static ulong MergeDest(ulong old, ulong value, int size) => size switch
    {
        2 => (old & ~0xFFFFUL) | (value & 0xFFFF),
        4 => value & 0xFFFF_FFFF,
        _ => value,
    };

    private static void EmitScan(Assembler a, bool reverse, int size, bool memory)
    {
        // bsf/bsr rax, rcx or rax, [rbx]
        byte op = reverse ? (byte)0xBD : (byte)0xBC;
        a.db(SizePrefix(size).Concat(new byte[] { 0x0F, op, memory ? (byte)0x03 : (byte)0xC1 }).ToArray());
    }

    /// <summary>Every source that is non-zero at the size, for both scans and both operand kinds.</summary>
    public static IEnumerable<TestCaseData> NonZeroScans()
    {
        foreach (int size in new[] { 2, 4, 8 })
            foreach (ulong source in ScanSources)
                if ((source & RefFlags.Mask(size)) != 0)
                    foreach (bool reverse in new[] { false, true })
                        foreach (bool memory in new[] { false, true })
                            yield return new TestCaseData(source, size, reverse, memory);
    }

    [TestCaseSource(nameof(NonZeroScans))]
    public void BitScan_NonZeroSource_FindsLowestOrHighestSetBit(ulong source, int size, bool reverse, bool memory)
    {
        ulong src = source & RefFlags.Mask(size);
        const ulong init = 0x7777_7777_7777_7777;
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.WriteU64(Data, source);
        m.RunToHlt(a =>
        {
            a.mov(rax, init);
            a.mov(rcx, source);
            a.mov(rbx, Data);
            RefFlags.Load(a, F.CF | F.OF | F.AF);
            EmitScan(a, reverse, size, memory);
        });
        int index = reverse ? 63 - BitOperations.LeadingZeroCount(src) : BitOperations.TrailingZeroCount(src);
        Assert.That(m.Rax, Is.EqualTo(MergeDest(init, (ulong)index, size)));
        Assert.That(m.Flags & F.Status, Is.EqualTo(ScanFlags(src, size)));
    }

    [Test]
    public void BitScan_ZeroSource_SetsZfAndKeepsDestination([Values(2, 4, 8)] int size, [Values] bool reverse)
    {
        const ulong init = 0x7777_7777_8888_8888;
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            a.mov(rax, init);
            a.mov(rcx, 0xFFFF_FFFF_FFFF_FFFF & ~RefFlags.Mask(size)); // zero in the operand size
            RefFlags.Load(a, F.CF | F.SF | F.OF);
            EmitScan(a, reverse, size, memory: false);
        });
        // The old value is written back at the operand size, as QEMU does: 32 bits zero-extend.
        Assert.That(m.Rax, Is.EqualTo(MergeDest(init, init, size)));
        Assert.That(m.Flags & F.Status, Is.EqualTo(F.ZF | F.PF));
    }

    // ---- POPCNT / LZCNT / TZCNT ----------------------------------------------------------------

    private static readonly ulong[] CountSources =
    {
        0, 1, 0x8000, 0x8000_0000, 0x8000_0000_0000_0000, 0x00F0_0000_0000_0100, 0xFFFF_FFFF_FFFF_FFFF,
        0x0000_0000_0001_0000, 0x0000_0001_0000_0000, 0x5555_5555_5555_5555,
    };

    private static void EmitCount(Assembler a, byte op, int size, bool memory)
    {
        // F3 [66|REX.W] 0F op /r with rax, rcx or rax, [rbx]
        a.db(new byte[] { 0xF3 }.Concat(SizePrefix(size)).Concat(new byte[] { 0x0F, op, memory ? (byte)0x03 : (byte)0xC1 }).ToArray());
    }

    private static (ulong Rax, ulong Flags) RunCount(GuestMachine m, byte op, ulong source, int size, bool memory, ulong init)
    {
        m.Memory.WriteU64(Data, source);
        m.RunToHlt(a =>
        {
            a.mov(rax, init);
            a.mov(rcx, source);
            a.mov(rbx, Data);
            RefFlags.Load(a, F.Status);
            EmitCount(a, op, size, memory);
        });
        return (m.Rax, m.Flags & F.Status);
    }

    [Test]
    public void Popcnt_AnySource_CountsOnesAndClearsFlagsButZf(
        [ValueSource(nameof(CountSources))] ulong source, [Values(2, 4, 8)] int size, [Values] bool memory)
    {
        const ulong init = 0x7777_7777_7777_7777;
        using var m = new GuestMachine(GuestMode.Long64);
        var r = RunCount(m, 0xB8, source, size, memory, init);
        ulong src = source & RefFlags.Mask(size);
        Assert.That(r.Rax, Is.EqualTo(MergeDest(init, (ulong)BitOperations.PopCount(src), size)));
        Assert.That(r.Flags, Is.EqualTo(src == 0 ? F.ZF : 0));
    }

    /// <summary>LZCNT/TZCNT flags: CF = (source = 0), ZF = (result = 0); QEMU takes SF and PF from
    /// the result and clears OF and AF.</summary>
    private static ulong CountFlags(ulong src, ulong result, int size) =>
        (src == 0 ? F.CF : 0) | RefFlags.Szp(result, size);

    [Test]
    public void Lzcnt_WithAbm_CountsLeadingZeros(
        [ValueSource(nameof(CountSources))] ulong source, [Values(2, 4, 8)] int size, [Values] bool memory)
    {
        const ulong init = 0x7777_7777_7777_7777;
        using var m = new GuestMachine(GuestMode.Long64); // the default model has ABM
        var r = RunCount(m, 0xBD, source, size, memory, init);
        ulong src = source & RefFlags.Mask(size);
        ulong count = (ulong)(BitOperations.LeadingZeroCount(src) - (64 - size * 8));
        Assert.That(r.Rax, Is.EqualTo(MergeDest(init, count, size)));
        Assert.That(r.Flags, Is.EqualTo(CountFlags(src, count, size)));
    }

    [Test]
    public void Tzcnt_WithBmi1_CountsTrailingZeros(
        [ValueSource(nameof(CountSources))] ulong source, [Values(2, 4, 8)] int size)
    {
        const ulong init = 0x7777_7777_7777_7777;
        using var m = new ModelMachine(ModelMachine.DefaultWith(7, 'b', 3, present: true));
        m.Cpu.SetGpr(Gpr.Rax, init);
        m.Cpu.SetGpr(Gpr.Rcx, source);
        var exit = m.Run(a =>
        {
            RefFlags.Load(a, F.Status);
            EmitCount(a, 0xBC, size, memory: false);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        ulong src = source & RefFlags.Mask(size);
        ulong count = src == 0 ? (ulong)(size * 8) : (ulong)BitOperations.TrailingZeroCount(src);
        Assert.That(m.Cpu.GetGpr(Gpr.Rax), Is.EqualTo(MergeDest(init, count, size)));
        Assert.That(m.Cpu.GetRFlags() & F.Status, Is.EqualTo(CountFlags(src, count, size)));
    }

    [TestCase(0x0000_0000_0000_0000UL)]
    [TestCase(0x0000_0000_0001_0000UL)]
    [TestCase(0x8000_0000_0000_0000UL)]
    public void Tzcnt_WithoutBmi1_ExecutesAsBsf(ulong source)
    {
        // Without BMI1, F3 0F BC is "rep bsf", which is what compilers rely on.
        const ulong init = 0x7777_7777_7777_7777;
        using var m = new ModelMachine(ModelMachine.DefaultWith(7, 'b', 3, present: false));
        m.Cpu.SetGpr(Gpr.Rax, init);
        m.Cpu.SetGpr(Gpr.Rcx, source);
        m.Run(a => EmitCount(a, 0xBC, 8, memory: false));
        Assert.That(m.Cpu.GetGpr(Gpr.Rax), Is.EqualTo(source == 0 ? init : (ulong)BitOperations.TrailingZeroCount(source)));
        Assert.That(m.Cpu.GetRFlags() & F.Status, Is.EqualTo(ScanFlags(source, 8)));
    }

    [TestCase(0x0000_0000_0000_0000UL)]
    [TestCase(0x0000_0000_0001_0000UL)]
    public void Lzcnt_WithoutAbm_ExecutesAsBsr(ulong source)
    {
        const ulong init = 0x7777_7777_7777_7777;
        using var m = new ModelMachine(ModelMachine.DefaultWith(0x8000_0001, 'c', 5, present: false));
        m.Cpu.SetGpr(Gpr.Rax, init);
        m.Cpu.SetGpr(Gpr.Rcx, source);
        m.Run(a => EmitCount(a, 0xBD, 8, memory: false));
        Assert.That(m.Cpu.GetGpr(Gpr.Rax), Is.EqualTo(source == 0 ? init : 16UL));
        Assert.That(m.Cpu.GetRFlags() & F.Status, Is.EqualTo(ScanFlags(source, 8)));
    }

    [Test]
    public void Popcnt_WithoutCpuidBit_RaisesUd()
    {
        using var m = new ModelMachine(ModelMachine.DefaultWith(1, 'c', 23, present: false));
        m.Cpu.SetGpr(Gpr.Rax, 5);
        m.Cpu.SetGpr(Gpr.Rcx, 0xFF);
        m.Run(a => a.popcnt(rax, rcx));
        Assert.That(m.Caught?.Vector, Is.EqualTo(Vector.UD));
        Assert.That(m.Caught?.Rip, Is.EqualTo(GuestMachine.CodeBase));
        Assert.That(m.Cpu.GetGpr(Gpr.Rax), Is.EqualTo(5UL));
    }

    [Test]
    public void BitScan_UnreadableSource_FaultsWithDestinationUnchanged()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        GuestPages.MakeFaultingRegions(m.Memory);
        ExceptionTrap.Install(m.Memory, m.Cpu);
        m.RunToHlt(a =>
        {
            a.mov(rax, 0x1234_5678_9ABC_DEF0);
            a.mov(rbx, GuestPages.NotPresent);
            a.bsf(eax, __dword_ptr[rbx]);
        });
        Assert.That(ExceptionTrap.Caught(m.Memory)?.Vector, Is.EqualTo(Vector.PF));
        Assert.That(m.Rax, Is.EqualTo(0x1234_5678_9ABC_DEF0UL));
    }
}
