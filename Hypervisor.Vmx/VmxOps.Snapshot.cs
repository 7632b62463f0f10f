using System.Text.Json.Nodes;
using Hypervisor.Core.Snapshots;
using Hypervisor.Core.X86;
using Hypervisor.Vmx.Hardware;
using static Hypervisor.Core.Snapshots.SnapshotFormat;

namespace Hypervisor.Vmx;

public sealed partial class VmxOps
{
    private VmxSnapshotState? _snapshots;

    public ISnapshotVendorState Snapshots => _snapshots ??= new VmxSnapshotState();
}

/// <summary>
/// The VMX part of a vCPU snapshot, the "vmcs" section: the launch state and every VMCS field this
/// project implements, by its SDM name (<see cref="VmcsField"/>), the I/O and MSR bitmaps by hash
/// (they follow from the VM's configuration, so a restore checks them), and the module's own
/// per-vCPU state. The processor loads the whole guest state from the VMCS on every entry, so a
/// restored VMCS is all the next VMRESUME needs.
/// </summary>
public sealed class VmxSnapshotState : ISnapshotVendorState
{
    public string Section => "vmcs";

    public string? CannotCapture(Vcpu vcpu) => null;

    private static string BitmapHash(VcpuVmx vmx) => Sha256Hex(vmx.IoBitmaps.BitmapA.ToArray(), vmx.IoBitmaps.BitmapB.ToArray(), vmx.MsrBitmap.Bytes.ToArray());

    public JsonObject Capture(Vcpu vcpu)
    {
        var vmx = VmxOps.ToVmx(vcpu);
        var fields = new JsonObject();
        foreach (var f in VmcsLayout.FieldOfSlot)
            fields[f.ToString()] = Hex64(vmx.Vmcs[f]);
        return new JsonObject
        {
            ["revisionId"] = Hex32(vmx.Vmcs.RevisionId),
            ["launchState"] = vmx.Vmcs.LaunchState.ToString(),
            ["fields"] = fields,
            ["bitmapsSha256"] = BitmapHash(vmx),
            ["lastExitReason"] = Hex32(vmx.LastExitReason),
            ["lastEntryError"] = (int)vmx.LastEntryError,
            ["egprsLoaded"] = vmx.EgprsLoaded,
            ["cr0GuestOwnedBits"] = Hex64(vmx.Cr0GuestOwnedBits),
            ["cr4GuestOwnedBits"] = Hex64(vmx.Cr4GuestOwnedBits),
        };
    }

    public Action Read(Vcpu vcpu, SnapshotReader section)
    {
        var vmx = VmxOps.ToVmx(vcpu);
        var f = section.Object("fields");
        var values = new List<(VmcsField Field, ulong Value)>();
        foreach (var field in VmcsLayout.FieldOfSlot)
            values.Add((field, f.Hex(field.ToString())));
        foreach (var (name, _) in f.Node)
            if (!Enum.TryParse<VmcsField>(name, out _))
                throw new SnapshotException($"{f.Path}.{name}: not a VMCS field this hv implements");
        string launch = section.String("launchState");
        if (!Enum.TryParse<VmcsLaunchState>(launch, out var launchState))
            throw new SnapshotException($"{section.Path}.launchState: \"{launch}\" is not {string.Join(" or ", Enum.GetNames<VmcsLaunchState>())}");
        if ((uint)section.Hex("revisionId") != vmx.Vmcs.RevisionId)
            throw new SnapshotException($"{section.Path}.revisionId: the snapshot's VMCS revision differs from this processor's 0x{vmx.Vmcs.RevisionId:x}");
        if (section.String("bitmapsSha256") != BitmapHash(vmx))
            throw new SnapshotException("vmcs: the I/O or MSR bitmaps of the snapshot differ from this VM's (a different configuration)");
        uint lastExit = (uint)section.Hex("lastExitReason");
        var lastError = (VmxInstructionError)section.Number("lastEntryError");
        bool egprs = section.Bool("egprsLoaded");
        ulong cr0Owned = section.Hex("cr0GuestOwnedBits"), cr4Owned = section.Hex("cr4GuestOwnedBits");
        return () =>
        {
            foreach (var (field, value) in values)
                vmx.Vmcs[field] = value;
            if (launchState == VmcsLaunchState.Launched)
                vmx.Vmcs.MarkLaunched();
            else
                vmx.Vmcs.Clear();
            vmx.LastExitReason = lastExit;
            vmx.LastEntryError = lastError;
            vmx.EgprsLoaded = egprs;
            vmx.Cr0GuestOwnedBits = cr0Owned;
            vmx.Cr4GuestOwnedBits = cr4Owned;
        };
    }
}
