using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Hypervisor.Core.Machine.Memory;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>A direct-mapped cache of linear page → host pointer for the current context and
/// privilege, in front of the architectural TLB. Entries never point at MMIO, at read-only slots
/// (for writes), at pages that are not dirty yet (for writes) or at pages holding translated code
/// (for writes), so every store that needs attention takes the slow path.</summary>
internal unsafe struct FastTlbEntry
{
    public ulong Tag;      // linear page | user bit (2) | valid bit (1)
    public byte* Host;     // host address of the page
    public ulong Phys;     // guest physical page
}

public sealed unsafe partial class X86Cpu
{
    private const int FastTlbSize = 256;
    private readonly FastTlbEntry* _rtlb = (FastTlbEntry*)NativeMemory.AllocZeroed((nuint)(FastTlbSize * sizeof(FastTlbEntry)));
    private readonly FastTlbEntry* _wtlb = (FastTlbEntry*)NativeMemory.AllocZeroed((nuint)(FastTlbSize * sizeof(FastTlbEntry)));
    internal readonly FastTlbEntry* _xtlb = (FastTlbEntry*)NativeMemory.AllocZeroed((nuint)(FastTlbSize * sizeof(FastTlbEntry)));
    /// <summary>Low bits of a fast-TLB tag for the current privilege: valid | (CPL==3 ? user : 0).</summary>
    internal ulong _tlbTag = 1;
    /// <summary>Bumped on every flush of the fast TLB: code lookups cached by linear address check it.</summary>
    internal uint _tlbEpoch;

    /// <summary>Segment bases for the hot path and a bit per segment whose accesses need limit and
    /// type checks (non-flat segments outside 64-bit mode).</summary>
    private readonly ulong[] _segBase = new ulong[SegReg.Count];
    private int _segCheckMask;

    internal void FlushFastTlb()
    {
        NativeMemory.Clear(_rtlb, (nuint)(FastTlbSize * sizeof(FastTlbEntry)));
        NativeMemory.Clear(_wtlb, (nuint)(FastTlbSize * sizeof(FastTlbEntry)));
        NativeMemory.Clear(_xtlb, (nuint)(FastTlbSize * sizeof(FastTlbEntry)));
        _tlbTag = Cpl == 3 ? 3UL : 1UL;
        _tlbEpoch++;
        // Translations changed: code after this instruction must be looked up again.
        _stop = true;
    }

    /// <summary>Drops fast write entries for a physical page that now holds translated code.</summary>
    internal void ProtectCodePage(ulong physPage)
    {
        for (int i = 0; i < FastTlbSize; i++)
            if (_wtlb[i].Phys == physPage)
                _wtlb[i].Tag = 0;
    }

    private void UpdateSegmentFastPaths()
    {
        _segCheckMask = 0;
        for (int s = 0; s < 6; s++)
        {
            ref var seg = ref Segs[s];
            bool flat = CodeBits == 64 || (seg.Base == 0 && seg.Limit == 0xFFFFFFFF && seg.Present && (seg.Type & 0xC) != 0x4 && (!IsProtectedMode || !seg.IsSystem));
            // 64-bit mode ignores bases except FS and GS (SDM vol. 1 §3.4.2.1).
            _segBase[s] = CodeBits == 64 && s < SegReg.Fs ? 0 : seg.Base;
            if (!flat)
                _segCheckMask |= 1 << s;
        }
    }

    /// <summary>Segment base as used for address generation in the current mode.</summary>
    internal ulong SegBase(int seg) => _segBase[seg];

    /// <summary>Offset → linear, with the segment checks of SDM vol. 3 §5.3 when the segment is not flat.
    /// On a fault it returns an address the fast TLB never holds, so the slow path sees the fault.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong Linear(int seg, ulong offset, int size, bool write)
    {
        if ((_segCheckMask & (1 << seg)) == 0)
            return _segBase[seg] + offset;
        return CheckedLinear(seg, offset, size, write);
    }

    internal const ulong FaultedLinear = 0x8000_0000_0000_0000UL;

    private ulong CheckedLinear(int seg, ulong offset, int size, bool write)
    {
        ref var s = ref Segs[seg];
        if (!IsProtectedMode || IsV86Mode)
        {
            // Real mode: the hidden limit still applies (it is what makes "unreal mode" work).
            if (offset + (ulong)size - 1 > s.Limit)
            {
                RaiseFault(seg == SegReg.Ss ? Vector.SS : Vector.GP, 0);
                return FaultedLinear;
            }
            return (uint)(s.Base + offset);
        }
        int vector = seg == SegReg.Ss ? Vector.SS : Vector.GP;
        if (!s.Present || (s.Selector & ~3) == 0 && seg != SegReg.Cs && seg != SegReg.Ss && s.IsSystem)
        {
            RaiseFault(vector, 0);
            return FaultedLinear;
        }
        int type = s.Type;
        bool code = (type & 8) != 0;
        if (write ? code || (type & 2) == 0 : code && (type & 2) == 0)
        {
            RaiseFault(vector, 0);
            return FaultedLinear;
        }
        ulong last = offset + (ulong)size - 1;
        if (!code && (type & 4) != 0)
        {
            // Expand-down: valid offsets are (limit, 0xFFFF or 0xFFFFFFFF].
            ulong upper = s.DefaultBig ? 0xFFFFFFFFUL : 0xFFFFUL;
            if (offset <= s.Limit || last > upper)
            {
                RaiseFault(vector, 0);
                return FaultedLinear;
            }
        }
        else if (last > s.Limit)
        {
            RaiseFault(vector, 0);
            return FaultedLinear;
        }
        return (uint)(s.Base + offset);
    }

    // ---- Virtual (segment:offset) accesses, the executors' interface ----

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong ReadMem(int seg, ulong offset, int size) => ReadLinear(Linear(seg, offset, size, false), size);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void WriteMem(int seg, ulong offset, int size, ulong value) => WriteLinear(Linear(seg, offset, size, true), size, value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong ReadLinear(ulong lin, int size)
    {
        FastTlbEntry* e = _rtlb + ((lin >> 12) & (FastTlbSize - 1));
        uint off = (uint)lin & 0xFFF;
        if (e->Tag == ((lin & ~0xFFFUL) | _tlbTag) && off <= 4096u - (uint)size)
        {
            byte* p = e->Host + off;
            return size switch { 1 => *p, 2 => *(ushort*)p, 4 => *(uint*)p, _ => *(ulong*)p };
        }
        return ReadLinearSlow(lin, size, implicitSupervisor: false);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void WriteLinear(ulong lin, int size, ulong value)
    {
        FastTlbEntry* e = _wtlb + ((lin >> 12) & (FastTlbSize - 1));
        uint off = (uint)lin & 0xFFF;
        if (e->Tag == ((lin & ~0xFFFUL) | _tlbTag) && off <= 4096u - (uint)size)
        {
            byte* p = e->Host + off;
            switch (size)
            {
                case 1: *p = (byte)value; break;
                case 2: *(ushort*)p = (ushort)value; break;
                case 4: *(uint*)p = (uint)value; break;
                default: *(ulong*)p = value; break;
            }
            return;
        }
        WriteLinearSlow(lin, size, value, implicitSupervisor: false);
    }

    /// <summary>Checks that a store would succeed (translation and permissions) without storing:
    /// used by instructions that must fault before changing any state.</summary>
    internal bool ProbeWrite(ulong lin, int size)
    {
        if (_abort) return false;
        ulong first = lin & ~0xFFFUL, last = (lin + (ulong)size - 1) & ~0xFFFUL;
        if (!Translate(lin, AccessType.Write, false, out _, out _)) return false;
        return first == last || Translate(last, AccessType.Write, false, out _, out _);
    }

    internal ulong ReadLinearSlow(ulong lin, int size, bool implicitSupervisor)
    {
        if (_abort)
            return 0;
        if (!IsLongMode)
            lin = (uint)lin;
        if (((lin & 0xFFF) + (ulong)size) > 0x1000)
        {
            // Crosses a page: both pages must translate before anything is read.
            ulong v = 0;
            for (int i = 0; i < size; i++)
            {
                v |= ReadLinearSlow(lin + (ulong)i, 1, implicitSupervisor) << (8 * i);
                if (_abort) return 0;
            }
            return v;
        }
        if (!Translate(lin, AccessType.Read, implicitSupervisor, out ulong phys, out var te))
            return 0;
        byte* host = Memory.HostPointer(phys & ~0xFFFUL, out _);
        if (host == null)
            return MmioRead(phys, size);
        if (!implicitSupervisor && (!te.User ? true : Cpl == 3 || (Cr4 & Cpu.Cr4.Smap) == 0))
        {
            FastTlbEntry* e = _rtlb + ((lin >> 12) & (FastTlbSize - 1));
            e->Tag = (lin & ~0xFFFUL) | _tlbTag;
            e->Host = host;
            e->Phys = phys & ~0xFFFUL;
        }
        byte* p = host + (phys & 0xFFF);
        return size switch { 1 => *p, 2 => *(ushort*)p, 4 => *(uint*)p, _ => *(ulong*)p };
    }

    internal void WriteLinearSlow(ulong lin, int size, ulong value, bool implicitSupervisor)
    {
        if (_abort)
            return;
        if (!IsLongMode)
            lin = (uint)lin;
        if (((lin & 0xFFF) + (ulong)size) > 0x1000)
        {
            ulong second = (lin + (ulong)size - 1) & ~0xFFFUL;
            // Both pages must be writable before either is written (no half-done store).
            if (!Translate(lin, AccessType.Write, implicitSupervisor, out _, out _) || !Translate(second, AccessType.Write, implicitSupervisor, out _, out _))
                return;
            for (int i = 0; i < size; i++)
                WriteLinearSlow(lin + (ulong)i, 1, value >> (8 * i), implicitSupervisor);
            return;
        }
        if (!Translate(lin, AccessType.Write, implicitSupervisor, out ulong phys, out var te))
            return;
        ulong page = phys & ~0xFFFUL;
        byte* host = Memory.HostPointer(page, out bool readOnly);
        if (host == null)
        {
            MmioWrite(phys, size, value);
            return;
        }
        if (readOnly)
        {
            // KVM turns a write to a read-only slot into an MMIO exit for userspace.
            MmioWrite(phys, size, value);
            return;
        }
        byte* p = host + (phys & 0xFFF);
        switch (size)
        {
            case 1: *p = (byte)value; break;
            case 2: *(ushort*)p = (ushort)value; break;
            case 4: *(uint*)p = (uint)value; break;
            default: *(ulong*)p = value; break;
        }
        if (_blocks.IsCodePage(page))
        {
            _blocks.InvalidatePage(page);
            _stop = true; // the rest of the current block may be stale: re-fetch after this instruction
            return;
        }
        if (!implicitSupervisor && te.Dirty && (!te.User || Cpl == 3 || (Cr4 & Cpu.Cr4.Smap) == 0))
        {
            FastTlbEntry* e = _wtlb + ((lin >> 12) & (FastTlbSize - 1));
            e->Tag = (lin & ~0xFFFUL) | _tlbTag;
            e->Host = host;
            e->Phys = page;
        }
    }

    // ---- Physical accesses (page walker, descriptor tables through paging use linear) ----

    internal ulong ReadPhysicalU64(ulong gpa)
    {
        byte* p = Memory.HostPointer(gpa, out _);
        return p != null && (gpa & 0xFFF) <= 0xFF8 ? *(ulong*)p : ReadPhysicalBytes(gpa, 8);
    }

    internal ulong ReadPhysicalU32(ulong gpa)
    {
        byte* p = Memory.HostPointer(gpa, out _);
        return p != null && (gpa & 0xFFF) <= 0xFFC ? *(uint*)p : ReadPhysicalBytes(gpa, 4);
    }

    private ulong ReadPhysicalBytes(ulong gpa, int size)
    {
        ulong v = 0;
        for (int i = 0; i < size; i++)
        {
            byte* p = Memory.HostPointer(gpa + (ulong)i, out _);
            v |= (ulong)(p == null ? 0xFF : *p) << (8 * i); // unbacked physical reads as all ones
        }
        return v;
    }

    internal void WritePhysicalU64(ulong gpa, ulong value)
    {
        byte* p = Memory.HostPointer(gpa, out bool ro);
        if (p == null || ro) return;
        *(ulong*)p = value;
        OnGuestPhysicalWrite(gpa);
    }

    internal void WritePhysicalU32(ulong gpa, uint value)
    {
        byte* p = Memory.HostPointer(gpa, out bool ro);
        if (p == null || ro) return;
        *(uint*)p = value;
        OnGuestPhysicalWrite(gpa);
    }

    private void OnGuestPhysicalWrite(ulong gpa)
    {
        ulong page = gpa & ~0xFFFUL;
        if (_blocks.IsCodePage(page))
        {
            _blocks.InvalidatePage(page);
            _stop = true;
        }
    }

    private void OnHostPageWritten(ulong pageNumber)
    {
        ulong page = pageNumber << PhysicalMemory.PageShift;
        if (_blocks.IsCodePage(page))
            _blocks.InvalidatePage(page);
    }

    // ---- Implicit supervisor accesses: descriptor tables, TSS, IDT ----

    internal ulong ReadSystem(ulong lin, int size) => ReadLinearSlow(lin, size, implicitSupervisor: true);
    internal void WriteSystem(ulong lin, int size, ulong value) => WriteLinearSlow(lin, size, value, implicitSupervisor: true);
}
