using System.Runtime.CompilerServices;

namespace Hypervisor.Vmx.Hardware;

/// <summary>The VMX capability MSRs (SDM vol. 3 appendix A; vol. 4 MSR index).</summary>
public static class VmxMsr
{
    public const uint Ia32FeatureControl = 0x3A;
    public const uint Basic = 0x480;
    public const uint PinbasedCtls = 0x481;
    public const uint ProcbasedCtls = 0x482;
    public const uint ExitCtls = 0x483;
    public const uint EntryCtls = 0x484;
    public const uint Misc = 0x485;
    public const uint Cr0Fixed0 = 0x486;
    public const uint Cr0Fixed1 = 0x487;
    public const uint Cr4Fixed0 = 0x488;
    public const uint Cr4Fixed1 = 0x489;
    public const uint VmcsEnum = 0x48A;
    public const uint ProcbasedCtls2 = 0x48B;
    public const uint EptVpidCap = 0x48C;
    public const uint TruePinbasedCtls = 0x48D;
    public const uint TrueProcbasedCtls = 0x48E;
    public const uint TrueExitCtls = 0x48F;
    public const uint TrueEntryCtls = 0x490;
    public const uint Vmfunc = 0x491;
    public const uint ProcbasedCtls3 = 0x492;
    public const uint ExitCtls2 = 0x493;
}

/// <summary>
/// IA32_VMX_BASIC (MSR 480h, SDM A.1): bits 30:0 VMCS revision identifier, bit 31 always 0,
/// bits 44:32 size of the VMXON and VMCS regions in bytes (at most 4096), bit 48 addresses of
/// those regions limited to 32 bits, bit 49 dual-monitor treatment, bits 53:50 memory type of
/// VMCS accesses (0 UC, 6 WB), bit 54 INS/OUTS instruction information reported, bit 55 the
/// TRUE controls MSRs exist, bit 56 VM entry may deliver a hardware exception with or without
/// an error code.
/// </summary>
public readonly record struct VmxBasic(ulong Raw)
{
    public const int RegionSizeShift = 32;
    public const ulong PhysicalAddress32 = 1UL << 48;
    public const ulong DualMonitor = 1UL << 49;
    public const int MemoryTypeShift = 50;
    public const ulong InsOutsInfo = 1UL << 54;
    public const ulong TrueControls = 1UL << 55;
    public const ulong NoErrorCodeCheck = 1UL << 56;
    public const int MemoryTypeUncacheable = 0;
    public const int MemoryTypeWriteBack = 6;

    public static VmxBasic Create(uint revisionId, int regionSize, int memoryType, bool insOutsInfo, bool trueControls, bool noErrorCodeCheck = false)
        => new((revisionId & 0x7FFF_FFFF) | ((ulong)(regionSize & 0x1FFF) << RegionSizeShift) | ((ulong)(memoryType & 0xF) << MemoryTypeShift)
            | (insOutsInfo ? InsOutsInfo : 0) | (trueControls ? TrueControls : 0) | (noErrorCodeCheck ? NoErrorCodeCheck : 0));

    public uint RevisionId => (uint)Raw & 0x7FFF_FFFF;
    public int RegionSize => (int)((Raw >> RegionSizeShift) & 0x1FFF);
    public bool IsPhysicalAddress32 => (Raw & PhysicalAddress32) != 0;
    public int MemoryType => (int)((Raw >> MemoryTypeShift) & 0xF);
    public bool HasInsOutsInfo => (Raw & InsOutsInfo) != 0;
    public bool HasTrueControls => (Raw & TrueControls) != 0;
    public bool HasNoErrorCodeCheck => (Raw & NoErrorCodeCheck) != 0;
}

/// <summary>
/// The allowed settings of a 32-bit VMX control (SDM A.3-A.5): bits 31:0 are the allowed
/// 0-settings (a bit set there means the control must be 1), bits 63:32 the allowed 1-settings
/// (a bit clear there means the control must be 0). The same format serves
/// IA32_VMX_PINBASED/PROCBASED/EXIT/ENTRY_CTLS, their TRUE_ variants (which may allow some
/// default-1 controls to be 0) and IA32_VMX_PROCBASED_CTLS2.
/// </summary>
public readonly record struct VmxAllowedSettings(ulong Raw)
{
    public static VmxAllowedSettings Create(uint mustBeOne, uint mayBeOne) => new(mustBeOne | ((ulong)(mayBeOne | mustBeOne) << 32));

    /// <summary>Controls that must be 1 (allowed 0-settings).</summary>
    public uint MustBeOne => (uint)Raw;

    /// <summary>Controls that may be 1 (allowed 1-settings).</summary>
    public uint MayBeOne => (uint)(Raw >> 32);

    /// <summary>Whether a control value is allowed: every must-be-one bit set, nothing outside may-be-one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsAllowed(uint value) => (value & MustBeOne) == MustBeOne && (value & ~MayBeOne) == 0;

    /// <summary>The value closest to <paramref name="desired"/> that is allowed (what KVM's adjust_vmx_controls does).</summary>
    public uint Adjust(uint desired) => (desired & MayBeOne) | MustBeOne;
}

/// <summary>
/// CR0/CR4 fixed bits (IA32_VMX_CR0_FIXED0/1, CR4_FIXED0/1, SDM A.7-A.8): a bit set in FIXED0
/// must be 1 in VMX operation, a bit clear in FIXED1 must be 0. With the unrestricted-guest
/// control the guest's CR0.PE and CR0.PG are exempt (SDM §27.3.1.1): the caller clears them
/// from <c>fixed0</c>.
/// </summary>
public static class VmxFixedBits
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsAllowed(ulong value, ulong fixed0, ulong fixed1) => (value & fixed0) == fixed0 && (value & ~fixed1) == 0;
}

/// <summary>
/// IA32_VMX_MISC (MSR 485h, SDM A.6): bits 4:0 preemption-timer rate (TSC bit), bit 5 VM exits
/// store EFER.LMA in the IA-32e-mode-guest entry control, bits 8:6 activity states HLT,
/// shutdown, wait-for-SIPI, bits 24:16 number of CR3-target values, bits 27:25 N with
/// 512 × (N + 1) the recommended MSR-list maximum, bit 29 VMWRITE to any field (including the
/// VM-exit information fields), bit 30 injection of software events with instruction length 0,
/// bits 63:32 MSEG revision identifier.
/// </summary>
public readonly record struct VmxMisc(ulong Raw)
{
    public const ulong StoresEferLma = 1UL << 5;
    public const ulong ActivityHlt = 1UL << 6;
    public const ulong ActivityShutdown = 1UL << 7;
    public const ulong ActivityWaitForSipi = 1UL << 8;
    public const int Cr3TargetCountShift = 16;
    public const int MaxMsrListShift = 25;
    public const ulong VmwriteAnyField = 1UL << 29;
    public const ulong ZeroLengthInjection = 1UL << 30;

    public int PreemptionTimerRate => (int)(Raw & 0x1F);
    public int Cr3TargetCount => (int)((Raw >> Cr3TargetCountShift) & 0x1FF);
    public int MaxMsrListEntries => 512 * ((int)((Raw >> MaxMsrListShift) & 7) + 1);
    public bool CanVmwriteAnyField => (Raw & VmwriteAnyField) != 0;
    public uint MsegRevisionId => (uint)(Raw >> 32);
}

/// <summary>IA32_VMX_EPT_VPID_CAP (MSR 48Ch, SDM A.10): what EPT, INVEPT and INVVPID support.</summary>
[Flags]
public enum VmxEptVpidCapabilities : ulong
{
    None = 0,
    ExecuteOnly = 1UL << 0,
    PageWalkLength4 = 1UL << 6,
    PageWalkLength5 = 1UL << 7,
    MemoryTypeUncacheable = 1UL << 8,
    MemoryTypeWriteBack = 1UL << 14,
    Pde2MiBPages = 1UL << 16,
    Pdpte1GiBPages = 1UL << 17,
    Invept = 1UL << 20,
    AccessedDirtyFlags = 1UL << 21,
    AdvancedEptViolationInfo = 1UL << 22,
    SupervisorShadowStack = 1UL << 23,
    InveptSingleContext = 1UL << 25,
    InveptAllContext = 1UL << 26,
    Invvpid = 1UL << 32,
    InvvpidIndividualAddress = 1UL << 40,
    InvvpidSingleContext = 1UL << 41,
    InvvpidAllContext = 1UL << 42,
    InvvpidSingleContextRetainingGlobals = 1UL << 43,
}
