namespace Hypervisor.Vmx.Hardware;

/// <summary>
/// VM-instruction error numbers (SDM vol. 3 §31.4, table 31-1): the value a VMX instruction
/// that ends in VMfailValid stores in the VM-instruction error field (encoding 4400h).
/// <see cref="None"/> is this project's "the instruction succeeded"; the SDM assigns no 0.
/// </summary>
public enum VmxInstructionError : uint
{
    None = 0,
    VmcallInVmxRootOperation = 1,
    VmclearInvalidAddress = 2,
    VmclearWithVmxonPointer = 3,
    VmlaunchNonClearVmcs = 4,
    VmresumeNonLaunchedVmcs = 5,
    VmresumeAfterVmxoff = 6,
    VmEntryInvalidControlFields = 7,
    VmEntryInvalidHostStateFields = 8,
    VmptrldInvalidAddress = 9,
    VmptrldWithVmxonPointer = 10,
    VmptrldIncorrectRevisionId = 11,
    UnsupportedVmcsComponent = 12,
    VmwriteReadOnlyComponent = 13,
    VmxonInVmxRootOperation = 15,
    VmEntryInvalidExecutiveVmcsPointer = 16,
    VmEntryNonLaunchedExecutiveVmcs = 17,
    VmEntryExecutiveVmcsPointerNotVmxonPointer = 18,
    VmcallNonClearVmcs = 19,
    VmcallInvalidVmExitControlFields = 20,
    VmcallIncorrectMsegRevisionId = 22,
    VmxoffUnderDualMonitorTreatment = 23,
    VmcallInvalidSmmMonitorFeatures = 24,
    VmEntryInvalidExecutionControlsInExecutiveVmcs = 25,
    VmEntryEventsBlockedByMovSs = 26,
    InvalidOperandToInveptInvvpid = 28,
}
