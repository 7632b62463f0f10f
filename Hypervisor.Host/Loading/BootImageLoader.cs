namespace Hypervisor.Host.Loading;

/// <summary>How <c>hv run</c> asks for an image to be loaded, after parsing.</summary>
public sealed record LoadOptions
{
    /// <summary>The image's name as the user gave it: the first word of a multiboot command line.</summary>
    public string Name { get; init; } = "kernel";

    /// <summary><c>--append</c>: the rest of the multiboot command line, or null for none.</summary>
    public string? Append { get; init; }

    /// <summary><c>--initrd</c> and <c>--module</c>, in command-line order.</summary>
    public IReadOnlyList<MultibootModule> Modules { get; init; } = [];

    /// <summary><c>--load flat:...</c>: load the file raw instead of looking at its format.</summary>
    public FlatLoadSpec? Flat { get; init; }

    /// <summary>Whether anything here is for a multiboot kernel only.</summary>
    public bool HasMultibootInformation => Append != null || Modules.Count > 0;
}

/// <summary>
/// Decides what an image file is and checks it: with <c>--load flat</c> a raw binary; otherwise a
/// multiboot kernel when the first 8192 bytes hold a multiboot header (ELF32, ELF64 or a.out
/// kludge), an ELF64 kernel started in 64-bit mode when they hold none, and for anything else the
/// multiboot loader's own error. Nothing is written to guest memory here.
/// </summary>
public static class BootImageLoader
{
    /// <exception cref="ImageException">with one line saying what is wrong and where.</exception>
    public static BootImage Load(byte[] file, ulong memorySize, LoadOptions options)
    {
        if (options.Flat is { } flat)
        {
            if (options.HasMultibootInformation)
                throw new ImageException("--append, --initrd and --module pass information to a multiboot kernel; --load flat loads a raw binary, which gets none");
            return FlatBinary.Check(file, flat, memorySize);
        }
        string commandLine = options.Append is null ? options.Name : $"{options.Name} {options.Append}";
        var boot = new MultibootBootOptions(commandLine, options.Modules);
        if (IsElf64(file) && MultibootHeader.TryFind(file) is null)
        {
            if (options.HasMultibootInformation)
                throw new ImageException("an ELF64 kernel without a multiboot header starts in 64-bit mode with no boot information: --append, --initrd and --module need a multiboot kernel");
            return LongModeElfKernel.Check(file, memorySize);
        }
        // A multiboot kernel, or the multiboot loader's error saying what the file lacks.
        return MultibootKernel.Check(file, memorySize, boot);
    }

    private static bool IsElf64(ReadOnlySpan<byte> file) => ElfImage.HasElfMagic(file) && file.Length > 4 && file[4] == 2;
}
