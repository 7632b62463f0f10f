using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Tests.Support;

/// <summary>An <see cref="ILogger{T}"/> that keeps every message at or above its level.</summary>
internal sealed class RecordingLogger<T>(LogLevel minimum = LogLevel.Trace) : ILogger<T>
{
    public List<(LogLevel Level, string Message)> Entries { get; } = new();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (IsEnabled(logLevel))
            Entries.Add((logLevel, formatter(state, exception)));
    }
}
