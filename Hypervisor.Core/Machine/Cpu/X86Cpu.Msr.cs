namespace Hypervisor.Core.Machine.Cpu;

/// <summary>RDMSR/WRMSR on the bare machine: unknown MSRs and reserved bits raise #GP(0).</summary>
public sealed unsafe partial class X86Cpu
{
    public bool TryReadMsr(uint index, out ulong value)
    {
        value = 0;
        switch (index)
        {
            case MsrIndex.Tsc: value = Tsc; return true;
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
            case MsrIndex.SpecCtrl: value = Msr.SpecCtrl; return true;
            case MsrIndex.SysenterCs: value = Msr.SysenterCs; return true;
            case MsrIndex.SysenterEsp: value = Msr.SysenterEsp; return true;
            case MsrIndex.SysenterEip: value = Msr.SysenterEip; return true;
            default: return false;
        }
    }

    /// <summary>Writes an MSR; false means #GP(0) (unknown MSR, reserved bits, non-canonical address).</summary>
    public bool TryWriteMsr(uint index, ulong value)
    {
        switch (index)
        {
            case MsrIndex.Tsc: TscOffset = (long)(value - InstructionsRetired); return true;
            case MsrIndex.Efer: return WriteEfer(value);
            case MsrIndex.Star: Msr.Star = value; return true;
            case MsrIndex.Lstar when IsCanonical(value): Msr.Lstar = value; return true;
            case MsrIndex.Cstar when IsCanonical(value): Msr.Cstar = value; return true;
            case MsrIndex.Sfmask: Msr.Sfmask = value & 0xFFFFFFFF; return (value >> 32) == 0;
            case MsrIndex.FsBase when IsCanonical(value): Segs[SegReg.Fs].Base = value; UpdateSegmentFastPaths(); return true;
            case MsrIndex.GsBase when IsCanonical(value): Segs[SegReg.Gs].Base = value; UpdateSegmentFastPaths(); return true;
            case MsrIndex.KernelGsBase when IsCanonical(value): Msr.KernelGsBase = value; return true;
            case MsrIndex.TscAux when (value >> 32) == 0: Msr.TscAux = value; return true;
            case MsrIndex.Pat when IsValidPat(value): Msr.Pat = value; return true;
            case MsrIndex.ApicBase when (value & ~(PhysAddrMask | 0xD00UL)) == 0: Msr.ApicBase = value; return true;
            case MsrIndex.SpecCtrl when (value & ~0x7UL) == 0: Msr.SpecCtrl = value; return true; // IBRS, STIBP, SSBD
            case MsrIndex.SysenterCs: Msr.SysenterCs = value & 0xFFFF; return true;
            case MsrIndex.SysenterEsp when IsCanonical(value): Msr.SysenterEsp = value; return true;
            case MsrIndex.SysenterEip when IsCanonical(value): Msr.SysenterEip = value; return true;
            default: return false;
        }
    }

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

    /// <summary>The TSC: retired instructions plus the offset IA32_TSC writes set (deterministic time).</summary>
    public ulong Tsc => InstructionsRetired + (ulong)TscOffset;
}
