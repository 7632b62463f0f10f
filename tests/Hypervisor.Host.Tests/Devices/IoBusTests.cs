using Hypervisor.Host.Devices;
using Hypervisor.Host.Tests.Support;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Tests.Devices;

public class IoBusTests
{
    /// <summary>Records accesses; answers reads with the low byte of the port.</summary>
    private sealed class Probe(int width) : IPortDevice
    {
        public readonly List<(ushort Port, int Size, uint Value)> Writes = new();
        public readonly List<(ushort Port, int Size)> Reads = new();
        public int AccessWidth => width;
        public uint Read(ushort port, int size)
        {
            Reads.Add((port, size));
            return size == 1 ? (uint)(port & 0xFF) : 0xDDCCBBAAu;
        }
        public void Write(ushort port, int size, uint value) => Writes.Add((port, size, value));
    }

    [TestCase(1, 0xFFu)]
    [TestCase(2, 0xFFFFu)]
    [TestCase(4, 0xFFFFFFFFu)]
    public void Read_UnclaimedPort_FloatsToAllOnes(int size, uint expected)
    {
        var bus = new IoBus();
        Assert.That(bus.Read(0x2F8, size), Is.EqualTo(expected));
        Assert.That(bus.UnclaimedAccesses, Is.EqualTo(size));
    }

    [Test]
    public void Write_UnclaimedPort_IsIgnored()
    {
        var bus = new IoBus();
        bus.Write(0x80, 1, 0x12);
        Assert.That(bus.UnclaimedAccesses, Is.EqualTo(1));
    }

    [Test]
    public void UnclaimedAccesses_AreLoggedAtDebugLevel()
    {
        var log = new RecordingLogger<IoBus>();
        var bus = new IoBus(log);
        bus.Read(0x2F8, 1);
        bus.Write(0x80, 1, 0x12);
        Assert.That(log.Entries, Is.EqualTo(new[]
        {
            (LogLevel.Debug, "Unclaimed port 0x02f8 read: returns 0xff"),
            (LogLevel.Debug, "Unclaimed port 0x0080 write 0x12: ignored"),
        }));
    }

    [Test]
    public void UnclaimedAccesses_NotLoggedAboveDebug()
    {
        var log = new RecordingLogger<IoBus>(LogLevel.Information);
        new IoBus(log).Read(0x2F8, 4);
        Assert.That(log.Entries, Is.Empty);
    }

    [Test]
    public void Write_WiderThanDevice_SplitsLittleEndian()
    {
        var bus = new IoBus();
        var p = new Probe(1);
        bus.Register(0x100, 4, p);
        bus.Write(0x100, 4, 0x44332211);
        Assert.That(p.Writes, Is.EqualTo(new[] { ((ushort)0x100, 1, 0x11u), ((ushort)0x101, 1, 0x22u), ((ushort)0x102, 1, 0x33u), ((ushort)0x103, 1, 0x44u) }));
    }

    [Test]
    public void Read_WiderThanDevice_AssemblesBytes()
    {
        var bus = new IoBus();
        bus.Register(0x100, 2, new Probe(1));
        Assert.That(bus.Read(0x100, 2), Is.EqualTo(0x0100u));
    }

    [Test]
    public void Read_StraddlingDeviceEnd_UnclaimedBytesAreOnes()
    {
        var bus = new IoBus();
        bus.Register(0x100, 1, new Probe(1));
        Assert.That(bus.Read(0x100, 2), Is.EqualTo(0xFF00u));
    }

    [Test]
    public void Access_WithinDeviceWidth_IsOneAccess()
    {
        var bus = new IoBus();
        var p = new Probe(4);
        bus.Register(0xF4, 4, p);
        bus.Write(0xF4, 2, 0x1234);
        Assert.That(p.Writes, Is.EqualTo(new[] { ((ushort)0xF4, 2, 0x1234u) }));
        Assert.That(bus.Read(0xF4, 4), Is.EqualTo(0xDDCCBBAAu));
    }

    [Test]
    public void Register_OverlappingRange_Throws()
    {
        var bus = new IoBus();
        bus.Register(0x3F8, 8, new Probe(1));
        Assert.Throws<InvalidOperationException>(() => bus.Register(0x3FF, 2, new Probe(1)));
    }
}
