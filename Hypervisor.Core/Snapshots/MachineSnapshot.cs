using System.Text;
using System.Text.Json.Nodes;
using Hypervisor.Core.X86;

namespace Hypervisor.Core.Snapshots;

/// <summary>
/// A whole snapshot: the vCPU sections (<see cref="VcpuSnapshot"/>), the userspace devices and
/// guest memory. In memory it holds the JSON content (without checksum) and the memory image;
/// <see cref="Save"/> writes <c>FILE</c> and the raw memory file <c>FILE.mem</c> beside it.
/// </summary>
public sealed class MachineSnapshot
{
    private MachineSnapshot(JsonObject content, MemoryImage? memory)
    {
        Content = content;
        Memory = memory;
    }

    /// <summary>The JSON content in its fixed key order, without "checksum".</summary>
    public JsonObject Content { get; }

    public MemoryImage? Memory { get; }

    /// <summary>Captures <paramref name="vcpu"/>, <paramref name="devices"/> and (unless
    /// <paramref name="includeMemory"/> is false) its VM's memory. Changes nothing.</summary>
    public static MachineSnapshot Capture(Vcpu vcpu, IEnumerable<ISnapshotDevice> devices, bool includeMemory = true)
    {
        var root = VcpuSnapshot.Capture(vcpu);
        var d = new JsonObject();
        foreach (var device in devices)
            d[device.SnapshotName] = device.CaptureSnapshot();
        root["devices"] = d;
        MemoryImage? memory = includeMemory ? MemoryImage.Capture(vcpu.Vm.Memory) : null;
        root["memory"] = memory?.Describe(null);
        return new MachineSnapshot(root, memory);
    }

    public string Vendor => Content["vendor"]?.ToString() ?? "";
    public string HostCpu => Content["hostCpu"]?.ToString() ?? "";

    /// <summary>The file text (with its checksum).</summary>
    public string ToJson() => SnapshotFile.Serialize(Content);

    /// <summary>Writes the snapshot to <paramref name="path"/> and its memory to
    /// <c><paramref name="path"/>.mem</c>, which the snapshot names.</summary>
    public void Save(string path)
    {
        if (Memory != null)
        {
            string memFile = Path.GetFileName(path) + ".mem";
            Memory.WriteFile(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, memFile));
            Content["memory"] = Memory.Describe(memFile);
        }
        File.WriteAllText(path, ToJson(), new UTF8Encoding(false));
    }

    /// <summary>Reads and checks a snapshot file (checksum, format, version; the memory file's
    /// presence and size). Memory contents are verified chunk by chunk when restored.</summary>
    public static MachineSnapshot Load(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SnapshotException($"{path}: cannot be read ({e.Message})");
        }
        return Parse(bytes, path);
    }

    /// <summary>A snapshot from a file's bytes; the memory file is looked for beside <paramref name="path"/>.</summary>
    public static MachineSnapshot Parse(ReadOnlySpan<byte> bytes, string path)
    {
        var root = SnapshotFile.Parse(bytes, path);
        MemoryImage? memory = null;
        if (root["memory"] != null)
        {
            try
            {
                memory = MemoryImage.Read(new SnapshotReader(root, "").Object("memory"), Path.GetDirectoryName(Path.GetFullPath(path))!);
            }
            catch (SnapshotException e)
            {
                throw new SnapshotException($"{path}: {e.Message}; nothing was restored");
            }
        }
        return new MachineSnapshot(root, memory);
    }

    /// <summary>Restores the vCPU, the devices and the memory. Everything is read and checked
    /// first; then memory, devices and the vCPU are applied. <paramref name="memoryIsZero"/> says
    /// the VM was created for this restore (its memory is still all zero, and it is discarded if
    /// the restore fails); otherwise a memory file is verified completely before anything changes.</summary>
    public void Restore(Vcpu vcpu, IEnumerable<ISnapshotDevice> devices, bool memoryIsZero)
    {
        var r = new SnapshotReader(Content, "");
        var applyVcpu = VcpuSnapshot.Read(vcpu, Content);
        var deviceNode = r.Object("devices");
        var applyDevices = new List<Action>();
        var names = new HashSet<string>();
        foreach (var d in devices)
        {
            names.Add(d.SnapshotName);
            if (!deviceNode.Has(d.SnapshotName))
                throw new SnapshotException($"devices.{d.SnapshotName}: missing (this VM has the device, the snapshot does not)");
            applyDevices.Add(d.ReadSnapshot(deviceNode.Object(d.SnapshotName)));
        }
        foreach (var (name, _) in deviceNode.Node)
            if (!names.Contains(name))
                throw new SnapshotException($"devices.{name}: the snapshot has a device this VM does not");
        if (Memory != null)
        {
            Memory.CheckLayout(vcpu.Vm.Memory);
            Memory.RestoreInto(vcpu.Vm.Memory, memoryIsZero);
        }
        foreach (var apply in applyDevices)
            apply();
        applyVcpu();
    }
}
