using System.CommandLine;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Cli;

/// <summary>
/// <c>hv run IMAGE [--memory SIZE] [--max-instructions N] [--stats]</c>: loads a multiboot v1
/// kernel the way <c>qemu -kernel</c> does and runs it, COM1 on stdout.
/// </summary>
public sealed class RunCommand : Command
{
    private readonly HostConsole _console;
    private readonly ILoggerFactory _logging;

    public Argument<FileInfo> Image { get; } = new("IMAGE")
    {
        Description = "A multiboot v1 kernel: ELF32, ELF64 or an a.out-kludge flat binary",
    };

    public Option<MemorySize> Memory { get; } = new("--memory", "-m")
    {
        Description = "Guest RAM: bytes, or with a K/M/G/T suffix (256M, 1G, 65536K)",
        HelpName = "SIZE",
        DefaultValueFactory = _ => MemorySize.Default,
        CustomParser = ParseMemory,
    };

    public Option<ulong?> MaxInstructions { get; } = new("--max-instructions")
    {
        Description = "Stop after N instructions (exit status 6)",
        HelpName = "N",
    };

    public Option<bool> Stats { get; } = new("--stats")
    {
        Description = "Print instructions retired, wall time, MIPS and exits by kind to stderr",
    };

    public RunCommand(HostConsole console, ILoggerFactory logging)
        : base("run", "Load a multiboot kernel and run it; the guest's COM1 goes to stdout")
    {
        _console = console;
        _logging = logging;
        Arguments.Add(Image);
        Options.Add(Memory);
        Options.Add(MaxInstructions);
        Options.Add(Stats);
        SetAction(Execute);
    }

    private static MemorySize ParseMemory(System.CommandLine.Parsing.ArgumentResult result)
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        if (MemorySize.TryParse(text, out ulong bytes, out string error))
            return new MemorySize(bytes);
        result.AddError($"--memory: {error}");
        return default;
    }

    private int Execute(ParseResult parse)
    {
        var image = parse.GetValue(Image)!;
        ulong memory = parse.GetValue(Memory).Bytes;
        ulong limit = parse.GetValue(MaxInstructions) ?? ulong.MaxValue;
        return Run(image.FullName, image.ToString(), memory, limit, parse.GetValue(Stats));
    }

    /// <summary>The whole command after parsing; the tests call it directly too.</summary>
    public int Run(string path, string displayName, ulong memorySize, ulong maxInstructions, bool stats)
    {
        var err = _console.Error;
        byte[] file;
        try
        {
            long length = new FileInfo(path).Length;
            if (length > Array.MaxLength)
            {
                err.WriteLine($"hv: {displayName}: the file is {length} bytes, more than hv can load ({Array.MaxLength})");
                return ExitCodes.UsageOrImageError;
            }
            file = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            err.WriteLine($"hv: {displayName}: no such file");
            return ExitCodes.UsageOrImageError;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            err.WriteLine($"hv: {displayName}: cannot read: {e.Message}");
            return ExitCodes.UsageOrImageError;
        }

        MultibootKernel kernel;
        try
        {
            kernel = MultibootKernel.Check(file, memorySize);
        }
        catch (ImageException e)
        {
            err.WriteLine($"hv: {displayName}: {e.Message}");
            return ExitCodes.UsageOrImageError;
        }

        VirtualMachine vm;
        try
        {
            vm = new VirtualMachine(memorySize, _console.Serial, _logging);
        }
        catch (OutOfMemoryException)
        {
            err.WriteLine($"hv: cannot allocate {memorySize} bytes of guest memory; try a smaller --memory");
            return ExitCodes.UsageOrImageError;
        }

        using (vm)
        {
            kernel.LoadInto(vm.Memory, vm.Cpu);
            var result = vm.Run(maxInstructions);
            switch (result.End)
            {
                case RunEnd.Shutdown:
                    err.WriteLine($"hv: guest shutdown: {result.Message}");
                    break;
                case RunEnd.Unimplemented:
                case RunEnd.InternalError:
                case RunEnd.InstructionLimit:
                case RunEnd.Stopped:
                    err.WriteLine($"hv: {result.Message}");
                    break;
            }
            if (stats)
                vm.Statistics.WriteTo(err);
            err.Flush();
            return ExitCodes.For(result);
        }
    }
}
