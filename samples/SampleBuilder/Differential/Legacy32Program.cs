using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Samples.Differential;

/// <summary>Differential program for 32-bit protected mode: BCD adjustment, PUSHA/POPA, 16-bit
/// operand-size arithmetic, LOOP/JECXZ, a far call and return through a GDT of its own.</summary>
public static class Legacy32Program
{
    private const uint Gdt = 0x7000;

    public static byte[] Build() => DiffImage.Build32((a, lib) =>
    {
        lib.Print("legacy32 differential\n");
        // BCD: for every AL in 0..255 and both AF/CF inputs, hash AL/AH and the defined flags.
        foreach (var (name, op, mask) in new (string, Action, int)[]
        {
            ("daa", () => a.daa(), 0xC5 | 0x10 | 0x1), ("das", () => a.das(), 0xC5 | 0x11),
            ("aaa", () => a.aaa(), 0x11), ("aas", () => a.aas(), 0x11),
            ("aam", () => a.aam(10), 0xC4), ("aad", () => a.aad(10), 0xC4),
        })
        {
            var outer = a.CreateLabel();
            var inner = a.CreateLabel();
            a.xor(edi, edi);          // hash
            a.xor(ebx, ebx);          // flags-in pass: 0, 1 (CF), 2 (AF), 3 (both)
            a.Label(ref outer);
            a.xor(ecx, ecx);
            a.Label(ref inner);
            a.mov(eax, ebx);
            a.and(eax, 1);
            a.mov(edx, ebx);
            a.and(edx, 2);
            a.shl(edx, 3);
            a.or(eax, edx);
            a.or(eax, 2);
            a.push(eax);
            a.popfd();
            a.mov(eax, ecx);
            a.mov(ah, 0x12);
            op();
            a.pushfd();
            a.pop(edx);
            a.and(edx, mask);
            a.imul(edi, edi, 1000003); a.add(edi, eax);
            a.imul(edi, edi, 1000003); a.add(edi, edx);
            a.inc(ecx);
            a.cmp(ecx, 256);
            a.jb(inner);
            a.inc(ebx);
            a.cmp(ebx, 4);
            a.jb(outer);
            lib.Print(name + " ");
            lib.Hex(edi);
            lib.Print("\n");
        }
        // PUSHA/POPA and 16-bit forms.
        a.mov(eax, 0x11111111); a.mov(ecx, 0x22222222); a.mov(edx, 0x33333333); a.mov(ebx, 0x44444444);
        a.mov(ebp, 0x55555555); a.mov(esi, 0x66666666); a.mov(edi, 0x77777777);
        a.pushad();
        a.mov(eax, __dword_ptr[esp + 12]);   // the ESP value PUSHAD stored
        a.sub(eax, esp);
        a.mov(__dword_ptr[0x7100], eax);
        a.popad();
        a.mov(eax, __dword_ptr[0x7100]);
        lib.Print("pushad esp-delta=");
        lib.Hex(eax);
        lib.Print("\n");
        a.mov(ax, 0x7FFF);
        a.add(ax, 1);
        a.pushfd();
        a.pop(edx);
        a.and(edx, 0x8D5);
        lib.Print("add16 ");
        lib.Hex(eax);
        lib.Print(" ");
        lib.Hex(edx);
        lib.Print("\n");
        var l = a.CreateLabel();
        var z = a.CreateLabel();
        a.mov(ecx, 5);
        a.xor(eax, eax);
        a.Label(ref l);
        a.add(eax, 3);
        a.loop(l);
        a.jecxz(z);
        a.mov(eax, 0xBAD);
        a.Label(ref z);
        lib.Print("loop ");
        lib.Hex(eax);
        lib.Print("\n");
        // Own GDT: null, 0x08 code32, 0x10 data32; far call into 0x08 and back.
        a.mov(__dword_ptr[Gdt], 0); a.mov(__dword_ptr[Gdt + 4], 0);
        a.mov(__dword_ptr[Gdt + 8], 0x0000FFFF); a.mov(__dword_ptr[Gdt + 12], 0x00CF9A00);
        a.mov(__dword_ptr[Gdt + 16], 0x0000FFFF); a.mov(__dword_ptr[Gdt + 20], 0x00CF9200);
        a.mov(__word_ptr[Gdt + 0x20], 23);
        a.mov(__dword_ptr[Gdt + 0x22], Gdt);
        a.lgdt(__[Gdt + 0x20]);
        // Reload CS with RETF: CALL/POP gives our address; the code after it has a known length
        // (pop ebx 1 + add ebx,imm8 3 + push imm8 2 + push ebx 1 + retf 1 = 8 bytes).
        var here = a.CreateLabel();
        a.mov(ax, 0x10);
        a.mov(ds, ax); a.mov(es, ax); a.mov(ss, ax);
        a.call(here);
        a.Label(ref here);
        a.pop(ebx);
        a.add(ebx, 8);
        a.push(0x08);
        a.push(ebx);
        a.retf();
        a.mov(eax, cs);
        lib.Print("cs=");
        lib.Hex(eax);
        a.mov(eax, ss);
        lib.Print(" ss=");
        lib.Hex(eax);
        lib.Print("\n");
    });
}
