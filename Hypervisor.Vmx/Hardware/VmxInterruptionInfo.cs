using System.Runtime.CompilerServices;

namespace Hypervisor.Vmx.Hardware;

/// <summary>Interruption type, bits 10:8 of the interruption-information fields (SDM §25.8.3, §25.9.2).</summary>
public enum VmxInterruptionType
{
    ExternalInterrupt = 0,
    NonMaskableInterrupt = 2,
    HardwareException = 3,
    SoftwareInterrupt = 4,
    PrivilegedSoftwareException = 5,
    SoftwareException = 6,
    OtherEvent = 7,
}

/// <summary>
/// The interruption-information format shared by the VM-exit interruption-information field
/// (4404h, SDM §25.9.2), the IDT-vectoring information field (4408h, §25.9.3) and the VM-entry
/// interruption-information field (4016h, §25.8.3): bits 7:0 vector, bits 10:8 type, bit 11
/// error code valid (for entry: deliver error code), bit 12 NMI unblocking due to IRET (exit
/// interruption information only; reserved on entry, undefined in IDT-vectoring), bit 31 valid.
/// </summary>
public readonly record struct VmxInterruptionInfo(uint Raw)
{
    public const uint VectorMask = 0xFF;
    public const int TypeShift = 8;
    public const uint TypeMask = 7u << TypeShift;
    public const uint ErrorCodeValid = 1u << 11;
    public const uint NmiUnblockingDueToIret = 1u << 12;
    public const uint Valid = 1u << 31;
    /// <summary>Bits 30:12 of the VM-entry field must be 0 (SDM §27.2.1.3).</summary>
    public const uint EntryReservedMask = 0x7FFF_F000;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static VmxInterruptionInfo Create(int vector, VmxInterruptionType type, bool hasErrorCode = false, bool nmiUnblocking = false)
        => new(Valid | ((uint)vector & VectorMask) | ((uint)type << TypeShift) | (hasErrorCode ? ErrorCodeValid : 0) | (nmiUnblocking ? NmiUnblockingDueToIret : 0));

    public int Vector => (int)(Raw & VectorMask);
    public VmxInterruptionType Type => (VmxInterruptionType)((Raw & TypeMask) >> TypeShift);
    public bool HasErrorCode => (Raw & ErrorCodeValid) != 0;
    public bool IsNmiUnblockingDueToIret => (Raw & NmiUnblockingDueToIret) != 0;
    public bool IsValid => (Raw & Valid) != 0;
}
