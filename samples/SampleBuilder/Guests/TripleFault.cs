using Hypervisor.Host.Guests;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Samples.Guests;

/// <summary>
/// triple.bin (a.out kludge): prints a line, then loads DS with a selector beyond the GDT's limit.
/// The #GP(0x40) finds no usable IDT (hv leaves IDTR empty at entry; under QEMU it still holds
/// the real-mode vector table), so delivery faults into #DF and then into a triple fault: hv ends
/// with status 3; QEMU, started with -no-reboot, exits with 0.
/// </summary>
public static class TripleFault
{
    public const ushort BadSelector = 0x40;

    public static byte[] Build()
    {
        var a = new Assembler(32);
        var lib = new GuestLib(a, MultibootImageWriter.AoutKludgeCodeAddress(Sample.LoadAddress));
        uint message = lib.String("loading DS with a selector beyond the GDT limit\n");
        lib.BeginCode();
        lib.SerialInit();
        lib.Print(message);
        a.mov(ax, BadSelector);
        a.mov(ds, ax);
        a.xor(eax, eax);    // not reached
        lib.ExitWithAl();
        lib.EmitRoutines();
        return MultibootImageWriter.AoutKludge(a, Sample.LoadAddress, entry: lib.Entry);
    }
}
