namespace Hypervisor.Vmx.Hardware;

/// <summary>
/// What the emulated processor reports in its VMX capability MSRs (SDM vol. 3 appendix A): the
/// revision identifier, the allowed 0- and 1-settings of each control, CR0/CR4 fixed bits and the
/// EPT/VPID capabilities. VM entry checks the controls against these; the hypervisor adjusts its
/// wanted controls with them, as KVM's setup_vmcs_config does.
/// </summary>
public static class VmxProcessorCapabilities
{
    /// <summary>IA32_VMX_BASIC[30:0].</summary>
    public const uint RevisionId = 0x4;

    public static VmxBasic Basic { get; } =
        VmxBasic.Create(RevisionId, regionSize: 4096, VmxBasic.MemoryTypeWriteBack, insOutsInfo: true, trueControls: true);

    // The default1 classes of SDM appendix A.3-A.5 stay must-be-one; the TRUE_* MSRs would allow
    // clearing some of them, which this processor does not offer.
    public static VmxAllowedSettings PinBased { get; } = VmxAllowedSettings.Create(0x16,
        (uint)(VmxPinBasedControls.ExternalInterruptExiting | VmxPinBasedControls.NmiExiting | VmxPinBasedControls.VirtualNmis));

    public static VmxAllowedSettings PrimaryProcessorBased { get; } = VmxAllowedSettings.Create(0x0401_E172,
        (uint)(VmxPrimaryProcessorControls.InterruptWindowExiting | VmxPrimaryProcessorControls.UseTscOffsetting
            | VmxPrimaryProcessorControls.HltExiting | VmxPrimaryProcessorControls.InvlpgExiting | VmxPrimaryProcessorControls.MwaitExiting
            | VmxPrimaryProcessorControls.RdpmcExiting | VmxPrimaryProcessorControls.RdtscExiting | VmxPrimaryProcessorControls.Cr3LoadExiting
            | VmxPrimaryProcessorControls.Cr3StoreExiting | VmxPrimaryProcessorControls.Cr8LoadExiting | VmxPrimaryProcessorControls.Cr8StoreExiting
            | VmxPrimaryProcessorControls.MovDrExiting | VmxPrimaryProcessorControls.UnconditionalIoExiting | VmxPrimaryProcessorControls.UseIoBitmaps
            | VmxPrimaryProcessorControls.UseMsrBitmaps | VmxPrimaryProcessorControls.MonitorExiting | VmxPrimaryProcessorControls.PauseExiting
            | VmxPrimaryProcessorControls.ActivateSecondaryControls));

    public static VmxAllowedSettings SecondaryProcessorBased { get; } = VmxAllowedSettings.Create(0,
        (uint)(VmxSecondaryProcessorControls.EnableEpt | VmxSecondaryProcessorControls.EnableRdtscp | VmxSecondaryProcessorControls.EnableVpid
            | VmxSecondaryProcessorControls.WbinvdExiting | VmxSecondaryProcessorControls.UnrestrictedGuest | VmxSecondaryProcessorControls.EnableInvpcid));

    public static VmxAllowedSettings Exit { get; } = VmxAllowedSettings.Create(0x0003_6DFF,
        (uint)(VmxExitControls.SaveDebugControls | VmxExitControls.HostAddressSpaceSize | VmxExitControls.AcknowledgeInterruptOnExit
            | VmxExitControls.SaveIa32Pat | VmxExitControls.LoadIa32Pat | VmxExitControls.SaveIa32Efer | VmxExitControls.LoadIa32Efer));

    public static VmxAllowedSettings Entry { get; } = VmxAllowedSettings.Create(0x0000_11FF,
        (uint)(VmxEntryControls.LoadDebugControls | VmxEntryControls.Ia32eModeGuest | VmxEntryControls.LoadIa32Pat | VmxEntryControls.LoadIa32Efer));

    /// <summary>IA32_VMX_CR0_FIXED0: PE, NE, PG (PE and PG may be 0 for an unrestricted guest).</summary>
    public const ulong Cr0Fixed0 = 0x8000_0021;
    public const ulong Cr0Fixed1 = 0xFFFF_FFFF;
    /// <summary>IA32_VMX_CR4_FIXED0: VMXE.</summary>
    public const ulong Cr4Fixed0 = 0x2000;

    /// <summary>IA32_VMX_EPT_VPID_CAP: 4-level walks, write-back tables, 2 MiB and 1 GiB pages,
    /// INVEPT and INVVPID. No execute-only pages and no accessed/dirty flags.</summary>
    public const VmxEptVpidCapabilities EptVpid =
        VmxEptVpidCapabilities.PageWalkLength4 | VmxEptVpidCapabilities.MemoryTypeWriteBack | VmxEptVpidCapabilities.Pde2MiBPages
        | VmxEptVpidCapabilities.Pdpte1GiBPages | VmxEptVpidCapabilities.Invept | VmxEptVpidCapabilities.InveptSingleContext
        | VmxEptVpidCapabilities.InveptAllContext | VmxEptVpidCapabilities.Invvpid | VmxEptVpidCapabilities.InvvpidIndividualAddress
        | VmxEptVpidCapabilities.InvvpidSingleContext | VmxEptVpidCapabilities.InvvpidAllContext;

    /// <summary>The number of CR3-target values (IA32_VMX_MISC[24:16]).</summary>
    public const int Cr3TargetCount = 4;
}
