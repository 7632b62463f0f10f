using Hypervisor.Core.Machine.Cpu;

namespace Hypervisor.Vmx.Hardware;

public sealed partial class VmxProcessor
{
    /// <summary>The checks on the VM-execution, VM-exit and VM-entry control fields that matter here
    /// (SDM vol. 3 §27.2.1). Returns what is wrong, or null.</summary>
    public string? CheckControls(Vmcs vmcs)
    {
        uint pin = (uint)vmcs[VmcsField.PinBasedVmExecutionControls];
        uint primary = (uint)vmcs[VmcsField.PrimaryProcessorBasedVmExecutionControls];
        var p = (VmxPrimaryProcessorControls)primary;
        uint secondary = (p & VmxPrimaryProcessorControls.ActivateSecondaryControls) != 0 ? (uint)vmcs[VmcsField.SecondaryProcessorBasedVmExecutionControls] : 0;
        var s = (VmxSecondaryProcessorControls)secondary;
        if (!VmxProcessorCapabilities.PinBased.IsAllowed(pin)) return $"pin-based controls 0x{pin:x} are not allowed by IA32_VMX_PINBASED_CTLS";
        if (!VmxProcessorCapabilities.PrimaryProcessorBased.IsAllowed(primary)) return $"primary processor-based controls 0x{primary:x} are not allowed by IA32_VMX_PROCBASED_CTLS";
        if (!VmxProcessorCapabilities.SecondaryProcessorBased.IsAllowed(secondary)) return $"secondary processor-based controls 0x{secondary:x} are not allowed by IA32_VMX_PROCBASED_CTLS2";
        uint exit = (uint)vmcs[VmcsField.PrimaryVmExitControls], entry = (uint)vmcs[VmcsField.VmEntryControls];
        if (!VmxProcessorCapabilities.Exit.IsAllowed(exit)) return $"VM-exit controls 0x{exit:x} are not allowed by IA32_VMX_EXIT_CTLS";
        if (!VmxProcessorCapabilities.Entry.IsAllowed(entry)) return $"VM-entry controls 0x{entry:x} are not allowed by IA32_VMX_ENTRY_CTLS";
        if (vmcs[VmcsField.Cr3TargetCount] > VmxProcessorCapabilities.Cr3TargetCount) return "the CR3-target count is greater than 4";
        if ((p & VmxPrimaryProcessorControls.UseIoBitmaps) != 0 && IoBitmaps == null) return "use I/O bitmaps is set and no I/O bitmaps are at their addresses";
        if ((p & VmxPrimaryProcessorControls.UseMsrBitmaps) != 0 && MsrBitmap == null) return "use MSR bitmaps is set and no MSR bitmap is at its address";
        if ((s & VmxSecondaryProcessorControls.UnrestrictedGuest) != 0 && (s & VmxSecondaryProcessorControls.EnableEpt) == 0) return "unrestricted guest is set and enable EPT is clear";
        if ((s & VmxSecondaryProcessorControls.EnableVpid) != 0 && vmcs[VmcsField.VirtualProcessorId] == 0) return "enable VPID is set and the VPID is 0";
        if ((s & VmxSecondaryProcessorControls.EnableEpt) != 0 && CheckEptp(vmcs[VmcsField.EptPointer]) is { } eptp) return eptp;
        if ((exit & (uint)VmxExitControls.HostAddressSpaceSize) == 0) return "host address-space size is clear (a 64-bit host needs it)";
        var inj = new VmxInterruptionInfo((uint)vmcs[VmcsField.VmEntryInterruptionInformation]);
        if (inj.IsValid)
        {
            if ((inj.Raw & VmxInterruptionInfo.EntryReservedMask) != 0) return "the VM-entry interruption information has reserved bits set";
            if (inj.Type is (VmxInterruptionType)1) return "the VM-entry interruption type is reserved (1)";
            if (inj.Type == VmxInterruptionType.HardwareException && inj.Vector > 31) return "a hardware exception with a vector above 31 is injected";
        }
        return null;
    }

    /// <summary>EPTP (SDM vol. 3 §25.6.11): memory type write-back, a 4-level walk, no A/D flags
    /// (not enumerated), reserved bits 11:7 and above MAXPHYADDR clear.</summary>
    private string? CheckEptp(ulong eptp)
    {
        if ((eptp & 7) != 6) return $"the EPTP memory type {eptp & 7} is not write-back";
        if (((eptp >> 3) & 7) != 3) return $"the EPTP page-walk length {((eptp >> 3) & 7) + 1} is not 4";
        if ((eptp & (1UL << 6)) != 0) return "the EPTP enables accessed and dirty flags, which this processor does not support";
        if ((eptp & 0xF80) != 0 || (eptp >> _cpu.Model.MaxPhysAddrBits) != 0) return "the EPTP has reserved bits set";
        return null;
    }

    /// <summary>The checks on the guest-state area that matter for a correct guest (SDM vol. 3
    /// §27.3.1). Returns what is wrong, or null.</summary>
    public string? CheckGuestState(Vmcs vmcs)
    {
        ulong cr0 = vmcs[VmcsField.GuestCr0], cr3 = vmcs[VmcsField.GuestCr3], cr4 = vmcs[VmcsField.GuestCr4];
        var primary = (VmxPrimaryProcessorControls)vmcs[VmcsField.PrimaryProcessorBasedVmExecutionControls];
        var secondary = (primary & VmxPrimaryProcessorControls.ActivateSecondaryControls) != 0
            ? (VmxSecondaryProcessorControls)vmcs[VmcsField.SecondaryProcessorBasedVmExecutionControls] : VmxSecondaryProcessorControls.None;
        var entry = (VmxEntryControls)vmcs[VmcsField.VmEntryControls];
        bool unrestricted = (secondary & VmxSecondaryProcessorControls.UnrestrictedGuest) != 0;
        bool ia32e = (entry & VmxEntryControls.Ia32eModeGuest) != 0;
        ulong fixed0 = unrestricted ? VmxProcessorCapabilities.Cr0Fixed0 & ~(Cr0.Pe | Cr0.Pg) : VmxProcessorCapabilities.Cr0Fixed0;
        if (!VmxFixedBits.IsAllowed(cr0, fixed0, VmxProcessorCapabilities.Cr0Fixed1)) return $"CR0 0x{cr0:x} violates IA32_VMX_CR0_FIXED0/1";
        if ((cr0 & Cr0.Pg) != 0 && (cr0 & Cr0.Pe) == 0) return "CR0.PG is set and CR0.PE is clear";
        ulong cr4Fixed1 = _cpu.Cr4Supported | Cr4.Vmxe;
        if (!VmxFixedBits.IsAllowed(cr4, VmxProcessorCapabilities.Cr4Fixed0, cr4Fixed1)) return $"CR4 0x{cr4:x} violates IA32_VMX_CR4_FIXED0/1";
        if ((cr3 >> _cpu.Model.MaxPhysAddrBits) != 0) return "CR3 has bits set beyond the physical-address width";
        if (ia32e && ((cr0 & Cr0.Pg) == 0 || (cr4 & Cr4.Pae) == 0)) return "IA-32e mode guest is set and CR0.PG or CR4.PAE is clear";
        if (!ia32e && (cr4 & Cr4.Pcide) != 0) return "IA-32e mode guest is clear and CR4.PCIDE is set";
        if ((entry & VmxEntryControls.LoadIa32Efer) != 0)
        {
            ulong efer = vmcs[VmcsField.GuestIa32Efer];
            if ((efer & ~_cpu.EferSupported) != 0) return $"IA32_EFER 0x{efer:x} has reserved bits set";
            if (((efer & Efer.Lma) != 0) != ia32e) return "IA32_EFER.LMA differs from the IA-32e mode guest control";
            if ((cr0 & Cr0.Pg) != 0 && ((efer & Efer.Lma) != 0) != ((efer & Efer.Lme) != 0)) return "CR0.PG is set and IA32_EFER.LMA differs from IA32_EFER.LME";
        }
        if (vmcs[VmcsField.VmcsLinkPointer] != ulong.MaxValue) return "the VMCS link pointer is not FFFFFFFF_FFFFFFFFH (VMCS shadowing is off)";
        ulong rflags = vmcs[VmcsField.GuestRflags];
        if ((rflags & RFlags.Fixed1) == 0 || (rflags & ~RFlags.Defined) != 0) return $"RFLAGS 0x{rflags:x} has reserved bits wrong";
        if ((ia32e || (cr0 & Cr0.Pe) == 0) && (rflags & RFlags.Vm) != 0) return "RFLAGS.VM is set in IA-32e mode or with CR0.PE clear";
        uint csAr = (uint)vmcs[VmcsField.GuestCsAccessRights];
        bool csLong = (csAr & Segment.AttrL) != 0;
        if (ia32e && csLong && (csAr & Segment.AttrDb) != 0) return "CS.L and CS.D are both set in IA-32e mode";
        if ((!ia32e || !csLong) && (vmcs[VmcsField.GuestRip] >> 32) != 0) return "RIP has bits 63:32 set outside 64-bit mode";
        uint trAr = (uint)vmcs[VmcsField.GuestTrAccessRights];
        if ((trAr & VmxSegmentAr.Unusable) != 0 || (trAr & Segment.AttrP) == 0 || (trAr & Segment.AttrS) != 0) return "TR is unusable, not present, or not a system segment";
        if ((trAr & 0xF) != 11 && (ia32e || (trAr & 0xF) != 3)) return $"TR type {trAr & 0xF} is not a busy TSS";
        uint ldtrAr = (uint)vmcs[VmcsField.GuestLdtrAccessRights];
        if ((ldtrAr & VmxSegmentAr.Unusable) == 0 && ((ldtrAr & 0xF) != 2 || (ldtrAr & Segment.AttrS) != 0 || (ldtrAr & Segment.AttrP) == 0)) return "LDTR is usable and not a present LDT";
        if (!IsCanonical(vmcs[VmcsField.GuestGdtrBase]) || !IsCanonical(vmcs[VmcsField.GuestIdtrBase])) return "the GDTR or IDTR base is not canonical";
        if (vmcs[VmcsField.GuestActivityState] != 0) return $"activity state {vmcs[VmcsField.GuestActivityState]} is not supported (only active)";
        return null;
    }

    private static bool IsCanonical(ulong address) => (ulong)((long)(address << 16) >> 16) == address;
}

/// <summary>The VMX segment access-rights format (SDM vol. 3 §25.4.1): the descriptor's attribute
/// bits (type, S, DPL, P in 7:0; AVL, L, D/B, G in 15:12, the layout of <see cref="Segment.Attributes"/>)
/// and bit 16, "segment unusable".</summary>
public static class VmxSegmentAr
{
    public const uint Unusable = 1u << 16;

    /// <summary>A segment as the VMCS holds it: not present means unusable.</summary>
    public static uint FromSegment(in Segment s) => s.Attributes | (s.Present ? 0 : Unusable);

    public static ushort ToAttributes(ulong ar) => (ushort)(ar & 0xF0FF);
}
