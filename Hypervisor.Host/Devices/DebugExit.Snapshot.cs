using System.Text.Json.Nodes;
using Hypervisor.Core.Snapshots;

namespace Hypervisor.Host.Devices;

public sealed partial class DebugExit : ISnapshotDevice
{
    public string SnapshotName => "debugExit";

    public JsonObject CaptureSnapshot() => new() { ["value"] = Value is { } v ? SnapshotFormat.Hex32(v) : null };

    public Action ReadSnapshot(SnapshotReader r)
    {
        uint? value = null;
        if (r.Node["value"] != null)
        {
            ulong v = r.Hex("value");
            value = v <= uint.MaxValue ? (uint)v : throw new SnapshotException($"{r.Path}.value: 0x{v:x} does not fit 32 bits");
        }
        return () => Value = value;
    }
}
