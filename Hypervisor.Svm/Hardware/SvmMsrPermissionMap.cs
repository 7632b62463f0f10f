using Hypervisor.Core.Machine.Memory;
using System.Runtime.CompilerServices;

namespace Hypervisor.Svm.Hardware;

/// <summary>
/// The MSR permission map (APM vol. 2 §15.11): 8 KiB, two bits per MSR (read intercept at the
/// even bit, write intercept at the odd bit) for three ranges of 8192 MSRs each:
/// bytes 000h-7FFh for MSRs 0000_0000h-0000_1FFFh, 800h-FFFh for C000_0000h-C000_1FFFh and
/// 1000h-17FFh for C001_0000h-C001_1FFFh; bytes 1800h-1FFFh are reserved. With the MSR_PROT
/// intercept set, RDMSR/WRMSR of an MSR outside the three ranges always exits.
/// </summary>
public sealed unsafe class SvmMsrPermissionMap : IDisposable
{
    public const int Size = 2 * 4096;
    private const int RangeLength = 0x2000;
    private const int RangeBytes = RangeLength * 2 / 8;

    private readonly HardwarePage _page;

    /// <summary>A map owned by this object, every MSR intercepted.</summary>
    public SvmMsrPermissionMap()
    {
        _page = new HardwarePage(Size);
        InterceptAll();
    }

    /// <summary>A map over exactly 8 KiB of caller memory, pinned until <see cref="Dispose"/>; contents kept.</summary>
    public SvmMsrPermissionMap(Memory<byte> map) => _page = new HardwarePage(map, Size);

    /// <summary>A map over 8 KiB of unmanaged memory the caller keeps alive; contents kept.</summary>
    public SvmMsrPermissionMap(byte* map) => _page = new HardwarePage(map, Size);

    public Span<byte> Bytes => _page.Span;

    /// <summary>
    /// The index of an MSR's read bit in the map (its write bit follows), or -1 when the MSR is
    /// outside the three ranges the map covers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ReadBitIndex(uint msr)
    {
        uint low = msr & (RangeLength - 1);
        int range = (msr - low) switch
        {
            0x0000_0000 => 0,
            0xC000_0000 => 1,
            0xC001_0000 => 2,
            _ => -1,
        };
        return range < 0 ? -1 : range * RangeBytes * 8 + (int)low * 2;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsReadIntercepted(uint msr)
    {
        int bit = ReadBitIndex(msr);
        return bit < 0 || GetBit(bit);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsWriteIntercepted(uint msr)
    {
        int bit = ReadBitIndex(msr);
        return bit < 0 || GetBit(bit + 1);
    }

    public void SetReadIntercept(uint msr, bool intercept) => SetBit(CoveredBit(msr), intercept);

    public void SetWriteIntercept(uint msr, bool intercept) => SetBit(CoveredBit(msr) + 1, intercept);

    public void SetIntercept(uint msr, bool read, bool write)
    {
        int bit = CoveredBit(msr);
        SetBit(bit, read);
        SetBit(bit + 1, write);
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
            throw new ArgumentOutOfRangeException(nameof(msr), $"MSR 0x{msr:x} is outside the permission map: it is always intercepted");
        return bit;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool GetBit(int bit) => ((_page.Base[bit >> 3] >> (bit & 7)) & 1) != 0;

    private void SetBit(int bit, bool value)
    {
        byte* b = _page.Base + (bit >> 3);
        byte m = (byte)(1 << (bit & 7));
        *b = value ? (byte)(*b | m) : (byte)(*b & ~m);
    }
}
