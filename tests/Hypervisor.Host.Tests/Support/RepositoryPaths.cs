using Hypervisor.Host.Reference;

namespace Hypervisor.Host.Tests.Support;

internal static class RepositoryPaths
{
    /// <summary>The repository root, found upward from the test assembly (works at test discovery too).</summary>
    public static string Root =>
        QemuOracle.RepositoryRoot(AppContext.BaseDirectory)
        ?? throw new InvalidOperationException("Hypervisor.sln not found above " + AppContext.BaseDirectory);

    public static string SampleImages => Path.Combine(Root, "samples", "images");

    /// <summary>Every committed sample image.</summary>
    public static string[] SampleImageFiles()
    {
        var files = Directory.GetFiles(SampleImages);
        Array.Sort(files, StringComparer.Ordinal);
        return files;
    }
}
