using System.Runtime.InteropServices;
using Hypervisor.Core.Machine.Memory;

namespace Hypervisor.Core.Snapshots;

/// <summary>
/// The non-zero chunks a capture copied (or a restore staged from a memory file), packed one after the other in one host buffer that is
/// allocated like guest RAM (<see cref="GuestRam"/>: huge pages where the host has them). Copying
/// into a fresh managed array per chunk cost a 4 KiB page fault per page (most of a capture's
/// non-hashing time); the buffer reserves the image's full size but commits only what is copied.
/// Freed when disposed, or when the snapshot holding it is collected.
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
        var target = Reserve(chunk, bytes.Length);
        bytes.CopyTo(target);
        return target;
    }

    /// <summary>The place of chunk <paramref name="chunk"/>'s <paramref name="length"/> bytes, for
    /// the caller to fill (a restore staging a memory file).</summary>
    public Span<byte> Reserve(int chunk, int length)
    {
        ulong at = (ulong)_count * MemoryImage.ChunkSize;
        if (at + (ulong)length > _capacity || _index[chunk] >= 0)
            throw new InvalidOperationException("more chunks stored than the image holds");
        _index[chunk] = _count++;
        _length[chunk] = length;
        GC.AddMemoryPressure(length);
        return new Span<byte>(Base + at, length);
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
