namespace Hypervisor.Svm.Hardware;

/// <summary>
/// Byte offsets of the VMCB fields, AMD APM vol. 2 appendix B: table B-1 (control area,
/// 000h-3FFh) and table B-2 (state save area, 400h-FFFh; the APM numbers it from 000h, here
/// the offsets are from the start of the VMCB page).
/// </summary>
public static class VmcbOffset
{
    // ---- Control area (table B-1) ----
    public const int InterceptCrRead = 0x000;      // 16 bits: CR0-15 reads
    public const int InterceptCrWrite = 0x002;     // 16 bits: CR0-15 writes
    public const int InterceptDrRead = 0x004;      // 16 bits: DR0-15 reads
    public const int InterceptDrWrite = 0x006;     // 16 bits: DR0-15 writes
    public const int InterceptExceptions = 0x008;  // 32 bits: exception vectors 0-31
    public const int InterceptMisc1 = 0x00C;       // 32 bits: INTR ... SHUTDOWN
    public const int InterceptMisc2 = 0x010;       // 32 bits: VMRUN ... CR write traps
    public const int InterceptMisc3 = 0x014;       // 32 bits: INVLPGB ... IDLE_HLT
    public const int PauseFilterThreshold = 0x03C; // 16 bits
    public const int PauseFilterCount = 0x03E;     // 16 bits
    public const int IopmBasePa = 0x040;
    public const int MsrpmBasePa = 0x048;
    public const int TscOffset = 0x050;
    public const int GuestAsid = 0x058;            // 32 bits
    public const int TlbControl = 0x05C;           // 8 bits
    public const int ErapCtl = 0x05D;              // 8 bits (KVM-FACTS §4)
    public const int IntCtl = 0x060;               // 64 bits: V_TPR ... V_INTR_VECTOR
    public const int VIntrVector = 0x064;          // bits 39:32 of the 060h field
    public const int IntState = 0x068;             // INTERRUPT_SHADOW, GUEST_INTERRUPT_MASK
    public const int ExitCode = 0x070;
    public const int ExitInfo1 = 0x078;
    public const int ExitInfo2 = 0x080;
    public const int ExitIntInfo = 0x088;          // 64 bits: info in 31:0, error code in 63:32
    public const int MiscCtl = 0x090;              // NP_ENABLE, SEV, SEV-ES, GMET, ...
    public const int AvicApicBar = 0x098;
    public const int GhcbGpa = 0x0A0;
    public const int EventInj = 0x0A8;             // 64 bits: info in 31:0, error code in 63:32
    public const int NCr3 = 0x0B0;
    public const int MiscCtl2 = 0x0B8;             // LBR virtualization, virtual VMSAVE/VMLOAD, IBS, PMC
    public const int VmcbCleanBits = 0x0C0;        // 32 bits
    public const int NRip = 0x0C8;
    public const int GuestInstructionBytesCount = 0x0D0; // 8 bits
    public const int GuestInstructionBytes = 0x0D1;      // 15 bytes
    public const int GuestInstructionBytesLength = 15;
    public const int AvicBackingPage = 0x0E0;
    public const int AvicLogicalTable = 0x0F0;
    public const int AvicPhysicalTable = 0x0F8;    // pointer in 51:12, AVIC_PHYSICAL_MAX_INDEX in 11:0
    public const int VmsaPa = 0x108;
    public const int VmgexitRax = 0x110;
    public const int VmgexitCpl = 0x118;           // 8 bits
    public const int BusLockThresholdCounter = 0x120; // 16 bits
    public const int AllowedSevFeatures = 0x138;
    public const int GuestSevFeatures = 0x140;
    public const int ReservedForHost = 0x3E0;      // 32 bytes the processor never touches
    public const int ReservedForHostLength = 0x20;

    // ---- State save area (table B-2, +400h) ----
    public const int SaveArea = 0x400;
    public const int SegmentSize = 16;             // selector 16, attrib 16, limit 32, base 64
    public const int SegmentSelector = 0, SegmentAttrib = 2, SegmentLimit = 4, SegmentBase = 8;
    public const int Es = 0x400;
    public const int Cs = 0x410;
    public const int Ss = 0x420;
    public const int Ds = 0x430;
    public const int Fs = 0x440;
    public const int Gs = 0x450;
    public const int Gdtr = 0x460;                 // only limit and base are used
    public const int Ldtr = 0x470;
    public const int Idtr = 0x480;                 // only limit and base are used
    public const int Tr = 0x490;
    public const int Vmpl = 0x4CA;                 // 8 bits, SEV-SNP
    public const int Cpl = 0x4CB;                  // 8 bits
    public const int Efer = 0x4D0;
    public const int Cr4 = 0x548;
    public const int Cr3 = 0x550;
    public const int Cr0 = 0x558;
    public const int Dr7 = 0x560;
    public const int Dr6 = 0x568;
    public const int Rflags = 0x570;
    public const int Rip = 0x578;
    public const int Rsp = 0x5D8;
    public const int SCet = 0x5E0;
    public const int Ssp = 0x5E8;
    public const int IsstAddr = 0x5F0;
    public const int Rax = 0x5F8;
    public const int Star = 0x600;
    public const int Lstar = 0x608;
    public const int Cstar = 0x610;
    public const int Sfmask = 0x618;
    public const int KernelGsBase = 0x620;
    public const int SysenterCs = 0x628;
    public const int SysenterEsp = 0x630;
    public const int SysenterEip = 0x638;
    public const int Cr2 = 0x640;
    public const int GPat = 0x668;
    public const int DbgCtl = 0x670;
    public const int BrFrom = 0x678;
    public const int BrTo = 0x680;
    public const int LastExcpFrom = 0x688;
    public const int LastExcpTo = 0x690;
    public const int SpecCtrl = 0x6E0;

    /// <summary>Size of the VMCB: one 4 KiB page.</summary>
    public const int Size = 0x1000;
}
