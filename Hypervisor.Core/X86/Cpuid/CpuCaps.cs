using Hypervisor.Core.Machine.Models;

namespace Hypervisor.Core.X86.Cpuid;

/// <summary>
/// A set of CPUID feature bits (KVM's <c>kvm_cpu_caps</c> when it describes what the hypervisor
/// supports; the guest caps when it describes what one vCPU may use). Only bits named in
/// <see cref="CpuFeatures"/> can be set: an unknown bit is never claimed as supported.
/// </summary>
public sealed class CpuCaps
{
    private readonly Dictionary<(uint, uint, CpuidReg), uint> _bits = new();

    public bool Has(CpuFeature f) => (_bits.GetValueOrDefault((f.Function, f.Index, f.Reg)) & f.Mask) != 0;

    public void Set(CpuFeature f) => _bits[(f.Function, f.Index, f.Reg)] = _bits.GetValueOrDefault((f.Function, f.Index, f.Reg)) | f.Mask;

    public void Clear(CpuFeature f) => _bits[(f.Function, f.Index, f.Reg)] = _bits.GetValueOrDefault((f.Function, f.Index, f.Reg)) & ~f.Mask;

    public uint Mask(uint function, uint index, CpuidReg reg) => _bits.GetValueOrDefault((function, index, reg));

    /// <summary>Registers that hold feature bits, so they are masked rather than passed through.</summary>
    public static bool IsFeatureRegister(uint function, uint index, CpuidReg reg) =>
        CpuFeatures.All.Any(f => f.Function == function && f.Index == index && f.Reg == reg);

    public IEnumerable<CpuFeature> Features => CpuFeatures.All.Where(Has);

    /// <summary>KVM's cap initialisation: a bit is supported when the hardware has it and the
    /// hypervisor can virtualize it.</summary>
    public static CpuCaps FromHardware(HostCpuModel model, IEnumerable<CpuFeature> virtualizable)
    {
        var caps = new CpuCaps();
        foreach (var f in virtualizable)
            if (HardwareHas(model, f))
                caps.Set(f);
        return caps;
    }

    public static bool HardwareHas(HostCpuModel model, CpuFeature f)
    {
        var e = model.Cpuid.Lookup(f.Function, f.Index);
        return (Register(e, f.Reg) & f.Mask) != 0;
    }

    /// <summary>The caps a guest CPUID table grants: its bits intersected with <paramref name="supported"/>.</summary>
    public static CpuCaps GuestCaps(IEnumerable<CpuidEntry> guestCpuid, CpuCaps supported)
    {
        var table = new CpuidTable();
        foreach (var e in guestCpuid)
            table.Set(e);
        var caps = new CpuCaps();
        foreach (var f in CpuFeatures.All)
        {
            if (!supported.Has(f)) continue;
            if (!HasLeaf(table, f.Function)) continue;
            if ((Register(table.Lookup(f.Function, f.Index), f.Reg) & f.Mask) != 0)
                caps.Set(f);
        }
        return caps;
    }

    private static bool HasLeaf(CpuidTable t, uint function) => t.Entries.Any(e => e.Function == function);

    public static uint Register(CpuidEntry e, CpuidReg r) => r switch
    {
        CpuidReg.Eax => e.Eax,
        CpuidReg.Ebx => e.Ebx,
        CpuidReg.Ecx => e.Ecx,
        _ => e.Edx,
    };
}
