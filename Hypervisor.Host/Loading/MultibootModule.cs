namespace Hypervisor.Host.Loading;

/// <summary>A boot module to load with a multiboot kernel (<c>--module FILE[,ARGS]</c>,
/// <c>--initrd FILE</c>): <paramref name="Name"/> names it in messages, <paramref name="String"/> is
/// what the kernel finds in the module's string field (as with GRUB and QEMU, the file name and
/// its arguments).</summary>
public sealed record MultibootModule(string Name, byte[] Data, string String);

/// <summary>A module as the information structure lists it (Multiboot Specification 0.6.96 §3.3):
/// guest physical [<paramref name="Start"/>, <paramref name="End"/>) and its string.</summary>
public readonly record struct MultibootModuleEntry(ulong Start, ulong End, string String);

/// <summary>What the loader passes a multiboot kernel besides memory: its command line (GRUB and
/// QEMU give the kernel's file name followed by the arguments) and modules, loaded in order,
/// each on a page boundary after the boot area.</summary>
public sealed record MultibootBootOptions(string? CommandLine, IReadOnlyList<MultibootModule> Modules)
{
    public static MultibootBootOptions None { get; } = new(null, []);
}
