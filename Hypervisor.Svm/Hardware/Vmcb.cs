using Hypervisor.Core.Machine.Memory;
using System.Runtime.CompilerServices;

namespace Hypervisor.Svm.Hardware;

/// <summary>
/// The Virtual Machine Control Block: one 4 KiB page laid out exactly as AMD APM vol. 2
/// appendix B describes it, control area at 000h-3FFh (<c>Vmcb.Control.cs</c>) and state save
/// area at 400h-FFFh (<c>Vmcb.Save.cs</c>). Every accessor reads or writes the bytes at the
/// field's APM offset, little-endian, so the page can be handed to anything that expects a
/// real VMCB (a nested hypervisor's view of guest memory, a snapshot, a dump).
/// </summary>
/// <remarks>
/// The page is either owned (pinned, zeroed), caller memory pinned for the VMCB's lifetime, or
/// unmanaged memory the caller keeps alive (e.g. a page of a memory slot). Accessors do no
/// bounds checks beyond the fixed offsets and never allocate.
/// </remarks>
public sealed unsafe partial class Vmcb : IDisposable
{
    private readonly HardwarePage _page;

    /// <summary>A zeroed VMCB page owned by this object.</summary>
    public Vmcb() => _page = new HardwarePage(VmcbOffset.Size);

    /// <summary>A VMCB over exactly 4 KiB of caller memory, pinned until <see cref="Dispose"/>.</summary>
    public Vmcb(Memory<byte> page) => _page = new HardwarePage(page, VmcbOffset.Size);

    /// <summary>A VMCB over 4 KiB of unmanaged memory that the caller keeps alive and does not move.</summary>
    public Vmcb(byte* page) => _page = new HardwarePage(page, VmcbOffset.Size);

    /// <summary>The raw page, for copies, snapshots and tests.</summary>
    public Span<byte> Bytes => _page.Span;

    /// <summary>The first byte of the page (stable for the VMCB's lifetime).</summary>
    public byte* Pointer => _page.Base;

    /// <summary>Zeroes the whole page.</summary>
    public void Clear() => _page.Span.Clear();

    /// <summary>Copies the whole page from another VMCB (VMLOAD/VMSAVE-style and nested copies pick fields instead).</summary>
    public void CopyFrom(Vmcb other) => other._page.Span.CopyTo(_page.Span);

    public void Dispose() => _page.Dispose();

    // ---- Raw field access at an APM offset ----

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte Read8(int offset) => _page.Read8(offset);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ushort Read16(int offset) => _page.Read16(offset);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint Read32(int offset) => _page.Read32(offset);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Read64(int offset) => _page.Read64(offset);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write8(int offset, byte value) => _page.Write8(offset, value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write16(int offset, ushort value) => _page.Write16(offset, value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write32(int offset, uint value) => _page.Write32(offset, value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write64(int offset, ulong value) => _page.Write64(offset, value);

    // ---- Intercept bits (the six words at 000h-017h) ----

    /// <summary>Whether an intercept bit is set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsIntercepted(SvmIntercept intercept)
    {
        int bit = (int)intercept;
        return (_page.Read32((bit >> 5) << 2) & (1u << (bit & 31))) != 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetIntercept(SvmIntercept intercept)
    {
        int bit = (int)intercept, offset = (bit >> 5) << 2;
        _page.Write32(offset, _page.Read32(offset) | (1u << (bit & 31)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void ClearIntercept(SvmIntercept intercept)
    {
        int bit = (int)intercept, offset = (bit >> 5) << 2;
        _page.Write32(offset, _page.Read32(offset) & ~(1u << (bit & 31)));
    }

    public void SetIntercept(SvmIntercept intercept, bool value)
    {
        if (value)
            SetIntercept(intercept);
        else
            ClearIntercept(intercept);
    }

    /// <summary>Whether exceptions with this vector are intercepted (word 2, bit = vector).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsExceptionIntercepted(int vector) => (InterceptExceptions & (1u << vector)) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsCrReadIntercepted(int cr) => (InterceptCrRead & (1 << cr)) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsCrWriteIntercepted(int cr) => (InterceptCrWrite & (1 << cr)) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsDrReadIntercepted(int dr) => (InterceptDrRead & (1 << dr)) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsDrWriteIntercepted(int dr) => (InterceptDrWrite & (1 << dr)) != 0;

    /// <summary>Marks fields dirty for the next VMRUN by clearing their clean bits (§15.15.3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void MarkDirty(VmcbClean fields) => CleanBits &= ~fields;

    /// <summary>Marks every field dirty (required on first use, after a move or a core change).</summary>
    public void MarkAllDirty() => CleanBits = VmcbClean.None;
}
