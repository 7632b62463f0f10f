using Hypervisor.Host.Loading;
using Hypervisor.Host.Tests.Support;

namespace Hypervisor.Host.Tests.Loading;

public class ElfImageTests
{
    private static readonly byte[] Code = { 0xF4 };

    [TestCase(32)]
    [TestCase(64)]
    public void Parse_TwoLoadSegments_ReadsPhysicalAddressesAndBss(int bits)
    {
        var f = RawElf.Build(bits, 0x200000,
            new RawSegment(0x200000, Code),
            new RawSegment(0x300000, new byte[] { 1, 2, 3 }, MemorySize: 0x1000));
        var elf = ElfImage.Parse(f);
        Assert.That(elf.Bits, Is.EqualTo(bits));
        Assert.That(elf.Segments, Has.Count.EqualTo(2));
        Assert.That(elf.Segments[1].Address, Is.EqualTo(0x300000));
        Assert.That(elf.Segments[1].FileSize, Is.EqualTo(3));
        Assert.That(elf.Segments[1].MemorySize, Is.EqualTo(0x1000));
    }

    [Test]
    public void Parse_NonLoadHeaders_AreSkipped()
    {
        var f = RawElf.Build(32, 0x200000,
            new RawSegment(0x500000, new byte[4], Type: 4), // PT_NOTE
            new RawSegment(0x200000, Code));
        var elf = ElfImage.Parse(f);
        Assert.That(elf.Segments, Has.Count.EqualTo(1));
        Assert.That(elf.Segments[0].Index, Is.EqualTo(1));
    }

    [Test]
    public void PhysicalEntry_HigherHalfKernel_TranslatesThroughItsSegment()
    {
        var f = RawElf.Build(32, 0xC0100010, new RawSegment(0x100000, new byte[0x20], VirtualAddress: 0xC0100000));
        Assert.That(ElfImage.Parse(f).PhysicalEntry(), Is.EqualTo(0x100010));
    }

    [Test]
    public void Parse_NotElf_SaysBadMagic()
    {
        var e = Assert.Throws<ImageException>(() => ElfImage.Parse(new byte[] { 0x4D, 0x5A, 0x90, 0x00, 0, 0 }));
        Assert.That(e!.Message, Does.StartWith("bad magic at file offset 0x0: 4d 5a 90 00"));
    }

    [Test]
    public void Parse_UnknownClass_IsRefused()
    {
        var f = RawElf.Build(32, 0x200000, new RawSegment(0x200000, Code));
        f[4] = 3;
        Assert.That(Assert.Throws<ImageException>(() => ElfImage.Parse(f))!.Message, Does.Contain("unknown class 3"));
    }

    [Test]
    public void Parse_BigEndian_IsRefused()
    {
        var f = RawElf.Build(32, 0x200000, new RawSegment(0x200000, Code));
        f[5] = 2;
        Assert.That(Assert.Throws<ImageException>(() => ElfImage.Parse(f))!.Message, Does.Contain("not little-endian"));
    }

    [Test]
    public void Parse_WrongMachine_IsRefused()
    {
        var f = RawElf.Build(32, 0x200000, new RawSegment(0x200000, Code));
        f[18] = 40; // EM_ARM
        Assert.That(Assert.Throws<ImageException>(() => ElfImage.Parse(f))!.Message, Does.Contain("machine 40"));
    }

    [Test]
    public void Parse_SharedObject_IsRefused()
    {
        var f = RawElf.Build(64, 0x200000, new RawSegment(0x200000, Code));
        f[16] = 3;
        Assert.That(Assert.Throws<ImageException>(() => ElfImage.Parse(f))!.Message, Does.Contain("type 3"));
    }

    [Test]
    public void Parse_HeaderCutShort_SaysTruncated()
    {
        var f = RawElf.Build(64, 0x200000, new RawSegment(0x200000, Code));
        var e = Assert.Throws<ImageException>(() => ElfImage.Parse(f.AsSpan(0, 40)));
        Assert.That(e!.Message, Does.StartWith("truncated: the ELF64 header needs 64 bytes"));
    }

    [Test]
    public void Parse_ProgramHeaderTablePastEnd_SaysTruncated()
    {
        var f = RawElf.Build(32, 0x200000, new RawSegment(0x200000, Code));
        BitConverter.TryWriteBytes(f.AsSpan(44), (ushort)50); // e_phnum
        var e = Assert.Throws<ImageException>(() => ElfImage.Parse(f));
        Assert.That(e!.Message, Does.StartWith("truncated: the program header table [0x34,"));
    }

    [Test]
    public void Parse_SegmentBytesPastEnd_SaysTruncated()
    {
        var f = RawElf.Build(32, 0x200000, new RawSegment(0x200000, new byte[64]));
        var e = Assert.Throws<ImageException>(() => ElfImage.Parse(f.AsSpan(0, f.Length - 10)));
        Assert.That(e!.Message, Does.StartWith("truncated: program header 0 loads file bytes"));
    }

    [Test]
    public void Parse_FileSizeAboveMemorySize_IsRefused()
    {
        var f = RawElf.Build(32, 0x200000, new RawSegment(0x200000, new byte[64], MemorySize: 16));
        Assert.That(Assert.Throws<ImageException>(() => ElfImage.Parse(f))!.Message, Does.Contain("p_filesz 0x40 is larger than p_memsz 0x10"));
    }

    [Test]
    public void Parse_NoLoadSegment_IsRefused()
    {
        var f = RawElf.Build(32, 0x200000, new RawSegment(0x200000, Code, Type: 4));
        Assert.That(Assert.Throws<ImageException>(() => ElfImage.Parse(f))!.Message, Does.Contain("no PT_LOAD"));
    }
}
