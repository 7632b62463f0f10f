namespace Hypervisor.Core.X86.Cpuid;

public enum CpuidReg : byte { Eax, Ebx, Ecx, Edx }

/// <summary>One CPUID feature bit: where it lives and what the manuals call it.</summary>
public readonly record struct CpuFeature(string Name, uint Function, uint Index, CpuidReg Reg, int Bit)
{
    public uint Mask => 1u << Bit;
    public override string ToString() => $"{Name} (CPUID 0x{Function:x}.{Index}:{Reg}[{Bit}])";
}
