using System.Diagnostics;
using Hypervisor.Host.Tests.Support;

namespace Hypervisor.Host.Tests.Cli;

/// <summary>The real <c>hv</c> executable: exit statuses reach the shell and serial output is not
/// lost when the process ends.</summary>
public class ProcessTests
{
    private static (int Status, string Out, string Err) Hv(params string[] args)
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        var psi = new ProcessStartInfo(dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "hv.dll"));
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        Assert.That(p.WaitForExit(60_000), Is.True, "hv did not finish");
        return (p.ExitCode, output, err.Result);
    }

    [Test]
    public void Hello_StatusAndOutputReachTheShell()
    {
        var (status, output, err) = Hv("run", Path.Combine(RepositoryPaths.SampleImages, "hello.elf"));
        Assert.That(status, Is.EqualTo(1), err);
        Assert.That(output, Is.EqualTo("Hello from hv!\n"));
    }

    [Test]
    public void Ports_SixteenBitDebugExit_ShellSeesLow8Bits()
    {
        var (status, output, _) = Hv("run", Path.Combine(RepositoryPaths.SampleImages, "ports.bin"));
        Assert.That(status, Is.EqualTo(0x69));
        Assert.That(output, Does.EndWith("exit with a 16-bit write of 0x1234\n"));
    }

    [Test]
    public void BadCommandLine_Status2()
    {
        var (status, output, err) = Hv("run");
        Assert.That(status, Is.EqualTo(2));
        Assert.That(output, Is.Empty);
        Assert.That(err, Does.Contain("IMAGE"));
    }
}
