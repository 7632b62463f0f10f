using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace Hypervisor.Core.Snapshots;

/// <summary>The snapshot file format's constants and its value spellings: 64-bit values as
/// <c>0x</c> and 16 hex digits, narrower fields as <c>0x</c> and their own width in digits.</summary>
public static class SnapshotFormat
{
    public const string Format = "hv-snapshot";

    /// <summary>The schema version this build writes and reads. A schema change bumps it.</summary>
    public const int Version = 1;

    /// <summary>Top-level keys in the order every writer emits them (a vendor section, "vmcb" or
    /// "vmcs", sits after "rap"). The checksum is always last.</summary>
    public static IReadOnlyList<string> TopLevelKeys { get; } =
    [
        "format", "version", "vendor", "hostCpu", "vm", "regs", "sregs", "msrs", "xcr0", "xsave", "cpuid", "regCache", "rap",
        "<vendor>", "events", "clock", "exits", "tdp", "devices", "memory", "checksum",
    ];

    /// <summary>The SHA-256 of <paramref name="parts"/> one after another, as lower-case hex: how
    /// vendor sections record tables that follow from the VM's configuration (permission maps, bitmaps).</summary>
    public static string Sha256Hex(params ReadOnlySpan<byte[]> parts)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var p in parts)
            h.AppendData(p);
        return Convert.ToHexStringLower(h.GetHashAndReset());
    }

    public static string Sha256Hex(ReadOnlySpan<byte> data) => Convert.ToHexStringLower(SHA256.HashData(data));

    public static string Hex64(ulong v) => "0x" + v.ToString("x16", CultureInfo.InvariantCulture);
    public static string Hex32(uint v) => "0x" + v.ToString("x8", CultureInfo.InvariantCulture);
    public static string Hex16(ushort v) => "0x" + v.ToString("x4", CultureInfo.InvariantCulture);
    public static string Hex8(byte v) => "0x" + v.ToString("x2", CultureInfo.InvariantCulture);

    /// <summary>A field of <paramref name="bytes"/> width as hex of that width.</summary>
    public static string Hex(ulong v, int bytes) => bytes switch
    {
        1 => Hex8((byte)v),
        2 => Hex16((ushort)v),
        4 => Hex32((uint)v),
        _ => Hex64(v),
    };

    /// <summary>Parses a hex value written by <see cref="Hex"/>; the path names the field in errors.</summary>
    public static ulong ParseHex(JsonNode? node, string path)
    {
        if (node is not JsonValue v || !v.TryGetValue(out string? s))
            throw new SnapshotException($"{path}: expected a hex string such as \"0x0000000000001000\", found {Describe(node)}");
        if (!s.StartsWith("0x", StringComparison.Ordinal) || s.Length < 3 || s.Length > 18
            || !ulong.TryParse(s.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong value))
            throw new SnapshotException($"{path}: \"{s}\" is not a 0x-prefixed hex value of at most 64 bits");
        return value;
    }

    internal static string Describe(JsonNode? node) => node switch
    {
        null => "nothing",
        JsonObject => "an object",
        JsonArray => "an array",
        _ => node.ToJsonString(),
    };
}
