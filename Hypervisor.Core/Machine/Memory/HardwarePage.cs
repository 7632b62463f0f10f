using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Hypervisor.Core.Machine.Memory;

/// <summary>
/// Fixed-size memory that a vendor's hardware structure (VMCB, IOPM, MSRPM, VMX bitmaps) lives in, addressed through a
/// stable pointer so the per-exit accessors cost a load or a store and nothing else. Three
/// backings: a pinned array the structure owns, caller memory pinned for the structure's
/// lifetime, or unmanaged memory the caller keeps alive (a page of a memory slot).
/// </summary>
public sealed unsafe class HardwarePage : IDisposable
{
    private readonly byte[]? _owned;
    private MemoryHandle _pin;
    private byte* _base;

    public HardwarePage(int size)
    {
        // The pinned object heap never moves its arrays, so the pointer stays valid for as long
        // as _owned is referenced.
        _owned = GC.AllocateArray<byte>(size, pinned: true);
        _base = (byte*)Unsafe.AsPointer(ref _owned[0]);
        Size = size;
    }

    public HardwarePage(Memory<byte> memory, int size)
    {
        if (memory.Length != size)
            throw new ArgumentException($"the structure is exactly 0x{size:x} bytes; got 0x{memory.Length:x}", nameof(memory));
        _pin = memory.Pin();
        _base = (byte*)_pin.Pointer;
        Size = size;
    }

    public HardwarePage(byte* memory, int size)
    {
        if (memory == null)
            throw new ArgumentNullException(nameof(memory));
        _base = memory;
        Size = size;
    }

    public int Size { get; }

    public byte* Base
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _base;
    }

    public Span<byte> Span => new(_base, Size);

    // x86 structures are little-endian; BinaryPrimitives folds to a plain load on little-endian hosts.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte Read8(int offset) => _base[offset];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ushort Read16(int offset) => BinaryPrimitives.ReadUInt16LittleEndian(new ReadOnlySpan<byte>(_base + offset, 2));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint Read32(int offset) => BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(_base + offset, 4));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Read64(int offset) => BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(_base + offset, 8));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write8(int offset, byte value) => _base[offset] = value;

    /// <summary>Bit <paramref name="bit"/> of the page, counting from bit 0 of byte 0 (permission bitmaps).</summary>
    public bool GetBit(int bit) => ((_base[bit >> 3] >> (bit & 7)) & 1) != 0;

    public void SetBit(int bit, bool value)
    {
        byte m = (byte)(1 << (bit & 7));
        if (value) _base[bit >> 3] |= m;
        else _base[bit >> 3] &= (byte)~m;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write16(int offset, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(new Span<byte>(_base + offset, 2), value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write32(int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(new Span<byte>(_base + offset, 4), value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write64(int offset, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(new Span<byte>(_base + offset, 8), value);

    public void Dispose()
    {
        _pin.Dispose();
        _pin = default;
        if (_owned == null)
            _base = null;
    }
}
