using Hypervisor.Core.Snapshots;
using Hypervisor.Host.Runtime;

namespace Hypervisor.Host.Service;

/// <summary>
/// <c>GET /vms/{id}/snapshot</c>: the vCPU snapshot (Hypervisor.Core/Snapshots, the same JSON form
/// as snapshot files) of a held VM. Guest memory is not sent: with <c>memory=true</c> the snapshot's
/// "memory" section describes it (size, SHA-256, per-MiB chunk hashes) with no file; otherwise it is
/// null. Userspace devices are included once they take part in snapshots.
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
        var kvm = (KvmMachine)machine;
        var devices = new object[] { machine.Com1, machine.DebugExit }.OfType<ISnapshotDevice>();
        return MachineSnapshot.Capture(kvm.Vcpu, devices, includeMemory).ToJson();
    }
}
