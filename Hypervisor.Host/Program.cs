using Hypervisor.Host.Cli;
using Serilog;
using Serilog.Events;
using Serilog.Extensions.Logging;

namespace Hypervisor.Host;

/// <summary>The <c>hv</c> executable: sets up logging and hands the command line to <see cref="HvCommandLine"/>.</summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        // Host messages go to stderr: stdout carries the guest's serial console only.
        Log.Logger = new LoggerConfiguration()
            .MinimumLevel.Warning()
            .WriteTo.Console(standardErrorFromLevel: LogEventLevel.Verbose)
            .CreateLogger();
        try
        {
            using var logging = new SerilogLoggerFactory(Log.Logger);
            return HvCommandLine.Invoke(args, HostConsole.Process(), logging);
        }
        finally
        {
            Log.CloseAndFlush();
        }
    }
}
