namespace Hypervisor.Core.Snapshots;

/// <summary>A snapshot that cannot be read, checked or restored. The message says what and where
/// (the file, the field path); when it is raised nothing has been restored.</summary>
public sealed class SnapshotException : Exception
{
    public SnapshotException(string message) : base(message)
    {
    }

    public SnapshotException(string message, Exception inner) : base(message, inner)
    {
    }
}
