namespace Hypervisor.Svm.Hardware;

/// <summary>The control bits at VMCB offset 090h (APM vol. 2 table B-1; Linux names the field misc_ctl).</summary>
[Flags]
public enum SvmMiscControl : ulong
{
    None = 0,
    /// <summary>NP_ENABLE: nested paging (§15.25).</summary>
    NpEnable = 1UL << 0,
    /// <summary>Secure Encrypted Virtualization.</summary>
    SevEnable = 1UL << 1,
    /// <summary>Encrypted state for SEV (SEV-ES).</summary>
    SevEsEnable = 1UL << 2,
    /// <summary>Guest Mode Execute Trap.</summary>
    GuestModeExecuteTrap = 1UL << 3,
    /// <summary>SSSCheckEn: supervisor shadow stack restrictions in nested page tables.</summary>
    SssCheckEn = 1UL << 4,
    /// <summary>Virtual Transparent Encryption.</summary>
    VirtualTransparentEncryption = 1UL << 5,
    /// <summary>Read-only guest page tables.</summary>
    ReadOnlyGuestPageTables = 1UL << 6,
    /// <summary>INVLPGB/TLBSYNC may execute in the guest (else #UD), when CPUID Fn8000_000A EDX[24] reports the bit.</summary>
    InvlpgbTlbsyncEnable = 1UL << 7,
}

/// <summary>The control bits at VMCB offset 0B8h (APM vol. 2 table B-1; Linux names the field misc_ctl2).</summary>
[Flags]
public enum SvmMiscControl2 : ulong
{
    None = 0,
    /// <summary>LBR virtualization: VMRUN/#VMEXIT swap DBGCTL and the LBR MSRs through the save area.</summary>
    LbrVirtualizationEnable = 1UL << 0,
    /// <summary>Virtualized VMSAVE/VMLOAD.</summary>
    VirtualVmsaveVmloadEnable = 1UL << 1,
    /// <summary>IBS virtualization (§15.38).</summary>
    IbsVirtualizationEnable = 1UL << 2,
    /// <summary>PMC virtualization (§15.39).</summary>
    PmcVirtualizationEnable = 1UL << 3,
}

/// <summary>
/// VMCB clean bits, offset 0C0h (APM vol. 2 §15.15.3): a set bit tells VMRUN that the named
/// fields did not change since the last #VMEXIT on this core, so cached copies may be used.
/// A clear bit forces a reload; all bits must be clear on a VMCB's first run.
/// </summary>
[Flags]
public enum VmcbClean : uint
{
    None = 0,
    /// <summary>I: all intercept vectors, TSC_OFFSET, the pause filter threshold and count.</summary>
    Intercepts = 1u << 0,
    /// <summary>IOMSRPM: IOPM_BASE_PA, MSRPM_BASE_PA.</summary>
    Iopm = 1u << 1,
    /// <summary>ASID.</summary>
    Asid = 1u << 2,
    /// <summary>TPR: V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING, V_INTR_VECTOR (060h-067h).</summary>
    Tpr = 1u << 3,
    /// <summary>NP: NP_ENABLE, N_CR3, G_PAT.</summary>
    Np = 1u << 4,
    /// <summary>CRx: CR0, CR3, CR4, EFER.</summary>
    Crx = 1u << 5,
    /// <summary>DRx: DR6, DR7.</summary>
    Drx = 1u << 6,
    /// <summary>DT: GDTR and IDTR limit and base.</summary>
    Dt = 1u << 7,
    /// <summary>SEG: CS, DS, SS, ES selector/base/limit/attributes, CPL.</summary>
    Seg = 1u << 8,
    /// <summary>CR2.</summary>
    Cr2 = 1u << 9,
    /// <summary>LBR: DBGCTL, BR_FROM/BR_TO, LASTEXCPFROM/LASTEXCPTO.</summary>
    Lbr = 1u << 10,
    /// <summary>AVIC: APIC_BAR, APIC_BACKING_PAGE, PHYSICAL_TABLE and LOGICAL_TABLE pointers.</summary>
    Avic = 1u << 11,
    /// <summary>CET: S_CET, SSP, ISST_ADDR.</summary>
    Cet = 1u << 12,
}
