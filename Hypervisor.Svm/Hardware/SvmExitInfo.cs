using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Hypervisor.Svm.Hardware;

/// <summary>
/// EXITINFO1 of an IOIO intercept (APM vol. 2 §15.10.2, figure 15-2): TYPE bit 0 (1 = IN),
/// STR bit 2, REP bit 3, SZ8/SZ16/SZ32 bits 4-6 (one-hot operand size), A16/A32/A64 bits 7-9
/// (one-hot address size), SEG bits 12:10 (effective segment, decode assists), PORT bits 31:16.
/// EXITINFO2 holds the RIP of the next instruction.
/// </summary>
public readonly record struct SvmIoioInfo(ulong Raw)
{
    public const ulong TypeIn = 1UL << 0;
    public const ulong Str = 1UL << 2;
    public const ulong Rep = 1UL << 3;
    public const ulong Sz8 = 1UL << 4, Sz16 = 1UL << 5, Sz32 = 1UL << 6;
    public const ulong A16 = 1UL << 7, A32 = 1UL << 8, A64 = 1UL << 9;
    public const int SegShift = 10;
    public const ulong SegMask = 7UL << SegShift;
    public const int PortShift = 16;

    /// <summary>Builds the value the processor reports.</summary>
    /// <param name="port">the port accessed</param>
    /// <param name="size">operand size in bytes: 1, 2 or 4</param>
    /// <param name="addressSize">address size in bytes: 2, 4 or 8</param>
    /// <param name="segment">effective segment of OUTS (SDM encoding, ES = 0); INS always uses ES</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static SvmIoioInfo Create(ushort port, int size, int addressSize, bool isIn, bool isString = false, bool isRep = false, int segment = 0)
    {
        Debug.Assert(size is 1 or 2 or 4 && addressSize is 2 or 4 or 8);
        ulong v = ((ulong)port << PortShift) | SizeBit(size) | AddressSizeBit(addressSize) | ((ulong)(segment & 7) << SegShift);
        if (isIn) v |= TypeIn;
        if (isString) v |= Str;
        if (isRep) v |= Rep;
        return new SvmIoioInfo(v);
    }

    public ushort Port => (ushort)(Raw >> PortShift);
    public bool IsIn => (Raw & TypeIn) != 0;
    public bool IsString => (Raw & Str) != 0;
    public bool IsRep => (Raw & Rep) != 0;
    public int Segment => (int)((Raw & SegMask) >> SegShift);

    /// <summary>Operand size in bytes (1, 2, 4), or 0 if no size bit is set.</summary>
    public int Size => (Raw & Sz8) != 0 ? 1 : (Raw & Sz16) != 0 ? 2 : (Raw & Sz32) != 0 ? 4 : 0;

    /// <summary>Address size in bytes (2, 4, 8), or 0 if no address-size bit is set.</summary>
    public int AddressSize => (Raw & A16) != 0 ? 2 : (Raw & A32) != 0 ? 4 : (Raw & A64) != 0 ? 8 : 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong SizeBit(int size) => size switch { 1 => Sz8, 2 => Sz16, _ => Sz32 };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong AddressSizeBit(int addressSize) => addressSize switch { 2 => A16, 4 => A32, _ => A64 };
}

/// <summary>
/// EXITINFO1 of CR and DR access intercepts with decode assists (APM vol. 2 §15.35.1):
/// bits 3:0 hold the GPR operand; for CR accesses bit 63 is set when the instruction was
/// MOV CRn and clear for LMSW, CLTS and SMSW (whose operand the hypervisor must decode).
/// DR accesses are always MOV and report only the GPR.
/// </summary>
public readonly record struct SvmCrAccessInfo(ulong Raw)
{
    public const ulong GprMask = 0xF;
    public const ulong MovValid = 1UL << 63;

    /// <summary>MOV to/from CRn with <paramref name="gpr"/> as the other operand.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static SvmCrAccessInfo MovCr(int gpr) => new(MovValid | ((ulong)gpr & GprMask));

    /// <summary>A CR access by LMSW, CLTS or SMSW (no register information).</summary>
    public static SvmCrAccessInfo NotMov => default;

    /// <summary>MOV to/from DRn with <paramref name="gpr"/> as the other operand.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static SvmCrAccessInfo MovDr(int gpr) => new((ulong)gpr & GprMask);

    public bool IsMov => (Raw & MovValid) != 0;
    public int Gpr => (int)(Raw & GprMask);
}

/// <summary>
/// EXITINFO1 of a nested page fault (APM vol. 2 §15.25.6): the #PF error code bits describing
/// the access, plus bit 32 when the fault happened on the final guest-physical translation and
/// bit 33 when it happened while walking the guest's page tables. EXITINFO2 holds the faulting
/// guest physical address. Bits 31 and 34-36 are reported for SEV-SNP (RMP checks).
/// </summary>
[Flags]
public enum SvmNpfErrorCode : ulong
{
    None = 0,
    /// <summary>The nested page was present (protection violation); clear for a not-present fault.</summary>
    Present = 1UL << 0,
    /// <summary>The access was a write.</summary>
    Write = 1UL << 1,
    /// <summary>The access was a user-mode access.</summary>
    User = 1UL << 2,
    /// <summary>A reserved bit was set in a nested page table entry.</summary>
    ReservedBit = 1UL << 3,
    /// <summary>The access was an instruction fetch.</summary>
    InstructionFetch = 1UL << 4,
    /// <summary>Protection key violation.</summary>
    ProtectionKey = 1UL << 5,
    /// <summary>Shadow stack access.</summary>
    ShadowStack = 1UL << 6,
    /// <summary>RMP violation (SEV-SNP).</summary>
    Rmp = 1UL << 31,
    /// <summary>The fault occurred translating the final guest physical address.</summary>
    FinalTranslation = 1UL << 32,
    /// <summary>The fault occurred translating a guest page table access.</summary>
    PageTableWalk = 1UL << 33,
    /// <summary>Encrypted access (SEV-SNP).</summary>
    Encrypted = 1UL << 34,
    /// <summary>Page size mismatch between the nested page and the RMP entry (SEV-SNP).</summary>
    SizeMismatch = 1UL << 35,
    /// <summary>VMPL permission violation (SEV-SNP).</summary>
    Vmpl = 1UL << 36,
}

/// <summary>
/// EXITINFO2 of a task switch intercept (APM vol. 2 §15.9, table 15-8); EXITINFO1 holds the
/// selector of the target TSS. Bits 31:0 carry the error code to push, bit 36 says the switch
/// came from IRET, bit 38 from a far JMP, bit 44 that an error code is to be pushed, bit 48
/// is the RFLAGS.RF value to save in the outgoing TSS.
/// </summary>
public readonly record struct SvmTaskSwitchInfo(ulong Raw)
{
    public const ulong Iret = 1UL << 36;
    public const ulong Jmp = 1UL << 38;
    public const ulong ErrorCodeValid = 1UL << 44;
    public const ulong Rf = 1UL << 48;

    public static SvmTaskSwitchInfo Create(bool iret, bool jmp, bool rf, uint? errorCode = null)
    {
        ulong v = errorCode is uint e ? e | ErrorCodeValid : 0;
        if (iret) v |= Iret;
        if (jmp) v |= Jmp;
        if (rf) v |= Rf;
        return new SvmTaskSwitchInfo(v);
    }

    public bool IsIret => (Raw & Iret) != 0;
    public bool IsJmp => (Raw & Jmp) != 0;
    public bool HasErrorCode => (Raw & ErrorCodeValid) != 0;
    public uint ErrorCode => (uint)Raw;
    public bool RfValue => (Raw & Rf) != 0;
}

/// <summary>
/// What the processor stores in EXITINFO1/EXITINFO2 for the remaining intercepts (APM vol. 2
/// §15.7-§15.13, §15.35 decode assists). Intercepts not listed here leave both undefined.
/// </summary>
public static class SvmExitInfo
{
    /// <summary>MSR intercept EXITINFO1: 0 for RDMSR.</summary>
    public const ulong MsrRead = 0;
    /// <summary>MSR intercept EXITINFO1: 1 for WRMSR.</summary>
    public const ulong MsrWrite = 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Msr(bool write) => write ? MsrWrite : MsrRead;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsMsrWrite(ulong exitInfo1) => (exitInfo1 & 1) != 0;

    /// <summary>
    /// Exception intercepts: EXITINFO1 holds the error code when the exception pushes one
    /// (see <see cref="ExceptionHasErrorCode"/>); for #PF EXITINFO2 holds the faulting linear
    /// address (the value CR2 would get; CR2 itself is not written).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (ulong ExitInfo1, ulong ExitInfo2) PageFault(uint errorCode, ulong faultAddress) => (errorCode, faultAddress);

    /// <summary>Vectors whose delivery pushes an error code: #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool ExceptionHasErrorCode(int vector) => (uint)vector < 32 && ((ErrorCodeVectors >> vector) & 1) != 0;

    private const uint ErrorCodeVectors = (1u << 8) | (1u << 10) | (1u << 11) | (1u << 12) | (1u << 13) | (1u << 14) | (1u << 17) | (1u << 21) | (1u << 29) | (1u << 30);

    /// <summary>Nested page fault: EXITINFO1 = error code, EXITINFO2 = guest physical address.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (ulong ExitInfo1, ulong ExitInfo2) Npf(SvmNpfErrorCode errorCode, ulong guestPhysical) => ((ulong)errorCode, guestPhysical);

    /// <summary>INVLPG with decode assists: EXITINFO1 = the linear address operand.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Invlpg(ulong linearAddress) => linearAddress;

    /// <summary>INVPCID: EXITINFO1 = linear address of the 16-byte descriptor, EXITINFO2 = the type (register operand).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (ulong ExitInfo1, ulong ExitInfo2) Invpcid(ulong descriptorAddress, ulong type) => (descriptorAddress, type);

    /// <summary>INTn with decode assists: EXITINFO1 = the vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Swint(byte vector) => vector;

    /// <summary>EFER and CRn write traps: EXITINFO1 = the value the instruction wrote.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong WriteTrap(ulong newValue) => newValue;

    /// <summary>IOIO: EXITINFO2 = RIP of the instruction after the IN/OUT.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (ulong ExitInfo1, ulong ExitInfo2) Ioio(SvmIoioInfo info, ulong nextRip) => (info.Raw, nextRip);

    /// <summary>Task switch: EXITINFO1 = target TSS selector, EXITINFO2 = <see cref="SvmTaskSwitchInfo"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (ulong ExitInfo1, ulong ExitInfo2) TaskSwitch(ushort tssSelector, SvmTaskSwitchInfo info) => (tssSelector, info.Raw);
}
