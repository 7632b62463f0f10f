using System.CommandLine;
using Hypervisor.Host.Service;

namespace Hypervisor.Host.Cli;

/// <summary>
/// <c>hv serve --socket PATH [--config FILE]</c>: runs the host service, a control API on a Unix
/// socket (HTTP+JSON, modelled on Firecracker's) that creates, runs, pauses and stops VMs, each on
/// its own thread. Runs until SIGTERM or Ctrl-C, which pause the VMs and exit 0.
/// </summary>
public sealed class ServeCommand : Command
{
    private readonly HostConsole _console;

    public Option<FileInfo> Socket { get; } = new("--socket")
    {
        Description = "The Unix socket the control API listens on (created with mode 0600; a stale one is replaced)",
        HelpName = "PATH",
        Required = true,
    };

    public Option<FileInfo?> Config { get; } = new("--config")
    {
        Description = "A JSON file layered over appsettings.json (Serilog, Hv:SliceInstructions, Hv:Vms ...); environment variables such as Hv__ShutdownSeconds override both",
        HelpName = "FILE",
    };

    public ServeCommand(HostConsole console)
        : base("serve", "Run the host service: a control API on a Unix socket (POST /vms, PUT /vms/{id}/actions, GET /vms/{id}/serial ...)")
    {
        _console = console;
        Options.Add(Socket);
        Options.Add(Config);
        SetAction(Execute);
    }

    private int Execute(ParseResult parse)
    {
        var settings = new ServeSettings
        {
            SocketPath = parse.GetValue(Socket)!.ToString(),
            ConfigFile = parse.GetValue(Config)?.ToString(),
        };
        // Synchronous on purpose: the generic host handles SIGTERM/Ctrl-C itself.
        return ServiceHost.RunAsync(settings, _console.Error).GetAwaiter().GetResult();
    }
}
