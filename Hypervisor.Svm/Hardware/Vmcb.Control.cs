namespace Hypervisor.Svm.Hardware;

/// <summary>The control area, VMCB offsets 000h-3FFh (AMD APM vol. 2 table B-1).</summary>
public sealed partial class Vmcb
{
    /// <summary>000h bits 15:0: intercept reads of CR0-15 (bit n = CRn).</summary>
    public ushort InterceptCrRead { get => _page.Read16(VmcbOffset.InterceptCrRead); set => _page.Write16(VmcbOffset.InterceptCrRead, value); }

    /// <summary>000h bits 31:16: intercept writes of CR0-15.</summary>
    public ushort InterceptCrWrite { get => _page.Read16(VmcbOffset.InterceptCrWrite); set => _page.Write16(VmcbOffset.InterceptCrWrite, value); }

    /// <summary>004h bits 15:0: intercept reads of DR0-15.</summary>
    public ushort InterceptDrRead { get => _page.Read16(VmcbOffset.InterceptDrRead); set => _page.Write16(VmcbOffset.InterceptDrRead, value); }

    /// <summary>004h bits 31:16: intercept writes of DR0-15.</summary>
    public ushort InterceptDrWrite { get => _page.Read16(VmcbOffset.InterceptDrWrite); set => _page.Write16(VmcbOffset.InterceptDrWrite, value); }

    /// <summary>008h: intercept exception vectors 0-31 (bit n = vector n).</summary>
    public uint InterceptExceptions { get => _page.Read32(VmcbOffset.InterceptExceptions); set => _page.Write32(VmcbOffset.InterceptExceptions, value); }

    /// <summary>00Ch: INTR ... SHUTDOWN intercepts (<see cref="SvmIntercept.Intr"/> is bit 0).</summary>
    public uint InterceptMisc1 { get => _page.Read32(VmcbOffset.InterceptMisc1); set => _page.Write32(VmcbOffset.InterceptMisc1, value); }

    /// <summary>010h: VMRUN ... CR15 write trap intercepts (<see cref="SvmIntercept.Vmrun"/> is bit 0).</summary>
    public uint InterceptMisc2 { get => _page.Read32(VmcbOffset.InterceptMisc2); set => _page.Write32(VmcbOffset.InterceptMisc2, value); }

    /// <summary>014h: INVLPGB ... IDLE_HLT intercepts (<see cref="SvmIntercept.Invlpgb"/> is bit 0).</summary>
    public uint InterceptMisc3 { get => _page.Read32(VmcbOffset.InterceptMisc3); set => _page.Write32(VmcbOffset.InterceptMisc3, value); }

    /// <summary>03Ch: PAUSE_FILTER_THRESHOLD (cycles between PAUSEs that reset the count).</summary>
    public ushort PauseFilterThreshold { get => _page.Read16(VmcbOffset.PauseFilterThreshold); set => _page.Write16(VmcbOffset.PauseFilterThreshold, value); }

    /// <summary>03Eh: PAUSE_FILTER_COUNT (PAUSEs ignored before the PAUSE intercept fires).</summary>
    public ushort PauseFilterCount { get => _page.Read16(VmcbOffset.PauseFilterCount); set => _page.Write16(VmcbOffset.PauseFilterCount, value); }

    /// <summary>040h: IOPM_BASE_PA, physical address of the 12 KiB I/O permission map (bits 11:0 ignored).</summary>
    public ulong IopmBasePa { get => _page.Read64(VmcbOffset.IopmBasePa); set => _page.Write64(VmcbOffset.IopmBasePa, value); }

    /// <summary>048h: MSRPM_BASE_PA, physical address of the 8 KiB MSR permission map (bits 11:0 ignored).</summary>
    public ulong MsrpmBasePa { get => _page.Read64(VmcbOffset.MsrpmBasePa); set => _page.Write64(VmcbOffset.MsrpmBasePa, value); }

    /// <summary>050h: TSC_OFFSET, added (modulo 2^64) to the TSC the guest reads.</summary>
    public ulong TscOffset { get => _page.Read64(VmcbOffset.TscOffset); set => _page.Write64(VmcbOffset.TscOffset, value); }

    /// <summary>058h bits 31:0: guest ASID (0 is the host's and makes VMRUN fail).</summary>
    public uint GuestAsid { get => _page.Read32(VmcbOffset.GuestAsid); set => _page.Write32(VmcbOffset.GuestAsid, value); }

    /// <summary>05Ch: TLB_CONTROL.</summary>
    public TlbControl TlbControl { get => (TlbControl)_page.Read8(VmcbOffset.TlbControl); set => _page.Write8(VmcbOffset.TlbControl, (byte)value); }

    /// <summary>05Dh: erap_ctl (ERAPS).</summary>
    public ErapCtl ErapCtl { get => (ErapCtl)_page.Read8(VmcbOffset.ErapCtl); set => _page.Write8(VmcbOffset.ErapCtl, (byte)value); }

    /// <summary>060h: the whole virtual interrupt control field (bits in <see cref="Hardware.IntCtl"/>).</summary>
    public ulong IntCtl { get => _page.Read64(VmcbOffset.IntCtl); set => _page.Write64(VmcbOffset.IntCtl, value); }

    /// <summary>060h bits 7:0: V_TPR.</summary>
    public byte VTpr { get => _page.Read8(VmcbOffset.IntCtl); set => _page.Write8(VmcbOffset.IntCtl, value); }

    public bool VIrq { get => GetIntCtl(Hardware.IntCtl.VIrq); set => SetIntCtl(Hardware.IntCtl.VIrq, value); }
    public bool VGif { get => GetIntCtl(Hardware.IntCtl.VGif); set => SetIntCtl(Hardware.IntCtl.VGif, value); }
    public bool VNmi { get => GetIntCtl(Hardware.IntCtl.VNmi); set => SetIntCtl(Hardware.IntCtl.VNmi, value); }
    public bool VNmiMask { get => GetIntCtl(Hardware.IntCtl.VNmiMask); set => SetIntCtl(Hardware.IntCtl.VNmiMask, value); }

    /// <summary>060h bits 19:16: V_INTR_PRIO (0-15).</summary>
    public int VIntrPrio
    {
        get => (int)((IntCtl & Hardware.IntCtl.VIntrPrioMask) >> Hardware.IntCtl.VIntrPrioShift);
        set => IntCtl = (IntCtl & ~Hardware.IntCtl.VIntrPrioMask) | (((ulong)value << Hardware.IntCtl.VIntrPrioShift) & Hardware.IntCtl.VIntrPrioMask);
    }

    public bool VIgnTpr { get => GetIntCtl(Hardware.IntCtl.VIgnTpr); set => SetIntCtl(Hardware.IntCtl.VIgnTpr, value); }
    public bool VIntrMasking { get => GetIntCtl(Hardware.IntCtl.VIntrMasking); set => SetIntCtl(Hardware.IntCtl.VIntrMasking, value); }
    public bool VGifEnable { get => GetIntCtl(Hardware.IntCtl.VGifEnable); set => SetIntCtl(Hardware.IntCtl.VGifEnable, value); }
    public bool VNmiEnable { get => GetIntCtl(Hardware.IntCtl.VNmiEnable); set => SetIntCtl(Hardware.IntCtl.VNmiEnable, value); }
    public bool X2AvicEnable { get => GetIntCtl(Hardware.IntCtl.X2AvicEnable); set => SetIntCtl(Hardware.IntCtl.X2AvicEnable, value); }
    public bool AvicEnable { get => GetIntCtl(Hardware.IntCtl.AvicEnable); set => SetIntCtl(Hardware.IntCtl.AvicEnable, value); }

    /// <summary>060h bits 39:32 (byte 064h): V_INTR_VECTOR.</summary>
    public byte VIntrVector { get => _page.Read8(VmcbOffset.VIntrVector); set => _page.Write8(VmcbOffset.VIntrVector, value); }

    /// <summary>068h: interrupt state (bits in <see cref="Hardware.IntState"/>).</summary>
    public ulong IntState { get => _page.Read64(VmcbOffset.IntState); set => _page.Write64(VmcbOffset.IntState, value); }

    /// <summary>068h bit 0: INTERRUPT_SHADOW.</summary>
    public bool InterruptShadow
    {
        get => (IntState & Hardware.IntState.InterruptShadow) != 0;
        set => IntState = value ? IntState | Hardware.IntState.InterruptShadow : IntState & ~Hardware.IntState.InterruptShadow;
    }

    /// <summary>068h bit 1: GUEST_INTERRUPT_MASK (SEV-ES).</summary>
    public bool GuestInterruptMask
    {
        get => (IntState & Hardware.IntState.GuestInterruptMask) != 0;
        set => IntState = value ? IntState | Hardware.IntState.GuestInterruptMask : IntState & ~Hardware.IntState.GuestInterruptMask;
    }

    /// <summary>070h: EXITCODE (64 bits; the error codes are negative).</summary>
    public SvmExitCode ExitCode { get => (SvmExitCode)(long)_page.Read64(VmcbOffset.ExitCode); set => _page.Write64(VmcbOffset.ExitCode, (ulong)(long)value); }

    /// <summary>078h: EXITINFO1.</summary>
    public ulong ExitInfo1 { get => _page.Read64(VmcbOffset.ExitInfo1); set => _page.Write64(VmcbOffset.ExitInfo1, value); }

    /// <summary>080h: EXITINFO2.</summary>
    public ulong ExitInfo2 { get => _page.Read64(VmcbOffset.ExitInfo2); set => _page.Write64(VmcbOffset.ExitInfo2, value); }

    /// <summary>088h: EXITINTINFO, the event being delivered when the exit happened (<see cref="SvmEventInfo"/> format).</summary>
    public SvmEventInfo ExitIntInfo { get => new(_page.Read64(VmcbOffset.ExitIntInfo)); set => _page.Write64(VmcbOffset.ExitIntInfo, value.Raw); }

    /// <summary>090h: NP_ENABLE, SEV, SEV-ES and the other enables of <see cref="SvmMiscControl"/>.</summary>
    public SvmMiscControl MiscCtl { get => (SvmMiscControl)_page.Read64(VmcbOffset.MiscCtl); set => _page.Write64(VmcbOffset.MiscCtl, (ulong)value); }

    /// <summary>090h bit 0: NP_ENABLE.</summary>
    public bool NpEnable
    {
        get => (MiscCtl & SvmMiscControl.NpEnable) != 0;
        set => MiscCtl = value ? MiscCtl | SvmMiscControl.NpEnable : MiscCtl & ~SvmMiscControl.NpEnable;
    }

    /// <summary>098h bits 51:0: AVIC APIC_BAR (guest physical).</summary>
    public ulong AvicApicBar { get => _page.Read64(VmcbOffset.AvicApicBar); set => _page.Write64(VmcbOffset.AvicApicBar, value); }

    /// <summary>0A0h: guest physical address of the GHCB (SEV-ES).</summary>
    public ulong GhcbGpa { get => _page.Read64(VmcbOffset.GhcbGpa); set => _page.Write64(VmcbOffset.GhcbGpa, value); }

    /// <summary>0A8h: EVENTINJ, the event VMRUN injects into the guest.</summary>
    public SvmEventInfo EventInj { get => new(_page.Read64(VmcbOffset.EventInj)); set => _page.Write64(VmcbOffset.EventInj, value.Raw); }

    /// <summary>0B0h: N_CR3, the nested page table root (host physical).</summary>
    public ulong NCr3 { get => _page.Read64(VmcbOffset.NCr3); set => _page.Write64(VmcbOffset.NCr3, value); }

    /// <summary>0B8h: LBR virtualization and the other enables of <see cref="SvmMiscControl2"/>.</summary>
    public SvmMiscControl2 MiscCtl2 { get => (SvmMiscControl2)_page.Read64(VmcbOffset.MiscCtl2); set => _page.Write64(VmcbOffset.MiscCtl2, (ulong)value); }

    /// <summary>0C0h bits 31:0: VMCB clean bits.</summary>
    public VmcbClean CleanBits { get => (VmcbClean)_page.Read32(VmcbOffset.VmcbCleanBits); set => _page.Write32(VmcbOffset.VmcbCleanBits, (uint)value); }

    /// <summary>0C8h: nRIP, the RIP of the instruction after the intercepted one (NRIP save).</summary>
    public ulong NRip { get => _page.Read64(VmcbOffset.NRip); set => _page.Write64(VmcbOffset.NRip, value); }

    /// <summary>0D0h: number of guest instruction bytes fetched (decode assists, 0-15).</summary>
    public byte GuestInstructionBytesCount { get => _page.Read8(VmcbOffset.GuestInstructionBytesCount); set => _page.Write8(VmcbOffset.GuestInstructionBytesCount, value); }

    /// <summary>0D1h-0DFh: the guest instruction bytes fetched on #PF/#NPF (decode assists).</summary>
    public unsafe Span<byte> GuestInstructionBytes => new(_page.Base + VmcbOffset.GuestInstructionBytes, VmcbOffset.GuestInstructionBytesLength);

    /// <summary>0E0h bits 51:0: AVIC APIC_BACKING_PAGE pointer (host physical).</summary>
    public ulong AvicBackingPage { get => _page.Read64(VmcbOffset.AvicBackingPage); set => _page.Write64(VmcbOffset.AvicBackingPage, value); }

    /// <summary>0F0h bits 51:12: AVIC LOGICAL_TABLE pointer.</summary>
    public ulong AvicLogicalTable { get => _page.Read64(VmcbOffset.AvicLogicalTable); set => _page.Write64(VmcbOffset.AvicLogicalTable, value); }

    /// <summary>0F8h: AVIC PHYSICAL_TABLE pointer in bits 51:12, AVIC_PHYSICAL_MAX_INDEX in bits 11:0.</summary>
    public ulong AvicPhysicalTable { get => _page.Read64(VmcbOffset.AvicPhysicalTable); set => _page.Write64(VmcbOffset.AvicPhysicalTable, value); }

    /// <summary>0F8h bits 11:0: AVIC_PHYSICAL_MAX_INDEX.</summary>
    public int AvicPhysicalMaxIndex
    {
        get => (int)(AvicPhysicalTable & 0xFFF);
        set => AvicPhysicalTable = (AvicPhysicalTable & ~0xFFFUL) | ((ulong)value & 0xFFF);
    }

    /// <summary>108h: VMSA pointer, host physical address of an SEV-ES guest's save area.</summary>
    public ulong VmsaPa { get => _page.Read64(VmcbOffset.VmsaPa); set => _page.Write64(VmcbOffset.VmsaPa, value); }

    /// <summary>110h: VMGEXIT_RAX (SEV-ES).</summary>
    public ulong VmgexitRax { get => _page.Read64(VmcbOffset.VmgexitRax); set => _page.Write64(VmcbOffset.VmgexitRax, value); }

    /// <summary>118h bits 7:0: VMGEXIT_CPL (SEV-ES).</summary>
    public byte VmgexitCpl { get => _page.Read8(VmcbOffset.VmgexitCpl); set => _page.Write8(VmcbOffset.VmgexitCpl, value); }

    /// <summary>120h bits 15:0: bus lock threshold counter.</summary>
    public ushort BusLockThresholdCounter { get => _page.Read16(VmcbOffset.BusLockThresholdCounter); set => _page.Write16(VmcbOffset.BusLockThresholdCounter, value); }

    /// <summary>138h: ALLOWED_SEV_FEATURES (SEV-SNP).</summary>
    public ulong AllowedSevFeatures { get => _page.Read64(VmcbOffset.AllowedSevFeatures); set => _page.Write64(VmcbOffset.AllowedSevFeatures, value); }

    /// <summary>140h: GUEST_SEV_FEATURES (SEV-SNP).</summary>
    public ulong GuestSevFeatures { get => _page.Read64(VmcbOffset.GuestSevFeatures); set => _page.Write64(VmcbOffset.GuestSevFeatures, value); }

    /// <summary>3E0h-3FFh: reserved for the host; the processor never reads or writes it.</summary>
    public unsafe Span<byte> ReservedForHost => new(_page.Base + VmcbOffset.ReservedForHost, VmcbOffset.ReservedForHostLength);

    private bool GetIntCtl(ulong bit) => (IntCtl & bit) != 0;

    private void SetIntCtl(ulong bit, bool value) => IntCtl = value ? IntCtl | bit : IntCtl & ~bit;
}
