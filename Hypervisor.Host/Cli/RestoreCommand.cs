using System.CommandLine;
using Hypervisor.Core.Snapshots;
using Hypervisor.Host.Runtime;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Cli;

/// <summary>
/// <c>hv restore FILE [--snapshot-out FILE] [--snapshot-at-exit N] [--max-instructions N] [--stats]</c>:
/// rebuilds the machine a snapshot describes (vendor, host CPU model, memory, guest CPUID), restores
/// it and runs on, with the same exit statuses as <c>hv run</c>. A damaged or unusable snapshot is
/// refused with status 2 and nothing runs.
/// </summary>
public sealed class RestoreCommand : Command
{
    private readonly HostConsole _console;
    private readonly ILoggerFactory _logging;

    public Argument<FileInfo> File { get; } = new("FILE") { Description = "A snapshot written by --snapshot-out (its FILE.mem beside it)" };

    public Option<ulong?> MaxInstructions { get; } = new("--max-instructions")
    {
        Description = "Stop after N more instructions (exit status 6)",
        HelpName = "N",
    };

    public Option<bool> Stats { get; } = new("--stats") { Description = "Print instructions, wall time, MIPS and exits by kind to stderr" };

    public SnapshotRunOptions Snapshot { get; } = new();

    public RestoreCommand(HostConsole console, ILoggerFactory logging)
        : base("restore", "Restore a VM from a snapshot and run it on; the guest's COM1 goes to stdout")
    {
        _console = console;
        _logging = logging;
        Arguments.Add(File);
        Options.Add(MaxInstructions);
        Options.Add(Stats);
        Snapshot.AddTo(this, withClock: false);
        SetAction(parse => Run(parse.GetValue(File)!.FullName, parse.GetValue(MaxInstructions) ?? ulong.MaxValue,
            parse.GetValue(Stats), Snapshot.PlanOf(parse)));
    }

    public int Run(string path, ulong maxInstructions, bool stats, SnapshotPlan plan)
    {
        var err = _console.Error;
        KvmMachine vm;
        try
        {
            vm = KvmMachine.FromSnapshot(MachineSnapshot.Load(path), _console.Serial, _logging);
        }
        catch (SnapshotException e)
        {
            err.WriteLine($"hv: restore: {e.Message}");
            return ExitCodes.UsageOrImageError;
        }
        using (vm)
        {
            if (!SnapshotRunOptions.Prepare(vm, plan, err))
                return ExitCodes.UsageOrImageError;
            var result = vm.Run(maxInstructions);
            return GuestRunner.Finish(vm, result, stats, plan, err);
        }
    }
}
