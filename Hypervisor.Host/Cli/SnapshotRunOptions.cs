using System.CommandLine;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Snapshots;
using Hypervisor.Host.Runtime;

namespace Hypervisor.Host.Cli;

/// <summary>What a run does about snapshots: where to write one, and after which exit to stop for it.</summary>
public sealed record SnapshotPlan(string? OutPath, long? AtExit);

/// <summary>The snapshot and clock options <c>hv run</c> and <c>hv restore</c> share, and what
/// they do around a run.</summary>
public sealed class SnapshotRunOptions
{
    public Option<FileInfo?> Out { get; } = new("--snapshot-out")
    {
        Description = "Write a vCPU snapshot to FILE when the run ends (guest memory goes to FILE.mem beside it)",
        HelpName = "FILE",
    };

    public Option<long?> AtExit { get; } = new("--snapshot-at-exit")
    {
        Description = "Stop after the guest's N-th exit to userspace has been serviced and write the snapshot then (needs --snapshot-out; status 0)",
        HelpName = "N",
    };

    public Option<string> Clock { get; } = new("--clock")
    {
        Description = "What the TSC counts: instructions (retired instructions: runs and snapshots are reproducible, the default) or host (host time)",
        HelpName = "instructions|host",
        DefaultValueFactory = _ => "instructions",
    };

    public void AddTo(Command command, bool withClock)
    {
        command.Options.Add(Out);
        command.Options.Add(AtExit);
        if (withClock)
        {
            Clock.AcceptOnlyFromAmong("instructions", "host");
            command.Options.Add(Clock);
        }
        AtExit.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<long?>() is { } n && n < 1)
                r.AddError("--snapshot-at-exit: N counts exits from 1");
        });
        command.Validators.Add(r =>
        {
            if (r.GetValue(AtExit) != null && r.GetValue(Out) == null)
                r.AddError("--snapshot-at-exit needs --snapshot-out FILE (where to write the snapshot)");
        });
    }

    public SnapshotPlan PlanOf(ParseResult parse) => new(parse.GetValue(Out)?.FullName, parse.GetValue(AtExit));

    public TscClock ClockOf(ParseResult parse) => parse.GetValue(Clock) == "host" ? TscClock.Host : TscClock.Instructions;

    /// <summary>Before the run: false (with the reason on <paramref name="err"/>) when the machine
    /// cannot be snapshotted as planned.</summary>
    public static bool Prepare(VirtualMachine vm, SnapshotPlan? plan, TextWriter err)
    {
        if (plan?.OutPath == null)
            return true;
        if (vm is not KvmMachine kvm)
        {
            err.WriteLine("hv: --snapshot-out: the bare machine (--vendor bare) has no vCPU to snapshot; use a hypervisor vendor");
            return false;
        }
        kvm.StopAtExit = plan.AtExit;
        return true;
    }

    /// <summary>After the run: writes the snapshot when one was asked for. Returns the status to
    /// exit with instead of the run's, when writing failed.</summary>
    public static int? Finish(VirtualMachine vm, SnapshotPlan? plan, TextWriter err)
    {
        if (plan?.OutPath == null || vm is not KvmMachine kvm)
            return null;
        try
        {
            kvm.CaptureSnapshot().Save(plan.OutPath);
            return null;
        }
        catch (SnapshotException e)
        {
            err.WriteLine($"hv: --snapshot-out: {e.Message}");
            return ExitCodes.InternalError;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            err.WriteLine($"hv: --snapshot-out {plan.OutPath}: cannot write: {e.Message}");
            return ExitCodes.UsageOrImageError;
        }
    }
}
