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
            result.Add(e.Function == 0xD ? FilterXsave(model, e, caps) : Filter(e, caps));
        return result;
    }

    /// <summary>Leaf 0xD: XCR0 bit 19 (APX state) and its component subleaf only when APX is
    /// supported; the largest-area size (subleaf 0 ECX) then counts only the components left.</summary>
    private static CpuidEntry FilterXsave(HostCpuModel model, CpuidEntry e, CpuCaps caps)
    {
        if (caps.Has(CpuFeatures.ApxF))
            return e;
        const int ApxComponent = 19;
        if (e.Index == ApxComponent)
            return e with { Eax = 0, Ebx = 0, Ecx = 0, Edx = 0 };
        if (e.Index != 0)
            return e;
        uint eax = e.Eax & ~(1u << ApxComponent);
        ulong xcr0 = eax | ((ulong)e.Edx << 32);
        uint max = 512 + 64; // legacy region and XSAVE header
        for (int bit = 2; bit < 63; bit++)
        {
            if ((xcr0 & (1UL << bit)) == 0) continue;
            var c = model.Cpuid.Lookup(0xD, (uint)bit);
            max = Math.Max(max, c.Ebx + c.Eax);
        }
        return e with { Eax = eax, Ecx = max };
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
