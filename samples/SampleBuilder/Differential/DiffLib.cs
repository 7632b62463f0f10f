using System.Text;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Samples.Differential;

/// <summary>
/// Guest-side helpers emitted into a program: COM1 output (polled 16550), hex printing and exit
/// through isa-debug-exit. Create one per assembler, use it in the body, then
/// <see cref="EmitRoutines"/> once at the end. Routines preserve every register but the flags.
/// </summary>
public sealed class DiffLib
{
    private readonly Assembler _a;
    private readonly bool _x64;
    private Label _putc, _puts, _hex32, _hex64;

    public DiffLib(Assembler a)
    {
        _a = a;
        _x64 = a.Bitness == 64;
        _putc = a.CreateLabel("putc");
        _puts = a.CreateLabel("puts");
        _hex32 = a.CreateLabel("hex32");
        _hex64 = a.CreateLabel("hex64");
    }

    /// <summary>Multiboot entry: stack, then the 16550 initialisation a driver does (8N1, 115200).</summary>
    public void Entry()
    {
        _a.cli();
        if (_x64) _a.mov(rsp, 0x90000); else _a.mov(esp, 0x90000);
        (ushort port, byte value)[] init = { (0x3F9, 0x00), (0x3FB, 0x80), (0x3F8, 0x01), (0x3F9, 0x00), (0x3FB, 0x03), (0x3FA, 0xC7), (0x3FC, 0x0B) };
        foreach (var (port, value) in init)
        {
            _a.mov(dx, port);
            _a.mov(al, value);
            _a.@out(dx, al);
        }
    }

    /// <summary>Prints a string kept inline: CALL over it pushes its address (works in 32- and 64-bit code).</summary>
    public void Print(string text)
    {
        var after = _a.CreateLabel();
        if (_x64) _a.push(rsi); else _a.push(esi);
        _a.call(after);
        _a.db(Encoding.ASCII.GetBytes(text + "\0"));
        _a.Label(ref after);
        if (_x64) _a.pop(rsi); else _a.pop(esi);
        _a.call(_puts);
        if (_x64) _a.pop(rsi); else _a.pop(esi);
    }

    /// <summary>Prints a 64-bit register as 16 hex digits (64-bit programs).</summary>
    public void Hex(AssemblerRegister64 r)
    {
        _a.push(rax);
        _a.mov(rax, r);
        _a.call(_hex64);
        _a.pop(rax);
    }

    /// <summary>Prints a 32-bit register as 8 hex digits.</summary>
    public void Hex(AssemblerRegister32 r)
    {
        if (_x64)
        {
            _a.push(rax);
            _a.mov(eax, r);
            _a.call(_hex32);
            _a.pop(rax);
        }
        else
        {
            _a.push(eax);
            _a.mov(eax, r);
            _a.call(_hex32);
            _a.pop(eax);
        }
    }

    public void Exit(byte value)
    {
        _a.mov(al, value);
        _a.@out(0xF4, al);
        _a.cli();
        _a.hlt();
    }

    public void EmitRoutines()
    {
        var a = _a;
        // putc: AL to COM1 once the transmitter holding register is empty.
        a.Label(ref _putc);
        if (_x64) { a.push(rdx); a.push(rax); } else { a.push(edx); a.push(eax); }
        var wait = a.CreateLabel();
        a.mov(dx, 0x3FD);
        a.Label(ref wait);
        a.@in(al, dx);
        a.test(al, 0x20);
        a.je(wait);
        if (_x64) a.pop(rax); else a.pop(eax);
        a.mov(dx, 0x3F8);
        a.@out(dx, al);
        if (_x64) a.pop(rdx); else a.pop(edx);
        a.ret();

        // puts: zero-terminated string at (R|E)SI.
        a.Label(ref _puts);
        var loop = a.CreateLabel();
        var done = a.CreateLabel();
        if (_x64) { a.push(rax); a.push(rsi); } else { a.push(eax); a.push(esi); }
        a.Label(ref loop);
        if (_x64) a.mov(al, __byte_ptr[rsi]); else a.mov(al, __byte_ptr[esi]);
        a.test(al, al);
        a.je(done);
        a.call(_putc);
        if (_x64) a.inc(rsi); else a.inc(esi);
        a.jmp(loop);
        a.Label(ref done);
        if (_x64) { a.pop(rsi); a.pop(rax); } else { a.pop(esi); a.pop(eax); }
        a.ret();

        EmitHex(ref _hex32, 8);
        if (_x64)
            EmitHex(ref _hex64, 16);
        else
        {
            a.Label(ref _hex64);
            a.ret();
        }
    }

    /// <summary>Prints the low <paramref name="digits"/> nibbles of (R|E)AX, most significant first.</summary>
    private void EmitHex(ref Label label, int digits)
    {
        var a = _a;
        a.Label(ref label);
        var loop = a.CreateLabel();
        var letter = a.CreateLabel();
        var emit = a.CreateLabel();
        if (_x64)
        {
            a.push(rax); a.push(rcx); a.push(rdx);
            a.mov(rdx, rax);
            a.mov(ecx, digits);
            if (digits == 8) a.shl(rdx, 32);
            a.Label(ref loop);
            a.rol(rdx, 4);
            a.mov(eax, edx);
        }
        else
        {
            a.push(eax); a.push(ecx); a.push(edx);
            a.mov(edx, eax);
            a.mov(ecx, digits);
            a.Label(ref loop);
            a.rol(edx, 4);
            a.mov(eax, edx);
        }
        a.and(eax, 0xF);
        a.cmp(eax, 10);
        a.jae(letter);
        a.add(eax, '0');
        a.jmp(emit);
        a.Label(ref letter);
        a.add(eax, 'a' - 10);
        a.Label(ref emit);
        a.call(_putc);
        a.dec(ecx);
        a.jne(loop);
        if (_x64) { a.pop(rdx); a.pop(rcx); a.pop(rax); } else { a.pop(edx); a.pop(ecx); a.pop(eax); }
        a.ret();
    }
}
