namespace Hypervisor.Core.Machine.Cpu;

/// <summary>MSR numbers (SDM vol. 4, APM vol. 2 appendix A).</summary>
public static class MsrIndex
{
    public const uint Tsc = 0x10, ApicBase = 0x1B, SpecCtrl = 0x48, SysenterCs = 0x174, SysenterEsp = 0x175, SysenterEip = 0x176;
    public const uint Pat = 0x277, Efer = 0xC0000080, Star = 0xC0000081, Lstar = 0xC0000082, Cstar = 0xC0000083, Sfmask = 0xC0000084;
    public const uint FsBase = 0xC0000100, GsBase = 0xC0000101, KernelGsBase = 0xC0000102, TscAux = 0xC0000103;
}

/// <summary>The MSRs with plain storage; EFER, TSC and the segment bases live in the CPU itself.</summary>
public sealed class Msrs
{
    public ulong Star, Lstar, Cstar, Sfmask, KernelGsBase, TscAux, Pat, ApicBase, SpecCtrl;
    public ulong SysenterCs, SysenterEsp, SysenterEip;

    public void Reset()
    {
        Star = Lstar = Cstar = Sfmask = KernelGsBase = TscAux = SpecCtrl = 0;
        SysenterCs = SysenterEsp = SysenterEip = 0;
        Pat = 0x0007040600070406; // power-on PAT (SDM vol. 3 §13.12.4)
        ApicBase = 0xFEE00000 | (1UL << 11) | (1UL << 8); // enabled, BSP
    }
}
