using Hypervisor.Core.Machine.Memory;
using System.Runtime.CompilerServices;

namespace Hypervisor.Svm.Hardware;

/// <summary>
/// The I/O permission map (APM vol. 2 §15.10.1): 12 KiB, one bit per port, bit n for port n
/// (byte n / 8, bit n % 8). With the IOIO_PROT intercept set, an IN/OUT/INS/OUTS exits when the
/// bit of any port it touches is set. An access of size s at port p checks bits p .. p+s-1
/// without wrapping, so an access at FFFFh of size 2 or 4 reads bits 10000h-10002h: that is
/// why the map is 12 KiB and not 8 (bytes 2000h and up; the rest of the third page is unused).
/// </summary>
public sealed unsafe class SvmIoPermissionMap : IDisposable
{
    public const int Size = 3 * 4096;

    private readonly HardwarePage _page;

    /// <summary>A map owned by this object, every port intercepted.</summary>
    public SvmIoPermissionMap()
    {
        _page = new HardwarePage(Size);
        InterceptAll();
    }

    /// <summary>A map over exactly 12 KiB of caller memory, pinned until <see cref="Dispose"/>; contents kept.</summary>
    public SvmIoPermissionMap(Memory<byte> map) => _page = new HardwarePage(map, Size);

    /// <summary>A map over 12 KiB of unmanaged memory the caller keeps alive; contents kept.</summary>
    public SvmIoPermissionMap(byte* map) => _page = new HardwarePage(map, Size);

    public Span<byte> Bytes => _page.Span;

    /// <summary>Whether an access of <paramref name="size"/> bytes (1, 2 or 4) at <paramref name="port"/> is intercepted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsIntercepted(ushort port, int size)
    {
        // At most 4 consecutive bits starting anywhere in a byte span two bytes; read both.
        byte* p = _page.Base + (port >> 3);
        uint bits = p[0] | ((uint)p[1] << 8);
        uint mask = ((1u << size) - 1) << (port & 7);
        return (bits & mask) != 0;
    }

    /// <summary>Sets or clears the bit of one port.</summary>
    public void SetIntercept(ushort port, bool intercept) => SetBit(port, intercept);

    /// <summary>Sets or clears the bits of <paramref name="count"/> ports from <paramref name="first"/>.</summary>
    public void SetIntercept(ushort first, int count, bool intercept)
    {
        if (count < 0 || first + count > 0x10000)
            throw new ArgumentOutOfRangeException(nameof(count), $"ports 0x{first:x}+{count} run past 0xffff");
        for (int i = 0; i < count; i++)
            SetBit(first + i, intercept);
    }

    /// <summary>Sets every bit, the 12 KiB included (KVM's default: intercept everything).</summary>
    public void InterceptAll() => _page.Span.Fill(0xFF);

    /// <summary>Clears every bit.</summary>
    public void PassThroughAll() => _page.Span.Clear();

    public void Dispose() => _page.Dispose();

    private void SetBit(int bit, bool value)
    {
        byte* b = _page.Base + (bit >> 3);
        byte m = (byte)(1 << (bit & 7));
        *b = value ? (byte)(*b | m) : (byte)(*b & ~m);
    }
}
