using Hypervisor.Core.Machine.Memory;
using System.Runtime.CompilerServices;

namespace Hypervisor.Vmx.Hardware;

/// <summary>
/// The I/O bitmaps (SDM vol. 3 §25.6.4): bitmap A (VMCS 2000h) holds one bit per port
/// 0000h-7FFFh, bitmap B (2002h) one bit per port 8000h-FFFFh, each a 4-KiB page (port p at
/// byte (p mod 8000h) / 8, bit p mod 8). With "use I/O bitmaps" an IN/OUT/INS/OUTS exits when
/// the bit of any port it touches is set, and always when the access wraps past FFFFh to 0000h
/// (SDM §26.1.3); the "unconditional I/O exiting" control is ignored then. Without it,
/// "unconditional I/O exiting" decides alone.
/// </summary>
public sealed unsafe class VmxIoBitmaps : IDisposable
{
    public const int PortsPerBitmap = 0x8000;
    /// <summary>Each bitmap is one 4 KiB page: one bit per port.</summary>
    public const int PageSize = 4096;

    private readonly HardwarePage _a;
    private readonly HardwarePage _b;

    /// <summary>Bitmaps owned by this object, every port intercepted.</summary>
    public VmxIoBitmaps()
    {
        _a = new HardwarePage(PageSize);
        _b = new HardwarePage(PageSize);
        InterceptAll();
    }

    /// <summary>Bitmaps over two 4-KiB pages of caller memory, pinned until <see cref="Dispose"/>; contents kept.</summary>
    public VmxIoBitmaps(Memory<byte> bitmapA, Memory<byte> bitmapB)
    {
        _a = new HardwarePage(bitmapA, PageSize);
        _b = new HardwarePage(bitmapB, PageSize);
    }

    /// <summary>Bitmaps over two 4-KiB pages of unmanaged memory the caller keeps alive; contents kept.</summary>
    public VmxIoBitmaps(byte* bitmapA, byte* bitmapB)
    {
        _a = new HardwarePage(bitmapA, PageSize);
        _b = new HardwarePage(bitmapB, PageSize);
    }

    public Span<byte> BitmapA => _a.Span;
    public Span<byte> BitmapB => _b.Span;

    /// <summary>Whether the bit of one port is set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsPortIntercepted(int port)
        => port < PortsPerBitmap ? _a.GetBit(port) : _b.GetBit(port - PortsPerBitmap);

    /// <summary>
    /// Whether an access of <paramref name="size"/> bytes (1, 2 or 4) at <paramref name="port"/>
    /// exits under "use I/O bitmaps": any touched port's bit set, or the access wraps.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsIntercepted(ushort port, int size)
    {
        if (port + size > 0x10000)
            return true;
        for (int i = 0; i < size; i++)
        {
            if (IsPortIntercepted(port + i))
                return true;
        }
        return false;
    }

    /// <summary>
    /// The whole decision of SDM §26.1.3 for an I/O instruction: the bitmaps when "use I/O
    /// bitmaps" is set, otherwise "unconditional I/O exiting". <paramref name="bitmaps"/> may be
    /// null when the bitmap control is clear.
    /// </summary>
    public static bool IsIoExiting(VmxPrimaryProcessorControls controls, VmxIoBitmaps? bitmaps, ushort port, int size)
    {
        if ((controls & VmxPrimaryProcessorControls.UseIoBitmaps) != 0)
            return bitmaps!.IsIntercepted(port, size);
        return (controls & VmxPrimaryProcessorControls.UnconditionalIoExiting) != 0;
    }

    /// <summary>Sets or clears the bit of one port.</summary>
    public void SetIntercept(ushort port, bool intercept)
    {
        if (port < PortsPerBitmap)
            _a.SetBit(port, intercept);
        else
            _b.SetBit(port - PortsPerBitmap, intercept);
    }

    /// <summary>Sets or clears the bits of <paramref name="count"/> ports from <paramref name="first"/>.</summary>
    public void SetIntercept(ushort first, int count, bool intercept)
    {
        if (count < 0 || first + count > 0x10000)
            throw new ArgumentOutOfRangeException(nameof(count), $"ports 0x{first:x}+{count} run past 0xffff");
        for (int i = 0; i < count; i++)
            SetIntercept((ushort)(first + i), intercept);
    }

    /// <summary>Sets every bit of both bitmaps (KVM's default: intercept everything).</summary>
    public void InterceptAll()
    {
        _a.Span.Fill(0xFF);
        _b.Span.Fill(0xFF);
    }

    /// <summary>Clears every bit of both bitmaps.</summary>
    public void PassThroughAll()
    {
        _a.Span.Clear();
        _b.Span.Clear();
    }

    public void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
    }
}
