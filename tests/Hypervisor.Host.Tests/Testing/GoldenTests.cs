using System.Text.Json.Nodes;
using Hypervisor.Testing;

namespace Hypervisor.Host.Tests.Testing;

/// <summary>The golden-file conventions: verified/received beside the test, field-level diff in
/// the failure, HV_ACCEPT=1 accepting, scrubbers.</summary>
public class GoldenTests
{
    private static (string Verified, string Received) Paths(string name) => Golden.PathsFor(name, ThisFile());

    private static string ThisFile([System.Runtime.CompilerServices.CallerFilePath] string path = "") => path;

    private static void Clean(string name)
    {
        var (v, r) = Paths(name);
        File.Delete(v);
        File.Delete(r);
    }

    [Test]
    public void Mismatch_WritesReceived_FailsWithFieldDiff()
    {
        const string Name = "MismatchCase";
        var (verified, received) = Paths(Name);
        try
        {
            Assert.That(verified, Does.EndWith($"GoldenTests.{Name}.verified.json"));
            File.WriteAllText(verified, "{\n  \"regs\": {\n    \"rax\": \"0x0000000000000001\",\n    \"rbx\": \"0x0000000000000002\"\n  }\n}\n");
            var content = JsonNode.Parse("{\"regs\": {\"rax\": \"0x0000000000000001\", \"rbx\": \"0x0000000000000003\"}}")!;
            var e = Assert.Throws<AssertionException>(() => Golden.Verify(content, name: Name))!;
            Assert.That(e.Message, Does.Contain("regs.rbx: \"0x0000000000000002\" -> \"0x0000000000000003\""));
            Assert.That(e.Message, Does.Not.Contain("regs.rax"));
            Assert.That(File.Exists(received), Is.True);
            Assert.That(JsonNode.Parse(File.ReadAllText(received))!["regs"]!["rbx"]!.ToString(), Is.EqualTo("0x0000000000000003"));
        }
        finally
        {
            Clean(Name);
        }
    }

    [Test]
    public void Match_PassesAndDeletesStaleReceived()
    {
        const string Name = "MatchCase";
        var (verified, received) = Paths(Name);
        try
        {
            var content = JsonNode.Parse("{\"a\": \"0x01\"}")!;
            File.WriteAllText(verified, "{\n  \"a\": \"0x01\"\n}\n");
            File.WriteAllText(received, "stale");
            Golden.Verify(content, name: Name);
            Assert.That(File.Exists(received), Is.False);
        }
        finally
        {
            Clean(Name);
        }
    }

    [Test]
    public void Missing_FailsSayingSo_AcceptWritesVerified()
    {
        const string Name = "AcceptCase";
        var (verified, received) = Paths(Name);
        var content = JsonNode.Parse("{\"a\": \"0x02\"}")!;
        try
        {
            var e = Assert.Throws<AssertionException>(() => Golden.Verify(content, name: Name))!;
            Assert.That(e.Message, Does.Contain("No golden file yet"));
            Environment.SetEnvironmentVariable(Golden.AcceptVariable, "1");
            Golden.Verify(content, name: Name);
            Environment.SetEnvironmentVariable(Golden.AcceptVariable, null);
            Assert.That(File.Exists(received), Is.False);
            Golden.Verify(content, name: Name);
        }
        finally
        {
            Environment.SetEnvironmentVariable(Golden.AcceptVariable, null);
            Clean(Name);
        }
    }

    [Test]
    public void Scrubber_ReplacesMatchingPathsOnly()
    {
        var node = JsonNode.Parse("{\"clock\": {\"mode\": \"instructions\", \"tsc\": \"0x5\"}, \"rap\": {\"entries\": [{\"returnAddress\": \"0x1\", \"domain\": \"guest\"}]}, \"memory\": {\"file\": \"x\"}}")!;
        var s = new Scrubber().Ignore("clock.tsc", "rap.entries[*].returnAddress", "memory").Apply(node)!;
        Assert.That(s["clock"]!["tsc"]!.ToString(), Is.EqualTo(Scrubber.Scrubbed));
        Assert.That(s["clock"]!["mode"]!.ToString(), Is.EqualTo("instructions"));
        Assert.That(s["rap"]!["entries"]![0]!["returnAddress"]!.ToString(), Is.EqualTo(Scrubber.Scrubbed));
        Assert.That(s["rap"]!["entries"]![0]!["domain"]!.ToString(), Is.EqualTo("guest"));
        Assert.That(s["memory"]!.ToString(), Is.EqualTo(Scrubber.Scrubbed));
        Assert.That(node["clock"]!["tsc"]!.ToString(), Is.EqualTo("0x5"), "the input is not changed");
    }
}
