using Hypervisor.Host.Guests;
using Iced.Intel;

namespace Hypervisor.Host.Tests.Support;

/// <summary>Small multiboot images for tests, assembled with Iced at 1 MiB.</summary>
internal static class TestImages
{
    public const uint LoadAddress = 0x100000;

    /// <summary>An a.out-kludge image of the 32-bit code <paramref name="build"/> emits.</summary>
    public static byte[] Aout(Action<Assembler> build, uint bssSize = 0)
    {
        var a = new Assembler(32);
        build(a);
        return MultibootImageWriter.AoutKludge(a, LoadAddress, bssSize: bssSize);
    }

    /// <summary>An ELF32 (or ELF64) image of the 32-bit code <paramref name="build"/> emits.</summary>
    public static byte[] Elf(Action<Assembler> build, bool elf64 = false, uint bssSize = 0)
    {
        var a = new Assembler(32);
        build(a);
        return MultibootImageWriter.Elf(a, LoadAddress, elf64, bssSize: bssSize);
    }

    /// <summary>Overwrites a little-endian dword (for corrupting images).</summary>
    public static byte[] Patch32(byte[] image, int offset, uint value)
    {
        var copy = (byte[])image.Clone();
        BitConverter.TryWriteBytes(copy.AsSpan(offset), value);
        return copy;
    }
}
