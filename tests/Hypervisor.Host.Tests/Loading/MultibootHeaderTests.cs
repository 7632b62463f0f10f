using Hypervisor.Host.Loading;
using Hypervisor.Host.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Host.Tests.Loading;

public class MultibootHeaderTests
{
    private static byte[] HeaderAt(int offset, uint flags, int fileLength, uint? checksum = null)
    {
        var f = new byte[fileLength];
        BitConverter.TryWriteBytes(f.AsSpan(offset), MultibootHeader.Magic);
        BitConverter.TryWriteBytes(f.AsSpan(offset + 4), flags);
        BitConverter.TryWriteBytes(f.AsSpan(offset + 8), checksum ?? unchecked(0u - MultibootHeader.Magic - flags));
        return f;
    }

    [Test]
    public void Find_WriterOutput_ReadsEveryAddressField()
    {
        byte[] image = TestImages.Aout(a => a.hlt(), bssSize: 0x100);
        var h = MultibootHeader.Find(image);
        Assert.That(h.FileOffset, Is.EqualTo(0));
        Assert.That(h.HasAoutKludge, Is.True);
        Assert.That(h.HeaderAddr, Is.EqualTo(0x100000));
        Assert.That(h.LoadAddr, Is.EqualTo(0x100000));
        Assert.That(h.LoadEndAddr, Is.EqualTo(0x100000 + (uint)image.Length));
        Assert.That(h.BssEndAddr, Is.EqualTo(0x100000 + (uint)image.Length + 0x100));
        Assert.That(h.EntryAddr, Is.EqualTo(0x100020));
    }

    [Test]
    public void Find_HeaderAtLastAlignedSlot_IsFound()
    {
        var h = MultibootHeader.Find(HeaderAt(8192 - 12, 0, 8192));
        Assert.That(h.FileOffset, Is.EqualTo(8192 - 12));
    }

    [Test]
    public void Find_HeaderPastFirst8192Bytes_IsNotFound()
    {
        var e = Assert.Throws<ImageException>(() => MultibootHeader.Find(HeaderAt(8192, 0, 9000)));
        Assert.That(e!.Message, Does.StartWith("no multiboot header"));
    }

    [Test]
    public void Find_UnalignedMagic_IsNotFound()
    {
        var e = Assert.Throws<ImageException>(() => MultibootHeader.Find(HeaderAt(2, 0, 64)));
        Assert.That(e!.Message, Does.Contain("no multiboot header"));
    }

    [Test]
    public void Find_EmptyFile_SaysTruncated()
    {
        var e = Assert.Throws<ImageException>(() => MultibootHeader.Find(Array.Empty<byte>()));
        Assert.That(e!.Message, Is.EqualTo("truncated: the file is empty"));
    }

    [Test]
    public void Find_FileShorterThanHeader_SaysTruncated()
    {
        var e = Assert.Throws<ImageException>(() => MultibootHeader.Find(new byte[8]));
        Assert.That(e!.Message, Does.StartWith("truncated: the file is 8 bytes"));
    }

    [Test]
    public void Find_BadChecksum_NamesOffsetAndSum()
    {
        var e = Assert.Throws<ImageException>(() => MultibootHeader.Find(HeaderAt(16, 0, 64, checksum: 0x12345678)));
        Assert.That(e!.Message, Does.Contain("file offset 0x10").And.Contain("bad checksum"));
    }

    [Test]
    public void Find_BadChecksumThenValidHeader_TakesTheValidOne()
    {
        var f = HeaderAt(0, 0, 64, checksum: 1);
        BitConverter.TryWriteBytes(f.AsSpan(32), MultibootHeader.Magic);
        BitConverter.TryWriteBytes(f.AsSpan(40), unchecked(0u - MultibootHeader.Magic));
        Assert.That(MultibootHeader.Find(f).FileOffset, Is.EqualTo(32));
    }

    [Test]
    public void Find_VideoModeFlag_IsRefused()
    {
        var e = Assert.Throws<ImageException>(() => MultibootHeader.Find(HeaderAt(0, MultibootHeader.FlagVideoMode, 64)));
        Assert.That(e!.Message, Does.Contain("video mode").And.Contain("file offset 0x0"));
    }

    [TestCase(1u << 3)]
    [TestCase(1u << 15)]
    public void Find_UnknownRequiredFlag_IsRefused(uint flag)
    {
        var e = Assert.Throws<ImageException>(() => MultibootHeader.Find(HeaderAt(0, flag, 64)));
        Assert.That(e!.Message, Does.Contain($"bits 0x{flag:x4}"));
    }

    [Test]
    public void Find_UnknownOptionalFlag_IsAccepted()
    {
        // Bits 16-31 are optional: a loader ignores the ones it does not know.
        Assert.That(MultibootHeader.Find(HeaderAt(0, 1u << 20, 64)).Flags, Is.EqualTo(1u << 20));
    }

    [Test]
    public void Find_AoutKludgeCutOffByEndOfFile_SaysTruncated()
    {
        var e = Assert.Throws<ImageException>(() => MultibootHeader.Find(HeaderAt(0, MultibootHeader.FlagAoutKludge, 20)));
        Assert.That(e!.Message, Does.StartWith("truncated:").And.Contain("0x14"));
    }

    [Test]
    public void Find_AoutKludgeFieldsPast8192_IsRefused()
    {
        var e = Assert.Throws<ImageException>(() => MultibootHeader.Find(HeaderAt(8180, MultibootHeader.FlagAoutKludge, 8300)));
        Assert.That(e!.Message, Does.Contain("first 8192 bytes"));
    }
}
