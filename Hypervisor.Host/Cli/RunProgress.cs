using System.Diagnostics;
using System.Globalization;
using Hypervisor.Host.Runtime;

namespace Hypervisor.Host.Cli;

/// <summary>
/// The progress line of a long <c>hv run</c> on a terminal: instructions retired so far and the
/// MIPS since the last refresh, rewritten in place on stderr (carriage return, erase line) at
/// most every <see cref="HostConsole.ProgressInterval"/>, and erased when the run ends so the
/// terminal keeps only the guest's output and hv's messages. Called on the run loop's thread at
/// slice ends (<see cref="VirtualMachine.SliceEnded"/>).
/// </summary>
internal sealed class RunProgress
{
    /// <summary>Slice length while progress is shown: short enough for several refreshes a second.</summary>
    public const ulong SliceInstructions = 1UL << 22;

    private const string EraseLine = "\r\u001b[K";

    private readonly TextWriter _error;
    private readonly long _intervalTicks;
    private long _lastTimestamp;
    private ulong _lastInstructions;
    private bool _shown;

    public RunProgress(TextWriter error, TimeSpan interval)
    {
        _error = error;
        _intervalTicks = (long)(interval.TotalSeconds * Stopwatch.Frequency);
        _lastTimestamp = Stopwatch.GetTimestamp();
    }

    /// <summary>Attaches to <paramref name="vm"/>: shorter slices and a refresh at each slice end.</summary>
    public void Attach(VirtualMachine vm)
    {
        vm.SliceInstructions = Math.Min(vm.SliceInstructions, SliceInstructions);
        _lastInstructions = vm.InstructionsRetired;
        vm.SliceEnded = Update;
    }

    public void Update(VirtualMachine vm)
    {
        long now = Stopwatch.GetTimestamp();
        long elapsed = now - _lastTimestamp;
        if (elapsed < _intervalTicks || elapsed <= 0)
            return;
        ulong retired = vm.InstructionsRetired;
        double mips = (retired - _lastInstructions) / ((double)elapsed / Stopwatch.Frequency) / 1e6;
        _error.Write(string.Create(CultureInfo.InvariantCulture, $"{EraseLine}hv: {retired:N0} instructions retired, {mips:F1} MIPS"));
        _error.Flush();
        _shown = true;
        _lastTimestamp = now;
        _lastInstructions = retired;
    }

    /// <summary>Erases the line, if one was shown, before hv's final messages.</summary>
    public void Finish()
    {
        if (!_shown)
            return;
        _error.Write(EraseLine);
        _error.Flush();
        _shown = false;
    }
}
