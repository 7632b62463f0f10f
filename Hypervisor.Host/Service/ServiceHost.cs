using Hypervisor.Host.Cli;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Serilog;

namespace Hypervisor.Host.Service;

/// <summary>What <c>hv serve</c> was given.</summary>
public sealed record ServeSettings
{
    /// <summary>The Unix socket the control API listens on.</summary>
    public required string SocketPath { get; init; }

    /// <summary>A JSON file layered over <c>appsettings.json</c> (environment variables still win).</summary>
    public string? ConfigFile { get; init; }

    /// <summary>Configuration applied last (tests).</summary>
    public IReadOnlyDictionary<string, string?>? Overrides { get; init; }
}

/// <summary>
/// <c>hv serve</c>: the generic host (ASP.NET Core's <see cref="WebApplication"/>) with Serilog
/// configured from <c>appsettings.json</c>, <see cref="ServiceOptions"/> validated at start, the
/// VMs in <see cref="VmRegistry"/>, and <see cref="ControlApi"/> on a Unix socket.
/// </summary>
public static partial class ServiceHost
{
    /// <summary>Builds and starts the service; it runs until the application is stopped.</summary>
    /// <exception cref="ServeException">bad configuration (status 2) or the socket cannot be used (status 5).</exception>
    public static async Task<WebApplication> StartAsync(ServeSettings settings, CancellationToken cancellationToken = default)
    {
        string socket = Path.GetFullPath(settings.SocketPath);
        UnixSocketFile.PrepareToBind(socket);
        var app = Build(settings, socket);
        try
        {
            // What ValidateOnStart would do, done first so that a bad configuration is one clear
            // message rather than the host's "Hosting failed to start" with a stack trace.
            _ = app.Services.GetRequiredService<IOptions<ServiceOptions>>().Value;
            using (UnixSocketFile.OwnerOnlyUmask())
                await app.StartAsync(cancellationToken);
            UnixSocketFile.RestrictToOwner(socket);
        }
        catch (OptionsValidationException e)
        {
            await app.DisposeAsync();
            throw BadConfiguration(string.Join("\n  ", e.Failures));
        }
        catch (IOException e)
        {
            await app.DisposeAsync();
            throw new ServeException(ExitCodes.ServiceFailure, $"cannot listen on {socket}: {e.Message}");
        }
        LogListening(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(ServiceHost)), socket);
        app.Lifetime.ApplicationStopped.Register(() => UnixSocketFile.Remove(socket));
        return app;
    }

    /// <summary>The whole command: start, serve until SIGTERM/Ctrl-C, stop. Returns the exit status.</summary>
    public static async Task<int> RunAsync(ServeSettings settings, TextWriter error)
    {
        WebApplication app;
        try
        {
            app = await StartAsync(settings);
        }
        catch (ServeException e)
        {
            error.WriteLine($"hv serve: {e.Message}");
            return e.Status;
        }
        await using (app)
        {
            await app.WaitForShutdownAsync();
        }
        return ExitCodes.Halted;
    }

    private static WebApplication Build(ServeSettings settings, string socket)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = [],
            ContentRootPath = AppContext.BaseDirectory,
        });
        var config = builder.Configuration;
        if (settings.ConfigFile != null)
        {
            string file = Path.GetFullPath(settings.ConfigFile);
            if (!File.Exists(file))
                throw BadConfiguration($"--config {settings.ConfigFile}: no such file");
            try
            {
                config.AddJsonFile(file, optional: false, reloadOnChange: false);
            }
            catch (InvalidDataException e)
            {
                throw BadConfiguration($"--config {settings.ConfigFile}: {e.InnerException?.Message ?? e.Message}");
            }
            // Environment variables (Hv__SliceInstructions ...) still override the file.
            config.AddEnvironmentVariables();
        }
        if (settings.Overrides != null)
            config.AddInMemoryCollection(settings.Overrides);

        Serilog.ILogger logger;
        try
        {
            logger = new LoggerConfiguration().ReadFrom.Configuration(config).CreateLogger();
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException)
        {
            throw BadConfiguration($"Serilog: {e.Message}");
        }
        builder.Logging.ClearProviders();
        // Serilog's MinimumLevel (from configuration) decides what is written.
        builder.Logging.SetMinimumLevel(LogLevel.Trace);
        builder.Logging.AddSerilog(logger, dispose: true);

        var section = config.GetSection(ServiceOptions.Section);
        builder.Services.AddOptions<ServiceOptions>()
            .Configure(o => Bind(section, o))
            .ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<ServiceOptions>, ServiceOptionsValidator>();
        // A bad value here is reported by the validation at start; meanwhile the default stands.
        int shutdownSeconds = int.TryParse(section[nameof(ServiceOptions.ShutdownSeconds)], out int s) ? Math.Clamp(s, 1, 300) : 5;
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(shutdownSeconds));
        builder.Services.AddSingleton<VmRegistry>();
        builder.Services.AddHostedService<VmAutostart>();
        builder.Services.AddProblemDetails();
        builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(socket));

        var app = builder.Build();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        ControlApi.Map(app);
        return app;
    }

    /// <summary>Strict binding: a key <see cref="ServiceOptions"/> does not have, or a value of the
    /// wrong type, is a configuration error reported with the others at start.</summary>
    private static void Bind(IConfigurationSection section, ServiceOptions options)
    {
        try
        {
            section.Bind(options, b => b.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(ServiceOptions), [$"{ServiceOptions.Section}: {e.Message}"]);
        }
    }

    private static ServeException BadConfiguration(string message) =>
        new(ExitCodes.UsageOrImageError, $"bad configuration:\n  {message}");

    [LoggerMessage(Level = LogLevel.Information, Message = "hv serve listening on {Socket}")]
    private static partial void LogListening(Microsoft.Extensions.Logging.ILogger log, string socket);
}
