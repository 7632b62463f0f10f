using System.Buffers.Binary;

namespace Hypervisor.Host.Loading;

/// <summary>
/// The page hv fills for the kernel at entry (Multiboot Specification 0.6.96 §3.3): the multiboot
/// information structure with mem_lower/mem_upper (flags bit 0), the command line (bit 2), the
/// modules (bit 3), a memory map (bit 6) and the boot loader name (bit 9), plus a flat GDT so the kernel may reload its segment registers
/// before it installs its own (the specification leaves GDTR undefined; a valid one is kinder).
/// </summary>
public static class MultibootInfo
{
    /// <summary>EAX at entry: tells the kernel a multiboot loader started it.</summary>
    public const uint BootloaderMagic = 0x2BADB002;

    public const uint FlagMemory = 1u << 0;
    public const uint FlagCommandLine = 1u << 2;
    public const uint FlagModules = 1u << 3;
    public const uint FlagMemoryMap = 1u << 6;
    public const uint FlagBootLoaderName = 1u << 9;

    /// <summary>The boot area: GDT at +0x000, information structure at +0x040, memory map at
    /// +0x100, boot loader name at +0x200, module list at +0x300, then the command line and the
    /// module strings from +0x800 (the area grows by whole pages when they need more).</summary>
    public const ulong AreaSize = 0x1000;
    public const ulong GdtOffset = 0x000, InfoOffset = 0x040, MemoryMapOffset = 0x100, NameOffset = 0x200;
    public const ulong ModuleListOffset = 0x300, StringsOffset = 0x800;
    public const int ModuleEntrySize = 16;
    /// <summary>The module list fills +0x300 to +0x800.</summary>
    public const int MaxModules = (int)((StringsOffset - ModuleListOffset) / ModuleEntrySize);

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

    /// <summary>Size of the boot area for a command line and module strings: the fixed page,
    /// with the strings from <see cref="StringsOffset"/> on, rounded up to whole pages.</summary>
    public static ulong AreaSizeFor(string? commandLine, IReadOnlyList<MultibootModuleEntry>? modules)
    {
        ulong strings = 0;
        if (commandLine != null)
            strings += (ulong)commandLine.Length + 1;
        foreach (var m in modules ?? [])
            strings += (ulong)m.String.Length + 1;
        return strings == 0 ? AreaSize : (StringsOffset + strings + AreaSize - 1) & ~(AreaSize - 1);
    }

    /// <summary>Lays out the boot area for a kernel whose boot area starts at <paramref name="areaBase"/>:
    /// with a <paramref name="commandLine"/>, flags bit 2 and cmdline; with <paramref name="modules"/>
    /// (even none), flags bit 3, mods_count and mods_addr.</summary>
    public static byte[] Build(ulong areaBase, ulong memorySize, string? commandLine = null, IReadOnlyList<MultibootModuleEntry>? modules = null)
    {
        if (modules is { Count: > MaxModules })
            throw new ArgumentException($"at most {MaxModules} modules fit the boot area", nameof(modules));
        var page = new byte[AreaSizeFor(commandLine, modules)];
        var span = page.AsSpan();

        WriteGdt(span[(int)GdtOffset..]);

        var info = span[(int)InfoOffset..];
        uint flags = FlagMemory | FlagMemoryMap | FlagBootLoaderName;
        uint lowerKb = (uint)(Math.Min(memorySize, LowMemoryEnd) / 1024);
        ulong upper = memorySize > HighMemoryStart ? (memorySize - HighMemoryStart) / 1024 : 0;
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

        int strings = (int)StringsOffset;
        if (commandLine != null)
        {
            flags |= FlagCommandLine;
            W32(info, 16, (uint)(areaBase + (ulong)strings)); // cmdline
            strings += PutString(span, strings, commandLine);
        }
        if (modules != null)
        {
            flags |= FlagModules;
            W32(info, 20, (uint)modules.Count);                  // mods_count
            W32(info, 24, (uint)(areaBase + ModuleListOffset)); // mods_addr
            for (int k = 0; k < modules.Count; k++)
            {
                // Each entry: mod_start, mod_end (exclusive, as GRUB and QEMU give it), string, reserved.
                int e = (int)ModuleListOffset + k * ModuleEntrySize;
                W32(span, e, (uint)modules[k].Start);
                W32(span, e + 4, (uint)modules[k].End);
                W32(span, e + 8, (uint)(areaBase + (ulong)strings));
                strings += PutString(span, strings, modules[k].String);
            }
        }
        W32(info, 0, flags);
        return page;
    }

    /// <summary>The flat GDT (<see cref="GdtEntries"/> entries): null, flat code (execute/read,
    /// 32-bit, 4 KiB granular), flat data (read/write). Accessed bits set, as the CPU would have
    /// set them when the loader loaded the selectors.</summary>
    public static void WriteGdt(Span<byte> gdt)
    {
        gdt[..8].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[8..], 0x00CF9B000000FFFFUL);
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[16..], 0x00CF93000000FFFFUL);
    }

    /// <summary>Writes <paramref name="text"/> and its NUL; returns the bytes used. Non-ASCII
    /// characters become '?', as the kernel reads bytes.</summary>
    private static int PutString(Span<byte> span, int off, string text)
    {
        System.Text.Encoding.ASCII.GetBytes(text, span[off..]);
        return text.Length + 1;
    }

    private static void W32(Span<byte> b, int off, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(b[off..], v);
}
