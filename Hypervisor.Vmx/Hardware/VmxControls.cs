namespace Hypervisor.Vmx.Hardware;

/// <summary>Pin-based VM-execution controls, VMCS 4000h (SDM §25.6.1).</summary>
[Flags]
public enum VmxPinBasedControls : uint
{
    None = 0,
    ExternalInterruptExiting = 1u << 0,
    NmiExiting = 1u << 3,
    VirtualNmis = 1u << 5,
    ActivateVmxPreemptionTimer = 1u << 6,
    ProcessPostedInterrupts = 1u << 7,
}

/// <summary>Primary processor-based VM-execution controls, VMCS 4002h (SDM §25.6.2).</summary>
[Flags]
public enum VmxPrimaryProcessorControls : uint
{
    None = 0,
    InterruptWindowExiting = 1u << 2,
    UseTscOffsetting = 1u << 3,
    HltExiting = 1u << 7,
    InvlpgExiting = 1u << 9,
    MwaitExiting = 1u << 10,
    RdpmcExiting = 1u << 11,
    RdtscExiting = 1u << 12,
    Cr3LoadExiting = 1u << 15,
    Cr3StoreExiting = 1u << 16,
    ActivateTertiaryControls = 1u << 17,
    Cr8LoadExiting = 1u << 19,
    Cr8StoreExiting = 1u << 20,
    UseTprShadow = 1u << 21,
    NmiWindowExiting = 1u << 22,
    MovDrExiting = 1u << 23,
    UnconditionalIoExiting = 1u << 24,
    UseIoBitmaps = 1u << 25,
    MonitorTrapFlag = 1u << 27,
    UseMsrBitmaps = 1u << 28,
    MonitorExiting = 1u << 29,
    PauseExiting = 1u << 30,
    ActivateSecondaryControls = 1u << 31,
}

/// <summary>Secondary processor-based VM-execution controls, VMCS 401Eh (SDM §25.6.2).</summary>
[Flags]
public enum VmxSecondaryProcessorControls : uint
{
    None = 0,
    VirtualizeApicAccesses = 1u << 0,
    EnableEpt = 1u << 1,
    DescriptorTableExiting = 1u << 2,
    EnableRdtscp = 1u << 3,
    VirtualizeX2ApicMode = 1u << 4,
    EnableVpid = 1u << 5,
    WbinvdExiting = 1u << 6,
    UnrestrictedGuest = 1u << 7,
    ApicRegisterVirtualization = 1u << 8,
    VirtualInterruptDelivery = 1u << 9,
    PauseLoopExiting = 1u << 10,
    RdrandExiting = 1u << 11,
    EnableInvpcid = 1u << 12,
    EnableVmFunctions = 1u << 13,
    VmcsShadowing = 1u << 14,
    EnableEnclsExiting = 1u << 15,
    RdseedExiting = 1u << 16,
    EnablePml = 1u << 17,
    EptViolationVe = 1u << 18,
    ConcealVmxFromPt = 1u << 19,
    EnableXsavesXrstors = 1u << 20,
    PasidTranslation = 1u << 21,
    ModeBasedExecuteControlForEpt = 1u << 22,
    SubPageWritePermissionsForEpt = 1u << 23,
    PtUsesGuestPhysicalAddresses = 1u << 24,
    UseTscScaling = 1u << 25,
    EnableUserWaitAndPause = 1u << 26,
    EnablePconfig = 1u << 27,
    EnableEnclvExiting = 1u << 28,
    VmmBusLockDetection = 1u << 30,
    InstructionTimeout = 1u << 31,
}

/// <summary>Primary VM-exit controls, VMCS 400Ch (SDM §25.7.1).</summary>
[Flags]
public enum VmxExitControls : uint
{
    None = 0,
    SaveDebugControls = 1u << 2,
    HostAddressSpaceSize = 1u << 9,
    LoadIa32PerfGlobalCtrl = 1u << 12,
    AcknowledgeInterruptOnExit = 1u << 15,
    SaveIa32Pat = 1u << 18,
    LoadIa32Pat = 1u << 19,
    SaveIa32Efer = 1u << 20,
    LoadIa32Efer = 1u << 21,
    SaveVmxPreemptionTimerValue = 1u << 22,
    ClearIa32Bndcfgs = 1u << 23,
    ConcealVmxFromPt = 1u << 24,
    ClearIa32RtitCtl = 1u << 25,
    ClearIa32LbrCtl = 1u << 26,
    ClearUinv = 1u << 27,
    LoadCetState = 1u << 28,
    LoadPkrs = 1u << 29,
    SaveIa32PerfGlobalCtrl = 1u << 30,
    ActivateSecondaryControls = 1u << 31,
}

/// <summary>VM-entry controls, VMCS 4012h (SDM §25.8.1).</summary>
[Flags]
public enum VmxEntryControls : uint
{
    None = 0,
    LoadDebugControls = 1u << 2,
    Ia32eModeGuest = 1u << 9,
    EntryToSmm = 1u << 10,
    DeactivateDualMonitorTreatment = 1u << 11,
    LoadIa32PerfGlobalCtrl = 1u << 13,
    LoadIa32Pat = 1u << 14,
    LoadIa32Efer = 1u << 15,
    LoadIa32Bndcfgs = 1u << 16,
    ConcealVmxFromPt = 1u << 17,
    LoadIa32RtitCtl = 1u << 18,
    LoadUinv = 1u << 19,
    LoadCetState = 1u << 20,
    LoadGuestIa32LbrCtl = 1u << 21,
    LoadPkrs = 1u << 22,
    LoadFred = 1u << 23,
}

/// <summary>Secondary VM-exit controls, VMCS 2044h (64 bits; active with primary exit control bit 31, SDM §25.7.1).</summary>
[Flags]
public enum VmxSecondaryExitControls : ulong
{
    None = 0,
    SaveFred = 1UL << 0,
    LoadFred = 1UL << 1,
}
