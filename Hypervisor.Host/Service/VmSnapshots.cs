using Hypervisor.Core.Snapshots;
using Hypervisor.Host.Runtime;

namespace Hypervisor.Host.Service;

/// <summary>
/// <c>GET /vms/{id}/snapshot</c>: the vCPU snapshot (Hypervisor.Core/Snapshots, the same JSON form
/// as snapshot files) of a held VM. Guest memory is not sent: with <c>memory=true</c> the snapshot's
/// "memory" section describes it (size, SHA-256, per-MiB chunk hashes) with no file; otherwise it is
/// null. The userspace devices (UART, debug-exit) are in its "devices" section, as in a file.
/// </summary>
internal static class VmSnapshots
{
    /// <summary>Why <paramref name="machine"/> cannot be captured now, or null; NotImplemented is
    /// true when its vendor module has no snapshot support at all (HTTP 501 rather than 409).</summary>
    public static (string Why, bool NotImplemented)? CannotCapture(VirtualMachine machine) => machine switch
    {
        KvmMachine kvm when kvm.Vcpu.Ops.Snapshots == null =>
            ($"the {kvm.Vcpu.Ops.Name} vendor module does not support snapshots yet", true),
        KvmMachine kvm => VcpuSnapshot.CannotCapture(kvm.Vcpu) is { } why ? (why, false) : null,
        _ => ("it runs on the bare machine (vendor bare): there is no hypervisor vCPU to snapshot", false),
    };

    /// <summary>The snapshot's file text (with its checksum). Call only when <see cref="CannotCapture"/> is null.</summary>
    public static string Capture(VirtualMachine machine, bool includeMemory)
    {
        return ((KvmMachine)machine).CaptureSnapshot(includeMemory).ToJson();
    }
}
