namespace Hypervisor.Host.Cli;

/// <summary>Where a command's output goes: the guest's serial bytes, the host's messages and its
/// errors. The process uses the real stdout/stderr; tests pass buffers.</summary>
public sealed class HostConsole(Stream serial, TextWriter output, TextWriter error)
{
    /// <summary>Raw guest serial output (COM1): bytes, not text, so nothing is re-encoded.</summary>
    public Stream Serial { get; } = serial;
    public TextWriter Out { get; } = output;
    public TextWriter Error { get; } = error;

    /// <summary>The process console. Serial output goes to the unbuffered stdout stream through a
    /// small buffer that the UART flushes at each newline and the run loop flushes at each slice and at the end.</summary>
    public static HostConsole Process() =>
        new(new BufferedStream(Console.OpenStandardOutput(), 4096), Console.Out, Console.Error);
}
