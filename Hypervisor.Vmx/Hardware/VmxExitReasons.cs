using System.Runtime.CompilerServices;

namespace Hypervisor.Vmx.Hardware;

/// <summary>
/// The 32-bit exit-reason field (VMCS 4402h, SDM §25.9.1, "Format of Exit Reason"):
/// bits 15:0 basic exit reason, bit 26 bus lock asserted, bit 27 VM exit from enclave mode,
/// bit 28 pending MTF VM exit, bit 29 VM exit from VMX root operation (SMM VM exits),
/// bit 31 VM-entry failure.
/// </summary>
public readonly record struct VmxExitReasonField(uint Raw)
{
    public const uint BusLockAsserted = 1u << 26;
    public const uint EnclaveMode = 1u << 27;
    public const uint PendingMtf = 1u << 28;
    public const uint FromVmxRoot = 1u << 29;
    public const uint VmEntryFailure = 1u << 31;

    /// <summary>A VM exit with this basic reason.</summary>
    public static VmxExitReasonField Exit(VmxExitReason reason) => new((uint)reason);

    /// <summary>A VM-entry failure (SDM §27.8): the basic reason (33, 34 or 41) with bit 31 set.</summary>
    public static VmxExitReasonField EntryFailure(VmxExitReason reason) => new((uint)reason | VmEntryFailure);

    public VmxExitReason Basic => (VmxExitReason)(ushort)Raw;
    public bool IsVmEntryFailure => (Raw & VmEntryFailure) != 0;
    public bool IsFromEnclaveMode => (Raw & EnclaveMode) != 0;
    public bool IsPendingMtf => (Raw & PendingMtf) != 0;
    public bool IsFromVmxRoot => (Raw & FromVmxRoot) != 0;
    public bool IsBusLockAsserted => (Raw & BusLockAsserted) != 0;
}

/// <summary>Log names and classification of <see cref="VmxExitReason"/> values (SDM appendix C).</summary>
public static class VmxExitReasons
{
    public const int Count = (int)VmxExitReason.Wrmsrlist + 1;

    private static readonly string?[] Names = BuildNames();

    /// <summary>The SDM-style name ("EXIT_REASON_CPUID"), or "EXIT_REASON_UNKNOWN" for unassigned numbers.</summary>
    public static string Name(VmxExitReason reason) => (int)reason < Count ? Names[(int)reason] ?? "EXIT_REASON_UNKNOWN" : "EXIT_REASON_UNKNOWN";

    /// <summary>Whether appendix C assigns this basic exit reason.</summary>
    public static bool IsDefined(VmxExitReason reason) => (int)reason < Count && Names[(int)reason] != null;

    /// <summary>The reasons a VM entry can fail with after its control and host-state checks (SDM §27.8).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsEntryFailureReason(VmxExitReason reason)
        => reason is VmxExitReason.EntryFailureInvalidGuestState or VmxExitReason.EntryFailureMsrLoading or VmxExitReason.EntryFailureMachineCheck;

    private static string?[] BuildNames()
    {
        var names = new string?[Count];
        void N(VmxExitReason r, string n) => names[(int)r] = "EXIT_REASON_" + n;
        N(VmxExitReason.ExceptionOrNmi, "EXCEPTION_NMI");
        N(VmxExitReason.ExternalInterrupt, "EXTERNAL_INTERRUPT");
        N(VmxExitReason.TripleFault, "TRIPLE_FAULT");
        N(VmxExitReason.InitSignal, "INIT_SIGNAL");
        N(VmxExitReason.StartupIpi, "SIPI_SIGNAL");
        N(VmxExitReason.IoSmi, "IO_SMI");
        N(VmxExitReason.OtherSmi, "OTHER_SMI");
        N(VmxExitReason.InterruptWindow, "INTERRUPT_WINDOW");
        N(VmxExitReason.NmiWindow, "NMI_WINDOW");
        N(VmxExitReason.TaskSwitch, "TASK_SWITCH");
        N(VmxExitReason.Cpuid, "CPUID");
        N(VmxExitReason.Getsec, "GETSEC");
        N(VmxExitReason.Hlt, "HLT");
        N(VmxExitReason.Invd, "INVD");
        N(VmxExitReason.Invlpg, "INVLPG");
        N(VmxExitReason.Rdpmc, "RDPMC");
        N(VmxExitReason.Rdtsc, "RDTSC");
        N(VmxExitReason.Rsm, "RSM");
        N(VmxExitReason.Vmcall, "VMCALL");
        N(VmxExitReason.Vmclear, "VMCLEAR");
        N(VmxExitReason.Vmlaunch, "VMLAUNCH");
        N(VmxExitReason.Vmptrld, "VMPTRLD");
        N(VmxExitReason.Vmptrst, "VMPTRST");
        N(VmxExitReason.Vmread, "VMREAD");
        N(VmxExitReason.Vmresume, "VMRESUME");
        N(VmxExitReason.Vmwrite, "VMWRITE");
        N(VmxExitReason.Vmxoff, "VMXOFF");
        N(VmxExitReason.Vmxon, "VMXON");
        N(VmxExitReason.ControlRegisterAccess, "CR_ACCESS");
        N(VmxExitReason.MovDr, "DR_ACCESS");
        N(VmxExitReason.IoInstruction, "IO_INSTRUCTION");
        N(VmxExitReason.Rdmsr, "MSR_READ");
        N(VmxExitReason.Wrmsr, "MSR_WRITE");
        N(VmxExitReason.EntryFailureInvalidGuestState, "INVALID_STATE");
        N(VmxExitReason.EntryFailureMsrLoading, "MSR_LOAD_FAIL");
        N(VmxExitReason.Mwait, "MWAIT_INSTRUCTION");
        N(VmxExitReason.MonitorTrapFlag, "MONITOR_TRAP_FLAG");
        N(VmxExitReason.Monitor, "MONITOR_INSTRUCTION");
        N(VmxExitReason.Pause, "PAUSE_INSTRUCTION");
        N(VmxExitReason.EntryFailureMachineCheck, "MCE_DURING_VMENTRY");
        N(VmxExitReason.TprBelowThreshold, "TPR_BELOW_THRESHOLD");
        N(VmxExitReason.ApicAccess, "APIC_ACCESS");
        N(VmxExitReason.VirtualizedEoi, "EOI_INDUCED");
        N(VmxExitReason.GdtrIdtrAccess, "GDTR_IDTR");
        N(VmxExitReason.LdtrTrAccess, "LDTR_TR");
        N(VmxExitReason.EptViolation, "EPT_VIOLATION");
        N(VmxExitReason.EptMisconfiguration, "EPT_MISCONFIG");
        N(VmxExitReason.Invept, "INVEPT");
        N(VmxExitReason.Rdtscp, "RDTSCP");
        N(VmxExitReason.VmxPreemptionTimerExpired, "PREEMPTION_TIMER");
        N(VmxExitReason.Invvpid, "INVVPID");
        N(VmxExitReason.Wbinvd, "WBINVD");
        N(VmxExitReason.Xsetbv, "XSETBV");
        N(VmxExitReason.ApicWrite, "APIC_WRITE");
        N(VmxExitReason.Rdrand, "RDRAND");
        N(VmxExitReason.Invpcid, "INVPCID");
        N(VmxExitReason.Vmfunc, "VMFUNC");
        N(VmxExitReason.Encls, "ENCLS");
        N(VmxExitReason.Rdseed, "RDSEED");
        N(VmxExitReason.PageModificationLogFull, "PML_FULL");
        N(VmxExitReason.Xsaves, "XSAVES");
        N(VmxExitReason.Xrstors, "XRSTORS");
        N(VmxExitReason.Pconfig, "PCONFIG");
        N(VmxExitReason.SppRelatedEvent, "SPP");
        N(VmxExitReason.Umwait, "UMWAIT");
        N(VmxExitReason.Tpause, "TPAUSE");
        N(VmxExitReason.Loadiwkey, "LOADIWKEY");
        N(VmxExitReason.Enclv, "ENCLV");
        N(VmxExitReason.EnqcmdPasidTranslationFailure, "ENQCMD_PASID_FAIL");
        N(VmxExitReason.EnqcmdsPasidTranslationFailure, "ENQCMDS_PASID_FAIL");
        N(VmxExitReason.BusLock, "BUS_LOCK");
        N(VmxExitReason.InstructionTimeout, "NOTIFY");
        N(VmxExitReason.Seamcall, "SEAMCALL");
        N(VmxExitReason.Tdcall, "TDCALL");
        N(VmxExitReason.Rdmsrlist, "RDMSRLIST");
        N(VmxExitReason.Wrmsrlist, "WRMSRLIST");
        return names;
    }
}
