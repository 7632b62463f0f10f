using Hypervisor.Vmx.Hardware;

namespace Hypervisor.Vmx.Tests.Hardware;

/// <summary>The MSR bitmaps (SDM §25.6.9): four 1-KiB quarters, MSRs outside both ranges always exit.</summary>
public class VmxMsrBitmapTests
{
    [Test]
    public void New_OwnedBitmap_Is4KiBAndInterceptsEverything()
    {
        using var bm = new VmxMsrBitmap();
        Assert.Multiple(() =>
        {
            Assert.That(bm.Bytes.Length, Is.EqualTo(4096));
            Assert.That(bm.Bytes.ToArray().All(b => b == 0xFF), Is.True);
            Assert.That(bm.IsReadIntercepted(0x10), Is.True);
        });
    }

    // MSR, byte of its read bit, bit within the byte; its write bit is 800h bytes further.
    [TestCase(0x0000_0000u, 0x000, 0)]
    [TestCase(0x0000_0010u, 0x002, 0)]
    [TestCase(0x0000_0174u, 0x02E, 4)]
    [TestCase(0x0000_1FFFu, 0x3FF, 7)]
    [TestCase(0xC000_0080u, 0x410, 0)]
    [TestCase(0xC000_0102u, 0x420, 2)]
    [TestCase(0xC000_1FFFu, 0x7FF, 7)]
    public void SetIntercept_Msr_SetsItsReadAndWriteBits(uint msr, int readByte, int bit)
    {
        using var bm = new VmxMsrBitmap();
        bm.PassThroughAll();
        bm.SetReadIntercept(msr, true);
        var bytes = bm.Bytes.ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(bytes[readByte], Is.EqualTo(1 << bit));
            Assert.That(bytes.Count(b => b != 0), Is.EqualTo(1));
            Assert.That(bm.IsReadIntercepted(msr), Is.True);
            Assert.That(bm.IsWriteIntercepted(msr), Is.False);
        });
        bm.SetIntercept(msr, read: false, write: true);
        bytes = bm.Bytes.ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(bytes[readByte + 0x800], Is.EqualTo(1 << bit));
            Assert.That(bytes.Count(b => b != 0), Is.EqualTo(1));
            Assert.That(bm.IsReadIntercepted(msr), Is.False);
            Assert.That(bm.IsWriteIntercepted(msr), Is.True);
        });
    }

    [TestCase(0x0000_2000u)]
    [TestCase(0x4000_0000u)]
    [TestCase(0xBFFF_FFFFu)]
    [TestCase(0xC000_2000u)]
    [TestCase(0xC001_0000u)]
    [TestCase(0xFFFF_FFFFu)]
    public void MsrOutsideRanges_AlwaysIntercepted_AndCannotBeCleared(uint msr)
    {
        using var bm = new VmxMsrBitmap();
        bm.PassThroughAll();
        Assert.Multiple(() =>
        {
            Assert.That(VmxMsrBitmap.ReadBitIndex(msr), Is.EqualTo(-1));
            Assert.That(bm.IsReadIntercepted(msr), Is.True);
            Assert.That(bm.IsWriteIntercepted(msr), Is.True);
            Assert.Throws<ArgumentOutOfRangeException>(() => bm.SetReadIntercept(msr, false));
        });
    }

    [Test]
    public void OverCallerMemory_KeepsContents()
    {
        var page = new byte[4096];
        page[0xC10] = 0x01; // write bitmap, high MSRs: C000_0080h (EFER)
        using var bm = new VmxMsrBitmap(page.AsMemory());
        Assert.Multiple(() =>
        {
            Assert.That(bm.IsWriteIntercepted(0xC000_0080), Is.True);
            Assert.That(bm.IsReadIntercepted(0xC000_0080), Is.False);
            Assert.That(bm.IsWriteIntercepted(0x80), Is.False);
            Assert.Throws<ArgumentException>(() => new VmxMsrBitmap(new byte[4095].AsMemory()));
        });
    }
}
