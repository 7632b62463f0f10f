using Hypervisor.Host.Guests;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Samples.Guests;

/// <summary>
/// uart.bin (a.out kludge): reads back the 16550's registers after a driver's initialisation,
/// the scratch register and divisor latch, the THRE interrupt identification, and a byte sent
/// through loopback, printing each value in hex. Ends with status 1.
/// </summary>
public static class Uart
{
    private const ushort Com1 = GuestLib.Com1;

    public static byte[] Build()
    {
        var a = new Assembler(32);
        var lib = new GuestLib(a, MultibootImageWriter.AoutKludgeCodeAddress(Sample.LoadAddress));
        uint lcr = lib.String("lcr="), ier = lib.String(" ier="), iir = lib.String(" iir="), lsr = lib.String(" lsr="), msr = lib.String(" msr=");
        uint scr = lib.String("scr="), dll = lib.String(" dll="), dlm = lib.String(" dlm=");
        uint thre = lib.String("thre interrupt: iir="), then = lib.String(" then ");
        uint loop = lib.String("loopback: lsr="), rbr = lib.String(" rbr="), msrHigh = lib.String(" msr[7:4]=");
        uint newline = lib.String("\n");
        uint done = lib.String("uart ok\n");

        lib.BeginCode();
        lib.SerialInit();

        // After initialisation.
        lib.Print(lcr); ReadAndPrint(lib, 3);
        lib.Print(ier); ReadAndPrint(lib, 1);
        lib.Print(iir); ReadAndPrint(lib, 2);
        lib.Print(lsr); ReadAndPrint(lib, 5);
        lib.Print(msr); ReadAndPrint(lib, 6);
        lib.Print(newline);

        // Scratch register, then the divisor latch through DLAB. Nothing is printed while DLAB
        // is set (THR's port is DLL then) or between the two IIR reads (a THR write raises THRE again).
        Write(a, 7, 0x5A);
        lib.Print(scr); ReadAndPrint(lib, 7);
        Write(a, 3, 0x83);
        In(a, 0); a.mov(bl, al);
        In(a, 1); a.mov(bh, al);
        Write(a, 3, 0x03);
        lib.Print(dll); a.mov(al, bl); lib.PutHex8();
        lib.Print(dlm); a.mov(al, bh); lib.PutHex8();
        lib.Print(newline);

        // Enabling the THRE interrupt with THR empty raises it; reading IIR acknowledges it.
        Write(a, 1, 0x02);
        In(a, 2); a.mov(bl, al);
        In(a, 2); a.mov(bh, al);
        Write(a, 1, 0x00);
        lib.Print(thre); a.mov(al, bl); lib.PutHex8();
        lib.Print(then); a.mov(al, bh); lib.PutHex8();
        lib.Print(newline);

        // Loopback: the byte written to THR arrives in RBR; MSR's line bits follow MCR
        // (printed without the delta bits: those are checked by the unit tests).
        Write(a, 4, 0x1E);
        Write(a, 0, 0xAE);
        In(a, 5); a.mov(bl, al);
        In(a, 0); a.mov(bh, al);
        In(a, 5); a.mov(cl, al);
        In(a, 6); a.and(al, 0xF0); a.mov(ch, al);
        Write(a, 4, 0x0B);
        lib.Print(loop); a.mov(al, bl); lib.PutHex8();
        lib.Print(rbr); a.mov(al, bh); lib.PutHex8();
        lib.Print(lsr); a.mov(al, cl); lib.PutHex8();
        lib.Print(msrHigh); a.mov(al, ch); lib.PutHex8();
        lib.Print(newline);

        lib.Print(done);
        a.xor(eax, eax);
        lib.ExitWithAl();
        lib.EmitRoutines();
        return MultibootImageWriter.AoutKludge(a, Sample.LoadAddress, entry: lib.Entry);
    }

    private static void In(Assembler a, int register)
    {
        a.mov(dx, (ushort)(Com1 + register));
        a.@in(al, dx);
    }

    private static void ReadAndPrint(GuestLib lib, int register)
    {
        In(lib.A, register);
        lib.PutHex8();
    }

    private static void Write(Assembler a, int register, byte value)
    {
        a.mov(dx, (ushort)(Com1 + register));
        a.mov(al, value);
        a.@out(dx, al);
    }
}
