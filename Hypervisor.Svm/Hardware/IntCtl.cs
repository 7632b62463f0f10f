namespace Hypervisor.Svm.Hardware;

/// <summary>
/// The virtual interrupt control field at VMCB offset 060h (64 bits; APM vol. 2 table B-1,
/// §15.21). Bit 10 is not documented. Linux splits it into int_ctl (060h, bits 31:0) and
/// int_vector (064h, bits 39:32).
/// </summary>
public static class IntCtl
{
    /// <summary>V_TPR, bits 7:0: the guest's virtual TPR; bits 3:0 hold the value, bits 7:4 are SBZ.</summary>
    public const ulong VTprMask = 0xFF;
    /// <summary>V_IRQ, bit 8: a virtual INTR is pending. Ignored on VMRUN with AVIC enabled.</summary>
    public const ulong VIrq = 1UL << 8;
    /// <summary>V_GIF, bit 9: virtual GIF value (1 = virtual interrupts unmasked).</summary>
    public const ulong VGif = 1UL << 9;
    /// <summary>V_NMI, bit 11: a virtual NMI is pending.</summary>
    public const ulong VNmi = 1UL << 11;
    /// <summary>V_NMI_MASK, bit 12: virtual NMIs are masked.</summary>
    public const ulong VNmiMask = 1UL << 12;
    /// <summary>V_INTR_PRIO, bits 19:16: priority of the pending virtual interrupt.</summary>
    public const int VIntrPrioShift = 16;
    public const ulong VIntrPrioMask = 0xFUL << VIntrPrioShift;
    /// <summary>V_IGN_TPR, bit 20: the pending virtual interrupt ignores the virtual TPR.</summary>
    public const ulong VIgnTpr = 1UL << 20;
    /// <summary>V_INTR_MASKING, bit 24: virtualize masking of INTR (the guest's RFLAGS.IF and TPR
    /// govern only virtual interrupts; the host's IF governs physical ones).</summary>
    public const ulong VIntrMasking = 1UL << 24;
    /// <summary>V_GIF_ENABLE, bit 25: virtual GIF is enabled for this guest.</summary>
    public const ulong VGifEnable = 1UL << 25;
    /// <summary>V_NMI_ENABLE, bit 26: NMI virtualization is enabled.</summary>
    public const ulong VNmiEnable = 1UL << 26;
    /// <summary>x2AVIC enable, bit 30 (requires <see cref="AvicEnable"/>).</summary>
    public const ulong X2AvicEnable = 1UL << 30;
    /// <summary>AVIC enable, bit 31.</summary>
    public const ulong AvicEnable = 1UL << 31;
    /// <summary>V_INTR_VECTOR, bits 39:32: vector of the pending virtual interrupt.</summary>
    public const int VIntrVectorShift = 32;
    public const ulong VIntrVectorMask = 0xFFUL << VIntrVectorShift;
    /// <summary>Bits the APM marks reserved (SBZ): 15:13, 23:21, 29:27 and 63:40; bit 10 is undocumented.</summary>
    public const ulong Reserved = (0x7UL << 13) | (0x7UL << 21) | (0x7UL << 27) | (0xFFFFFFUL << 40) | (1UL << 10);
}

/// <summary>The interrupt state field at VMCB offset 068h (APM vol. 2 table B-1).</summary>
public static class IntState
{
    /// <summary>INTERRUPT_SHADOW, bit 0: the guest is in an interrupt shadow (after STI or MOV SS).</summary>
    public const ulong InterruptShadow = 1UL << 0;
    /// <summary>GUEST_INTERRUPT_MASK, bit 1: the guest's RFLAGS.IF, written on #VMEXIT of an SEV-ES guest.</summary>
    public const ulong GuestInterruptMask = 1UL << 1;
}
