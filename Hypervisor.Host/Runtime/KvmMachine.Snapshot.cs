using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.Snapshots;
using Hypervisor.Core.X86;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Runtime;

/// <summary>Machine-level snapshots: the vCPU, the userspace devices and guest memory, for every
/// vendor (the vendor's own section comes through its <see cref="IX86Ops.Snapshots"/>).</summary>
public abstract partial class KvmMachine
{
    /// <summary>When set, <see cref="VirtualMachine.Run"/> stops with <see cref="RunEnd.SnapshotPoint"/>
    /// once this many exits to userspace have been serviced (counted from the start of the guest,
    /// across restores).</summary>
    public long? StopAtExit { get; set; }

    /// <summary>The devices whose state a snapshot holds, in its order.</summary>
    public IEnumerable<ISnapshotDevice> SnapshotDevices => [Com1, DebugExit];

    /// <summary>Captures the machine between two runs; changes nothing.</summary>
    public MachineSnapshot CaptureSnapshot(bool includeMemory = true)
    {
        Com1.Flush();
        return MachineSnapshot.Capture(Vcpu, SnapshotDevices, includeMemory);
    }

    /// <summary>Builds the machine a snapshot describes (vendor, host CPU model, memory size, guest
    /// CPUID, options) and restores it; a snapshot that does not fit is refused and nothing is left
    /// running.</summary>
    /// <exception cref="SnapshotException">the snapshot cannot be restored; the message says why.</exception>
    public static KvmMachine FromSnapshot(MachineSnapshot snapshot, Stream serialOutput, ILoggerFactory logging)
    {
        var root = new SnapshotReader(snapshot.Content, "");
        VcpuSnapshot.CheckHeader(root, vendor: null, hostCpu: null);
        string vendor = root.String("vendor");
        var kind = VendorKinds.Parse(vendor);
        if (kind is not VendorKind.Svm and not VendorKind.Vmx)
            throw new SnapshotException($"vendor \"{vendor}\" is not a hypervisor vendor this hv knows (svm, vmx)");
        string modelName = root.String("hostCpu");
        var model = HostCpuModel.Find(modelName) ?? throw new SnapshotException($"hostCpu: this hv has no host CPU model \"{modelName}\"");
        if (snapshot.Memory == null)
            throw new SnapshotException("memory: the snapshot has no guest memory, so a machine cannot be rebuilt from it");
        if (snapshot.Memory.Slots.Count != 1 || snapshot.Memory.Slots[0].GuestBase != 0)
            throw new SnapshotException("memory.slots: hv builds machines with one RAM slot at guest physical 0");
        var cpuid = new List<CpuidEntry>();
        var entries = root.Array("cpuid");
        for (int i = 0; i < entries.Count; i++)
        {
            var e = SnapshotReader.Element(entries, i, "cpuid");
            cpuid.Add(new CpuidEntry((uint)e.Hex("function"), (uint)e.Hex("index"), (uint)e.Hex("flags"),
                (uint)e.Hex("eax"), (uint)e.Hex("ebx"), (uint)e.Hex("ecx"), (uint)e.Hex("edx")));
        }
        var options = new MachineOptions
        {
            Vendor = kind.Value,
            HostCpu = model,
            ExactCpuid = cpuid,
            InterceptCr3AndInvpcid = root.Object("vm").Bool("interceptCr3AndInvpcid"),
        };
        VirtualMachine created;
        try
        {
            created = Create(snapshot.Memory.Slots[0].Size, serialOutput, options, logging);
        }
        catch (MachineConfigurationException e)
        {
            throw new SnapshotException($"the machine the snapshot describes cannot be built: {e.Message}");
        }
        var machine = (KvmMachine)created;
        try
        {
            snapshot.Restore(machine.Vcpu, machine.SnapshotDevices, memoryIsZero: true);
            return machine;
        }
        catch
        {
            machine.Dispose();
            throw;
        }
    }
}
