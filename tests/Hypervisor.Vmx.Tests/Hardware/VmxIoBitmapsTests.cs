using Hypervisor.Vmx.Hardware;

namespace Hypervisor.Vmx.Tests.Hardware;

/// <summary>The I/O bitmaps A and B (SDM §25.6.4) and the I/O exiting decision (SDM §26.1.3).</summary>
public class VmxIoBitmapsTests
{
    [Test]
    public void New_OwnedBitmaps_AreTwo4KiBPagesInterceptingEverything()
    {
        using var io = new VmxIoBitmaps();
        Assert.Multiple(() =>
        {
            Assert.That(io.BitmapA.Length, Is.EqualTo(4096));
            Assert.That(io.BitmapB.Length, Is.EqualTo(4096));
            Assert.That(io.BitmapA.ToArray().Concat(io.BitmapB.ToArray()).All(b => b == 0xFF), Is.True);
        });
    }

    // Port, bitmap (A or B), byte, bit.
    [TestCase((ushort)0x0000, 'A', 0x000, 0)]
    [TestCase((ushort)0x03F8, 'A', 0x07F, 0)]
    [TestCase((ushort)0x0CFF, 'A', 0x19F, 7)]
    [TestCase((ushort)0x7FFF, 'A', 0xFFF, 7)]
    [TestCase((ushort)0x8000, 'B', 0x000, 0)]
    [TestCase((ushort)0xC001, 'B', 0x800, 1)]
    [TestCase((ushort)0xFFFF, 'B', 0xFFF, 7)]
    public void SetIntercept_Port_IsInBitmapAOrB(ushort port, char bitmap, int byteOffset, int bit)
    {
        using var io = new VmxIoBitmaps();
        io.PassThroughAll();
        io.SetIntercept(port, true);
        var a = io.BitmapA.ToArray();
        var b = io.BitmapB.ToArray();
        var hit = bitmap == 'A' ? a : b;
        Assert.Multiple(() =>
        {
            Assert.That(hit[byteOffset], Is.EqualTo(1 << bit));
            Assert.That(a.Count(x => x != 0) + b.Count(x => x != 0), Is.EqualTo(1));
            Assert.That(io.IsIntercepted(port, 1), Is.True);
        });
    }

    [Test]
    public void MultiByteAccess_ChecksEveryPort_AcrossTheAToBBoundary()
    {
        using var io = new VmxIoBitmaps();
        io.PassThroughAll();
        io.SetIntercept(0x8001, true);
        Assert.Multiple(() =>
        {
            Assert.That(io.IsIntercepted(0x7FFE, 4), Is.True);  // 7FFE-8001
            Assert.That(io.IsIntercepted(0x7FFE, 2), Is.False); // 7FFE-7FFF
            Assert.That(io.IsIntercepted(0x7FFF, 2), Is.False); // 7FFF-8000
            Assert.That(io.IsIntercepted(0x8000, 2), Is.True);
        });
    }

    [TestCase((ushort)0xFFFF, 1, false)]
    [TestCase((ushort)0xFFFF, 2, true)]
    [TestCase((ushort)0xFFFE, 2, false)]
    [TestCase((ushort)0xFFFD, 4, true)]
    [TestCase((ushort)0xFFFC, 4, false)]
    public void AccessWrappingPastFFFF_AlwaysExits(ushort port, int size, bool exits)
    {
        using var io = new VmxIoBitmaps();
        io.PassThroughAll();
        Assert.That(io.IsIntercepted(port, size), Is.EqualTo(exits));
    }

    [Test]
    public void IsIoExiting_BitmapsOverrideUnconditional()
    {
        using var io = new VmxIoBitmaps();
        io.PassThroughAll();
        io.SetIntercept(0x60, 5, true);
        const VmxPrimaryProcessorControls both = VmxPrimaryProcessorControls.UseIoBitmaps | VmxPrimaryProcessorControls.UnconditionalIoExiting;
        Assert.Multiple(() =>
        {
            Assert.That(VmxIoBitmaps.IsIoExiting(both, io, 0x80, 1), Is.False, "bitmaps decide, unconditional ignored");
            Assert.That(VmxIoBitmaps.IsIoExiting(both, io, 0x64, 1), Is.True);
            Assert.That(VmxIoBitmaps.IsIoExiting(both, io, 0x65, 1), Is.False);
            Assert.That(VmxIoBitmaps.IsIoExiting(VmxPrimaryProcessorControls.UnconditionalIoExiting, null, 0x80, 1), Is.True);
            Assert.That(VmxIoBitmaps.IsIoExiting(VmxPrimaryProcessorControls.None, null, 0x80, 1), Is.False);
        });
    }

    [Test]
    public void SetIntercept_RangePastFFFF_Throws()
    {
        using var io = new VmxIoBitmaps();
        Assert.Throws<ArgumentOutOfRangeException>(() => io.SetIntercept(0xFFFF, 2, false));
    }
}
