using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Hypervisor.Core.Snapshots;

/// <summary>
/// The snapshot file's text: the JSON document indented by two spaces with "\n" line ends, and as
/// its last member <c>"checksum": "sha256:…"</c>, the SHA-256 of every byte before the comma that
/// precedes it. Any changed byte is therefore detected; reading checks format and version first
/// (their messages say more than "corrupted"), then the checksum, and only then uses the content.
/// </summary>
public static class SnapshotFile
{
    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        IndentCharacter = ' ',
        IndentSize = 2,
        NewLine = "\n",
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private const string ChecksumMember = ",\n  \"checksum\": \"sha256:";
    private const string Ending = "\"\n}\n";

    /// <summary>Indented JSON of any node, as snapshot files and golden files write it.</summary>
    public static string Format(JsonNode node) => node.ToJsonString(Options);

    /// <summary>The file text for <paramref name="content"/> (which must not hold "checksum").</summary>
    public static string Serialize(JsonObject content)
    {
        if (content.ContainsKey("checksum"))
            throw new ArgumentException("the checksum is computed here, not given");
        string body = Format(content);
        // body ends with "\n}": the checksum member goes before the closing brace.
        string prefix = body[..^2];
        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(prefix)));
        return prefix + ChecksumMember + hash + Ending;
    }

    /// <summary>Parses and checks a snapshot file's bytes; <paramref name="name"/> is used in messages.
    /// Returns the content without the checksum member.</summary>
    public static JsonObject Parse(ReadOnlySpan<byte> bytes, string name)
    {
        JsonObject? root = null;
        try
        {
            root = JsonNode.Parse(bytes.ToArray()) as JsonObject;
        }
        catch (JsonException)
        {
            // Reported below with what the checksum says about it.
        }
        catch (InvalidOperationException)
        {
        }
        if (root != null)
        {
            // The header's own messages first: a wrong version or vendor says more than "corrupted".
            try
            {
                VcpuSnapshot.CheckHeader(new SnapshotReader(root, ""), vendor: null, hostCpu: null);
            }
            catch (SnapshotException e)
            {
                throw new SnapshotException($"{name}: {e.Message}");
            }
        }
        string text;
        try
        {
            text = new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new SnapshotException($"{name}: not valid UTF-8 text (corrupted); nothing was restored");
        }
        int at = text.LastIndexOf(ChecksumMember, StringComparison.Ordinal);
        if (at < 0)
            throw new SnapshotException(root == null
                ? $"{name}: not a complete snapshot (no checksum at the end: truncated, or not a snapshot file); nothing was restored"
                : $"{name}: the checksum member is missing (truncated or edited); nothing was restored");
        int hashStart = at + ChecksumMember.Length;
        if (text.Length != hashStart + 64 + Ending.Length || !text.EndsWith(Ending, StringComparison.Ordinal))
            throw new SnapshotException($"{name}: the file does not end right after its checksum (truncated or edited); nothing was restored");
        string stored = text.Substring(hashStart, 64);
        string actual = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text[..at])));
        if (stored != actual)
            throw new SnapshotException($"{name}: checksum mismatch (the content was corrupted or edited: sha256 is {actual}, the file says {stored}); nothing was restored");
        if (root == null)
            throw new SnapshotException($"{name}: not valid JSON although its checksum matches; nothing was restored");
        root.Remove("checksum");
        return root;
    }
}
