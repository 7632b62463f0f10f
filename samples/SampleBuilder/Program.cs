using Hypervisor.Host.Reference;
using Hypervisor.Samples;

// Writes every sample image into samples/images (or the directory given as the only argument).
// The committed images must match what this builds: a test rebuilds them and compares.
string directory;
if (args.Length == 1)
{
    directory = args[0];
}
else if (args.Length == 0)
{
    string? root = QemuOracle.RepositoryRoot(Directory.GetCurrentDirectory());
    if (root == null)
    {
        Console.Error.WriteLine("SampleBuilder: run it inside the repository, or give the output directory");
        return 2;
    }
    directory = Path.Combine(root, "samples", "images");
}
else
{
    Console.Error.WriteLine("usage: SampleBuilder [OUTPUT-DIRECTORY]");
    return 2;
}

Directory.CreateDirectory(directory);
foreach (var sample in Sample.All)
{
    byte[] image = sample.Build();
    string path = Path.Combine(directory, sample.FileName);
    File.WriteAllBytes(path, image);
    Console.WriteLine($"{path}: {image.Length} bytes: {sample.Description}");
}
return 0;
