using Hypervisor.Core.Machine.Memory;

namespace Hypervisor.Core.Tests.Machine.Memory;

public unsafe class GuestRamTests
{
    [TestCase(2UL << 20)]
    [TestCase((4UL << 20) + 4096)]
    [TestCase((8UL << 20) + 123)]
    [TestCase(4096UL)]
    public void Allocate_IsZeroedAndWritableToTheLastByte(ulong size)
    {
        byte* p = GuestRam.Allocate(size, out bool mapped);
        try
        {
            var all = new Span<byte>(p, (int)size);
            Assert.That(all.ContainsAnyExcept((byte)0), Is.False);
            all[0] = 1;
            all[^1] = 2;
            Assert.That(p[0] + p[size - 1], Is.EqualTo(3));
        }
        finally
        {
            GuestRam.Free(p, size, mapped);
        }
    }

    [Test]
    public void Allocate_OnLinux_MapsOn2MiBBoundaries_SoHugePagesCanBackIt()
    {
        if (!OperatingSystem.IsLinux())
            Assert.Ignore("huge-page mappings are Linux only; elsewhere guest RAM is heap memory");
        ulong size = 6UL << 20;
        byte* p = GuestRam.Allocate(size, out bool mapped);
        try
        {
            Assert.That(mapped, Is.True);
            Assert.That((ulong)p % (2UL << 20), Is.Zero);
        }
        finally
        {
            GuestRam.Free(p, size, mapped);
        }
    }

    [Test]
    public void Slots_StillWorkThroughPhysicalMemory()
    {
        using var memory = new PhysicalMemory();
        var slot = memory.AddSlot(0, 0, (2UL << 20) + 4096);
        slot.AsSpan((2UL << 20) + 4095, 1)[0] = 0x5a;
        Assert.That(slot.AsSpan((2UL << 20) + 4095, 1)[0], Is.EqualTo(0x5a));
        Assert.That(slot.AsSpan(0, 4096).ContainsAnyExcept((byte)0), Is.False);
    }
}
