using System.Runtime.InteropServices;
using Hypervisor.Core.Machine.Memory;

namespace Hypervisor.Core.Snapshots;

/// <summary>
/// The non-zero chunks a capture copied, packed one after the other in one host buffer that is
/// allocated like guest RAM (<see cref="GuestRam"/>: huge pages where the host has them). Copying
/// into a fresh managed array per chunk cost a 4 KiB page fault per page (most of a capture's
/// non-hashing time); the buffer reserves the image's full size but commits only what is copied.
/// Freed when the snapshot is collected.
/// </summary>
internal sealed unsafe class CapturedChunks : SafeHandle
{
    private readonly ulong _capacity;
    private readonly bool _mapped;
    private readonly int[] _index;  // per chunk: its place in the buffer, or -1 when all zero
    private readonly int[] _length;
    private int _count;

    public CapturedChunks(ulong capacity, int chunks) : base(IntPtr.Zero, ownsHandle: true)
    {
        _capacity = Math.Max(capacity, MemoryImage.ChunkSize);
        SetHandle((IntPtr)GuestRam.Allocate(_capacity, out _mapped));
        _index = new int[chunks];
        _length = new int[chunks];
        Array.Fill(_index, -1);
    }

    public override bool IsInvalid => handle == IntPtr.Zero;

    private byte* Base => (byte*)handle;

    /// <summary>Copies chunk <paramref name="chunk"/>'s bytes in; returns the copy.</summary>
    public ReadOnlySpan<byte> Add(int chunk, ReadOnlySpan<byte> bytes)
    {
        ulong at = (ulong)_count * MemoryImage.ChunkSize;
        if (at + (ulong)bytes.Length > _capacity)
            throw new InvalidOperationException("more chunks captured than the image holds");
        var target = new Span<byte>(Base + at, bytes.Length);
        bytes.CopyTo(target);
        _index[chunk] = _count++;
        _length[chunk] = bytes.Length;
        GC.AddMemoryPressure(bytes.Length);
        return target;
    }

    /// <summary>The copy of chunk <paramref name="chunk"/>; false when it was all zero.</summary>
    public bool TryGet(int chunk, out ReadOnlySpan<byte> bytes)
    {
        int i = _index[chunk];
        if (i < 0)
        {
            bytes = default;
            return false;
        }
        bytes = new ReadOnlySpan<byte>(Base + (ulong)i * MemoryImage.ChunkSize, _length[chunk]);
        return true;
    }

    protected override bool ReleaseHandle()
    {
        GuestRam.Free(Base, _capacity, _mapped);
        if (_count > 0)
            GC.RemoveMemoryPressure(_length.Sum(l => (long)l));
        return true;
    }
}
