using Hypervisor.Host.Guests;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Samples.Guests;

/// <summary>
/// ports.bin (a.out kludge): reads a port no device claims (0x2F8, where COM2 would be) as a byte
/// and as a dword: both float to all ones. Then writes the 16-bit value 0x1234 to isa-debug-exit,
/// so it ends with status (0x1234 &lt;&lt; 1 | 1) &amp; 0xFF = 0x69 (105).
/// </summary>
public static class Ports
{
    public const ushort Unclaimed = 0x2F8;
    public const ushort ExitValue = 0x1234;

    public static byte[] Build()
    {
        var a = new Assembler(32);
        var lib = new GuestLib(a, MultibootImageWriter.AoutKludgeCodeAddress(Sample.LoadAddress));
        uint inByte = lib.String("in al, 0x2f8: ");
        uint inDword = lib.String("\nin eax, 0x2f8: ");
        uint exit = lib.String("\nexit with a 16-bit write of 0x1234\n");

        lib.BeginCode();
        lib.SerialInit();
        lib.Print(inByte);
        a.mov(dx, Unclaimed);
        a.@in(al, dx);
        lib.PutHex8();
        lib.Print(inDword);
        a.mov(dx, Unclaimed);
        a.@in(eax, dx);
        lib.PutHex32();
        lib.Print(exit);
        a.mov(dx, GuestLib.DebugExitPort);
        a.mov(ax, ExitValue);
        a.@out(dx, ax);
        a.hlt();
        lib.EmitRoutines();
        return MultibootImageWriter.AoutKludge(a, Sample.LoadAddress, entry: lib.Entry);
    }
}
