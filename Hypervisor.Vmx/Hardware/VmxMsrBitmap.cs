using Hypervisor.Core.Machine.Memory;
using System.Runtime.CompilerServices;

namespace Hypervisor.Vmx.Hardware;

/// <summary>
/// The MSR bitmaps (SDM vol. 3 §25.6.9): one 4-KiB page, one bit per MSR, in four 1-KiB parts:
/// read bitmap for low MSRs (0000_0000h-0000_1FFFh) at bytes 0-3FFh, read bitmap for high MSRs
/// (C000_0000h-C000_1FFFh) at 400h-7FFh, write bitmap for low MSRs at 800h-BFFh, write bitmap
/// for high MSRs at C00h-FFFh. With the "use MSR bitmaps" control, RDMSR/WRMSR exit when the
/// MSR's bit is set, and always exit for an MSR outside both ranges (SDM §26.1.3).
/// </summary>
public sealed unsafe class VmxMsrBitmap : IDisposable
{
    public const int Size = 4096;
    public const int ReadLowOffset = 0x000;
    public const int ReadHighOffset = 0x400;
    public const int WriteLowOffset = 0x800;
    public const int WriteHighOffset = 0xC00;
    private const uint RangeLength = 0x2000;

    private readonly HardwarePage _page;

    /// <summary>A bitmap owned by this object, every MSR intercepted.</summary>
    public VmxMsrBitmap()
    {
        _page = new HardwarePage(Size);
        InterceptAll();
    }

    /// <summary>A bitmap over exactly 4 KiB of caller memory, pinned until <see cref="Dispose"/>; contents kept.</summary>
    public VmxMsrBitmap(Memory<byte> page) => _page = new HardwarePage(page, Size);

    /// <summary>A bitmap over 4 KiB of unmanaged memory the caller keeps alive; contents kept.</summary>
    public VmxMsrBitmap(byte* page) => _page = new HardwarePage(page, Size);

    public Span<byte> Bytes => _page.Span;

    /// <summary>
    /// The index of an MSR's bit in the read bitmap (the write bit is 800h × 8 bits further),
    /// or -1 when the MSR is outside the two ranges.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ReadBitIndex(uint msr)
    {
        if (msr < RangeLength)
            return (int)msr;
        uint high = msr - 0xC000_0000;
        return high < RangeLength ? ReadHighOffset * 8 + (int)high : -1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsReadIntercepted(uint msr)
    {
        int bit = ReadBitIndex(msr);
        return bit < 0 || _page.GetBit(bit);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsWriteIntercepted(uint msr)
    {
        int bit = ReadBitIndex(msr);
        return bit < 0 || _page.GetBit(bit + WriteLowOffset * 8);
    }

    public void SetReadIntercept(uint msr, bool intercept) => _page.SetBit(CoveredBit(msr), intercept);

    public void SetWriteIntercept(uint msr, bool intercept) => _page.SetBit(CoveredBit(msr) + WriteLowOffset * 8, intercept);

    public void SetIntercept(uint msr, bool read, bool write)
    {
        int bit = CoveredBit(msr);
        _page.SetBit(bit, read);
        _page.SetBit(bit + WriteLowOffset * 8, write);
    }

    /// <summary>Sets every bit (KVM's default: intercept everything).</summary>
    public void InterceptAll() => _page.Span.Fill(0xFF);

    /// <summary>Clears every bit: MSRs in the ranges pass through, the rest still exit.</summary>
    public void PassThroughAll() => _page.Span.Clear();

    public void Dispose() => _page.Dispose();

    private static int CoveredBit(uint msr)
    {
        int bit = ReadBitIndex(msr);
        if (bit < 0)
            throw new ArgumentOutOfRangeException(nameof(msr), $"MSR 0x{msr:x} is outside the MSR bitmaps: it is always intercepted");
        return bit;
    }
}
