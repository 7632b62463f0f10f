using System.CommandLine;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Cli;

/// <summary>Builds the <c>hv</c> command tree and runs it. Parse errors are usage errors (status 2),
/// never a guest's status.</summary>
public static class HvCommandLine
{
    public const string Description =
        "hv: a KVM-style hypervisor whose hardware is a software x86-64 CPU.\n\n" + ExitCodes.HelpText;

    /// <param name="setLogLevel">Changes the host's minimum log level (<c>hv run --log-level</c>); null when the caller's logging has no such switch.</param>
    public static RootCommand Create(HostConsole console, ILoggerFactory logging, Action<LogLevel>? setLogLevel = null)
    {
        var root = new RootCommand(Description);
        root.Options.OfType<VersionOption>().Single().Action = new VersionAction(console);
        root.Subcommands.Add(new RunCommand(console, logging, setLogLevel));
        root.Subcommands.Add(new BenchCommand(console, logging));
        root.Subcommands.Add(new CapsCommand(console));
        root.Subcommands.Add(new ServeCommand(console));
        root.Subcommands.Add(new RestoreCommand(console, logging));
        root.Subcommands.Add(new SnapshotCommand(console));
        return root;
    }

    public static int Invoke(string[] args, HostConsole console, ILoggerFactory logging, Action<LogLevel>? setLogLevel = null)
    {
        var root = Create(console, logging, setLogLevel);
        var parse = root.Parse(args);
        // Our own handler: System.CommandLine's would exit 1, which is a guest's debug-exit status.
        var config = new InvocationConfiguration { Output = console.Out, Error = console.Error, EnableDefaultExceptionHandler = false };
        if (parse.Errors.Count > 0 && !AsksForHelp(parse))
        {
            foreach (var e in parse.Errors)
                console.Error.WriteLine($"hv: {e.Message}");
            console.Error.WriteLine("Try 'hv --help' for usage.");
            return ExitCodes.UsageOrImageError;
        }
        try
        {
            return parse.Invoke(config);
        }
        catch (Exception e)
        {
            console.Error.WriteLine($"hv: internal error: {e}");
            return ExitCodes.InternalError;
        }
    }

    private static bool AsksForHelp(ParseResult parse) =>
        parse.Action is System.CommandLine.Help.HelpAction;
}
