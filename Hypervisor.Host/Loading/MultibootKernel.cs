using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Memory;
using Hypervisor.Core.X86;

namespace Hypervisor.Host.Loading;

public enum ImageFormat { AoutKludge, Elf32, Elf64 }

/// <summary>
/// A multiboot v1 kernel, checked against the guest memory it will be loaded into, the way
/// <c>qemu -kernel</c> loads one: <see cref="Check"/> finds every problem before anything is
/// written (so a bad image runs nothing), <see cref="WriteInto"/> copies the segments, zeroes the
/// bss and writes the boot page, and <see cref="EntryState"/> is the CPU state the specification
/// defines (§3.2).
/// </summary>
public sealed class MultibootKernel : BootImage
{
    /// <summary>A 32-bit entry with paging off reaches only the first 4 GiB.</summary>
    private const ulong AddressLimit = 1UL << 32;

    private readonly byte[] _file;

    private readonly MultibootBootOptions? _boot;

    private MultibootKernel(byte[] file, ImageFormat format, MultibootHeader header, IReadOnlyList<LoadSegment> segments, uint entry,
        ulong bootInfoArea, MultibootBootOptions? boot, IReadOnlyList<MultibootModuleEntry> modules)
    {
        _file = file;
        _boot = boot;
        Modules = modules;
        Format = format;
        Header = header;
        Segments = segments;
        Entry = entry;
        BootInfoArea = bootInfoArea;
    }

    public ImageFormat Format { get; }
    public MultibootHeader Header { get; }
    public IReadOnlyList<LoadSegment> Segments { get; }
    /// <summary>Physical address where execution starts.</summary>
    public uint Entry { get; }
    /// <summary>Base of the boot page (GDT, multiboot information, memory map): the first page after the image.</summary>
    public ulong BootInfoArea { get; }
    public ulong BootInfoAddress => BootInfoArea + MultibootInfo.InfoOffset;
    /// <summary>Where each module goes, in the order given.</summary>
    public IReadOnlyList<MultibootModuleEntry> Modules { get; }
    /// <summary>The command line the kernel gets, or null for none (flags bit 2 clear).</summary>
    public string? CommandLine => _boot?.CommandLine;

    /// <summary>Parses and checks <paramref name="file"/> for a guest with <paramref name="memorySize"/>
    /// bytes of RAM at 0, with the command line and modules of <paramref name="boot"/> (none when null:
    /// the information structure then has neither).</summary>
    /// <exception cref="ImageException">with a one-line message saying what is wrong and where.</exception>
    public static MultibootKernel Check(byte[] file, ulong memorySize, MultibootBootOptions? boot = null) =>
        Check(file, MultibootHeader.Find(file), memorySize, boot);

    /// <summary><see cref="Check(byte[], ulong, MultibootBootOptions?)"/> with the header already found.</summary>
    public static MultibootKernel Check(byte[] file, MultibootHeader header, ulong memorySize, MultibootBootOptions? boot)
    {
        ImageFormat format;
        IReadOnlyList<LoadSegment> segments;
        ulong entry;
        if (header.HasAoutKludge)
        {
            format = ImageFormat.AoutKludge;
            var seg = AoutKludgeSegment(header, file.Length);
            segments = new[] { seg };
            entry = header.EntryAddr;
        }
        else
        {
            var elf = ElfImage.Parse(file);
            format = elf.Bits == 32 ? ImageFormat.Elf32 : ImageFormat.Elf64;
            segments = elf.Segments;
            entry = elf.PhysicalEntry();
        }

        ulong reach = Math.Min(memorySize, AddressLimit);
        SegmentChecks.Check(segments, seg => Describe(format, seg), memorySize, reach, entry);
        ulong imageEnd = segments.Max(seg => seg.End);
        ulong area = PageUp(imageEnd);
        if (boot != null && boot.Modules.Count > MultibootInfo.MaxModules)
            throw new ImageException($"{boot.Modules.Count} modules: hv passes at most {MultibootInfo.MaxModules}");
        ulong areaSize = MultibootInfo.AreaSizeFor(boot?.CommandLine, boot == null ? null : PlaceholderEntries(boot));
        if (area + areaSize > reach)
        {
            ulong pages = areaSize / MultibootInfo.AreaSize;
            throw new ImageException($"no room for the multiboot information: it goes in the {(pages == 1 ? "page" : $"{pages} pages")} after the image (0x{area:x}), but guest memory ends at 0x{reach:x}; try --memory");
        }
        var modules = new List<MultibootModuleEntry>();
        ulong next = area + areaSize;
        for (int k = 0; boot != null && k < boot.Modules.Count; k++)
        {
            var m = boot.Modules[k];
            ulong start = PageUp(next), end = start + (ulong)m.Data.Length;
            if (end > reach)
                throw new ImageException($"module {k + 1} ({m.Name}, {m.Data.Length} bytes) does not fit: it goes at [0x{start:x}, 0x{end:x}) after the kernel and its boot information, but guest memory ends at 0x{reach:x}; try --memory");
            modules.Add(new MultibootModuleEntry(start, end, m.String));
            next = end;
        }
        return new MultibootKernel(file, format, header, segments, (uint)entry, area, boot, modules);
    }

    private static ulong PageUp(ulong a) => (a + MultibootInfo.AreaSize - 1) & ~(MultibootInfo.AreaSize - 1);

    /// <summary>Entries with the right strings, to size the boot area before the modules are placed.</summary>
    private static List<MultibootModuleEntry> PlaceholderEntries(MultibootBootOptions boot) =>
        boot.Modules.Select(m => new MultibootModuleEntry(0, 0, m.String)).ToList();

    /// <summary>The one range an a.out-kludge image loads (§3.1.3): the file from the header's
    /// offset minus (header_addr - load_addr), up to load_end_addr (0: end of file), then bss.</summary>
    private static LoadSegment AoutKludgeSegment(MultibootHeader h, int fileLength)
    {
        string at = $"multiboot header at file offset 0x{h.FileOffset:x}";
        if (h.LoadAddr > h.HeaderAddr)
            throw new ImageException($"{at}: load_addr 0x{h.LoadAddr:x} is above header_addr 0x{h.HeaderAddr:x}");
        long start = h.FileOffset - (long)(h.HeaderAddr - h.LoadAddr);
        if (start < 0)
            throw new ImageException($"{at}: header_addr 0x{h.HeaderAddr:x} - load_addr 0x{h.LoadAddr:x} puts the start of the image {-start} bytes before the beginning of the file");
        ulong loadSize;
        if (h.LoadEndAddr == 0)
        {
            loadSize = (ulong)(fileLength - start);
        }
        else
        {
            if (h.LoadEndAddr < h.LoadAddr)
                throw new ImageException($"{at}: load_end_addr 0x{h.LoadEndAddr:x} is below load_addr 0x{h.LoadAddr:x}");
            loadSize = h.LoadEndAddr - h.LoadAddr;
            if ((ulong)start + loadSize > (ulong)fileLength)
                throw new ImageException($"truncated: load_addr..load_end_addr [0x{h.LoadAddr:x}, 0x{h.LoadEndAddr:x}) needs file bytes [0x{start:x}, 0x{(ulong)start + loadSize:x}) but the file ends at 0x{fileLength:x}");
        }
        ulong memSize = loadSize;
        if (h.BssEndAddr != 0)
        {
            ulong loadEnd = h.LoadAddr + loadSize;
            if (h.BssEndAddr < loadEnd)
                throw new ImageException($"{at}: bss_end_addr 0x{h.BssEndAddr:x} is below the end of the loaded data 0x{loadEnd:x}");
            memSize = h.BssEndAddr - h.LoadAddr;
        }
        if (memSize == 0)
            throw new ImageException($"{at}: the a.out kludge loads nothing (load range is empty)");
        return new LoadSegment(0, h.LoadAddr, (ulong)start, loadSize, memSize);
    }

    private static string Describe(ImageFormat format, LoadSegment s) =>
        format == ImageFormat.AoutKludge ? $"the a.out kludge load range {s}" : $"program header {s.Index} (PT_LOAD {s})";

    /// <summary>The CPU state at entry (§3.2): where to start, the information structure, the boot GDT.</summary>
    public MultibootEntryState EntryState => new(Entry, (uint)BootInfoAddress, BootInfoArea + MultibootInfo.GdtOffset);

    public override string Description => Format switch
    {
        ImageFormat.AoutKludge => "multiboot kernel (a.out kludge)",
        ImageFormat.Elf32 => "multiboot ELF32 kernel",
        _ => "multiboot ELF64 kernel",
    };

    public override void SetEntryState(Vcpu vcpu) => EntryState.Apply(vcpu);

    public override void SetEntryState(X86Cpu cpu) => EntryState.Apply(cpu);

    /// <summary>Copies the segments, zeroes the bss and writes the boot page.</summary>
    public override void WriteInto(PhysicalMemory memory)
    {
        SegmentWriter.Write(memory, _file, Segments);
        ulong memorySize = 0;
        foreach (var slot in memory.Slots)
            if (!Hypervisor.Core.X86.Mmu.TdpMmu.IsPrivate(slot.GuestBase)) // the MMU's tables are not guest RAM
                memorySize = Math.Max(memorySize, slot.GuestEnd);
        memory.Write(BootInfoArea, MultibootInfo.Build(BootInfoArea, memorySize, _boot?.CommandLine, _boot == null ? null : Modules));
        for (int k = 0; k < Modules.Count; k++)
            memory.Write(Modules[k].Start, _boot!.Modules[k].Data);
    }
}
