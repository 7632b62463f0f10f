using System.Buffers.Binary;

namespace Hypervisor.Host.Loading;

/// <summary>
/// The page hv fills for the kernel at entry (Multiboot Specification 0.6.96 §3.3): the multiboot
/// information structure with mem_lower/mem_upper (flags bit 0), a memory map (bit 6) and the
/// boot loader name (bit 9), plus a flat GDT so the kernel may reload its segment registers
/// before it installs its own (the specification leaves GDTR undefined; a valid one is kinder).
/// </summary>
public static class MultibootInfo
{
    /// <summary>EAX at entry: tells the kernel a multiboot loader started it.</summary>
    public const uint BootloaderMagic = 0x2BADB002;

    public const uint FlagMemory = 1u << 0;
    public const uint FlagMemoryMap = 1u << 6;
    public const uint FlagBootLoaderName = 1u << 9;

    /// <summary>The boot page: GDT at +0x000, information structure at +0x040, memory map at
    /// +0x100, boot loader name at +0x200.</summary>
    public const ulong AreaSize = 0x1000;
    public const ulong GdtOffset = 0x000, InfoOffset = 0x040, MemoryMapOffset = 0x100, NameOffset = 0x200;

    /// <summary>Flat 4 GiB selectors in the boot GDT.</summary>
    public const ushort CodeSelector = 0x08, DataSelector = 0x10;
    public const int GdtEntries = 3;

    /// <summary>Memory map entry types (the E820 numbering the specification uses).</summary>
    public const uint TypeAvailable = 1, TypeReserved = 2;

    /// <summary>The PC's legacy hole below 1 MiB (VGA window and option/BIOS ROMs): reported as
    /// reserved so kernels written for PCs leave it alone, as they would on real hardware.</summary>
    public const ulong LowMemoryEnd = 0xA0000, HighMemoryStart = 0x100000;

    public const string BootLoaderName = "hv";

    /// <summary>The regions the memory map reports for <paramref name="memorySize"/> bytes of RAM at 0.</summary>
    public static IReadOnlyList<(ulong Base, ulong Length, uint Type)> MemoryMap(ulong memorySize)
    {
        var map = new List<(ulong, ulong, uint)>();
        map.Add((0, Math.Min(memorySize, LowMemoryEnd), TypeAvailable));
        if (memorySize > LowMemoryEnd)
            map.Add((LowMemoryEnd, HighMemoryStart - LowMemoryEnd, TypeReserved));
        if (memorySize > HighMemoryStart)
            map.Add((HighMemoryStart, memorySize - HighMemoryStart, TypeAvailable));
        return map;
    }

    /// <summary>Lays out the boot page for a kernel whose boot page starts at <paramref name="areaBase"/>.</summary>
    public static byte[] Build(ulong areaBase, ulong memorySize)
    {
        var page = new byte[AreaSize];
        var span = page.AsSpan();

        // GDT: null, flat code (execute/read, 32-bit, 4 KiB granular), flat data (read/write).
        // Accessed bits set, as the CPU would have set them when the loader loaded the selectors.
        BinaryPrimitives.WriteUInt64LittleEndian(span[(int)(GdtOffset + 8)..], 0x00CF9B000000FFFFUL);
        BinaryPrimitives.WriteUInt64LittleEndian(span[(int)(GdtOffset + 16)..], 0x00CF93000000FFFFUL);

        var info = span[(int)InfoOffset..];
        uint lowerKb = (uint)(Math.Min(memorySize, LowMemoryEnd) / 1024);
        ulong upper = memorySize > HighMemoryStart ? (memorySize - HighMemoryStart) / 1024 : 0;
        W32(info, 0, FlagMemory | FlagMemoryMap | FlagBootLoaderName);
        W32(info, 4, lowerKb);                             // mem_lower: KiB from 0
        W32(info, 8, (uint)Math.Min(upper, uint.MaxValue)); // mem_upper: KiB from 1 MiB to the first hole

        var map = MemoryMap(memorySize);
        int off = (int)MemoryMapOffset;
        foreach (var (b, len, type) in map)
        {
            // Each entry: size (of the rest, 20), base_addr, length, type.
            W32(span, off, 20);
            BinaryPrimitives.WriteUInt64LittleEndian(span[(off + 4)..], b);
            BinaryPrimitives.WriteUInt64LittleEndian(span[(off + 12)..], len);
            W32(span, off + 20, type);
            off += 24;
        }
        W32(info, 44, (uint)(off - (int)MemoryMapOffset)); // mmap_length
        W32(info, 48, (uint)(areaBase + MemoryMapOffset));  // mmap_addr

        System.Text.Encoding.ASCII.GetBytes(BootLoaderName, span[(int)NameOffset..]);
        W32(info, 64, (uint)(areaBase + NameOffset));       // boot_loader_name (NUL follows: page is zeroed)
        return page;
    }

    private static void W32(Span<byte> b, int off, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(b[off..], v);
}
