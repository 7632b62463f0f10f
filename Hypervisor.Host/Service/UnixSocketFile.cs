using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace Hypervisor.Host.Service;

/// <summary>
/// The control socket's file: checked before binding (a stale socket left by a crashed service is
/// replaced, a live one or any other file is refused), created owner-only (mode 0600: whoever can
/// connect can run guests), and removed when the service ends.
/// </summary>
internal static partial class UnixSocketFile
{
    /// <summary>sun_path holds 108 bytes with the terminating NUL.</summary>
    public const int MaxPathBytes = 107;

    public const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <exception cref="ServeException">the path cannot be bound (status 5).</exception>
    public static void PrepareToBind(string path)
    {
        if (Encoding.UTF8.GetByteCount(path) > MaxPathBytes)
            throw Failure(path, $"the path is longer than the {MaxPathBytes} bytes a Unix socket address holds");
        string? dir = Path.GetDirectoryName(path);
        if (dir != null && !Directory.Exists(dir))
            throw Failure(path, $"the directory {dir} does not exist");
        if (Directory.Exists(path))
            throw Failure(path, "it is a directory");
        if (!File.Exists(path))
            return;
        if (IsListening(path))
            throw Failure(path, "another process is listening on it (is hv serve already running?)");
        // Nothing listens. A socket file is empty; refuse to delete anything that holds data.
        if (new FileInfo(path).Length != 0)
            throw Failure(path, "it exists and is not a socket; remove it or choose another path");
        try
        {
            File.Delete(path); // the stale socket of a service that did not end cleanly
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Failure(path, $"a stale socket is in the way and cannot be removed: {e.Message}");
        }
    }

    private static bool IsListening(string path)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>While alive, new files get mode 0600 at most, so the socket is never reachable by
    /// others, not even between bind and chmod.</summary>
    public static IDisposable OwnerOnlyUmask() => new UmaskScope(0b001_111_111); // umask 0177: rw for the owner only

    public static void RestrictToOwner(string path)
    {
        if (OperatingSystem.IsWindows())
            throw new PlatformNotSupportedException("hv serve listens on a Unix socket with Unix file modes");
        File.SetUnixFileMode(path, OwnerOnly);
    }

    public static void Remove(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Leave it: the next start replaces a stale socket.
        }
    }

    private static ServeException Failure(string path, string why) =>
        new(Cli.ExitCodes.ServiceFailure, $"cannot listen on {path}: {why}");

    private sealed class UmaskScope : IDisposable
    {
        private readonly uint _previous;

        public UmaskScope(uint mask) => _previous = Umask(mask);

        public void Dispose() => Umask(_previous);
    }

    [LibraryImport("libc", EntryPoint = "umask")]
    private static partial uint Umask(uint mask);
}

/// <summary>The service cannot start or run; <see cref="Status"/> is the process exit status.</summary>
public sealed class ServeException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
}
