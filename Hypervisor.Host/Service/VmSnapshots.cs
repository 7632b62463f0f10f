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
    /// <summary>Why <paramref name="machine"/> cannot be captured now, or null.</summary>
    public static string? CannotCapture(VirtualMachine machine) => machine switch
    {
        KvmMachine kvm => VcpuSnapshot.CannotCapture(kvm.Vcpu),
        _ => "it runs on the bare machine (vendor bare): there is no hypervisor vCPU to snapshot",
    };

    /// <summary>The snapshot's file text (with its checksum). Call only when <see cref="CannotCapture"/> is null.</summary>
    public static string Capture(VirtualMachine machine, bool includeMemory)
    {
        return ((KvmMachine)machine).CaptureSnapshot(includeMemory).ToJson();
    }
}
