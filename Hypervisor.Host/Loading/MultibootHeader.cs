using System.Buffers.Binary;

namespace Hypervisor.Host.Loading;

/// <summary>
/// The multiboot v1 header (Multiboot Specification 0.6.96 §3.1): magic, flags, checksum and,
/// when flags bit 16 is set, the a.out-kludge address fields. It lies wholly inside the first
/// 8192 bytes of the image, 32-bit aligned.
/// </summary>
public readonly record struct MultibootHeader(
    int FileOffset, uint Flags, uint HeaderAddr, uint LoadAddr, uint LoadEndAddr, uint BssEndAddr, uint EntryAddr)
{
    public const uint Magic = 0x1BADB002;
    public const int SearchLimit = 8192;

    /// <summary>Magic, flags and checksum.</summary>
    public const int FixedSize = 12;
    /// <summary>With the five address fields of the a.out kludge.</summary>
    public const int AoutKludgeSize = 32;

    /// <summary>Bit 0: modules page-aligned. hv always aligns them.</summary>
    public const uint FlagPageAlignModules = 1u << 0;
    /// <summary>Bit 1: mem_* fields required. hv always provides them.</summary>
    public const uint FlagMemoryInfo = 1u << 1;
    /// <summary>Bit 2: video mode table required. hv has no display.</summary>
    public const uint FlagVideoMode = 1u << 2;
    /// <summary>Bit 16: the address fields are valid; load as a flat binary (the "a.out kludge").</summary>
    public const uint FlagAoutKludge = 1u << 16;

    public bool HasAoutKludge => (Flags & FlagAoutKludge) != 0;

    /// <summary>Finds and checks the header. Like GRUB and QEMU, a magic value whose checksum does
    /// not match is skipped and the search goes on; it is reported only when no valid header follows.</summary>
    public static MultibootHeader Find(ReadOnlySpan<byte> image)
    {
        if (image.Length == 0)
            throw new ImageException("truncated: the file is empty");
        if (TryFind(image) is { } header)
            return header;
        if (image.Length < FixedSize)
            throw new ImageException($"truncated: the file is {image.Length} bytes, too short to hold a multiboot header");
        throw new ImageException($"no multiboot header (magic 0x{Magic:x8}, 32-bit aligned) in the first {SearchLimit} bytes");
    }

    /// <summary>The header, or null when the first 8192 bytes hold no magic value at all (the
    /// image is not meant to be a multiboot kernel). A header that is there but wrong (bad
    /// checksum, flags hv cannot honour) is an <see cref="ImageException"/>.</summary>
    public static MultibootHeader? TryFind(ReadOnlySpan<byte> image)
    {
        int limit = Math.Min(image.Length, SearchLimit) - FixedSize;
        int badChecksumAt = -1;
        uint badSum = 0;
        for (int off = 0; off <= limit; off += 4)
        {
            if (U32(image, off) != Magic)
                continue;
            uint flags = U32(image, off + 4);
            uint sum = Magic + flags + U32(image, off + 8);
            if (sum != 0)
            {
                if (badChecksumAt < 0)
                    (badChecksumAt, badSum) = (off, sum);
                continue;
            }
            return Parse(image, off, flags);
        }
        if (badChecksumAt >= 0)
            throw new ImageException($"multiboot header at file offset 0x{badChecksumAt:x}: bad checksum (magic + flags + checksum = 0x{badSum:x8}, must be 0)");
        return null;
    }

    private static MultibootHeader Parse(ReadOnlySpan<byte> image, int off, uint flags)
    {
        if ((flags & FlagVideoMode) != 0)
            throw new ImageException($"multiboot header at file offset 0x{off:x}: flags 0x{flags:x8} require video mode information (bit 2), which hv cannot provide (it has no display)");
        uint unknown = flags & 0xFFF8u;
        if (unknown != 0)
            throw new ImageException($"multiboot header at file offset 0x{off:x}: flags 0x{flags:x8} require features hv does not know (bits 0x{unknown:x4} of the required bits 0-15)");
        if ((flags & FlagAoutKludge) == 0)
            return new MultibootHeader(off, flags, 0, 0, 0, 0, 0);
        if (off + AoutKludgeSize > image.Length)
            throw new ImageException($"truncated: the multiboot header at file offset 0x{off:x} sets the a.out kludge (flags bit 16) but the file ends at 0x{image.Length:x}, before its address fields end at 0x{off + AoutKludgeSize:x}");
        if (off + AoutKludgeSize > SearchLimit)
            throw new ImageException($"multiboot header at file offset 0x{off:x}: its address fields end at 0x{off + AoutKludgeSize:x}, past the first {SearchLimit} bytes where the whole header must lie");
        return new MultibootHeader(off, flags,
            HeaderAddr: U32(image, off + 12), LoadAddr: U32(image, off + 16), LoadEndAddr: U32(image, off + 20),
            BssEndAddr: U32(image, off + 24), EntryAddr: U32(image, off + 28));
    }

    private static uint U32(ReadOnlySpan<byte> b, int off) => BinaryPrimitives.ReadUInt32LittleEndian(b[off..]);
}
