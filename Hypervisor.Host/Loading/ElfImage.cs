using System.Buffers.Binary;

namespace Hypervisor.Host.Loading;

/// <summary>
/// The parts of an ELF32 or ELF64 executable a multiboot loader uses (System V ABI, "ELF header"
/// and "Program header"): the entry point and the PT_LOAD program headers, loaded at their
/// physical addresses (p_paddr) as GRUB and QEMU do.
/// </summary>
public sealed class ElfImage
{
    public const uint PtLoad = 1;
    public const ushort EtExec = 2;
    public const ushort Em386 = 3, EmX86_64 = 62;

    private ElfImage(int bits, ulong entry, IReadOnlyList<LoadSegment> segments, IReadOnlyList<ulong> virtualAddresses)
    {
        Bits = bits;
        Entry = entry;
        Segments = segments;
        VirtualAddresses = virtualAddresses;
    }

    /// <summary>32 for ELFCLASS32, 64 for ELFCLASS64.</summary>
    public int Bits { get; }
    /// <summary>e_entry as the file gives it (a virtual address).</summary>
    public ulong Entry { get; }
    public IReadOnlyList<LoadSegment> Segments { get; }
    /// <summary>p_vaddr of each segment in <see cref="Segments"/>.</summary>
    public IReadOnlyList<ulong> VirtualAddresses { get; }

    public static bool HasElfMagic(ReadOnlySpan<byte> file) =>
        file.Length >= 4 && file[0] == 0x7F && file[1] == (byte)'E' && file[2] == (byte)'L' && file[3] == (byte)'F';

    public static ElfImage Parse(ReadOnlySpan<byte> file)
    {
        if (!HasElfMagic(file))
            throw new ImageException($"bad magic at file offset 0x0: {Hex(file[..Math.Min(4, file.Length)])} is not an ELF file (7f 45 4c 46), and the multiboot header does not set the a.out kludge (flags bit 16) that loads flat binaries");
        if (file.Length < 20)
            throw new ImageException($"truncated: the ELF header needs at least 20 bytes, the file is {file.Length}");
        int bits = file[4] switch
        {
            1 => 32,
            2 => 64,
            var c => throw new ImageException($"ELF header at file offset 0x4: unknown class {c} (1 = ELF32, 2 = ELF64)"),
        };
        if (file[5] != 1)
            throw new ImageException($"ELF header at file offset 0x5: data encoding {file[5]} is not little-endian (1), as x86 needs");
        int ehSize = bits == 32 ? 52 : 64;
        if (file.Length < ehSize)
            throw new ImageException($"truncated: the ELF{bits} header needs {ehSize} bytes, the file is {file.Length}");
        ushort type = U16(file, 16), machine = U16(file, 18);
        if (type != EtExec)
            throw new ImageException($"ELF header at file offset 0x10: type {type} is not an executable (ET_EXEC = 2)");
        ushort wantMachine = bits == 32 ? Em386 : EmX86_64;
        if (machine != wantMachine)
            throw new ImageException($"ELF header at file offset 0x12: machine {machine} is not {(bits == 32 ? "EM_386 (3)" : "EM_X86_64 (62)")} for an ELF{bits} file");

        ulong entry, phOff;
        int phEntSize, phNum;
        if (bits == 32)
        {
            entry = U32(file, 24);
            phOff = U32(file, 28);
            phEntSize = U16(file, 42);
            phNum = U16(file, 44);
        }
        else
        {
            entry = U64(file, 24);
            phOff = U64(file, 32);
            phEntSize = U16(file, 54);
            phNum = U16(file, 56);
        }
        int minEntSize = bits == 32 ? 32 : 56;
        if (phNum == 0)
            throw new ImageException("ELF header: no program headers (e_phnum = 0), so nothing to load");
        if (phEntSize < minEntSize)
            throw new ImageException($"ELF header: program header size e_phentsize = {phEntSize} is smaller than the {minEntSize} bytes of an ELF{bits} program header");
        ulong tableEnd = phOff + (ulong)phNum * (ulong)phEntSize;
        if (phOff > (ulong)file.Length || tableEnd > (ulong)file.Length)
            throw new ImageException($"truncated: the program header table [0x{phOff:x}, 0x{tableEnd:x}) extends past the end of the file (0x{file.Length:x})");

        var segments = new List<LoadSegment>();
        var vaddrs = new List<ulong>();
        for (int n = 0; n < phNum; n++)
        {
            int p = (int)phOff + n * phEntSize;
            uint pType = U32(file, p);
            if (pType != PtLoad)
                continue;
            ulong offset, vaddr, paddr, fileSize, memSize;
            if (bits == 32)
            {
                offset = U32(file, p + 4);
                vaddr = U32(file, p + 8);
                paddr = U32(file, p + 12);
                fileSize = U32(file, p + 16);
                memSize = U32(file, p + 20);
            }
            else
            {
                offset = U64(file, p + 8);
                vaddr = U64(file, p + 16);
                paddr = U64(file, p + 24);
                fileSize = U64(file, p + 32);
                memSize = U64(file, p + 40);
            }
            if (memSize == 0)
                continue; // occupies nothing
            if (fileSize > memSize)
                throw new ImageException($"program header {n} (PT_LOAD at file offset 0x{p:x}): p_filesz 0x{fileSize:x} is larger than p_memsz 0x{memSize:x}");
            if (offset > (ulong)file.Length || fileSize > (ulong)file.Length - offset)
                throw new ImageException($"truncated: program header {n} loads file bytes [0x{offset:x}, 0x{offset + fileSize:x}) but the file ends at 0x{file.Length:x}");
            if (paddr + memSize < paddr)
                throw new ImageException($"program header {n}: physical range 0x{paddr:x} + 0x{memSize:x} wraps around the address space");
            segments.Add(new LoadSegment(n, paddr, offset, fileSize, memSize));
            vaddrs.Add(vaddr);
        }
        if (segments.Count == 0)
            throw new ImageException("ELF file has no PT_LOAD program header with a non-zero size: nothing to load");
        return new ElfImage(bits, entry, segments, vaddrs);
    }

    /// <summary>The physical address of the entry point. Kernels linked at a higher virtual
    /// address give a virtual e_entry; it is translated through the segment that contains it
    /// (as QEMU does), and kept as is when no segment's virtual range holds it.</summary>
    public ulong PhysicalEntry()
    {
        for (int k = 0; k < Segments.Count; k++)
        {
            var s = Segments[k];
            ulong v = VirtualAddresses[k];
            if (Entry - v < s.MemorySize)
                return s.Address + (Entry - v);
        }
        return Entry;
    }

    private static string Hex(ReadOnlySpan<byte> b)
    {
        var parts = new string[b.Length];
        for (int k = 0; k < b.Length; k++)
            parts[k] = b[k].ToString("x2");
        return parts.Length == 0 ? "(nothing)" : string.Join(' ', parts);
    }

    private static ushort U16(ReadOnlySpan<byte> b, int off) => BinaryPrimitives.ReadUInt16LittleEndian(b[off..]);
    private static uint U32(ReadOnlySpan<byte> b, int off) => BinaryPrimitives.ReadUInt32LittleEndian(b[off..]);
    private static ulong U64(ReadOnlySpan<byte> b, int off) => BinaryPrimitives.ReadUInt64LittleEndian(b[off..]);
}
