using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hypervisor.Core.Snapshots;
using NUnit.Framework;

namespace Hypervisor.Testing;

/// <summary>
/// Golden files with Verify's conventions: <c>&lt;TestClass&gt;.&lt;TestMethod&gt;.verified.json</c>
/// beside the test's source file is the reviewed expectation. A mismatch (or a missing golden
/// file) writes <c>.received.json</c> beside it and fails with the differing fields by path; a
/// match deletes a stale received file. With the environment variable <c>HV_ACCEPT=1</c> the
/// received content becomes the verified file and the test passes: review the change with
/// <c>git diff</c>, as with Verify's accept.
/// </summary>
public static class Golden
{
    /// <summary>The environment variable that accepts received files.</summary>
    public const string AcceptVariable = "HV_ACCEPT";

    /// <summary>Compares a snapshot's content (no checksum: it would change with any field) after
    /// <paramref name="scrubber"/> (default: <see cref="Scrubber.Default"/>) with the golden file.</summary>
    public static void Verify(MachineSnapshot snapshot, Scrubber? scrubber = null, string? name = null, [CallerFilePath] string sourceFile = "") =>
        Verify(snapshot.Content, scrubber, name, sourceFile);

    /// <summary>Compares any JSON with the golden file (see the class summary).</summary>
    public static void Verify(JsonNode content, Scrubber? scrubber = null, string? name = null, [CallerFilePath] string sourceFile = "")
    {
        var scrubbed = (scrubber ?? Scrubber.Default).Apply(content)!;
        string received = SnapshotFile.Format(scrubbed) + "\n";
        var (verifiedPath, receivedPath) = PathsFor(name, sourceFile);
        string? verified = File.Exists(verifiedPath) ? File.ReadAllText(verifiedPath) : null;
        if (verified == received)
        {
            File.Delete(receivedPath);
            return;
        }
        if (Environment.GetEnvironmentVariable(AcceptVariable) == "1")
        {
            File.WriteAllText(verifiedPath, received, new UTF8Encoding(false));
            File.Delete(receivedPath);
            TestContext.Out.WriteLine($"{AcceptVariable}=1: accepted {verifiedPath}");
            return;
        }
        File.WriteAllText(receivedPath, received, new UTF8Encoding(false));
        if (verified == null)
            Assert.Fail($"No golden file yet: {verifiedPath}\nWrote {receivedPath}; review it and rename it to .verified.json, or run with {AcceptVariable}=1.");
        string diff;
        try
        {
            var diffs = SnapshotDiff.Compare(JsonNode.Parse(verified!), JsonNode.Parse(received));
            diff = diffs.Count == 0 ? "  (same fields; only formatting differs)" : SnapshotDiff.Format(diffs);
        }
        catch (JsonException e)
        {
            diff = $"  the verified file is not valid JSON: {e.Message}";
        }
        Assert.Fail($"Snapshot does not match {verifiedPath} (verified -> received):\n{diff}\nWrote {receivedPath}; accept with {AcceptVariable}=1 after review.");
    }

    /// <summary>The verified and received paths for the running test (or <paramref name="name"/>
    /// instead of the method name, for several golden files in one test). A parameterized case
    /// appends its arguments: <c>SerialGuestTests.WritesAToCom1_ThenHalts_Svm.verified.json</c>.</summary>
    public static (string Verified, string Received) PathsFor(string? name, string sourceFile)
    {
        var test = TestContext.CurrentContext.Test;
        string className = test.ClassName is { } c ? c[(c.LastIndexOf('.') + 1)..] : "Test";
        string method = name ?? test.MethodName ?? test.Name;
        // A parameterized test gets one file per case, its arguments appended as Verify does.
        if (name == null && test.Arguments.Length > 0)
            method += "_" + string.Join("_", test.Arguments.Select(a => Convert.ToString(a, System.Globalization.CultureInfo.InvariantCulture)));
        string directory = Path.GetDirectoryName(sourceFile) is { Length: > 0 } d && Directory.Exists(d) ? d : TestContext.CurrentContext.TestDirectory;
        string stem = Path.Combine(directory, $"{className}.{method}");
        return (stem + ".verified.json", stem + ".received.json");
    }
}
