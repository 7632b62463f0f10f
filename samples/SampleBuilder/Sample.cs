using Hypervisor.Samples.Guests;

namespace Hypervisor.Samples;

/// <summary>A sample guest: the file it is committed as under samples/images, and how to build it.</summary>
public sealed record Sample(string FileName, string Description, Func<byte[]> Build)
{
    /// <summary>Samples load at 1 MiB, where PC kernels usually go.</summary>
    public const uint LoadAddress = 0x100000;

    /// <summary>Every sample, in the order they are documented. The differential tests run each
    /// one under hv and QEMU and compare serial output and exit status.</summary>
    public static IReadOnlyList<Sample> All { get; } =
    [
        new("hello.elf", "prints a greeting on COM1 and exits through isa-debug-exit (ELF32)", Hello.Build),
        new("mbinfo.bin", "checks and prints the multiboot information the loader provides", BootInfo.Build),
        new("uart.bin", "reads back 16550 registers, the THRE interrupt and loopback", Uart.Build),
        new("cmdline.bin", "prints the multiboot command line and each module's string, alignment, size and first line (hv run --append, --module)", CommandLine.Build),
        new("ports.bin", "reads an unclaimed port, exits with a 16-bit debug-exit write", Ports.Build),
        new("triple.bin", "prints a line, then triple-faults (hv status 3; QEMU -no-reboot exits 0)", TripleFault.Build),
        new("alu64.bin", "every integer ALU operation and size over edge values: hashes of results and defined flags", Differential.AluProgram.Build),
        new("system64.bin", "long mode IDT: #DE #UD #BP #GP #PF (not present, write, NX) INT n, A/D bits, INVLPG", Differential.SystemProgram.Build),
        new("flow64.bin", "string instructions in every width and direction, recursion, ENTER/LEAVE, POPF, LOOP, self-modifying code", Differential.FlowProgram.Build),
        new("legacy32.bin", "32-bit protected mode: DAA/DAS/AAA/AAS/AAM/AAD, PUSHAD/POPAD, 16-bit forms, LOOP/JECXZ, a CS reload by RETF", Differential.Legacy32Program.Build),
    ];
}
