using System.Text.Json.Nodes;
using Hypervisor.Core.X86;

namespace Hypervisor.Core.Snapshots;

/// <summary>
/// A vendor's part of a vCPU snapshot: its control structure by field name (SVM: the VMCB's
/// control and save areas in a "vmcb" section; VMX: the VMCS fields in "vmcs"). Reached through
/// <see cref="IX86Ops.Snapshots"/>; common code never looks inside the section.
/// </summary>
public interface ISnapshotVendorState
{
    /// <summary>The top-level key of the vendor's section: "vmcb" or "vmcs".</summary>
    string Section { get; }

    /// <summary>Why this vCPU cannot be captured now (e.g. it runs a nested guest), or null.</summary>
    string? CannotCapture(Vcpu vcpu);

    JsonObject Capture(Vcpu vcpu);

    /// <summary>Reads the section and checks it against <paramref name="vcpu"/> completely, changing
    /// nothing; returns what applies it (which cannot fail). Throws <see cref="SnapshotException"/>
    /// naming the field when the section is unusable.</summary>
    Action Read(Vcpu vcpu, SnapshotReader section);
}

/// <summary>A userspace device whose state is part of a machine snapshot (UART, debug-exit ...).</summary>
public interface ISnapshotDevice
{
    /// <summary>Its key under "devices".</summary>
    string SnapshotName { get; }

    JsonObject CaptureSnapshot();

    /// <summary>Reads and checks the device's object, changing nothing; returns what applies it.</summary>
    Action ReadSnapshot(SnapshotReader state);
}
