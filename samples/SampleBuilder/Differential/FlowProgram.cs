using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Samples.Differential;

/// <summary>
/// Differential program for string instructions (every width, both directions, REP/REPE/REPNE),
/// calls and the stack (recursion, ENTER/LEAVE, PUSHF/POPF) and self-modifying code.
/// Results are printed as checksums of registers and of the memory touched.
/// </summary>
public static class FlowProgram
{
    private const uint Buf = 0x300000;

    public static byte[] Build() => DiffImage.Build64((a, lib) =>
    {
        var fib = a.CreateLabel();
        var sum = a.CreateLabel();
        var start = a.CreateLabel();
        a.jmp(start);

        // fib(rdi) -> rax, naive recursion.
        a.Label(ref fib);
        var small = a.CreateLabel();
        a.cmp(rdi, 2);
        a.jb(small);
        a.push(rdi);
        a.dec(rdi);
        a.call(fib);
        a.pop(rdi);
        a.push(rax);
        a.sub(rdi, 2);
        a.call(fib);
        a.add(rdi, 2);
        a.pop(rdx);
        a.add(rax, rdx);
        a.ret();
        a.Label(ref small);
        a.mov(rax, rdi);
        a.ret();

        // sum: checksum of RCX bytes at RSI into RAX (rol/xor).
        a.Label(ref sum);
        var sl = a.CreateLabel();
        var sd = a.CreateLabel();
        a.push(rsi); a.push(rcx); a.push(rdx);
        a.xor(eax, eax);
        a.Label(ref sl);
        a.test(rcx, rcx);
        a.je(sd);
        a.movzx(edx, __byte_ptr[rsi]);
        a.imul(rax, rax, 1000003);
        a.add(rax, rdx);
        a.inc(rsi);
        a.dec(rcx);
        a.jmp(sl);
        a.Label(ref sd);
        a.pop(rdx); a.pop(rcx); a.pop(rsi);
        a.ret();

        void Checksum(string name)
        {
            // State of the string instruction first: RSI, RDI, RCX, flags into R9..R12.
            a.pushfq();
            a.pop(r12);
            a.and(r12d, 0x8D5);
            a.mov(r9, rsi);
            a.mov(r10, rdi);
            a.mov(r11, rcx);
            a.mov(esi, Buf);
            a.mov(ecx, 512);
            a.call(sum);
            lib.Print(name + " mem=");
            lib.Hex(rax);
            lib.Print(" rsi=");
            lib.Hex(r9);
            lib.Print(" rdi=");
            lib.Hex(r10);
            lib.Print(" rcx=");
            lib.Hex(r11);
            lib.Print(" fl=");
            lib.Hex(r12d);
            lib.Print("\n");
        }

        a.Label(ref start);
        lib.Print("flow differential\n");
        // Pattern in the buffer: byte i = i * 7 + 3.
        var pat = a.CreateLabel();
        a.mov(edi, Buf);
        a.xor(ecx, ecx);
        a.Label(ref pat);
        a.lea(eax, __[rcx * 8 + 3]);
        a.sub(eax, ecx);
        a.mov(__byte_ptr[rdi + rcx], al);
        a.inc(ecx);
        a.cmp(ecx, 512);
        a.jb(pat);

        a.cld();
        a.mov(esi, Buf); a.mov(edi, Buf + 256); a.mov(ecx, 37); a.rep.movsb(); Checksum("rep movsb");
        a.mov(esi, Buf + 1); a.mov(edi, Buf + 3); a.mov(ecx, 40); a.rep.movsb(); Checksum("overlap movsb");
        a.mov(esi, Buf + 8); a.mov(edi, Buf + 100); a.mov(ecx, 9); a.rep.movsw(); Checksum("rep movsw");
        a.mov(esi, Buf + 16); a.mov(edi, Buf + 200); a.mov(ecx, 11); a.rep.movsd(); Checksum("rep movsd");
        a.mov(esi, Buf + 24); a.mov(edi, Buf + 300); a.mov(ecx, 13); a.rep.movsq(); Checksum("rep movsq");
        a.std();
        a.mov(esi, Buf + 400); a.mov(edi, Buf + 420); a.mov(ecx, 33); a.rep.movsb(); Checksum("std movsb");
        a.mov(esi, Buf + 400); a.mov(edi, Buf + 480); a.mov(ecx, 5); a.rep.movsq(); Checksum("std movsq");
        a.cld();
        a.mov(eax, 0x5A5A5A5A); a.mov(edi, Buf + 50); a.mov(ecx, 7); a.rep.stosd(); Checksum("rep stosd");
        a.mov(rax, 0x0102030405060708); a.mov(edi, Buf + 60); a.mov(ecx, 3); a.rep.stosq(); Checksum("rep stosq");
        a.mov(al, 0x77); a.mov(edi, Buf + 70); a.mov(ecx, 0); a.rep.stosb(); Checksum("rep stosb rcx=0");
        a.mov(esi, Buf); a.mov(edi, Buf + 256); a.mov(ecx, 100); a.repe.cmpsb(); Checksum("repe cmpsb");
        a.mov(esi, Buf); a.mov(edi, Buf + 1); a.mov(ecx, 100); a.repne.cmpsb(); Checksum("repne cmpsb");
        a.mov(esi, Buf); a.mov(edi, Buf + 256); a.mov(ecx, 20); a.repe.cmpsd(); Checksum("repe cmpsd");
        a.mov(al, 0x5A); a.mov(edi, Buf); a.mov(ecx, 400); a.repne.scasb(); Checksum("repne scasb");
        a.mov(ax, 0x0703); a.mov(edi, Buf); a.mov(ecx, 300); a.repne.scasw(); Checksum("repne scasw");
        a.mov(esi, Buf + 5); a.lodsb(); a.lodsw(); a.lodsd(); a.lodsq(); Checksum("lods");
        a.mov(eax, 0x33); a.mov(edi, Buf + 500); a.stosb(); a.stosw(); Checksum("stos");

        // Calls and the stack.
        a.mov(edi, 20);
        a.call(fib);
        lib.Print("fib(20)=");
        lib.Hex(rax);
        lib.Print("\n");
        a.enter(32, 0);
        a.mov(__qword_ptr[rbp - 8], rsp);
        a.leave();
        a.push(rbp);
        a.mov(rbp, rsp);
        a.enter(16, 3);
        a.mov(rax, rsp);
        a.sub(rax, rbp);
        a.leave();
        a.pop(rbp);
        lib.Print("enter3 frame=");
        lib.Hex(rax);
        lib.Print("\n");
        a.mov(rax, 0x8D5 | 0x400);
        a.push(rax);
        a.popfq();
        a.pushfq();
        a.pop(rax);
        a.cld();
        a.and(eax, 0xCD5);
        lib.Print("popf/pushf=");
        lib.Hex(eax);
        lib.Print("\n");
        var loop = a.CreateLabel();
        a.mov(ecx, 1000);
        a.xor(eax, eax);
        a.Label(ref loop);
        a.add(eax, ecx);
        a.loop(loop);
        lib.Print("loop sum=");
        lib.Hex(eax);
        lib.Print("\n");

        // Self-modifying code: patch the immediate of an instruction ahead in the same block,
        // and code run before (another block) then run it again.
        var patched = a.CreateLabel();
        var again = a.CreateLabel();
        var ret = a.CreateLabel();
        a.mov(r8d, 0);
        a.Label(ref again);
        a.lea(rbx, __[patched]);
        a.mov(__dword_ptr[rbx + 1], 0x1111);
        a.Label(ref patched);
        a.mov(eax, 0x2222);          // B8 imm32: imm at +1
        a.add(r8d, eax);
        a.lea(rbx, __[again]);
        a.cmp(r8d, 0x3000);
        a.jb(again);
        lib.Print("smc r8=");
        lib.Hex(r8d);
        lib.Print("\n");
    });
}
