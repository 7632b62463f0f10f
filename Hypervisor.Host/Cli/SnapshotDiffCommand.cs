using System.CommandLine;
using System.Text.Json.Nodes;
using Hypervisor.Core.Snapshots;

namespace Hypervisor.Host.Cli;

/// <summary><c>hv snapshot diff A B</c>: the fields that differ, one per line, by path (status 0
/// when none differ, 8 when some do). The memory file's name is not compared; its contents are,
/// through their SHA-256 and chunk hashes.</summary>
public sealed class SnapshotDiffCommand : Command
{
    private readonly HostConsole _console;

    public Argument<FileInfo> Left { get; } = new("A") { Description = "A snapshot file" };
    public Argument<FileInfo> Right { get; } = new("B") { Description = "Another snapshot file" };

    public SnapshotDiffCommand(HostConsole console)
        : base("diff", "Print only the fields that differ between two snapshots, by path")
    {
        _console = console;
        Arguments.Add(Left);
        Arguments.Add(Right);
        SetAction(parse => Run(parse.GetValue(Left)!.FullName, parse.GetValue(Right)!.FullName));
    }

    public int Run(string a, string b)
    {
        JsonObject left, right;
        try
        {
            left = MachineSnapshot.Load(a).Content;
            right = MachineSnapshot.Load(b).Content;
        }
        catch (SnapshotException e)
        {
            _console.Error.WriteLine($"hv: snapshot diff: {e.Message}");
            return ExitCodes.UsageOrImageError;
        }
        var diffs = SnapshotDiff.Compare(left, right).Where(d => d.Path != "memory.file").ToList();
        if (diffs.Count == 0)
        {
            _console.Out.WriteLine("identical");
            return 0;
        }
        foreach (var d in diffs)
            _console.Out.WriteLine($"{d.Path}: {d.Left ?? "(absent)"} -> {d.Right ?? "(absent)"}");
        return ExitCodes.SnapshotsDiffer;
    }
}
