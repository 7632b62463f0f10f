using Hypervisor.Core.Machine.Models;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>CPUID as this processor answers it: the model's table plus the bits that reflect
/// current state (SDM vol. 2 "CPUID"), and XCR0 validation for XSETBV.</summary>
public sealed unsafe partial class X86Cpu
{
    /// <summary>Initial APIC ID, reported in CPUID.1:EBX[31:24] (0 for the bootstrap processor).</summary>
    public byte InitialApicId { get; set; }

    private const int XsaveLegacyAndHeaderBytes = 512 + 64;

    /// <summary>The CPUID result for EAX=<paramref name="leaf"/>, ECX=<paramref name="subleaf"/>.</summary>
    public CpuidEntry QueryCpuid(uint leaf, uint subleaf)
    {
        var e = Model.Cpuid.Lookup(leaf, subleaf);
        switch (e.Function)
        {
            case 1:
                e.Ebx = (e.Ebx & 0x00FFFFFF) | ((uint)InitialApicId << 24);
                // OSXSAVE mirrors CR4.OSXSAVE (which only an XSAVE-capable model lets software set).
                e.Ecx = (e.Ecx & ~(1u << 27)) | ((Cr4 & Cpu.Cr4.Osxsave) != 0 ? 1u << 27 : 0);
                break;
            case 7 when subleaf == 0:
                e.Ecx = (e.Ecx & ~(1u << 4)) | ((Cr4 & Cpu.Cr4.Pke) != 0 ? 1u << 4 : 0); // OSPKE
                break;
            case 0xD when subleaf == 0:
                e.Ebx = XsaveAreaSize(Xcr0); // size for the components enabled in XCR0 now
                break;
        }
        return e;
    }

    /// <summary>Bytes of XSAVE area the components in <paramref name="xcr0"/> need: the legacy region
    /// and header, then each extended component at its CPUID.(0Dh, i) offset.</summary>
    private uint XsaveAreaSize(ulong xcr0)
    {
        uint size = XsaveLegacyAndHeaderBytes;
        for (int bit = 2; bit < 63; bit++)
        {
            if ((xcr0 & (1UL << bit)) == 0) continue;
            var c = Model.Cpuid.Lookup(0xD, (uint)bit);
            size = Math.Max(size, c.Ebx + c.Eax);
        }
        return size;
    }

    /// <summary>XCR0 bits this processor supports: CPUID.(0Dh, 0):EDX:EAX.</summary>
    public ulong Xcr0Supported
    {
        get
        {
            var e = Model.Cpuid.Lookup(0xD, 0);
            return ((ulong)e.Edx << 32) | e.Eax;
        }
    }

    /// <summary>XSETBV's checks on a new XCR0 (SDM vol. 1 §13.3): x87 always enabled, only
    /// supported bits, AVX needs SSE, the AVX-512 trio and the MPX pair go together, AMX tile
    /// config and data go together; APX cannot be combined with MPX (KVM-FACTS §2).</summary>
    public bool IsValidXcr0(ulong value)
    {
        if ((value & 1) == 0 || (value & ~Xcr0Supported) != 0)
            return false;
        if ((value & 6) == 4)
            return false;
        ulong avx512 = value & 0xE0;
        if (avx512 != 0 && (avx512 != 0xE0 || (value & 4) == 0))
            return false;
        if (((value >> 3) & 1) != ((value >> 4) & 1))
            return false;
        if (((value >> 17) & 1) != ((value >> 18) & 1))
            return false;
        if ((value & (1UL << 19)) != 0 && (value & 0x18) != 0)
            return false;
        return true;
    }
}
