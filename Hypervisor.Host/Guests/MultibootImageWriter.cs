using System.Buffers.Binary;
using Hypervisor.Host.Loading;
using Iced.Intel;

namespace Hypervisor.Host.Guests;

/// <summary>
/// Writes multiboot v1 kernels from code assembled with Iced: the inverse of
/// <see cref="MultibootKernel"/>. Used by the sample images, <c>hv bench</c> and the tests.
/// Execution starts at <c>entry</c> when given, else at the first assembled byte; the code is
/// assembled at <see cref="AoutKludgeCodeAddress"/> or <see cref="ElfCodeAddress"/>.
/// </summary>
public static class MultibootImageWriter
{
    /// <summary>Header flags the writer sets: memory information wanted (bit 1).</summary>
    private const uint BaseFlags = MultibootHeader.FlagMemoryInfo;

    /// <summary>
    /// A flat binary with the a.out kludge (flags bit 16): a 32-byte multiboot header at
    /// <paramref name="loadAddress"/> followed by the code; the file loads as one range and
    /// <paramref name="bssSize"/> zero bytes follow it in memory.
    /// </summary>
    public static byte[] AoutKludge(Assembler asm, uint loadAddress, Label? entry = null, uint bssSize = 0)
    {
        uint codeAddress = AoutKludgeCodeAddress(loadAddress);
        byte[] code = Assemble(asm, codeAddress, entry, out uint entryAddress);
        var image = new byte[MultibootHeader.AoutKludgeSize + code.Length];
        uint flags = BaseFlags | MultibootHeader.FlagAoutKludge;
        uint loadEnd = codeAddress + (uint)code.Length;
        var h = image.AsSpan();
        W32(h, 0, MultibootHeader.Magic);
        W32(h, 4, flags);
        W32(h, 8, unchecked(0u - MultibootHeader.Magic - flags));
        W32(h, 12, loadAddress);                       // header_addr
        W32(h, 16, loadAddress);                       // load_addr
        W32(h, 20, loadEnd);                           // load_end_addr
        W32(h, 24, bssSize == 0 ? 0 : loadEnd + bssSize); // bss_end_addr
        W32(h, 28, entryAddress);                      // entry_addr
        code.CopyTo(image, MultibootHeader.AoutKludgeSize);
        return image;
    }

    /// <summary>
    /// An ELF32 (or ELF64) executable with one PT_LOAD program header that loads the whole file at
    /// <paramref name="loadAddress"/> (virtual = physical), with the multiboot header (no a.out
    /// kludge) right after the ELF and program headers, then the code.
    /// </summary>
    public static byte[] Elf(Assembler asm, uint loadAddress, bool elf64 = false, Label? entry = null, uint bssSize = 0)
    {
        int ehSize = elf64 ? 64 : 52, phSize = elf64 ? 56 : 32;
        int headers = ElfHeadersSize(elf64);
        uint codeAddress = loadAddress + (uint)headers;
        byte[] code = Assemble(asm, codeAddress, entry, out uint entryAddress);
        var image = new byte[headers + code.Length];
        var b = image.AsSpan();

        // e_ident: magic, class, little-endian, version 1, System V ABI.
        b[0] = 0x7F; b[1] = (byte)'E'; b[2] = (byte)'L'; b[3] = (byte)'F';
        b[4] = (byte)(elf64 ? 2 : 1);
        b[5] = 1;
        b[6] = 1;
        W16(b, 16, ElfImage.EtExec);
        W16(b, 18, elf64 ? ElfImage.EmX86_64 : ElfImage.Em386);
        W32(b, 20, 1); // e_version
        ulong fileSize = (ulong)image.Length, memSize = fileSize + bssSize;
        if (elf64)
        {
            W64(b, 24, entryAddress); // e_entry
            W64(b, 32, (ulong)ehSize); // e_phoff
            W16(b, 52, (ushort)ehSize);
            W16(b, 54, (ushort)phSize);
            W16(b, 56, 1);
            W16(b, 58, 64); // e_shentsize (no sections)
            var p = b[ehSize..];
            W32(p, 0, ElfImage.PtLoad);
            W32(p, 4, 7); // PF_R | PF_W | PF_X
            W64(p, 8, 0); // p_offset
            W64(p, 16, loadAddress);
            W64(p, 24, loadAddress);
            W64(p, 32, fileSize);
            W64(p, 40, memSize);
            W64(p, 48, 0x1000);
        }
        else
        {
            W32(b, 24, entryAddress);
            W32(b, 28, (uint)ehSize);
            W16(b, 40, (ushort)ehSize);
            W16(b, 42, (ushort)phSize);
            W16(b, 44, 1);
            W16(b, 46, 40);
            var p = b[ehSize..];
            W32(p, 0, ElfImage.PtLoad);
            W32(p, 4, 0); // p_offset
            W32(p, 8, loadAddress);
            W32(p, 12, loadAddress);
            W32(p, 16, (uint)fileSize);
            W32(p, 20, (uint)memSize);
            W32(p, 24, 7);
            W32(p, 28, 0x1000);
        }
        var mb = b[(ehSize + phSize)..];
        W32(mb, 0, MultibootHeader.Magic);
        W32(mb, 4, BaseFlags);
        W32(mb, 8, unchecked(0u - MultibootHeader.Magic - BaseFlags));
        code.CopyTo(image, headers);
        return image;
    }

    /// <summary>Where an a.out-kludge image's code starts: right after its 32-byte header.</summary>
    public static uint AoutKludgeCodeAddress(uint loadAddress) => loadAddress + MultibootHeader.AoutKludgeSize;

    /// <summary>Where an ELF image's code starts: after the ELF header, one program header and the multiboot header.</summary>
    public static uint ElfCodeAddress(uint loadAddress, bool elf64 = false) => loadAddress + (uint)ElfHeadersSize(elf64);

    private static int ElfHeadersSize(bool elf64) => (elf64 ? 64 + 56 : 52 + 32) + MultibootHeader.FixedSize;

    public static byte[] Assemble(Assembler asm, ulong address) => Assemble(asm, address, null, out _);

    private static byte[] Assemble(Assembler asm, ulong address, Label? entry, out uint entryAddress)
    {
        var stream = new MemoryStream();
        var result = asm.Assemble(new StreamCodeWriter(stream), address, BlockEncoderOptions.ReturnNewInstructionOffsets);
        ulong e = entry is { } l ? result.GetLabelRIP(l) : address;
        entryAddress = checked((uint)e);
        return stream.ToArray();
    }

    private static void W16(Span<byte> b, int off, ushort v) => BinaryPrimitives.WriteUInt16LittleEndian(b[off..], v);
    private static void W32(Span<byte> b, int off, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(b[off..], v);
    private static void W64(Span<byte> b, int off, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(b[off..], v);
}
