using System.Text;

namespace Hypervisor.Core.Machine.Models;

/// <summary>
/// A named CPU model: what "the hardware" reports through CPUID, and the few facts about it the
/// machine needs (physical address width, RAP size). The CPUID advertises only what the software
/// CPU implements, so a guest that checks CPUID never meets a missing feature.
/// </summary>
public sealed class HostCpuModel
{
    public HostCpuModel(string name, string description, string vendor, CpuidTable cpuid, int maxPhysAddrBits, int rapEntries, uint resetEdx)
    {
        Name = name;
        Description = description;
        Vendor = vendor;
        Cpuid = cpuid;
        MaxPhysAddrBits = maxPhysAddrBits;
        RapEntries = rapEntries;
        ResetEdx = resetEdx;
        HasLahfSahf64 = HasFeature(0x80000001, 0, 'c', 0);
        HasLzcnt = HasFeature(0x80000001, 0, 'c', 5);
        HasPopcnt = HasFeature(1, 0, 'c', 23);
        HasCx16 = HasFeature(1, 0, 'c', 13);
        HasBmi1 = HasFeature(7, 0, 'b', 3);
    }

    public string Name { get; }
    public string Description { get; }
    /// <summary>"AuthenticAMD" or "GenuineIntel".</summary>
    public string Vendor { get; }
    public CpuidTable Cpuid { get; }
    public int MaxPhysAddrBits { get; }
    /// <summary>Return address predictor entries the hardware has.</summary>
    public int RapEntries { get; }
    /// <summary>EDX after RESET: family/model/stepping signature.</summary>
    public uint ResetEdx { get; }

    // Features that decide how an instruction executes, read once here so executors test a bool.
    /// <summary>CPUID.80000001H:ECX.LAHF-SAHF: LAHF/SAHF are valid in 64-bit mode.</summary>
    internal bool HasLahfSahf64 { get; }
    /// <summary>CPUID.80000001H:ECX.ABM: F3 0F BD is LZCNT (else the prefix is ignored: BSR).</summary>
    internal bool HasLzcnt { get; }
    /// <summary>CPUID.01H:ECX.POPCNT (else POPCNT is #UD).</summary>
    internal bool HasPopcnt { get; }
    /// <summary>CPUID.01H:ECX.CX16 (else CMPXCHG16B is #UD).</summary>
    internal bool HasCx16 { get; }
    /// <summary>CPUID.(EAX=07H,ECX=0):EBX.BMI1: F3 0F BC is TZCNT (else the prefix is ignored: BSF).</summary>
    internal bool HasBmi1 { get; }
    /// <summary>AMD processors keep the legacy-mode SYSCALL/SYSRET forms and SYSCALL from compatibility mode.</summary>
    public bool IsAmd => Vendor == "AuthenticAMD";

    /// <summary>CPUID 0x80000021 EAX[24]: the RAP is tagged by domain and cleared on CR3 writes,
    /// INVPCID other than type 0 and implicit TLB invalidations (KVM-FACTS §4).</summary>
    public bool HasEraps => (Cpuid.Lookup(0x80000021, 0).Eax & (1u << 24)) != 0;

    public bool Has1GbPages => (Cpuid.Lookup(0x80000001, 0).Edx & (1u << 26)) != 0;

    /// <summary>A copy of this model with one CPUID bit of leaf <paramref name="leaf"/> (subleaf 0)
    /// forced on or off; <paramref name="register"/> is 'a', 'b', 'c' or 'd'.</summary>
    public HostCpuModel WithFeature(uint leaf, char register, int bit, bool present)
    {
        var table = Cpuid.Clone();
        var e = table.Lookup(leaf, 0);
        uint mask = 1u << bit;
        uint Apply(uint r) => present ? r | mask : r & ~mask;
        table.Set(e with
        {
            Eax = register == 'a' ? Apply(e.Eax) : e.Eax,
            Ebx = register == 'b' ? Apply(e.Ebx) : e.Ebx,
            Ecx = register == 'c' ? Apply(e.Ecx) : e.Ecx,
            Edx = register == 'd' ? Apply(e.Edx) : e.Edx,
        });
        return new HostCpuModel(Name + "-edited", Description, Vendor, table, MaxPhysAddrBits, RapEntries, ResetEdx);
    }

    public bool HasFeature(uint function, uint index, char register, int bit)
    {
        var e = Cpuid.Lookup(function, index);
        uint r = register switch { 'a' => e.Eax, 'b' => e.Ebx, 'c' => e.Ecx, _ => e.Edx };
        return (r & (1u << bit)) != 0;
    }

    // Feature bits the software CPU implements (CPUID bit positions from the SDM / APM).
    internal const uint Leaf1Edx = (1u << 3) /*PSE*/ | (1u << 4) /*TSC*/ | (1u << 5) /*MSR*/ | (1u << 6) /*PAE*/
        | (1u << 8) /*CX8*/ | (1u << 13) /*PGE*/ | (1u << 15) /*CMOV*/ | (1u << 16) /*PAT*/ | (1u << 17) /*PSE36*/
        | (1u << 19) /*CLFSH*/;
    internal const uint Leaf1Ecx = (1u << 13) /*CX16*/ | (1u << 17) /*PCID*/ | (1u << 23) /*POPCNT*/;
    internal const uint Leaf7Ebx = (1u << 3) /*BMI1*/ | (1u << 7) /*SMEP*/ | (1u << 10) /*INVPCID*/ | (1u << 20) /*SMAP*/;
    internal const uint Leaf7Ecx = (1u << 22) /*RDPID*/;
    internal const uint Ext1Ecx = (1u << 0) /*LAHF/SAHF*/ | (1u << 5) /*ABM: LZCNT*/;
    internal const uint Ext1Edx = (1u << 11) /*SYSCALL*/ | (1u << 20) /*NX*/ | (1u << 26) /*1GB pages*/ | (1u << 27) /*RDTSCP*/ | (1u << 29) /*LM*/;

    private static void SetVendor(CpuidTable t, uint maxBasic, string vendor)
    {
        var b = Encoding.ASCII.GetBytes(vendor);
        t.Set(0, 0, maxBasic, BitConverter.ToUInt32(b, 0), BitConverter.ToUInt32(b, 8), BitConverter.ToUInt32(b, 4));
    }

    private static void SetBrand(CpuidTable t, string brand)
    {
        var b = new byte[48];
        Encoding.ASCII.GetBytes(brand).AsSpan(0, Math.Min(47, brand.Length)).CopyTo(b);
        for (uint leaf = 0; leaf < 3; leaf++)
        {
            int o = (int)leaf * 16;
            t.Set(0x80000002 + leaf, 0, BitConverter.ToUInt32(b, o), BitConverter.ToUInt32(b, o + 4), BitConverter.ToUInt32(b, o + 8), BitConverter.ToUInt32(b, o + 12));
        }
    }

    /// <summary>An AMD Zen 5-class processor (family 1Ah): SVM with NPT, NRIP save, flush by ASID,
    /// VMCB clean bits and decode assists; ERAPS with a 64-entry RAP; 48-bit physical addresses.</summary>
    public static HostCpuModel Zen5 { get; } = CreateAmd("zen5", "AMD Zen 5-class processor with ERAPS (64-entry RAP)", 0x00B40F40, eraps: true, rapEntries: 64);

    /// <summary>An AMD Zen 4-class processor (family 19h): the same SVM features without ERAPS; the
    /// RAP has the legacy 32 entries and is not tagged, so the host must fill its RSB after #VMEXIT.</summary>
    public static HostCpuModel Zen4 { get; } = CreateAmd("zen4", "AMD Zen 4-class processor without ERAPS (32-entry RAP)", 0x00A60F12, eraps: false, rapEntries: 32);

    /// <summary>An Intel Diamond Rapids-class processor: VMX with EPT, VPID and unrestricted guest,
    /// XSAVE, and APX (CPUID.(7,1):EDX[21], XCR0 bit 19: R16..R31); a 16-entry RSB, not tagged.</summary>
    public static HostCpuModel DiamondRapids { get; } = CreateIntel("diamond-rapids", "Intel Diamond Rapids-class processor with APX (R16-R31)", 0x000D06F0, apx: true);

    /// <summary>An Intel Granite Rapids-class processor: the same VMX features and XSAVE, without APX.</summary>
    public static HostCpuModel GraniteRapids { get; } = CreateIntel("granite-rapids", "Intel Granite Rapids-class processor without APX", 0x000A06D1, apx: false);

    public static HostCpuModel Default => Zen5;

    /// <summary>The default model for a vendor: zen5 for SVM, diamond-rapids for VMX.</summary>
    public static HostCpuModel DefaultIntel => DiamondRapids;

    public static IReadOnlyList<HostCpuModel> All { get; } = new[] { Zen5, Zen4, DiamondRapids, GraniteRapids };

    public bool IsIntel => Vendor == "GenuineIntel";

    /// <summary>CPUID.(EAX=07H,ECX=1):EDX[21] APX_F: the REX2 prefix and R16..R31 (XCR0 bit 19).</summary>
    public bool HasApx => HasFeature(7, 1, 'd', 21);

    public static HostCpuModel? Find(string name) =>
        All.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase));

    // SVM feature leaf 0x8000000A EDX: NP (0), NRIPS (3), VMCB clean bits (5), flush by ASID (6), decode assists (7).
    internal const uint SvmLeafEdx = (1u << 0) | (1u << 3) | (1u << 5) | (1u << 6) | (1u << 7);

    /// <summary>Intel's return stack buffer: 16 entries since Skylake, untagged.</summary>
    private const int IntelRsbEntries = 16;

    /// <summary>XSAVE component 19 (APX extended GPRs): 16 registers × 8 bytes at the standard-format
    /// offset 960, where the MPX components used to live (which is why MPX and APX exclude each other).</summary>
    internal const uint ApxXsaveOffset = 960, ApxXsaveSize = 128;

    private static HostCpuModel CreateIntel(string name, string description, uint signature, bool apx)
    {
        var t = new CpuidTable();
        SetVendor(t, 0xD, "GenuineIntel");
        // Leaf 1 ECX: VMX (5) and XSAVE (26) on top of the common set; OSXSAVE (27) is dynamic.
        t.Set(1, 0, signature, (8u << 8) | (1u << 16), Leaf1Ecx | (1u << 5) | (1u << 26), Leaf1Edx);
        t.Set(7, 0, 1 /*max subleaf*/, Leaf7Ebx, Leaf7Ecx, 0, indexed: true);
        t.Set(7, 1, 0, 0, 0, apx ? 1u << 21 : 0, indexed: true);
        // XSAVE: x87 always; APX adds component 19 (SDM vol. 1 §13.2: EAX = supported XCR0 low bits,
        // ECX = the largest area for all supported components).
        ulong xcr0 = 1 | (apx ? 1UL << 19 : 0);
        uint max = apx ? ApxXsaveOffset + ApxXsaveSize : 576;
        t.Set(0xD, 0, (uint)xcr0, 576, max, (uint)(xcr0 >> 32), indexed: true);
        t.Set(0xD, 1, 0, 0, 0, 0, indexed: true);
        if (apx)
            t.Set(0xD, 19, ApxXsaveSize, ApxXsaveOffset, 0, 0, indexed: true);
        t.Set(0x80000000, 0, 0x80000008, 0, 0, 0);
        t.Set(0x80000001, 0, 0, 0, Ext1Ecx, Ext1Edx);
        SetBrand(t, $"hv virtual {description}");
        t.Set(0x80000008, 0, 46u | (48u << 8), 0, 0, 0);
        return new HostCpuModel(name, description, "GenuineIntel", t, 46, IntelRsbEntries, signature);
    }

    private static HostCpuModel CreateAmd(string name, string description, uint signature, bool eraps, int rapEntries)
    {
        var t = new CpuidTable();
        SetVendor(t, 0xD, "AuthenticAMD");
        t.Set(1, 0, signature, (8u << 8) | (1u << 16), Leaf1Ecx, Leaf1Edx);
        t.Set(7, 0, 0, Leaf7Ebx, Leaf7Ecx, 0, indexed: true);
        // XSAVE: only the x87 component is architecturally present (bit 0 is always set in XCR0).
        t.Set(0xD, 0, 1, 576, 576, 0, indexed: true);
        t.Set(0x80000000, 0, 0x80000021, 0, 0, 0);
        t.Set(0x80000001, 0, signature, 0, Ext1Ecx | (1u << 2) /*SVM*/, Ext1Edx);
        SetBrand(t, $"hv virtual {description}");
        t.Set(0x80000008, 0, 48u | (48u << 8), 0, 0, 0);
        t.Set(0x8000000A, 0, 1 /*SVM revision*/, 0x8000 /*ASIDs*/, 0, SvmLeafEdx);
        // 0x80000021: EAX[24] ERAPS, EBX[23:16] the RAP size (KVM-FACTS §2).
        t.Set(0x80000021, 0, eraps ? 1u << 24 : 0, eraps ? (uint)rapEntries << 16 : 0, 0, 0);
        return new HostCpuModel(name, description, "AuthenticAMD", t, 48, rapEntries, signature);
    }
}
