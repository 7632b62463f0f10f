namespace Hypervisor.Core.Machine.Memory;

/// <summary>
/// One region of guest physical memory backed by host memory, like a
/// <c>kvm_userspace_memory_region</c>: an id, a guest physical base, a size and a read-only flag.
/// </summary>
public sealed unsafe class MemorySlot : IDisposable
{
    internal MemorySlot(int id, ulong guestBase, ulong size, bool readOnly)
    {
        Id = id;
        GuestBase = guestBase;
        Size = size;
        ReadOnly = readOnly;
        // Committed lazily by the host OS, so a 256 MiB guest costs only what it touches.
        Host = GuestRam.Allocate(size, out _mapped);
    }

    public int Id { get; }
    public ulong GuestBase { get; }
    public ulong Size { get; }
    public bool ReadOnly { get; }
    public ulong GuestEnd => GuestBase + Size;

    internal byte* Host { get; private set; }

    private readonly bool _mapped;

    public bool Contains(ulong gpa) => gpa - GuestBase < Size;

    /// <summary>A view of the slot's bytes for loaders and snapshots.</summary>
    public Span<byte> AsSpan(ulong offset, int length)
    {
        if (offset > Size || (ulong)length > Size - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"range 0x{offset:x}+0x{length:x} is outside slot {Id} (size 0x{Size:x})");
        return new Span<byte>(Host + offset, length);
    }

    public void Dispose()
    {
        if (Host != null)
        {
            GuestRam.Free(Host, Size, _mapped);
            Host = null;
        }
    }
}
