using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Hypervisor.Vmx.Hardware;

/// <summary>Access type of a control-register access exit, bits 5:4 (SDM §28.2.1, exit qualification for CR accesses).</summary>
public enum VmxCrAccessType
{
    MovToCr = 0,
    MovFromCr = 1,
    Clts = 2,
    Lmsw = 3,
}

/// <summary>
/// Exit qualification of a control-register access (basic reason 28, SDM §28.2.1): bits 3:0 the
/// control register (0 for CLTS and LMSW), bits 5:4 the access type, bit 6 the LMSW operand
/// (0 register, 1 memory), bits 11:8 the general-purpose register of MOV CR, bits 31:16 the
/// LMSW source data.
/// </summary>
public readonly record struct VmxCrAccessQualification(ulong Raw)
{
    public const ulong CrMask = 0xF;
    public const int AccessTypeShift = 4;
    public const ulong LmswMemoryOperand = 1UL << 6;
    public const int GprShift = 8;
    public const int LmswSourceShift = 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static VmxCrAccessQualification MovToCr(int cr, int gpr) => new(((ulong)cr & CrMask) | ((ulong)(gpr & 0xF) << GprShift));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static VmxCrAccessQualification MovFromCr(int cr, int gpr)
        => new(((ulong)cr & CrMask) | ((ulong)VmxCrAccessType.MovFromCr << AccessTypeShift) | ((ulong)(gpr & 0xF) << GprShift));

    public static VmxCrAccessQualification Clts => new((ulong)VmxCrAccessType.Clts << AccessTypeShift);

    /// <summary>LMSW with its 16-bit source; <paramref name="memoryOperand"/> when the operand came from memory.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static VmxCrAccessQualification Lmsw(ushort source, bool memoryOperand)
        => new(((ulong)VmxCrAccessType.Lmsw << AccessTypeShift) | (memoryOperand ? LmswMemoryOperand : 0) | ((ulong)source << LmswSourceShift));

    public int ControlRegister => (int)(Raw & CrMask);
    public VmxCrAccessType AccessType => (VmxCrAccessType)((Raw >> AccessTypeShift) & 3);
    public bool IsLmswMemoryOperand => (Raw & LmswMemoryOperand) != 0;
    public int Gpr => (int)((Raw >> GprShift) & 0xF);
    public ushort LmswSource => (ushort)(Raw >> LmswSourceShift);
}

/// <summary>
/// Exit qualification of MOV DR (basic reason 29, SDM §28.2.1): bits 2:0 the debug register,
/// bit 4 direction (0 MOV to DR, 1 MOV from DR), bits 11:8 the general-purpose register.
/// </summary>
public readonly record struct VmxMovDrQualification(ulong Raw)
{
    public const ulong DrMask = 0x7;
    public const ulong FromDr = 1UL << 4;
    public const int GprShift = 8;

    public static VmxMovDrQualification Create(int dr, int gpr, bool fromDr)
        => new(((ulong)dr & DrMask) | (fromDr ? FromDr : 0) | ((ulong)(gpr & 0xF) << GprShift));

    public int DebugRegister => (int)(Raw & DrMask);
    public bool IsFromDr => (Raw & FromDr) != 0;
    public int Gpr => (int)((Raw >> GprShift) & 0xF);
}

/// <summary>
/// Exit qualification of an I/O instruction (basic reason 30, SDM §28.2.1): bits 2:0 size minus
/// one (0 = 1 byte, 1 = 2 bytes, 3 = 4 bytes), bit 3 direction (1 = IN), bit 4 string
/// instruction, bit 5 REP prefixed, bit 6 operand encoding (0 = DX, 1 = immediate), bits 31:16
/// the port. For string instructions the guest-linear-address field holds the linear address
/// and the instruction-information field the address size and segment.
/// </summary>
public readonly record struct VmxIoQualification(ulong Raw)
{
    public const ulong SizeMask = 0x7;
    public const ulong DirectionIn = 1UL << 3;
    public const ulong String = 1UL << 4;
    public const ulong Rep = 1UL << 5;
    public const ulong ImmediateOperand = 1UL << 6;
    public const int PortShift = 16;

    /// <param name="size">operand size in bytes: 1, 2 or 4</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static VmxIoQualification Create(ushort port, int size, bool isIn, bool isString = false, bool isRep = false, bool isImmediate = false)
    {
        Debug.Assert(size is 1 or 2 or 4);
        ulong v = (uint)(size - 1) | ((ulong)port << PortShift);
        if (isIn) v |= DirectionIn;
        if (isString) v |= String;
        if (isRep) v |= Rep;
        if (isImmediate) v |= ImmediateOperand;
        return new VmxIoQualification(v);
    }

    /// <summary>Access size in bytes (1, 2 or 4).</summary>
    public int Size => (int)(Raw & SizeMask) + 1;
    public bool IsIn => (Raw & DirectionIn) != 0;
    public bool IsString => (Raw & String) != 0;
    public bool IsRep => (Raw & Rep) != 0;
    public bool IsImmediate => (Raw & ImmediateOperand) != 0;
    public ushort Port => (ushort)(Raw >> PortShift);
}

/// <summary>
/// Exit qualification of an EPT violation (basic reason 48, SDM §28.2.1): bits 0-2 the access
/// (data read, data write, instruction fetch); bits 3-5 the AND of the read, write and
/// execute bits of the EPT entries walked (bit 5 the supervisor-execute bit with mode-based
/// execute control), bit 6 user-mode execute; bit 7 guest-linear-address field valid; bit 8
/// (when bit 7 is set) the access was to the translated address rather than a paging-structure
/// entry; bits 9-11 with advanced VM-exit information: user-mode, writable, execute-disable of
/// the linear address; bit 12 NMI unblocking due to IRET; bit 13 shadow-stack access; bit 14
/// supervisor shadow-stack page.
/// </summary>
public readonly record struct VmxEptViolationQualification(ulong Raw)
{
    public const ulong DataRead = 1UL << 0;
    public const ulong DataWrite = 1UL << 1;
    public const ulong InstructionFetch = 1UL << 2;
    public const ulong EptReadable = 1UL << 3;
    public const ulong EptWritable = 1UL << 4;
    public const ulong EptExecutable = 1UL << 5;
    public const ulong EptUserExecutable = 1UL << 6;
    public const ulong GuestLinearAddressValid = 1UL << 7;
    public const ulong TranslatedAccess = 1UL << 8;
    public const ulong UserModeLinearAddress = 1UL << 9;
    public const ulong WritableLinearAddress = 1UL << 10;
    public const ulong ExecuteDisableLinearAddress = 1UL << 11;
    public const ulong NmiUnblockingDueToIret = 1UL << 12;
    public const ulong ShadowStackAccess = 1UL << 13;
    public const ulong SupervisorShadowStack = 1UL << 14;
    public const int EptPermissionShift = 3;

    /// <param name="access">bits 2:0: read 1, write 2, fetch 4</param>
    /// <param name="eptPermissions">bits 2:0 of the combined EPT entries (R, W, X)</param>
    /// <param name="linearAddressValid">the access had a guest linear address</param>
    /// <param name="translated">the access was to the final translation, not a guest paging-structure entry</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static VmxEptViolationQualification Create(int access, int eptPermissions, bool linearAddressValid, bool translated)
    {
        ulong v = ((ulong)access & 7) | (((ulong)eptPermissions & 7) << EptPermissionShift);
        if (linearAddressValid)
        {
            v |= GuestLinearAddressValid;
            if (translated) v |= TranslatedAccess;
        }
        return new VmxEptViolationQualification(v);
    }

    public bool IsRead => (Raw & DataRead) != 0;
    public bool IsWrite => (Raw & DataWrite) != 0;
    public bool IsFetch => (Raw & InstructionFetch) != 0;
    /// <summary>Bits 5:3: the R/W/X permission of the translation (0 when the entry was not present).</summary>
    public int EptPermissions => (int)((Raw >> EptPermissionShift) & 7);
    public bool IsGuestLinearAddressValid => (Raw & GuestLinearAddressValid) != 0;
    public bool IsTranslatedAccess => (Raw & TranslatedAccess) != 0;
    public bool IsNmiUnblockingDueToIret => (Raw & NmiUnblockingDueToIret) != 0;
}

/// <summary>
/// Exit qualification of a debug exception (#DB intercepted by the exception bitmap, or an
/// MTF/trap, SDM §28.2.1): bits 3:0 B0-B3, bit 11 BLD (bus lock), bit 13 BD, bit 14 BS, bit 16
/// RTM. The processor does not update DR6 when the #DB causes the VM exit.
/// </summary>
public readonly record struct VmxDebugQualification(ulong Raw)
{
    public const ulong BreakpointMask = 0xF;
    public const ulong BusLock = 1UL << 11;
    public const ulong Bd = 1UL << 13;
    public const ulong Bs = 1UL << 14;
    public const ulong Rtm = 1UL << 16;

    /// <summary>Whether breakpoint condition n (0-3) was met.</summary>
    public bool IsBreakpointHit(int n) => (Raw & (1UL << n)) != 0;
    public bool IsSingleStep => (Raw & Bs) != 0;
    public bool IsDebugRegisterAccess => (Raw & Bd) != 0;
    public bool IsBusLock => (Raw & BusLock) != 0;
    public bool IsRtm => (Raw & Rtm) != 0;
}

/// <summary>Source of a task switch, bits 31:30 of its exit qualification (SDM §28.2.1).</summary>
public enum VmxTaskSwitchSource
{
    Call = 0,
    Iret = 1,
    Jmp = 2,
    TaskGateInIdt = 3,
}

/// <summary>Exit qualification of a task switch (basic reason 9): bits 15:0 the TSS selector, bits 31:30 the source.</summary>
public readonly record struct VmxTaskSwitchQualification(ulong Raw)
{
    public static VmxTaskSwitchQualification Create(ushort selector, VmxTaskSwitchSource source) => new(selector | ((ulong)source << 30));

    public ushort Selector => (ushort)Raw;
    public VmxTaskSwitchSource Source => (VmxTaskSwitchSource)((Raw >> 30) & 3);
}
