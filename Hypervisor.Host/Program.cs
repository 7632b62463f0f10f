using Hypervisor.Host.Cli;
using Microsoft.Extensions.Logging;
using Serilog;
using Serilog.Core;
using Serilog.Events;
using Serilog.Extensions.Logging;

namespace Hypervisor.Host;

/// <summary>The <c>hv</c> executable: sets up logging and hands the command line to <see cref="HvCommandLine"/>.</summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        // Host messages go to stderr: stdout carries the guest's serial console only.
        var level = new LoggingLevelSwitch(LogEventLevel.Warning);
        Log.Logger = new LoggerConfiguration()
            .MinimumLevel.ControlledBy(level)
            .WriteTo.Console(standardErrorFromLevel: LogEventLevel.Verbose)
            .CreateLogger();
        try
        {
            using var logging = new SerilogLoggerFactory(Log.Logger);
            return HvCommandLine.Invoke(args, HostConsole.Process(), logging, l => level.MinimumLevel = ToSerilog(l));
        }
        finally
        {
            Log.CloseAndFlush();
        }
    }

    /// <summary>Microsoft.Extensions.Logging's level as Serilog's; None is above Fatal, so nothing passes.</summary>
    private static LogEventLevel ToSerilog(LogLevel level) => level switch
    {
        LogLevel.Trace => LogEventLevel.Verbose,
        LogLevel.Debug => LogEventLevel.Debug,
        LogLevel.Information => LogEventLevel.Information,
        LogLevel.Warning => LogEventLevel.Warning,
        LogLevel.Error => LogEventLevel.Error,
        LogLevel.Critical => LogEventLevel.Fatal,
        _ => LogEventLevel.Fatal + 1,
    };
}
