using Hypervisor.Host.Loading;

namespace Hypervisor.Host.Tests.Loading;

public class MultibootInfoTests
{
    private const ulong Area = 0x105000;

    private static uint U32(byte[] b, ulong off) => BitConverter.ToUInt32(b, (int)off);
    private static ulong U64(byte[] b, ulong off) => BitConverter.ToUInt64(b, (int)off);

    [TestCase(256UL << 20, 640u, 261120u)]
    [TestCase(1UL << 30, 640u, 1047552u)]
    [TestCase(2UL << 20, 640u, 1024u)]
    public void Build_MemoryFields_CountKiBBelow640KAndFrom1MiB(ulong size, uint lower, uint upper)
    {
        var page = MultibootInfo.Build(Area, size);
        Assert.That(U32(page, MultibootInfo.InfoOffset + 4), Is.EqualTo(lower));
        Assert.That(U32(page, MultibootInfo.InfoOffset + 8), Is.EqualTo(upper));
    }

    [Test]
    public void Build_MemoryMap_AvailableLowReservedHoleAvailableHigh()
    {
        ulong size = 64 << 20;
        var page = MultibootInfo.Build(Area, size);
        uint length = U32(page, MultibootInfo.InfoOffset + 44);
        uint addr = U32(page, MultibootInfo.InfoOffset + 48);
        Assert.That(length, Is.EqualTo(3 * 24));
        Assert.That(addr, Is.EqualTo(Area + MultibootInfo.MemoryMapOffset));
        var expected = new (ulong, ulong, uint)[]
        {
            (0, 0xA0000, 1),
            (0xA0000, 0x60000, 2),
            (0x100000, size - 0x100000, 1),
        };
        for (int k = 0; k < 3; k++)
        {
            ulong e = MultibootInfo.MemoryMapOffset + (ulong)k * 24;
            Assert.That(U32(page, e), Is.EqualTo(20), "entry size excludes the size field");
            Assert.That((U64(page, e + 4), U64(page, e + 12), U32(page, e + 20)), Is.EqualTo(expected[k]));
        }
    }

    [Test]
    public void Build_BootLoaderName_IsNulTerminated()
    {
        var page = MultibootInfo.Build(Area, 16 << 20);
        uint name = U32(page, MultibootInfo.InfoOffset + 64);
        Assert.That(name, Is.EqualTo(Area + MultibootInfo.NameOffset));
        ulong off = name - Area;
        Assert.That(System.Text.Encoding.ASCII.GetString(page, (int)off, 3), Is.EqualTo("hv\0"));
    }

    [Test]
    public void Build_UnprovidedFields_AreZero()
    {
        var page = MultibootInfo.Build(Area, 16 << 20);
        // boot_device, cmdline, mods_count, mods_addr, syms: hv provides none yet (flags bits 1-5 clear).
        for (ulong off = 12; off < 44; off += 4)
            Assert.That(U32(page, MultibootInfo.InfoOffset + off), Is.EqualTo(0), $"offset {off}");
    }
}
