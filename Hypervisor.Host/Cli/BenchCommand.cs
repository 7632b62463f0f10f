using System.CommandLine;
using System.Globalization;
using Hypervisor.Host.Bench;
using Hypervisor.Host.Reference;
using Hypervisor.Host.Runtime;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Cli;

/// <summary>
/// <c>hv bench [--qemu] [--min-seconds S] [--vendor svm|vmx|bare] [--host-cpu NAME] [--exits]</c>:
/// MIPS of hv on three guest workloads, and with <c>--qemu</c> of QEMU's software CPU on the same
/// images; with <c>--exits</c>, exit round trips per second under the vendor module instead.
/// Build Release to measure.
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

    public Option<string> Vendor { get; } = MachineCommandOptions.Vendor(
        "What runs the workloads: svm, a VM under the SVM module (the default, as hv run), vmx, a VM under the VMX module, or bare, the software CPU alone",
        ["svm", "vmx", "bare"]);

    public Option<string> HostCpu { get; } = MachineCommandOptions.HostCpu();

    public Option<bool> Exits { get; } = new("--exits")
    {
        Description = "Measure exit round trips instead: a guest runs CPUID in a loop, every CPUID an intercepted exit (needs --vendor svm or vmx)",
    };

    public Option<bool> Snapshot { get; } = new("--snapshot")
    {
        Description = "Measure snapshot capture, save, load, restore and the first instruction after restore for a 256 MiB VM",
    };

    public BenchCommand(HostConsole console, ILoggerFactory logging)
        : base("bench", "Measure MIPS on an ALU loop, recursive calls and a 64 MiB memory loop, or (--exits) exit round trips")
    {
        _console = console;
        Options.Add(Qemu);
        Options.Add(MinSeconds);
        Options.Add(Vendor);
        Options.Add(HostCpu);
        Options.Add(Exits);
        Options.Add(Snapshot);
        MinSeconds.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double>() is not (> 0 and <= 600))
                r.AddError("--min-seconds must be more than 0 and at most 600");
        });
        SetAction(p =>
        {
            var vendor = MachineCommandOptions.VendorOf(p.GetValue(Vendor)!);
            var machine = new MachineOptions { Vendor = vendor, HostCpu = MachineCommandOptions.ModelOf(p.GetValue(HostCpu), vendor) };
            if (p.GetValue(Snapshot))
                return RunSnapshot();
            return p.GetValue(Exits)
                ? RunExits(p.GetValue(Qemu), p.GetValue(MinSeconds), machine)
                : Run(p.GetValue(Qemu), p.GetValue(MinSeconds), machine);
        });
    }

    /// <summary><c>hv bench --snapshot</c>.</summary>
    public int RunSnapshot(int repeats = 5)
    {
        try
        {
            var rows = new SnapshotBenchRunner(repeats, _console.Error).Measure();
            SnapshotBenchRunner.WriteReport(_console.Out, rows);
            return 0;
        }
        catch (Exception e) when (e is InvalidOperationException or Core.Snapshots.SnapshotException)
        {
            _console.Error.WriteLine($"hv: bench --snapshot: {e.Message}");
            return ExitCodes.InternalError;
        }
    }

    /// <summary><c>hv bench --exits</c>.</summary>
    public int RunExits(bool withQemu, double minSeconds, MachineOptions? machine = null)
    {
        var err = _console.Error;
        machine ??= new MachineOptions();
        if (withQemu)
        {
            err.WriteLine("hv: --exits measures the hypervisor's exits, which QEMU's software CPU does not have: drop --qemu");
            return ExitCodes.UsageOrImageError;
        }
        if (machine.Vendor == VendorKind.Bare)
        {
            err.WriteLine($"hv: --exits measures exits to a vendor module: use --vendor svm or vmx, not {VendorKinds.Name(machine.Vendor)}");
            return ExitCodes.UsageOrImageError;
        }
        ExitBenchResult result;
        try
        {
            result = new ExitBenchRunner(minSeconds, err, machine).Measure();
        }
        catch (MachineConfigurationException e)
        {
            err.WriteLine($"hv: {e.Message}");
            return ExitCodes.UsageOrImageError;
        }
        catch (InvalidOperationException e)
        {
            err.WriteLine($"hv: bench: {e.Message}");
            return ExitCodes.InternalError;
        }
        ExitBenchRunner.WriteReport(_console.Out, result);
        return 0;
    }

    public int Run(bool withQemu, double minSeconds, MachineOptions? machine = null)
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
        var runner = new BenchRunner(minSeconds, err, machine);
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
