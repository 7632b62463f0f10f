using System.CommandLine;
using System.Text;
using Hypervisor.Host.Cli;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Host.Tests.Support;

/// <summary>What an in-process <c>hv</c> invocation produced.</summary>
internal sealed record HvOutcome(int Status, byte[] Serial, string Out, string Error)
{
    public string SerialText => Encoding.ASCII.GetString(Serial);
}

/// <summary>Runs the <c>hv</c> command line in this process with captured console streams.</summary>
internal static class InProcessHv
{
    /// <summary>Parses an <c>hv run</c> command line without running it, with the command that parsed it.</summary>
    public static (ParseResult Parse, RunCommand Run) ParseRun(params string[] args)
    {
        var root = HvCommandLine.Create(new HostConsole(Stream.Null, TextWriter.Null, TextWriter.Null), NullLoggerFactory.Instance);
        var run = root.Subcommands.OfType<RunCommand>().Single();
        return (root.Parse(args), run);
    }

    public static HvOutcome Invoke(params string[] args)
    {
        var serial = new MemoryStream();
        var output = new StringWriter();
        var error = new StringWriter();
        int status = HvCommandLine.Invoke(args, new HostConsole(serial, output, error), NullLoggerFactory.Instance);
        return new HvOutcome(status, serial.ToArray(), output.ToString(), error.ToString());
    }

    /// <summary>Writes <paramref name="image"/> to a temporary file, runs <c>hv run</c> on it, deletes it.</summary>
    public static HvOutcome RunImage(byte[] image, params string[] options)
    {
        string path = Path.Combine(Path.GetTempPath(), $"hv-test-{Guid.NewGuid():N}.bin");
        File.WriteAllBytes(path, image);
        try
        {
            return Invoke(["run", path, .. options]);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
