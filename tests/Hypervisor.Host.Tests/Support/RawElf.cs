using System.Buffers.Binary;
using Hypervisor.Host.Loading;

namespace Hypervisor.Host.Tests.Support;

/// <summary>One program header for <see cref="RawElf"/>: the bytes it loads and where.</summary>
internal sealed record RawSegment(ulong PhysicalAddress, byte[] Bytes, ulong MemorySize = 0, ulong VirtualAddress = ulong.MaxValue, uint Type = ElfImage.PtLoad);

/// <summary>
/// Builds ELF files with any program headers, for loader tests that need several segments or
/// broken fields. Layout: ELF header, program headers, a multiboot header (no a.out kludge),
/// then each segment's bytes in order.
/// </summary>
internal static class RawElf
{
    public static byte[] Build(int bits, ulong entry, params RawSegment[] segments) => Build(bits, entry, multiboot: true, segments);

    /// <param name="multiboot">False leaves the multiboot header's 12 bytes zero: a plain ELF file.</param>
    public static byte[] Build(int bits, ulong entry, bool multiboot, params RawSegment[] segments)
    {
        bool b64 = bits == 64;
        int eh = b64 ? 64 : 52, ph = b64 ? 56 : 32;
        int dataStart = eh + ph * segments.Length + 12;
        int total = dataStart;
        foreach (var s in segments)
            total += s.Bytes.Length;
        var f = new byte[total];
        var b = f.AsSpan();
        b[0] = 0x7F; b[1] = (byte)'E'; b[2] = (byte)'L'; b[3] = (byte)'F';
        b[4] = (byte)(b64 ? 2 : 1);
        b[5] = 1;
        b[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(b[16..], ElfImage.EtExec);
        BinaryPrimitives.WriteUInt16LittleEndian(b[18..], b64 ? ElfImage.EmX86_64 : ElfImage.Em386);
        BinaryPrimitives.WriteUInt32LittleEndian(b[20..], 1);
        if (b64)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(b[24..], entry);
            BinaryPrimitives.WriteUInt64LittleEndian(b[32..], (ulong)eh);
            BinaryPrimitives.WriteUInt16LittleEndian(b[54..], (ushort)ph);
            BinaryPrimitives.WriteUInt16LittleEndian(b[56..], (ushort)segments.Length);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(b[24..], (uint)entry);
            BinaryPrimitives.WriteUInt32LittleEndian(b[28..], (uint)eh);
            BinaryPrimitives.WriteUInt16LittleEndian(b[42..], (ushort)ph);
            BinaryPrimitives.WriteUInt16LittleEndian(b[44..], (ushort)segments.Length);
        }
        int offset = dataStart;
        for (int k = 0; k < segments.Length; k++)
        {
            var s = segments[k];
            var p = b[(eh + k * ph)..];
            ulong vaddr = s.VirtualAddress == ulong.MaxValue ? s.PhysicalAddress : s.VirtualAddress;
            ulong memsz = s.MemorySize == 0 ? (ulong)s.Bytes.Length : s.MemorySize;
            BinaryPrimitives.WriteUInt32LittleEndian(p, s.Type);
            if (b64)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(p[4..], 7);
                BinaryPrimitives.WriteUInt64LittleEndian(p[8..], (ulong)offset);
                BinaryPrimitives.WriteUInt64LittleEndian(p[16..], vaddr);
                BinaryPrimitives.WriteUInt64LittleEndian(p[24..], s.PhysicalAddress);
                BinaryPrimitives.WriteUInt64LittleEndian(p[32..], (ulong)s.Bytes.Length);
                BinaryPrimitives.WriteUInt64LittleEndian(p[40..], memsz);
            }
            else
            {
                BinaryPrimitives.WriteUInt32LittleEndian(p[4..], (uint)offset);
                BinaryPrimitives.WriteUInt32LittleEndian(p[8..], (uint)vaddr);
                BinaryPrimitives.WriteUInt32LittleEndian(p[12..], (uint)s.PhysicalAddress);
                BinaryPrimitives.WriteUInt32LittleEndian(p[16..], (uint)s.Bytes.Length);
                BinaryPrimitives.WriteUInt32LittleEndian(p[20..], (uint)memsz);
                BinaryPrimitives.WriteUInt32LittleEndian(p[24..], 7);
            }
            s.Bytes.CopyTo(f, offset);
            offset += s.Bytes.Length;
        }
        if (!multiboot)
            return f;
        var mb = b[(eh + ph * segments.Length)..];
        BinaryPrimitives.WriteUInt32LittleEndian(mb, MultibootHeader.Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(mb[4..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(mb[8..], unchecked(0u - MultibootHeader.Magic));
        return f;
    }
}
