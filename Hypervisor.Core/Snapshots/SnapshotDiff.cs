using System.Text.Json.Nodes;

namespace Hypervisor.Core.Snapshots;

/// <summary>One field that differs between two snapshots: its path (<c>regs.rax</c>,
/// <c>rap.entries[3].domain</c>) and both values as JSON text, or null where a side lacks it.</summary>
public readonly record struct SnapshotDifference(string Path, string? Left, string? Right)
{
    public override string ToString() => $"{Path}: {Left ?? "(absent)"} -> {Right ?? "(absent)"}";
}

/// <summary>Field-by-field comparison of two JSON documents (snapshots, golden files): only the
/// leaves that differ, by path, in the left document's key order.</summary>
public static class SnapshotDiff
{
    public static IReadOnlyList<SnapshotDifference> Compare(JsonNode? left, JsonNode? right)
    {
        var list = new List<SnapshotDifference>();
        Walk("", left, right, list);
        return list;
    }

    private static string Join(string path, string key) => path.Length == 0 ? key : $"{path}.{key}";

    private static void Walk(string path, JsonNode? a, JsonNode? b, List<SnapshotDifference> list)
    {
        if (a is JsonObject oa && b is JsonObject ob)
        {
            foreach (var (key, va) in oa)
                if (ob.TryGetPropertyValue(key, out var vb))
                    Walk(Join(path, key), va, vb, list);
                else
                    list.Add(new(Join(path, key), Text(va), null));
            foreach (var (key, vb) in ob)
                if (!oa.ContainsKey(key))
                    list.Add(new(Join(path, key), null, Text(vb)));
            return;
        }
        if (a is JsonArray aa && b is JsonArray ab)
        {
            int n = Math.Max(aa.Count, ab.Count);
            for (int i = 0; i < n; i++)
            {
                string p = $"{path}[{i}]";
                if (i >= aa.Count)
                    list.Add(new(p, null, Text(ab[i])));
                else if (i >= ab.Count)
                    list.Add(new(p, Text(aa[i]), null));
                else
                    Walk(p, aa[i], ab[i], list);
            }
            return;
        }
        string? ta = Text(a), tb = Text(b);
        if (ta != tb)
            list.Add(new(path, ta, tb));
    }

    private static string Text(JsonNode? n) => n == null ? "null" : n.ToJsonString();

    /// <summary>A readable report: one line per difference, at most <paramref name="max"/> lines.</summary>
    public static string Format(IReadOnlyList<SnapshotDifference> diffs, int max = 200)
    {
        var lines = diffs.Take(max).Select(d => "  " + d).ToList();
        if (diffs.Count > max)
            lines.Add($"  ... and {diffs.Count - max} more");
        return string.Join('\n', lines);
    }
}
