using Hypervisor.Host.Guests;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Samples.Guests;

/// <summary>
/// hello.elf (ELF32): initialises COM1, prints "Hello from hv!", then writes 0 to isa-debug-exit,
/// so it ends with status 1 under both hv and QEMU. (A guest that halted instead would end hv
/// with status 0 but leave QEMU waiting forever, so every sample ends through isa-debug-exit.)
/// </summary>
public static class Hello
{
    public const string Output = "Hello from hv!\n";
    public const int ExitStatus = 1;

    public static byte[] Build()
    {
        var a = new Assembler(32);
        var lib = new GuestLib(a, MultibootImageWriter.ElfCodeAddress(Sample.LoadAddress));
        uint message = lib.String(Output);
        lib.BeginCode();
        lib.SerialInit();
        lib.Print(message);
        a.xor(eax, eax);
        lib.ExitWithAl();
        lib.EmitRoutines();
        return MultibootImageWriter.Elf(a, Sample.LoadAddress, entry: lib.Entry);
    }
}
