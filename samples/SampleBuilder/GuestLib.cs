using System.Text;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Samples;

/// <summary>
/// Small 32-bit routines the sample guests share, emitted into the guest with Iced. Only
/// instructions the CPU implements today (MOV, PUSH/POP, CALL/RET, ADD/SUB/CMP/INC/DEC,
/// AND/OR/XOR/TEST, Jcc/JMP, IN/OUT, HLT). Each routine preserves every register but its result.
/// Iced cannot put a label in a memory operand outside 64-bit mode, so data comes first, at
/// addresses known before any code is assembled: the constructor emits the routines' tables,
/// <see cref="String"/> adds strings, <see cref="BeginCode"/> marks the entry point, and
/// <see cref="EmitRoutines"/> goes after the sample's own code.
/// </summary>
public sealed class GuestLib
{
    public const ushort Com1 = 0x3F8;
    public const ushort DebugExitPort = 0xF4;

    private Label _serialInit, _putc, _puts, _putDec, _putHex8, _putHex32;
    private readonly uint _hexTable, _pow10, _scratch, _stackTop;

    /// <summary>Bytes of stack each sample gets, in its own data area (the specification leaves ESP undefined).</summary>
    public const int StackSize = 4096;
    private uint _cursor;
    private Label? _entry;

    /// <param name="a">A 32-bit assembler with nothing in it yet.</param>
    /// <param name="address">Where the first byte of <paramref name="a"/>'s output will be loaded.</param>
    public GuestLib(Assembler a, uint address)
    {
        A = a;
        _cursor = address;
        _serialInit = a.CreateLabel("serial_init");
        _putc = a.CreateLabel("putc");
        _puts = a.CreateLabel("puts");
        _putDec = a.CreateLabel("put_dec");
        _putHex8 = a.CreateLabel("put_hex8");
        _putHex32 = a.CreateLabel("put_hex32");

        var table = new StringBuilder();
        for (int v = 0; v < 256; v++)
            table.Append(v.ToString("x2"));
        _hexTable = Data(Encoding.ASCII.GetBytes(table.ToString()));
        var powers = new byte[40];
        uint p = 1_000_000_000;
        for (int k = 0; k < 10; k++, p /= 10)
            BitConverter.TryWriteBytes(powers.AsSpan(k * 4), p);
        _pow10 = Data(powers);
        _scratch = Data(new byte[4]);
        _stackTop = Data(new byte[StackSize]) + StackSize;
    }

    public Assembler A { get; }

    /// <summary>The entry point, once <see cref="BeginCode"/> has placed it.</summary>
    public Label Entry => _entry ?? throw new InvalidOperationException("BeginCode was not called");

    /// <summary>Emits raw bytes in the data area and returns their guest address.</summary>
    public uint Data(byte[] bytes)
    {
        if (_entry != null)
            throw new InvalidOperationException("data must come before BeginCode");
        uint at = _cursor;
        A.db(bytes);
        _cursor += (uint)bytes.Length;
        return at;
    }

    /// <summary>Emits a NUL-terminated ASCII string in the data area and returns its guest address.</summary>
    public uint String(string text) => Data(Encoding.ASCII.GetBytes(text + "\0"));

    /// <summary>Ends the data area and starts the code where the kernel is entered: it sets up
    /// the stack (leaving EAX and EBX, the multiboot magic and information pointer, as they are).</summary>
    public Label BeginCode()
    {
        var entry = A.CreateLabel("entry");
        A.Label(ref entry);
        _entry = entry;
        A.mov(esp, _stackTop);
        return entry;
    }

    /// <summary>COM1 at 115200 8N1 with FIFOs, the way a driver initialises a 16550.</summary>
    public void SerialInit() => A.call(_serialInit);

    /// <summary>Prints the NUL-terminated string at <paramref name="text"/>.</summary>
    public void Print(uint text)
    {
        A.push(esi);
        A.mov(esi, text);
        A.call(_puts);
        A.pop(esi);
    }

    /// <summary>Prints the NUL-terminated string ESI points at (a string the guest finds at run time).</summary>
    public void PrintAtEsi() => A.call(_puts);

    /// <summary>Prints AL.</summary>
    public void PutChar() => A.call(_putc);
    /// <summary>Prints EAX as an unsigned decimal number.</summary>
    public void PutDecimal() => A.call(_putDec);
    /// <summary>Prints AL as two lowercase hex digits.</summary>
    public void PutHex8() => A.call(_putHex8);
    /// <summary>Prints EAX as eight lowercase hex digits.</summary>
    public void PutHex32() => A.call(_putHex32);

    /// <summary>Writes AL to isa-debug-exit (status (AL &lt;&lt; 1) | 1); halts if the write returns.</summary>
    public void ExitWithAl()
    {
        var stop = A.CreateLabel();
        A.@out((byte)DebugExitPort, al);
        A.Label(ref stop);
        A.hlt();
        A.jmp(stop);
    }

    public void EmitRoutines()
    {
        var a = A;

        // serial_init: IER=0, DLAB on, divisor 1 (115200 baud), 8N1 with DLAB off,
        // FIFOs on and cleared with a 14-byte trigger, DTR|RTS|OUT2.
        a.Label(ref _serialInit);
        a.push(eax);
        a.push(edx);
        OutByte(Com1 + 1, 0x00);
        OutByte(Com1 + 3, 0x80);
        OutByte(Com1 + 0, 0x01);
        OutByte(Com1 + 1, 0x00);
        OutByte(Com1 + 3, 0x03);
        OutByte(Com1 + 2, 0xC7);
        OutByte(Com1 + 4, 0x0B);
        a.pop(edx);
        a.pop(eax);
        a.ret();

        // putc: wait for THRE in LSR, then write AL to THR.
        var wait = a.CreateLabel();
        a.Label(ref _putc);
        a.push(edx);
        a.push(eax);
        a.mov(dx, (ushort)(Com1 + 5));
        a.Label(ref wait);
        a.@in(al, dx);
        a.test(al, 0x20);
        a.je(wait);
        a.pop(eax);
        a.mov(dx, Com1);
        a.@out(dx, al);
        a.pop(edx);
        a.ret();

        // puts: ESI = string.
        var next = a.CreateLabel();
        var end = a.CreateLabel();
        a.Label(ref _puts);
        a.push(eax);
        a.push(esi);
        a.Label(ref next);
        a.mov(al, __byte_ptr[esi]);
        a.cmp(al, 0);
        a.je(end);
        a.call(_putc);
        a.inc(esi);
        a.jmp(next);
        a.Label(ref end);
        a.pop(esi);
        a.pop(eax);
        a.ret();

        // put_dec: no divide yet, so each digit is how many times its power of ten subtracts.
        // ECX says whether a digit has been printed (leading zeros are skipped; the last digit never is).
        var power = a.CreateLabel();
        var count = a.CreateLabel();
        var emit = a.CreateLabel();
        var print = a.CreateLabel();
        var skip = a.CreateLabel();
        a.Label(ref _putDec);
        a.push(eax);
        a.push(ebx);
        a.push(ecx);
        a.push(edx);
        a.push(esi);
        a.mov(esi, _pow10);
        a.xor(ecx, ecx);
        a.Label(ref power);
        a.mov(ebx, __dword_ptr[esi]);
        a.mov(dl, (byte)'0');
        a.Label(ref count);
        a.cmp(eax, ebx);
        a.jb(emit);
        a.sub(eax, ebx);
        a.inc(dl);
        a.jmp(count);
        a.Label(ref emit);
        a.cmp(ebx, 1);
        a.je(print);
        a.cmp(dl, (byte)'0');
        a.jne(print);
        a.test(ecx, ecx);
        a.je(skip);
        a.Label(ref print);
        a.push(eax);
        a.mov(al, dl);
        a.call(_putc);
        a.pop(eax);
        a.mov(ecx, 1);
        a.Label(ref skip);
        a.add(esi, 4);
        a.cmp(ebx, 1);
        a.jne(power);
        a.pop(esi);
        a.pop(edx);
        a.pop(ecx);
        a.pop(ebx);
        a.pop(eax);
        a.ret();

        // put_hex8: two characters from a 256-entry table of digit pairs (no shifts needed).
        a.Label(ref _putHex8);
        a.push(eax);
        a.push(ebx);
        a.and(eax, 0xFF);
        a.mov(ebx, eax);
        a.add(ebx, eax);
        a.mov(al, __byte_ptr[ebx + (int)_hexTable]);
        a.call(_putc);
        a.mov(al, __byte_ptr[ebx + (int)(_hexTable + 1)]);
        a.call(_putc);
        a.pop(ebx);
        a.pop(eax);
        a.ret();

        // put_hex32: the bytes of EAX, most significant first, through a scratch dword.
        a.Label(ref _putHex32);
        a.push(eax);
        a.mov(__dword_ptr[_scratch], eax);
        a.mov(al, __byte_ptr[_scratch + 3]);
        a.call(_putHex8);
        a.mov(al, __byte_ptr[_scratch + 2]);
        a.call(_putHex8);
        a.mov(al, __byte_ptr[_scratch + 1]);
        a.call(_putHex8);
        a.mov(al, __byte_ptr[_scratch]);
        a.call(_putHex8);
        a.pop(eax);
        a.ret();
    }

    private void OutByte(int port, byte value)
    {
        A.mov(dx, (ushort)port);
        A.mov(al, value);
        A.@out(dx, al);
    }
}
