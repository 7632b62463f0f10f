using System.Text.Json;
using System.Text.Json.Nodes;

namespace Hypervisor.Core.Snapshots;

/// <summary>Reads one object of a snapshot with its path, so a missing or malformed field is
/// reported as <c>sregs.cs.base: ...</c>. Reading never changes the document.</summary>
public readonly struct SnapshotReader
{
    public SnapshotReader(JsonObject node, string path)
    {
        Node = node;
        Path = path;
    }

    public JsonObject Node { get; }
    public string Path { get; }

    private string At(string key) => Path.Length == 0 ? key : $"{Path}.{key}";

    public bool Has(string key) => Node.ContainsKey(key);

    public JsonNode Required(string key) =>
        Node[key] ?? throw new SnapshotException($"{At(key)}: missing");

    public SnapshotReader Object(string key) =>
        Required(key) is JsonObject o ? new SnapshotReader(o, At(key)) : throw new SnapshotException($"{At(key)}: expected an object, found {SnapshotFormat.Describe(Node[key])}");

    public JsonArray Array(string key) =>
        Required(key) as JsonArray ?? throw new SnapshotException($"{At(key)}: expected an array, found {SnapshotFormat.Describe(Node[key])}");

    public ulong Hex(string key) => SnapshotFormat.ParseHex(Required(key), At(key));

    public ulong HexOr(string key, ulong fallback) => Has(key) ? Hex(key) : fallback;

    public long Number(string key)
    {
        var n = Required(key);
        // A parsed value holds a JsonElement, a built one a CLR number: the text form covers both.
        if (n is JsonValue v && v.GetValueKind() == JsonValueKind.Number
            && long.TryParse(v.ToJsonString(), System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out long l))
            return l;
        throw new SnapshotException($"{At(key)}: expected an integer, found {SnapshotFormat.Describe(n)}");
    }

    public bool Bool(string key)
    {
        var n = Required(key);
        if (n is JsonValue v && v.TryGetValue(out bool b))
            return b;
        throw new SnapshotException($"{At(key)}: expected true or false, found {SnapshotFormat.Describe(n)}");
    }

    public string String(string key)
    {
        var n = Required(key);
        if (n is JsonValue v && v.TryGetValue(out string? s))
            return s;
        throw new SnapshotException($"{At(key)}: expected a string, found {SnapshotFormat.Describe(n)}");
    }

    /// <summary>An element of an array that must be an object.</summary>
    public static SnapshotReader Element(JsonArray array, int index, string arrayPath) =>
        array[index] is JsonObject o ? new SnapshotReader(o, $"{arrayPath}[{index}]") : throw new SnapshotException($"{arrayPath}[{index}]: expected an object");
}
