using System.Buffers;
using System.Runtime.CompilerServices;

namespace Hypervisor.Vmx.Hardware;

/// <summary>
/// One 4-KiB page a VMX bitmap lives in, behind a stable pointer so lookups are a load and a
/// test. Three backings: a pinned array the bitmap owns, caller memory pinned until Dispose,
/// or unmanaged memory the caller keeps alive (a page of guest memory).
/// </summary>
internal sealed unsafe class VmxPage : IDisposable
{
    public const int Size = 4096;

    private readonly byte[]? _owned;
    private MemoryHandle _pin;
    private byte* _base;

    public VmxPage()
    {
        // Pinned-object-heap arrays never move: the pointer stays valid while _owned is referenced.
        _owned = GC.AllocateArray<byte>(Size, pinned: true);
        _base = (byte*)Unsafe.AsPointer(ref _owned[0]);
    }

    public VmxPage(Memory<byte> memory)
    {
        if (memory.Length != Size)
            throw new ArgumentException($"a VMX bitmap page is exactly 0x{Size:x} bytes; got 0x{memory.Length:x}", nameof(memory));
        _pin = memory.Pin();
        _base = (byte*)_pin.Pointer;
    }

    public VmxPage(byte* memory)
    {
        if (memory == null)
            throw new ArgumentNullException(nameof(memory));
        _base = memory;
    }

    public Span<byte> Span => new(_base, Size);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool GetBit(int bit) => ((_base[bit >> 3] >> (bit & 7)) & 1) != 0;

    public void SetBit(int bit, bool value)
    {
        byte* b = _base + (bit >> 3);
        byte m = (byte)(1 << (bit & 7));
        *b = value ? (byte)(*b | m) : (byte)(*b & ~m);
    }

    public void Dispose()
    {
        _pin.Dispose();
        _pin = default;
        if (_owned == null)
            _base = null;
    }
}
