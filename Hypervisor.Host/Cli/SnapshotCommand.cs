using System.CommandLine;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Cli;

/// <summary><c>hv snapshot show|diff</c>: reading snapshot files.</summary>
public sealed class SnapshotCommand : Command
{
    public SnapshotCommand(HostConsole console)
        : base("snapshot", "Read vCPU snapshot files: show one as tables, or diff two by field")
    {
        Subcommands.Add(new SnapshotShowCommand(console));
        Subcommands.Add(new SnapshotDiffCommand(console));
    }
}
