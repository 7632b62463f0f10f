using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Host.Cli;
using Hypervisor.Host.Runtime;

namespace Hypervisor.Host.Service;

/// <summary>The body of <c>GET /vms/{id}</c> (and each item of <c>GET /vms</c>).</summary>
/// <param name="Exits">Exits that reached the host, by name: under a vendor by KVM_EXIT_* reason, on
/// the bare machine by CPU exit kind. Counted up to the last budget slice while the guest runs.</param>
/// <param name="VendorExits">Under a vendor, every exit by the vendor's name (VMEXIT_IOIO ...).</param>
public sealed record VmStatus(
    string Id,
    string State,
    string Image,
    string Vendor,
    string HostCpu,
    string Memory,
    string Cpu,
    string? Append,
    ulong Instructions,
    long SerialBytes,
    VmEndStatus? End,
    IReadOnlyDictionary<string, long> Exits,
    IReadOnlyDictionary<string, long>? VendorExits)
{
    public static VmStatus Of(ManagedVm vm)
    {
        var stats = vm.Machine.Statistics;
        var exits = new Dictionary<string, long>(StringComparer.Ordinal);
        Dictionary<string, long>? vendorExits = null;
        if (stats.Vendor != null)
        {
            foreach (var (reason, count) in stats.UserspaceExits)
                exits[RunStatistics.KvmName(reason)] = count;
            vendorExits = stats.VendorExits.ToDictionary(e => e.Name, e => e.Count, StringComparer.Ordinal);
        }
        else
        {
            foreach (var reason in Enum.GetValues<CpuExitReason>())
            {
                if (reason is not (CpuExitReason.None or CpuExitReason.InstructionLimit) && stats.Exits(reason) != 0)
                    exits[reason.ToString().ToLowerInvariant()] = stats.Exits(reason);
            }
        }
        var spec = vm.Spec;
        return new VmStatus(
            vm.Id,
            VmStates.Name(vm.State),
            spec.Image,
            VendorKinds.Name(spec.Vendor),
            spec.EffectiveHostCpu.Name,
            new MemorySize(spec.Memory).ToString(),
            (spec.Cpu ?? CpuSpec.Host).ToString(),
            spec.Append,
            vm.Instructions,
            vm.Serial.TotalWritten,
            vm.End is { } end ? VmEndStatus.Of(end) : null,
            exits,
            vendorExits);
    }
}

/// <summary>How a guest's run ended.</summary>
/// <param name="Reason">halted, debug-exit, shutdown, unimplemented, internal-error, stopped.</param>
/// <param name="Status">What <c>hv run</c> would have exited with (null when the host stopped it).</param>
public sealed record VmEndStatus(string Reason, int? Status, uint? DebugExitValue, string? Message)
{
    public static VmEndStatus Of(RunResult end) => new(
        end.End switch
        {
            RunEnd.DebugExit => "debug-exit",
            RunEnd.InternalError => "internal-error",
            _ => end.End.ToString().ToLowerInvariant(),
        },
        end.End == RunEnd.Stopped ? null : ExitCodes.For(end),
        end.End == RunEnd.DebugExit ? end.DebugExitValue : null,
        end.Message);
}
