using Hypervisor.Svm.Hardware;

namespace Hypervisor.Svm.Tests.Hardware;

/// <summary>The MSR permission map (APM vol. 2 §15.11): three 2 KiB ranges, read bit then write bit per MSR.</summary>
public class SvmMsrPermissionMapTests
{
    // (msr, byte offset of its read bit, bit within that byte); the write bit is the next one.
    [TestCase(0x0000_0000u, 0x000, 0)]
    [TestCase(0x0000_0001u, 0x000, 2)]
    [TestCase(0x0000_0003u, 0x000, 6)]
    [TestCase(0x0000_0010u, 0x004, 0, TestName = "Tsc")]
    [TestCase(0x0000_001Bu, 0x006, 6, TestName = "ApicBase")]
    [TestCase(0x0000_0277u, 0x09D, 6, TestName = "Pat")]
    [TestCase(0x0000_1FFFu, 0x7FF, 6, TestName = "Range0Last")]
    [TestCase(0xC000_0000u, 0x800, 0, TestName = "Range1First")]
    [TestCase(0xC000_0080u, 0x820, 0, TestName = "Efer")]
    [TestCase(0xC000_0081u, 0x820, 2, TestName = "Star")]
    [TestCase(0xC000_0102u, 0x840, 4, TestName = "KernelGsBase")]
    [TestCase(0xC000_1FFFu, 0xFFF, 6, TestName = "Range1Last")]
    [TestCase(0xC001_0000u, 0x1000, 0, TestName = "Range2First")]
    [TestCase(0xC001_0117u, 0x1045, 6, TestName = "VmHsavePa")]
    [TestCase(0xC001_1FFFu, 0x17FF, 6, TestName = "Range2Last")]
    public void Bits_Msr_AreAtApmOffset(uint msr, int byteOffset, int bit)
    {
        using var msrpm = new SvmMsrPermissionMap();
        msrpm.PassThroughAll();

        msrpm.SetReadIntercept(msr, true);
        var bytes = msrpm.Bytes.ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(bytes[byteOffset], Is.EqualTo(1 << bit), "read bit");
            Assert.That(bytes.Count(b => b != 0), Is.EqualTo(1));
            Assert.That(msrpm.IsReadIntercepted(msr), Is.True);
            Assert.That(msrpm.IsWriteIntercepted(msr), Is.False);
        });

        msrpm.SetIntercept(msr, read: false, write: true);
        bytes = msrpm.Bytes.ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(bytes[byteOffset], Is.EqualTo(1 << (bit + 1)), "write bit follows the read bit");
            Assert.That(bytes.Count(b => b != 0), Is.EqualTo(1));
            Assert.That(msrpm.IsReadIntercepted(msr), Is.False);
            Assert.That(msrpm.IsWriteIntercepted(msr), Is.True);
        });
        Assert.That(SvmMsrPermissionMap.ReadBitIndex(msr), Is.EqualTo(byteOffset * 8 + bit));
    }

    [TestCase(0x0000_2000u, TestName = "JustPastRange0")]
    [TestCase(0x4000_0000u, TestName = "HypervisorRange")]
    [TestCase(0xBFFF_FFFFu, TestName = "JustBeforeRange1")]
    [TestCase(0xC000_2000u, TestName = "JustPastRange1")]
    [TestCase(0xC000_FFFFu, TestName = "JustBeforeRange2")]
    [TestCase(0xC001_2000u, TestName = "JustPastRange2")]
    [TestCase(0xC002_0000u)]
    [TestCase(0xFFFF_FFFFu)]
    public void OutsideRanges_Msr_IsAlwaysIntercepted(uint msr)
    {
        using var msrpm = new SvmMsrPermissionMap();
        msrpm.PassThroughAll();
        Assert.Multiple(() =>
        {
            Assert.That(SvmMsrPermissionMap.ReadBitIndex(msr), Is.EqualTo(-1));
            Assert.That(msrpm.IsReadIntercepted(msr), Is.True);
            Assert.That(msrpm.IsWriteIntercepted(msr), Is.True);
            Assert.Throws<ArgumentOutOfRangeException>(() => msrpm.SetReadIntercept(msr, false));
            Assert.Throws<ArgumentOutOfRangeException>(() => msrpm.SetWriteIntercept(msr, false));
        });
    }

    [Test]
    public void PassThroughAll_EveryCoveredMsr_PassesAndReservedTailStaysZero()
    {
        using var msrpm = new SvmMsrPermissionMap();
        msrpm.PassThroughAll();
        foreach (uint rangeBase in new uint[] { 0, 0xC000_0000, 0xC001_0000 })
        {
            for (uint i = 0; i < 0x2000; i++)
            {
                if (msrpm.IsReadIntercepted(rangeBase + i) || msrpm.IsWriteIntercepted(rangeBase + i))
                    Assert.Fail($"MSR 0x{rangeBase + i:x} intercepted");
            }
        }
        // Every covered MSR's bits map below 1800h: setting all of them never touches the reserved tail.
        foreach (uint rangeBase in new uint[] { 0, 0xC000_0000, 0xC001_0000 })
            for (uint i = 0; i < 0x2000; i++)
                msrpm.SetIntercept(rangeBase + i, true, true);
        Assert.Multiple(() =>
        {
            Assert.That(msrpm.Bytes[..0x1800].ToArray().All(b => b == 0xFF), Is.True);
            Assert.That(msrpm.Bytes[0x1800..].ToArray().All(b => b == 0), Is.True);
        });
    }

    [Test]
    public void New_OwnedMap_Is8KiBAndInterceptsEverything()
    {
        using var msrpm = new SvmMsrPermissionMap();
        Assert.Multiple(() =>
        {
            Assert.That(msrpm.Bytes.Length, Is.EqualTo(8 * 1024));
            Assert.That(msrpm.IsReadIntercepted(0xC000_0080), Is.True);
            Assert.That(msrpm.IsWriteIntercepted(0x10), Is.True);
        });
    }

    [Test]
    public void Map_OverCallerMemory_ReadsThatMemory()
    {
        var memory = new byte[8 * 1024];
        memory[0x820] = 0b10; // EFER write bit
        using var msrpm = new SvmMsrPermissionMap(memory);
        Assert.Multiple(() =>
        {
            Assert.That(msrpm.IsReadIntercepted(0xC000_0080), Is.False);
            Assert.That(msrpm.IsWriteIntercepted(0xC000_0080), Is.True);
        });
    }
}
