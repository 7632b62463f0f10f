using Hypervisor.Host.Tests.Support;

namespace Hypervisor.Host.Tests.Examples;

/// <summary>The README's test example is this folder's SerialGuestTests.cs, so what people copy is what CI runs.</summary>
public class ReadmeExampleTests
{
    [Test]
    public void ReadmeExample_IsSerialGuestTests()
    {
        string readme = File.ReadAllText(Path.Combine(RepositoryPaths.Root, "README.md"));
        int section = readme.IndexOf("## Writing integration tests against vCPU snapshots", StringComparison.Ordinal);
        Assert.That(section, Is.GreaterThan(0), "the README section is missing");
        int start = readme.IndexOf("```csharp\n", section, StringComparison.Ordinal) + "```csharp\n".Length;
        int end = readme.IndexOf("```\n", start, StringComparison.Ordinal);
        string example = readme[start..end];
        string source = File.ReadAllText(Path.Combine(RepositoryPaths.Root, "tests", "Hypervisor.Host.Tests", "Examples", "SerialGuestTests.cs"));
        var withoutPointer = string.Join('\n', source.Split('\n').Where(l => !l.StartsWith("// The example of the README", StringComparison.Ordinal)));
        Assert.That(example, Is.EqualTo(withoutPointer));
    }
}
