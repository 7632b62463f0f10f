using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Samples.Differential;

/// <summary>
/// Builds multiboot v1 a.out-kludge images loaded at 1 MiB: a 32-bit entry (as a multiboot
/// loader leaves it) and, for 64-bit programs, a prologue that enters long mode with identity
/// paging of the first 4 GiB (2 MiB pages) before running the body. Bodies print through
/// <see cref="DiffLib"/> and end by writing to isa-debug-exit.
/// </summary>
public static class DiffImage
{
    public const uint LoadAddress = 0x100000;
    private const uint HeaderSize = 32;
    private const uint Pml4 = 0x1000;      // page tables below 1 MiB, clear of the image
    private const uint GdtAddr = 0x7000;

    public static byte[] Build32(Action<Assembler, DiffLib> body)
    {
        var a = new Assembler(32);
        var lib = new DiffLib(a);
        lib.Entry();
        body(a, lib);
        lib.Exit(0);
        lib.EmitRoutines();
        return Link(Assemble(a, LoadAddress + HeaderSize));
    }

    public static byte[] Build64(Action<Assembler, DiffLib> body)
    {
        // Stage 1 (32-bit): page tables, GDT, PAE + LME + PG, far jump to stage 2.
        var p = new Assembler(32);
        p.cli();
        p.mov(esp, 0x90000);
        // PML4[0] -> PDPT at Pml4+0x1000; PDPT[0..3] -> PDs at Pml4+0x2000..; 2 MiB pages.
        p.mov(edi, Pml4);
        p.mov(ecx, 6 * 1024);
        p.xor(eax, eax);
        p.rep.stosd();
        p.mov(__dword_ptr[Pml4], Pml4 + 0x1000 + 3);
        for (uint g = 0; g < 4; g++)
            p.mov(__dword_ptr[Pml4 + 0x1000 + g * 8], Pml4 + 0x2000 + g * 0x1000 + 3);
        var fill = p.CreateLabel();
        p.mov(edi, Pml4 + 0x2000);
        p.mov(eax, 0x83);           // present, writable, 2 MiB
        p.mov(ecx, 2048);
        p.Label(ref fill);
        p.mov(__dword_ptr[edi], eax);
        p.mov(__dword_ptr[edi + 4], 0);
        p.add(eax, 0x200000);
        p.add(edi, 8);
        p.dec(ecx);
        p.jne(fill);
        // GDT: null, 0x08 code64, 0x10 data; GDTR at GdtAddr+0x20.
        p.mov(__dword_ptr[GdtAddr + 0], 0); p.mov(__dword_ptr[GdtAddr + 4], 0);
        p.mov(__dword_ptr[GdtAddr + 8], 0x0000FFFF); p.mov(__dword_ptr[GdtAddr + 12], 0x00AF9A00);
        p.mov(__dword_ptr[GdtAddr + 16], 0x0000FFFF); p.mov(__dword_ptr[GdtAddr + 20], 0x00CF9200);
        p.mov(__word_ptr[GdtAddr + 0x20], 23);
        p.mov(__dword_ptr[GdtAddr + 0x22], GdtAddr);
        p.lgdt(__[GdtAddr + 0x20]);
        p.mov(eax, cr4);
        p.or(eax, 1 << 5);          // PAE
        p.mov(cr4, eax);
        p.mov(eax, Pml4);
        p.mov(cr3, eax);
        p.mov(ecx, 0xC0000080);     // EFER
        p.rdmsr();
        p.or(eax, (1 << 8) | (1 << 11)); // LME, NXE
        p.wrmsr();
        p.mov(eax, cr0);
        p.or(eax, unchecked((int)0x80000001u));
        p.mov(cr0, eax);
        var stage1 = Assemble(p, LoadAddress + HeaderSize);
        uint stage2At = LoadAddress + HeaderSize + (uint)stage1.Length + 7; // after the far jump (7 bytes)
        stage2At = (stage2At + 15) & ~15u;
        var jump = new Assembler(32);
        jump.jmp(0x08, stage2At);
        var jumpBytes = Assemble(jump, LoadAddress + HeaderSize + (uint)stage1.Length);
        var pad = new byte[stage2At - (LoadAddress + HeaderSize + (uint)stage1.Length + (uint)jumpBytes.Length)];

        var b = new Assembler(64);
        b.mov(ax, 0x10);
        b.mov(ds, ax); b.mov(es, ax); b.mov(ss, ax); b.mov(fs, ax); b.mov(gs, ax);
        var lib = new DiffLib(b);
        lib.Entry();
        body(b, lib);
        lib.Exit(0);
        lib.EmitRoutines();
        var stage2 = Assemble(b, stage2At);
        return Link(stage1.Concat(jumpBytes).Concat(pad).Concat(stage2).ToArray());
    }

    private static byte[] Assemble(Assembler a, ulong address)
    {
        var ms = new MemoryStream();
        a.Assemble(new StreamCodeWriter(ms), address);
        return ms.ToArray();
    }

    /// <summary>Prepends the multiboot header (magic, flags with the a.out kludge, checksum, addresses).</summary>
    private static byte[] Link(byte[] code)
    {
        const uint magic = 0x1BADB002, flags = 0x00010002;
        var header = new uint[] { magic, flags, unchecked(0u - magic - flags), LoadAddress, LoadAddress, 0, 0, LoadAddress + HeaderSize };
        var image = new byte[HeaderSize + code.Length];
        Buffer.BlockCopy(header, 0, image, 0, (int)HeaderSize);
        code.CopyTo(image, (int)HeaderSize);
        return image;
    }
}
