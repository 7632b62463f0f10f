using System.CommandLine;
using System.CommandLine.Parsing;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Cli;

/// <summary>
/// <c>hv run IMAGE [--memory SIZE] [--max-instructions N] [--stats] [--vendor svm|vmx|bare]
/// [--host-cpu NAME] [--cpu host[,+feature|,-feature...]] [--intercept cr3,invpcid]
/// [--append CMDLINE] [--initrd FILE] [--module FILE[,ARGS]]... [--load flat:ADDR[,entry=ADDR][,mode=32|64]]
/// [--quiet] [--log-level LEVEL]</c>: loads a multiboot v1 kernel the way <c>qemu -kernel</c>
/// does (or an ELF64 kernel in 64-bit mode, or a raw binary) and runs it, by default as a VM under
/// the SVM vendor module, COM1 on stdout. The run itself is <see cref="GuestRunner"/>.
/// </summary>
public sealed class RunCommand : Command
{
    private readonly HostConsole _console;
    private readonly ILoggerFactory _logging;
    private readonly Action<LogLevel>? _setLogLevel;

    public Argument<FileInfo> Image { get; } = new("IMAGE")
    {
        Description = "A multiboot v1 kernel (ELF32, ELF64 or a.out-kludge flat binary), an ELF64 kernel without a multiboot header (started in 64-bit mode), or with --load a raw binary",
    };

    public Option<string?> Append { get; } = new("--append")
    {
        Description = "The multiboot command line after the kernel's name (the kernel sees 'IMAGE CMDLINE', as with GRUB and QEMU)",
        HelpName = "CMDLINE",
    };

    public Option<FileInfo?> Initrd { get; } = new("--initrd")
    {
        Description = "Load FILE as the first multiboot module",
        HelpName = "FILE",
    };

    public Option<string[]> Module { get; } = new("--module")
    {
        Description = "Load FILE as a multiboot module, its string 'FILE ARGS'; repeat for more (after --initrd, in order)",
        HelpName = "FILE[,ARGS]",
        AllowMultipleArgumentsPerToken = false,
    };

    public Option<FlatLoadSpec?> Load { get; } = new("--load")
    {
        Description = "Load IMAGE as a raw binary at ADDR and start it at the entry (default ADDR) in 32-bit protected mode or 64-bit mode",
        HelpName = FlatLoadSpec.Syntax,
        CustomParser = ParseLoad,
    };

    public Option<bool> Quiet { get; } = new("--quiet", "-q")
    {
        Description = "No progress line on stderr (it is shown only when stderr is a terminal)",
    };

    public Option<LogLevel?> LogLevelOption { get; } = new("--log-level")
    {
        Description = "Host log messages on stderr from this level up: trace, debug, information, warning (default), error, critical, none",
        HelpName = "LEVEL",
        CustomParser = ParseLogLevel,
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
        Description = "Print instructions retired, wall time and MIPS, then a table of exits by reason, to stderr",
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

    public RunCommand(HostConsole console, ILoggerFactory logging, Action<LogLevel>? setLogLevel = null)
        : base("run", "Load a kernel and run it; the guest's COM1 goes to stdout")
    {
        _console = console;
        _logging = logging;
        _setLogLevel = setLogLevel;
        Arguments.Add(Image);
        Options.Add(Memory);
        Options.Add(MaxInstructions);
        Options.Add(Stats);
        Options.Add(Vendor);
        Options.Add(HostCpu);
        Options.Add(Cpu);
        Options.Add(Intercept);
        Options.Add(Append);
        Options.Add(Initrd);
        Options.Add(Module);
        Options.Add(Load);
        Options.Add(Quiet);
        Options.Add(LogLevelOption);
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

    private static FlatLoadSpec? ParseLoad(ArgumentResult result)
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        if (FlatLoadSpec.TryParse(text, out var spec, out string error))
            return spec;
        result.AddError($"--load: {error}");
        return null;
    }

    /// <summary>The level names Microsoft.Extensions.Logging uses, with the usual short forms.</summary>
    public static LogLevel? ParseLogLevelText(string text) => text.Trim().ToLowerInvariant() switch
    {
        "trace" or "verbose" => LogLevel.Trace,
        "debug" => LogLevel.Debug,
        "information" or "info" => LogLevel.Information,
        "warning" or "warn" => LogLevel.Warning,
        "error" => LogLevel.Error,
        "critical" or "fatal" => LogLevel.Critical,
        "none" or "off" => LogLevel.None,
        _ => null,
    };

    private static LogLevel? ParseLogLevel(ArgumentResult result)
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        if (ParseLogLevelText(text) is { } level)
            return level;
        result.AddError($"--log-level: '{text}' is not a level; use trace, debug, information, warning, error, critical or none");
        return null;
    }

    private int Execute(ParseResult parse)
    {
        var vendor = MachineCommandOptions.VendorOf(parse.GetValue(Vendor)!);
        if (parse.GetValue(LogLevelOption) is { } level)
            _setLogLevel?.Invoke(level);
        var modules = new List<ModuleArgument>();
        if (parse.GetValue(Initrd) is { } initrd)
            modules.Add(new ModuleArgument(initrd.ToString(), null, "--initrd"));
        foreach (string m in parse.GetValue(Module) ?? [])
            modules.Add(ModuleArgument.Parse(m));
        var image = parse.GetValue(Image)!;
        var request = new RunRequest
        {
            ImagePath = image.FullName,
            ImageName = image.ToString(),
            MemorySize = parse.GetValue(Memory).Bytes,
            MaxInstructions = parse.GetValue(MaxInstructions) ?? ulong.MaxValue,
            Stats = parse.GetValue(Stats),
            Quiet = parse.GetValue(Quiet),
            Append = parse.GetValue(Append),
            Modules = modules,
            Flat = parse.GetValue(Load),
            Machine = new MachineOptions
            {
                Vendor = vendor,
                HostCpu = MachineCommandOptions.ModelOf(parse.GetValue(HostCpu), vendor),
                Cpu = parse.GetValue(Cpu),
                InterceptCr3AndInvpcid = parse.GetValue(Intercept) != null,
                Clock = Snapshot.ClockOf(parse),
            },
            Snapshot = Snapshot.PlanOf(parse),
        };
        return new GuestRunner(_console, _logging).Run(request);
    }
}
