namespace Hypervisor.Host.Loading;

/// <summary>
/// An image that cannot be loaded. The message is one line that says what is wrong and where
/// (a file offset or a guest physical address), so the user can find it with a hex dump.
/// Thrown only while an image is being checked, before anything is written to guest memory.
/// </summary>
public sealed class ImageException(string message) : Exception(message);
