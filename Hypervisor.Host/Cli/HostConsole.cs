namespace Hypervisor.Host.Cli;

/// <summary>Where a command's output goes: the guest's serial bytes, the host's messages and its
/// errors. The process uses the real stdout/stderr; tests pass buffers.</summary>
public sealed class HostConsole(Stream serial, TextWriter output, TextWriter error)
{
    /// <summary>Raw guest serial output (COM1): bytes, not text, so nothing is re-encoded.</summary>
    public Stream Serial { get; } = serial;
    public TextWriter Out { get; } = output;
    public TextWriter Error { get; } = error;

    /// <summary>Whether <see cref="Error"/> is a terminal a person watches: only then does
    /// <c>hv run</c> show its progress line there.</summary>
    public bool ErrorIsTerminal { get; init; }

    /// <summary>How often the progress line is refreshed.</summary>
    public TimeSpan ProgressInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>The process console. Serial output goes to the unbuffered stdout stream through a
    /// small buffer that the UART flushes at each newline and the run loop flushes at each slice and at the end.</summary>
    public static HostConsole Process() =>
        new(new BufferedStream(Console.OpenStandardOutput(), 4096), Console.Out, Console.Error)
        {
            ErrorIsTerminal = !Console.IsErrorRedirected,
        };
}
