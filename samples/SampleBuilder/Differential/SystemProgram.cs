using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Samples.Differential;

/// <summary>
/// Differential program for exceptions and paging in long mode: an IDT whose handlers print the
/// vector, the error code and CR2, then resume at an address the test stored beforehand. Faults
/// raised: #DE, #UD, #BP, #GP (bad selector, non-canonical address), #PF (not present read and
/// write, NX fetch, user access to a supervisor page is not testable at CPL0), INT n. Also prints
/// the accessed/dirty bits the walker set.
/// </summary>
public static class SystemProgram
{
    private const ulong Idt = 0x8000;        // 256 x 16 bytes
    private const ulong ResumeSlot = 0x7F00; // where each test stores its resume address
    private const ulong Pt = 0x9000;         // a 4 KiB page table for the 1 GiB..1 GiB+2 MiB range
    private const ulong Pd1 = 0x1000 + 0x2000 + 0x1000; // the PD of the second GiB (see DiffImage)

    public static byte[] Build() => DiffImage.Build64((a, lib) =>
    {
        var handlers = new Label[32];
        for (int v = 0; v < 32; v++) handlers[v] = a.CreateLabel();
        var int80 = a.CreateLabel();
        var start = a.CreateLabel();
        a.jmp(start);

        // Handlers: push a fake error code for vectors without one, then a common tail.
        var common = a.CreateLabel();
        for (int v = 0; v < 32; v++)
        {
            a.Label(ref handlers[v]);
            bool hasError = v is 8 or 10 or 11 or 12 or 13 or 14 or 17 or 21;
            if (!hasError) a.push(0);
            a.push(v);
            a.jmp(common);
        }
        a.Label(ref int80);
        a.push(0);
        a.push(0x80);
        a.jmp(common);
        a.Label(ref common);
        lib.Print("exception vector=");
        a.mov(rax, __qword_ptr[rsp]);
        lib.Hex(eax);
        lib.Print(" error=");
        a.mov(rax, __qword_ptr[rsp + 8]);
        lib.Hex(eax);
        lib.Print(" cr2=");
        a.mov(rax, cr2);
        lib.Hex(rax);
        lib.Print(" cs=");
        a.mov(rax, __qword_ptr[rsp + 24]);
        lib.Hex(eax);
        lib.Print("\n");
        // Resume where the test asked (an IRETQ frame: RIP, CS, RFLAGS, RSP, SS).
        a.mov(rax, __qword_ptr[ResumeSlot]);
        a.mov(__qword_ptr[rsp + 16], rax);
        a.add(rsp, 16);
        a.iretq();

        a.Label(ref start);
        // Build the IDT: 64-bit interrupt gates, selector 0x08.
        for (int v = 0; v < 33; v++)
        {
            int vec = v == 32 ? 0x80 : v;
            var h = v == 32 ? int80 : handlers[v];
            a.lea(rax, __[h]);
            a.mov(rdx, rax);
            a.and(eax, 0xFFFF);
            a.or(eax, 0x0008_0000);
            a.mov(__dword_ptr[Idt + (ulong)vec * 16], eax);
            a.mov(rax, rdx);
            a.and(eax, unchecked((int)0xFFFF0000));
            a.or(eax, 0x8E00);
            a.mov(__dword_ptr[Idt + (ulong)vec * 16 + 4], eax);
            a.shr(rdx, 32);
            a.mov(__dword_ptr[Idt + (ulong)vec * 16 + 8], edx);
            a.mov(__dword_ptr[Idt + (ulong)vec * 16 + 12], 0);
        }
        a.mov(__word_ptr[0x7E00], 256 * 16 - 1);
        a.mov(rax, Idt);
        a.mov(__qword_ptr[0x7E02], rax);
        a.lidt(__[0x7E00]);

        // 4 KiB mappings for [1 GiB, 1 GiB + 2 MiB): page 1 not present, page 2 read-only, page 3 NX.
        var fill = a.CreateLabel();
        a.mov(edi, (uint)Pt);
        a.mov(eax, 0x0040_0003);                            // frames at 4 MiB physical
        a.xor(ecx, ecx);
        a.Label(ref fill);
        a.mov(__dword_ptr[rdi + rcx * 8], eax);
        a.mov(__dword_ptr[rdi + rcx * 8 + 4], 0);
        a.add(eax, 0x1000);
        a.inc(ecx);
        a.cmp(ecx, 512);
        a.jb(fill);
        a.mov(__dword_ptr[Pt + 8], 0x0040_1002);            // not present
        a.mov(__dword_ptr[Pt + 16], 0x0040_2001);           // present, read-only
        a.mov(__dword_ptr[Pt + 24 + 4], unchecked((int)0x8000_0000)); // NX on page 3
        a.mov(__byte_ptr[0x0040_3000], 0xC3);              // RET there (never reached)
        a.mov(__dword_ptr[Pd1], (uint)Pt | 3);
        a.mov(__dword_ptr[Pd1 + 4], 0);
        a.mov(rax, cr3);
        a.mov(cr3, rax);                                    // flush
        a.mov(rax, cr0);
        a.or(eax, 1 << 16);                                 // CR0.WP so supervisor writes honour R/W
        a.mov(cr0, rax);

        void Expect(Action fault)
        {
            var resume = a.CreateLabel();
            a.lea(rax, __[resume]);
            a.mov(__qword_ptr[ResumeSlot], rax);
            fault();
            lib.Print("no fault!\n");
            a.Label(ref resume);
        }

        lib.Print("system differential\n");
        Expect(() => { a.xor(ecx, ecx); a.div(ecx); });
        Expect(() => a.ud2());
        Expect(() => a.int3());
        Expect(() => { a.mov(ax, 0x1234); a.mov(ds, ax); });
        Expect(() => { a.mov(rax, 0x8000_0000_0000_0000); a.mov(rax, __qword_ptr[rax]); });
        Expect(() => a.mov(eax, __dword_ptr[0x4000_1010]));
        Expect(() => a.mov(__dword_ptr[0x4000_1020], eax));
        Expect(() => a.mov(__dword_ptr[0x4000_2030], eax));
        Expect(() => { a.mov(eax, 0x4000_3000); a.call(rax); });
        Expect(() => a.@int(0x80));
        lib.Print("after faults\n");
        // Accessed / dirty bits: read page 4, write page 5, then print their PTEs' low bits.
        a.mov(eax, __dword_ptr[0x4000_4000]);
        a.mov(__dword_ptr[0x4000_5000], eax);
        a.mov(eax, __dword_ptr[Pt + 4 * 8]);
        a.and(eax, 0x60);
        lib.Print("pte4 ad=");
        lib.Hex(eax);
        a.mov(eax, __dword_ptr[Pt + 5 * 8]);
        a.and(eax, 0x60);
        lib.Print(" pte5 ad=");
        lib.Hex(eax);
        a.mov(eax, __dword_ptr[Pt + 6 * 8]);
        a.and(eax, 0x60);
        lib.Print(" pte6 ad=");
        lib.Hex(eax);
        lib.Print("\n");
        // INVLPG: remap page 6 to the frame of page 7 and see the change after INVLPG.
        a.mov(__dword_ptr[0x4000_7000], 0x7777);
        a.mov(__dword_ptr[0x4000_6000], 0x6666);
        a.mov(eax, __dword_ptr[0x4000_6000]);
        a.mov(__dword_ptr[Pt + 6 * 8], 0x0040_7003);
        a.mov(eax, 0x4000_6000);
        a.invlpg(__[rax]);
        a.mov(eax, __dword_ptr[0x4000_6000]);
        lib.Print("after invlpg ");
        lib.Hex(eax);
        lib.Print("\n");
    });
}
