using Hypervisor.Svm.Hardware;

namespace Hypervisor.Svm.Tests.Hardware;

/// <summary>The I/O permission map (APM vol. 2 §15.10.1): one bit per port, every port of a multi-byte access checked.</summary>
public class SvmIoPermissionMapTests
{
    [Test]
    public void New_OwnedMap_Is12KiBAndInterceptsEverything()
    {
        using var iopm = new SvmIoPermissionMap();
        Assert.Multiple(() =>
        {
            Assert.That(iopm.Bytes.Length, Is.EqualTo(12 * 1024));
            Assert.That(iopm.Bytes.ToArray().All(b => b == 0xFF), Is.True);
            Assert.That(iopm.IsIntercepted(0x80, 1), Is.True);
        });
    }

    [TestCase((ushort)0x0000, 0x0000, 0)]
    [TestCase((ushort)0x0007, 0x0000, 7)]
    [TestCase((ushort)0x0008, 0x0001, 0)]
    [TestCase((ushort)0x03F8, 0x007F, 0)]
    [TestCase((ushort)0x0CFC, 0x019F, 4)]
    [TestCase((ushort)0x8000, 0x1000, 0)]
    [TestCase((ushort)0xFFFF, 0x1FFF, 7)]
    public void SetIntercept_Port_IsBitPortMod8OfBytePortDiv8(ushort port, int byteOffset, int bit)
    {
        using var iopm = new SvmIoPermissionMap();
        iopm.PassThroughAll();
        iopm.SetIntercept(port, true);
        var bytes = iopm.Bytes.ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(bytes[byteOffset], Is.EqualTo(1 << bit));
            Assert.That(bytes.Count(b => b != 0), Is.EqualTo(1));
            Assert.That(iopm.IsIntercepted(port, 1), Is.True);
        });
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(4)]
    public void IsIntercepted_EachPortOfTheAccess_IsChecked(int size)
    {
        // Ports 0x70-0x77 straddle nothing; 0x7E-0x81 straddle a byte boundary. Mark one port at a
        // time and check which accesses see it.
        foreach (ushort start in new ushort[] { 0x70, 0x7E })
        {
            for (int marked = start - 4; marked < start + 8; marked++)
            {
                using var iopm = new SvmIoPermissionMap();
                iopm.PassThroughAll();
                iopm.SetIntercept((ushort)marked, true);
                bool expected = marked >= start && marked < start + size;
                Assert.That(iopm.IsIntercepted(start, size), Is.EqualTo(expected), $"access 0x{start:x}/{size} with port 0x{marked:x} marked");
            }
        }
    }

    [Test]
    public void IsIntercepted_NothingMarked_PassesEverySize()
    {
        using var iopm = new SvmIoPermissionMap();
        iopm.PassThroughAll();
        for (int port = 0; port <= 0xFFFF; port++)
            Assert.That(iopm.IsIntercepted((ushort)port, 4), Is.False, $"port 0x{port:x}");
    }

    [Test]
    public void IsIntercepted_PortFFFFSize4_ChecksBits10000To10002InTheThirdPage()
    {
        // An access at FFFFh of 4 bytes covers FFFFh and, past the 64K port space, bits 10000h-10002h
        // (byte 2000h of the map, the third 4 KiB page); it does not wrap to ports 0-2.
        using var iopm = new SvmIoPermissionMap();
        iopm.PassThroughAll();
        iopm.SetIntercept(0x0000, 3, true);
        Assert.That(iopm.IsIntercepted(0xFFFF, 4), Is.False, "ports 0-2 are not what FFFFh/4 checks");

        iopm.PassThroughAll();
        iopm.Bytes[0x2000] = 0b0000_0100; // bit 10002h
        Assert.Multiple(() =>
        {
            Assert.That(iopm.IsIntercepted(0xFFFF, 4), Is.True);
            Assert.That(iopm.IsIntercepted(0xFFFF, 2), Is.False, "FFFFh/2 covers only bits FFFFh and 10000h");
            Assert.That(iopm.IsIntercepted(0xFFFF, 1), Is.False);
        });

        iopm.Bytes[0x2000] = 0b0000_0001; // bit 10000h
        Assert.Multiple(() =>
        {
            Assert.That(iopm.IsIntercepted(0xFFFF, 2), Is.True);
            Assert.That(iopm.IsIntercepted(0xFFFE, 2), Is.False);
            Assert.That(iopm.IsIntercepted(0xFFFE, 4), Is.True);
            Assert.That(iopm.IsIntercepted(0xFFFD, 4), Is.True);
            Assert.That(iopm.IsIntercepted(0xFFFC, 4), Is.False);
        });
    }

    [Test]
    public void SetIntercept_Range_SetsAndClearsEachPort()
    {
        using var iopm = new SvmIoPermissionMap();
        iopm.SetIntercept(0x3F8, 8, false);
        Assert.Multiple(() =>
        {
            Assert.That(iopm.Bytes[0x7F], Is.EqualTo(0x00));
            Assert.That(iopm.IsIntercepted(0x3F8, 4), Is.False);
            Assert.That(iopm.IsIntercepted(0x3FC, 4), Is.False);
            Assert.That(iopm.IsIntercepted(0x3FD, 4), Is.True, "0x400 is still intercepted");
            Assert.That(iopm.IsIntercepted(0x3F5, 4), Is.True, "0x3F7 is still intercepted");
        });
        Assert.Throws<ArgumentOutOfRangeException>(() => iopm.SetIntercept(0xFFFE, 3, true));
    }

    [Test]
    public void Map_OverCallerMemory_ReadsAndWritesThatMemory()
    {
        var memory = new byte[12 * 1024];
        memory[0x60 / 8] = 1 << (0x60 % 8);
        using var iopm = new SvmIoPermissionMap(memory);
        Assert.That(iopm.IsIntercepted(0x60, 1), Is.True);
        Assert.That(iopm.IsIntercepted(0x61, 1), Is.False);
        iopm.SetIntercept(0x64, true);
        Assert.That(memory[0x64 / 8], Is.EqualTo((1 << 0) | (1 << 4)));
        Assert.Throws<ArgumentException>(() => new SvmIoPermissionMap(new byte[8 * 1024]));
    }
}
