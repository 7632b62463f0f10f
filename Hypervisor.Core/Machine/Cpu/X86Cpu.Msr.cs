namespace Hypervisor.Core.Machine.Cpu;

/// <summary>What the time-stamp counter (and every timer derived from it) advances with.</summary>
public enum TscClock
{
    /// <summary>One tick per retired instruction: deterministic, the default.</summary>
    Instructions,
    /// <summary>The host's monotonic clock in nanoseconds: real time, not reproducible.</summary>
    Host,
}

/// <summary>RDMSR/WRMSR on the bare machine: unknown MSRs and reserved bits raise #GP(0).</summary>
public sealed unsafe partial class X86Cpu
{
    public bool TryReadMsr(uint index, out ulong value) => ReadMsr(index, 0, out value);

    /// <summary>Writes an MSR; false means #GP(0) (unknown MSR, reserved bits, non-canonical address).</summary>
    public bool TryWriteMsr(uint index, ulong value) => WriteMsr(index, value, 0);

    /// <summary>RDMSR at the instruction <paramref name="blockIndex"/> instructions into the current
    /// block (the retired count is added per block, so the exact TSC needs it).</summary>
    internal bool ReadMsr(uint index, int blockIndex, out ulong value)
    {
        value = 0;
        switch (index)
        {
            case MsrIndex.Tsc: value = TscAt(blockIndex); return true;
            case MsrIndex.Efer: value = Efer; return true;
            case MsrIndex.Star: value = Msr.Star; return true;
            case MsrIndex.Lstar: value = Msr.Lstar; return true;
            case MsrIndex.Cstar: value = Msr.Cstar; return true;
            case MsrIndex.Sfmask: value = Msr.Sfmask; return true;
            case MsrIndex.FsBase: value = Segs[SegReg.Fs].Base; return true;
            case MsrIndex.GsBase: value = Segs[SegReg.Gs].Base; return true;
            case MsrIndex.KernelGsBase: value = Msr.KernelGsBase; return true;
            case MsrIndex.TscAux: value = Msr.TscAux; return true;
            case MsrIndex.Pat: value = Msr.Pat; return true;
            case MsrIndex.ApicBase: value = Msr.ApicBase; return true;
            case MsrIndex.SpecCtrl when HasSpecCtrl: value = Msr.SpecCtrl; return true;
            case MsrIndex.SysenterCs: value = Msr.SysenterCs; return true;
            case MsrIndex.SysenterEsp: value = Msr.SysenterEsp; return true;
            case MsrIndex.SysenterEip: value = Msr.SysenterEip; return true;
            default: return false;
        }
    }

    internal bool WriteMsr(uint index, ulong value, int blockIndex)
    {
        switch (index)
        {
            case MsrIndex.Tsc: TscOffset = (long)(value - (TscAt(blockIndex) - (ulong)TscOffset)); return true;
            case MsrIndex.Efer: return WriteEfer(value);
            case MsrIndex.Star: Msr.Star = value; return true;
            case MsrIndex.Lstar when IsCanonical(value): Msr.Lstar = value; return true;
            case MsrIndex.Cstar when IsCanonical(value): Msr.Cstar = value; return true;
            case MsrIndex.Sfmask when (value >> 32) == 0: Msr.Sfmask = value; return true;
            case MsrIndex.FsBase when IsCanonical(value): Segs[SegReg.Fs].Base = value; UpdateSegmentFastPaths(); return true;
            case MsrIndex.GsBase when IsCanonical(value): Segs[SegReg.Gs].Base = value; UpdateSegmentFastPaths(); return true;
            case MsrIndex.KernelGsBase when IsCanonical(value): Msr.KernelGsBase = value; return true;
            case MsrIndex.TscAux when (value >> 32) == 0: Msr.TscAux = value; return true;
            case MsrIndex.Pat when IsValidPat(value): Msr.Pat = value; return true;
            // BSP (8) and enable (11); x2APIC mode (10) is not enumerated, so it is reserved.
            case MsrIndex.ApicBase when (value & ~(PhysAddrMask | 0x900UL)) == 0: Msr.ApicBase = value; return true;
            case MsrIndex.SpecCtrl when HasSpecCtrl && (value & ~0x7UL) == 0: Msr.SpecCtrl = value; return true; // IBRS, STIBP, SSBD
            case MsrIndex.SysenterCs: Msr.SysenterCs = value & 0xFFFF; return true;
            case MsrIndex.SysenterEsp when IsCanonical(value): Msr.SysenterEsp = value; return true;
            case MsrIndex.SysenterEip when IsCanonical(value): Msr.SysenterEip = value; return true;
            default: return false;
        }
    }

    /// <summary>IA32_SPEC_CTRL exists when CPUID enumerates IBRS (Intel 7.EDX[26], AMD 80000008h.EBX[14]).</summary>
    private bool HasSpecCtrl => Model.HasFeature(7, 0, 'd', 26) || Model.HasFeature(0x80000008, 0, 'b', 14);

    /// <summary>Each PAT entry must be a defined memory type: 0, 1, 4, 5, 6 or 7.</summary>
    private static bool IsValidPat(ulong v)
    {
        for (int k = 0; k < 8; k++)
        {
            ulong t = (v >> (8 * k)) & 0xFF;
            if (t is 2 or 3 or > 7) return false;
        }
        return true;
    }

    /// <summary>The TSC: retired instructions plus the offset IA32_TSC writes set (deterministic time),
    /// or with <see cref="TscClock.Host"/> the host's monotonic clock in nanoseconds plus that offset.</summary>
    public ulong Tsc => TscAt(0);

    /// <summary>What the TSC counts. Retired instructions by default, so two runs of one guest are
    /// bit-identical (QEMU's <c>-icount</c>); host time only when asked for (<c>hv run --clock host</c>).</summary>
    public TscClock Clock { get; set; } = TscClock.Instructions;

    /// <summary>The TSC as the instruction at <paramref name="blockIndex"/> in the running block sees it.</summary>
    internal ulong TscAt(int blockIndex) => Clock == TscClock.Instructions
        ? InstructionsRetired + (ulong)blockIndex + (ulong)TscOffset
        : HostNanoseconds() + (ulong)TscOffset;

    private static ulong HostNanoseconds() =>
        (ulong)(System.Diagnostics.Stopwatch.GetTimestamp() * (1_000_000_000.0 / System.Diagnostics.Stopwatch.Frequency));
}
