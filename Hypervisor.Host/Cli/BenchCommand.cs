using System.CommandLine;
using System.Globalization;
using Hypervisor.Host.Bench;
using Hypervisor.Host.Reference;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Cli;

/// <summary>
/// <c>hv bench [--qemu] [--min-seconds S]</c>: MIPS of hv on three guest workloads, and with
/// <c>--qemu</c> of QEMU's software CPU on the same images. Build Release to measure.
/// </summary>
public sealed class BenchCommand : Command
{
    private readonly HostConsole _console;

    public Option<bool> Qemu { get; } = new("--qemu")
    {
        Description = "Also run each workload under QEMU TCG (../shared/tools/qemu-oracle) and compare",
    };

    public Option<double> MinSeconds { get; } = new("--min-seconds")
    {
        Description = "Grow each workload until one run lasts at least this long",
        HelpName = "S",
        DefaultValueFactory = _ => 1.0,
    };

    public BenchCommand(HostConsole console, ILoggerFactory logging)
        : base("bench", "Measure MIPS on an ALU loop, recursive calls and a 64 MiB memory loop")
    {
        _console = console;
        Options.Add(Qemu);
        Options.Add(MinSeconds);
        MinSeconds.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double>() is not (> 0 and <= 600))
                r.AddError("--min-seconds must be more than 0 and at most 600");
        });
        SetAction(p => Run(p.GetValue(Qemu), p.GetValue(MinSeconds)));
    }

    public int Run(bool withQemu, double minSeconds)
    {
        var err = _console.Error;
        QemuOracle? qemu = null;
        if (withQemu)
        {
            qemu = QemuOracle.Find(out string why);
            if (qemu == null)
            {
                err.WriteLine($"hv: --qemu: {why}");
                return ExitCodes.UsageOrImageError;
            }
        }
        var runner = new BenchRunner(minSeconds, err);
        double startup = 0;
        if (qemu != null)
        {
            startup = runner.MeasureQemuStartup(qemu);
            err.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  qemu start-up and shut-down: {startup:F3} s (subtracted)"));
        }
        var rows = new List<BenchResult>();
        foreach (var w in BenchWorkloads.All)
        {
            try
            {
                rows.Add(runner.Measure(w, qemu, startup));
            }
            catch (InvalidOperationException e)
            {
                err.WriteLine($"hv: bench: {e.Message}");
                return ExitCodes.InternalError;
            }
        }
        WriteTable(_console.Out, rows);
        return 0;
    }

    public static void WriteTable(TextWriter w, IReadOnlyList<BenchResult> rows)
    {
        var c = CultureInfo.InvariantCulture;
        w.WriteLine($"{"workload",-12} {"instructions",14} {"hv s",8} {"hv MIPS",9} {"qemu s",8} {"qemu MIPS",10} {"ratio",7}");
        foreach (var r in rows)
        {
            string qs = r.QemuSeconds is { } s ? s.ToString("F3", c) : "-";
            string qm = r.QemuMips is { } m ? m.ToString("F1", c) : "-";
            string ratio = r.Ratio is { } x ? x.ToString("F3", c) : "-";
            w.WriteLine(string.Create(c, $"{r.Workload,-12} {r.Instructions,14} {r.HvSeconds,8:F3} {r.HvMips,9:F1} {qs,8} {qm,10} {ratio,7}"));
        }
        w.WriteLine("ratio = hv MIPS / qemu MIPS. QEMU ran the same image with its loop count scaled to last as long;");
        w.WriteLine("its instruction count is the workload's exact count for that loop count.");
    }
}
