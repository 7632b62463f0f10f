using Hypervisor.Core.Machine.Models;

namespace Hypervisor.Core.X86.Cpuid;

/// <summary>KVM_GET_SUPPORTED_CPUID: the hardware's CPUID masked by the supported caps, with the
/// per-leaf rules of KVM-FACTS §2.</summary>
public static class SupportedCpuid
{
    public static IReadOnlyList<CpuidEntry> Build(HostCpuModel model, CpuCaps caps)
    {
        var result = new List<CpuidEntry>();
        foreach (var e in model.Cpuid.Entries)
            result.Add(Filter(e, caps));
        return result;
    }

    private static CpuidEntry Filter(CpuidEntry e, CpuCaps caps)
    {
        uint Masked(CpuidReg r, uint value) =>
            CpuCaps.IsFeatureRegister(e.Function, e.Index, r) ? value & caps.Mask(e.Function, e.Index, r) : value;

        var f = e with
        {
            Eax = Masked(CpuidReg.Eax, e.Eax),
            Ebx = Masked(CpuidReg.Ebx, e.Ebx),
            Ecx = Masked(CpuidReg.Ecx, e.Ecx),
            Edx = Masked(CpuidReg.Edx, e.Edx),
        };
        switch (e.Function)
        {
            case 0x1:
                // OSXSAVE mirrors the guest's CR4 at run time; it is never a supported static bit.
                f = f with { Ecx = f.Ecx & ~CpuFeatures.Osxsave.Mask };
                break;
            case 0x80000021:
                // EDX is reserved; EAX/ECX are feature bits; EBX carries only the RAP size (bits
                // 23:16) and only when ERAPS is supported (KVM-FACTS §2).
                f = f with
                {
                    Eax = e.Eax & caps.Mask(e.Function, 0, CpuidReg.Eax),
                    Ecx = e.Ecx & caps.Mask(e.Function, 0, CpuidReg.Ecx),
                    Ebx = caps.Has(CpuFeatures.Eraps) ? e.Ebx & 0x00FF_0000u : 0,
                    Edx = 0,
                };
                break;
        }
        return f;
    }
}
