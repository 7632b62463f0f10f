using System.CommandLine;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Cli;

/// <summary>
/// <c>hv run IMAGE [--memory SIZE] [--max-instructions N] [--stats] [--vendor svm|vmx|bare]
/// [--host-cpu NAME] [--cpu host[,+feature|,-feature...]] [--intercept cr3,invpcid]</c>: loads a
/// multiboot v1 kernel the way <c>qemu -kernel</c> does and runs it, by default as a VM under the
/// SVM vendor module, COM1 on stdout.
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

    public Option<string> Vendor { get; } = MachineCommandOptions.Vendor(
        "svm: a VM under the SVM module (the default); vmx: not implemented yet; bare: the software CPU without a hypervisor");

    public Option<string> HostCpu { get; } = MachineCommandOptions.HostCpu();

    public Option<CpuSpec?> Cpu { get; } = new("--cpu")
    {
        Description = "The guest CPUID as QEMU's -cpu: host (what the hypervisor supports), then ,+feature ,-feature or ,feature=on|off edits",
        HelpName = "host[,+feature|,-feature...]",
        CustomParser = ParseCpu,
    };

    public Option<string?> Intercept { get; } = new("--intercept")
    {
        Description = "cr3,invpcid: intercept MOV to CR3 and INVPCID even with nested paging, so the hypervisor emulates them",
        HelpName = "cr3,invpcid",
    };

    public SnapshotRunOptions Snapshot { get; } = new();

    public RunCommand(HostConsole console, ILoggerFactory logging)
        : base("run", "Load a multiboot kernel and run it; the guest's COM1 goes to stdout")
    {
        _console = console;
        _logging = logging;
        Arguments.Add(Image);
        Options.Add(Memory);
        Options.Add(MaxInstructions);
        Options.Add(Stats);
        Options.Add(Vendor);
        Options.Add(HostCpu);
        Options.Add(Cpu);
        Options.Add(Intercept);
        Snapshot.AddTo(this, withClock: true);
        Intercept.Validators.Add(r =>
        {
            if (!TryParseIntercepts(r.GetValueOrDefault<string?>() ?? "", out _, out string error))
                r.AddError($"--intercept: {error}");
        });
        SetAction(Execute);
    }

    private static CpuSpec? ParseCpu(System.CommandLine.Parsing.ArgumentResult result)
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        if (CpuSpec.TryParse(text, out var spec, out string error))
            return spec;
        result.AddError($"--cpu: {error}");
        return null;
    }

    /// <summary>The intercepts <c>--intercept</c> can add. CR3 writes and INVPCID come together: the
    /// VM has one option for both (VmOptions.InterceptCr3AndInvpcid).</summary>
    public static bool TryParseIntercepts(string text, out bool cr3AndInvpcid, out string error)
    {
        cr3AndInvpcid = false;
        var names = new SortedSet<string>(StringComparer.Ordinal);
        foreach (string part in text.Split(','))
        {
            string name = part.Trim().ToLowerInvariant();
            if (name is not ("cr3" or "invpcid"))
            {
                error = $"unknown intercept '{part.Trim()}'; hv can add: cr3,invpcid";
                return false;
            }
            names.Add(name);
        }
        if (names.Count != 2)
        {
            error = $"{names.Min} alone cannot be intercepted: MOV to CR3 and INVPCID are intercepted together (one VM option); use --intercept cr3,invpcid";
            return false;
        }
        cr3AndInvpcid = true;
        error = "";
        return true;
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
        var vendor = MachineCommandOptions.VendorOf(parse.GetValue(Vendor)!);
        if (vendor == VendorKind.Vmx)
        {
            _console.Error.WriteLine($"hv: --vendor vmx: {VendorKinds.VmxNotImplemented}");
            return ExitCodes.UsageOrImageError;
        }
        var options = new MachineOptions
        {
            Vendor = vendor,
            HostCpu = MachineCommandOptions.ModelOf(parse.GetValue(HostCpu)!),
            Cpu = parse.GetValue(Cpu),
            InterceptCr3AndInvpcid = parse.GetValue(Intercept) != null,
            Clock = Snapshot.ClockOf(parse),
        };
        return Run(image.FullName, image.ToString(), memory, limit, parse.GetValue(Stats), options, Snapshot.PlanOf(parse));
    }

    /// <summary>The whole command after parsing; the tests call it directly too.</summary>
    public int Run(string path, string displayName, ulong memorySize, ulong maxInstructions, bool stats, MachineOptions? options = null, SnapshotPlan? snapshot = null)
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
            vm = VirtualMachine.Create(memorySize, _console.Serial, options, _logging);
        }
        catch (MachineConfigurationException e)
        {
            err.WriteLine($"hv: {e.Message}");
            return ExitCodes.UsageOrImageError;
        }
        catch (OutOfMemoryException)
        {
            err.WriteLine($"hv: cannot allocate {memorySize} bytes of guest memory; try a smaller --memory");
            return ExitCodes.UsageOrImageError;
        }

        using (vm)
        {
            vm.Load(kernel);
            if (!SnapshotRunOptions.Prepare(vm, snapshot, err))
                return ExitCodes.UsageOrImageError;
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
            int? failed = SnapshotRunOptions.Finish(vm, snapshot, err);
            err.Flush();
            return failed ?? ExitCodes.For(result);
        }
    }
}
