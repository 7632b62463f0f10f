using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Hypervisor.Testing;

/// <summary>
/// Replaces fields a test does not care about with <c>"&lt;scrubbed&gt;"</c> before a golden
/// comparison, so the golden file still shows the field exists. Paths as <see
/// cref="Hypervisor.Core.Snapshots.SnapshotDiff"/> prints them, with <c>*</c> for any key or index:
/// <c>"memory"</c>, <c>"clock.*"</c>, <c>"rap.entries[*].returnAddress"</c>, <c>"vmcb.control.exitInfo2"</c>.
/// </summary>
public sealed class Scrubber
{
    public const string Scrubbed = "<scrubbed>";

    private readonly List<Regex> _patterns = [];

    /// <summary>Scrub every field whose path matches <paramref name="pattern"/> (and all below it).</summary>
    public Scrubber Ignore(params string[] patterns)
    {
        foreach (string pattern in patterns)
        {
            string regex = "^" + Regex.Escape(pattern).Replace(@"\*", @"[^.\[\]]+") + "$";
            _patterns.Add(new Regex(regex, RegexOptions.CultureInvariant));
        }
        return this;
    }

    /// <summary>Nothing that depends on where or how the VM ran: the memory file's name.</summary>
    public static Scrubber Default => new Scrubber().Ignore("memory.file");

    /// <summary>A copy of <paramref name="node"/> with the matching fields scrubbed.</summary>
    public JsonNode? Apply(JsonNode? node)
    {
        var copy = node?.DeepClone();
        return Walk("", copy);
    }

    private bool Matches(string path) => _patterns.Any(p => p.IsMatch(path));

    private JsonNode? Walk(string path, JsonNode? node)
    {
        if (path.Length > 0 && Matches(path))
            return JsonValue.Create(Scrubbed);
        switch (node)
        {
            case JsonObject o:
                foreach (var key in o.Select(kv => kv.Key).ToList())
                {
                    string p = path.Length == 0 ? key : $"{path}.{key}";
                    if (Matches(p))
                        o[key] = Scrubbed;
                    else
                        Walk(p, o[key]);
                }
                return o;
            case JsonArray a:
                for (int i = 0; i < a.Count; i++)
                {
                    string p = $"{path}[{i}]";
                    if (Matches(p))
                        a[i] = Scrubbed;
                    else
                        Walk(p, a[i]);
                }
                return a;
            default:
                return node;
        }
    }
}
