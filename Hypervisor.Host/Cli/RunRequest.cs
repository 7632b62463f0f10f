using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;

namespace Hypervisor.Host.Cli;

/// <summary>Everything <c>hv run</c> was asked to do, after parsing.</summary>
public sealed record RunRequest
{
    /// <summary>The image file's full path.</summary>
    public required string ImagePath { get; init; }

    /// <summary>The image as the user named it: in messages, and first on the multiboot command line.</summary>
    public required string ImageName { get; init; }

    public ulong MemorySize { get; init; } = Cli.MemorySize.DefaultBytes;
    public ulong MaxInstructions { get; init; } = ulong.MaxValue;
    public bool Stats { get; init; }
    public bool Quiet { get; init; }
    public string? Append { get; init; }
    public IReadOnlyList<ModuleArgument> Modules { get; init; } = [];
    public FlatLoadSpec? Flat { get; init; }
    public MachineOptions Machine { get; init; } = new();

    /// <summary>Where to write a snapshot, and after which exit (<c>--snapshot-out</c>, <c>--snapshot-at-exit</c>).</summary>
    public SnapshotPlan? Snapshot { get; init; }
}

/// <summary>One <c>--module FILE[,ARGS]</c> (or <c>--initrd FILE</c>, <paramref name="Option"/>
/// naming which): the file and the arguments after its first comma.</summary>
public sealed record ModuleArgument(string File, string? Arguments, string Option = "--module")
{
    public static ModuleArgument Parse(string text)
    {
        int comma = text.IndexOf(',');
        return comma < 0 ? new ModuleArgument(text, null) : new ModuleArgument(text[..comma], text[(comma + 1)..]);
    }

    /// <summary>The module's string for the kernel: "FILE ARGS", as GRUB's <c>module</c> and QEMU's <c>-initrd</c> give it.</summary>
    public string String => Arguments is null ? File : $"{File} {Arguments}";
}
