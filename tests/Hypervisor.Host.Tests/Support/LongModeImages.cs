using Hypervisor.Host.Guests;
using Iced.Intel;

namespace Hypervisor.Host.Tests.Support;

/// <summary>Plain ELF64 kernels (no multiboot header) of 64-bit code, which hv starts in 64-bit mode.</summary>
internal static class LongModeImages
{
    public const ulong LoadAddress = 0x200000;

    /// <summary>One PT_LOAD segment at <see cref="LoadAddress"/> holding the code <paramref name="build"/> emits, entered at its start.</summary>
    public static byte[] Elf64(Action<Assembler> build, ulong loadAddress = LoadAddress)
    {
        var a = new Assembler(64);
        build(a);
        byte[] code = MultibootImageWriter.Assemble(a, loadAddress);
        return RawElf.Build(64, loadAddress, multiboot: false, new RawSegment(loadAddress, code));
    }

    /// <summary>The 64-bit code <paramref name="build"/> emits, assembled to run at <paramref name="address"/> (a flat binary).</summary>
    public static byte[] Flat(Action<Assembler> build, ulong address, int bits = 64)
    {
        var a = new Assembler(bits);
        build(a);
        return MultibootImageWriter.Assemble(a, address);
    }
}
