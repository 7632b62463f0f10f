using System.Diagnostics;

namespace Hypervisor.Host.Reference;

/// <summary>What a guest did under QEMU: its COM1 bytes, QEMU's exit status and the wall time.</summary>
public sealed record QemuRun(int ExitStatus, byte[] Serial, string Stderr, TimeSpan Elapsed, bool TimedOut);

/// <summary>
/// Runs images under QEMU's software CPU through the shared <c>qemu-oracle</c> script, which lives
/// in the <c>shared/</c> directory beside the repository (<c>../shared/tools/qemu-oracle</c> from
/// the repository root). The environment variable <c>HV_QEMU_ORACLE</c> overrides the path.
/// </summary>
public sealed class QemuOracle
{
    public const string EnvironmentVariable = "HV_QEMU_ORACLE";

    private QemuOracle(string path) => ScriptPath = path;

    public string ScriptPath { get; }

    /// <summary>The oracle, or null with <paramref name="why"/> when it cannot be found.</summary>
    public static QemuOracle? Find(out string why)
    {
        string? env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrEmpty(env))
        {
            why = File.Exists(env) ? "" : $"{EnvironmentVariable}={env} does not exist";
            return File.Exists(env) ? new QemuOracle(Path.GetFullPath(env)) : null;
        }
        foreach (string start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            string? root = RepositoryRoot(start);
            if (root == null)
                continue;
            string script = Path.GetFullPath(Path.Combine(root, "..", "shared", "tools", "qemu-oracle"));
            if (File.Exists(script))
            {
                why = "";
                return new QemuOracle(script);
            }
            why = $"{script} does not exist (shared/ must sit beside the repository)";
            return null;
        }
        why = "the repository root (the directory holding Hypervisor.sln) was not found above the current directory or hv's own";
        return null;
    }

    /// <summary>The nearest directory at or above <paramref name="start"/> that holds Hypervisor.sln.</summary>
    public static string? RepositoryRoot(string start)
    {
        for (var d = new DirectoryInfo(start); d != null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "Hypervisor.sln")))
                return d.FullName;
        }
        return null;
    }

    /// <summary>Runs <paramref name="imagePath"/> and waits for it (at most <paramref name="timeout"/>).
    /// <paramref name="qemuArguments"/> go to QEMU itself after the script's own (<c>-append</c>, <c>-initrd</c>).</summary>
    public QemuRun Run(string imagePath, TimeSpan timeout, int memoryMiB = 256, IReadOnlyList<string>? qemuArguments = null)
    {
        var psi = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(ScriptPath);
        psi.ArgumentList.Add(imagePath);
        psi.ArgumentList.Add("--mem");
        psi.ArgumentList.Add(memoryMiB.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (qemuArguments is { Count: > 0 })
        {
            psi.ArgumentList.Add("--");
            foreach (string a in qemuArguments)
                psi.ArgumentList.Add(a);
        }
        // The script's own timeout, so QEMU itself is ended if the guest never stops.
        psi.Environment["QEMU_ORACLE_TIMEOUT"] = Math.Max(1, (int)Math.Ceiling(timeout.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);

        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {ScriptPath}");
        p.StandardInput.Close(); // the guest gets no serial input
        var serial = new MemoryStream();
        var copy = p.StandardOutput.BaseStream.CopyToAsync(serial);
        var stderr = p.StandardError.ReadToEndAsync();
        bool exited = p.WaitForExit(timeout + TimeSpan.FromSeconds(10));
        if (!exited)
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }
        copy.Wait();
        sw.Stop();
        // timeout(1) exits 124 when it had to end QEMU.
        bool timedOut = !exited || p.ExitCode == 124;
        return new QemuRun(exited ? p.ExitCode : -1, serial.ToArray(), stderr.Result, sw.Elapsed, timedOut);
    }
}
