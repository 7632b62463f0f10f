using System.Runtime.CompilerServices;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>Direct host access to whole runs of guest memory for repeated string instructions.
/// Only pages the fast TLB already holds qualify: such an entry exists only for plain RAM whose
/// translation, permissions (including SMAP) and accessed/dirty bits were settled by an earlier
/// access through the ordinary path, and a write entry never exists for MMIO, read-only slots or
/// pages holding translated code. Anything else returns null and the caller takes the ordinary
/// per-element path, which faults, exits or invalidates code exactly as a single access would.</summary>
public sealed unsafe partial class X86Cpu
{
    /// <summary>True when accesses through the segment need no limit or type checks (flat, or 64-bit mode).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool IsFlatSegment(int seg) => (_segCheckMask & (1 << seg)) == 0;

    /// <summary>Host address of the byte at <paramref name="lin"/> for reading, or null.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal byte* HostForRead(ulong lin)
    {
        FastTlbEntry* e = _rtlb + ((lin >> 12) & (FastTlbSize - 1));
        return e->Tag == ((lin & ~0xFFFUL) | _tlbTag) ? e->Host + (lin & 0xFFF) : null;
    }

    /// <summary>Host address of the byte at <paramref name="lin"/> for writing, or null.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal byte* HostForWrite(ulong lin)
    {
        FastTlbEntry* e = _wtlb + ((lin >> 12) & (FastTlbSize - 1));
        return e->Tag == ((lin & ~0xFFFUL) | _tlbTag) ? e->Host + (lin & 0xFFF) : null;
    }
}
