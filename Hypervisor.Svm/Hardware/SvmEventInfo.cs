using System.Runtime.CompilerServices;

namespace Hypervisor.Svm.Hardware;

/// <summary>Event type of EVENTINJ / EXITINTINFO, bits 10:8 (APM vol. 2 §15.20). Other values are reserved.</summary>
public enum SvmEventType : byte
{
    /// <summary>External or virtual interrupt (INTR).</summary>
    Intr = 0,
    /// <summary>NMI; the vector field is ignored.</summary>
    Nmi = 2,
    /// <summary>Exception (fault or trap).</summary>
    Exception = 3,
    /// <summary>Software interrupt (INTn).</summary>
    SoftwareInterrupt = 4,
}

/// <summary>
/// The 64-bit event format shared by EVENTINJ (VMCB 0A8h) and EXITINTINFO (088h), APM vol. 2
/// §15.20 and §15.7.2: VECTOR bits 7:0, TYPE bits 10:8, EV (error code valid) bit 11, V (valid)
/// bit 31, ERRORCODE bits 63:32.
/// </summary>
public readonly record struct SvmEventInfo(ulong Raw)
{
    public const ulong VectorMask = 0xFF;
    public const int TypeShift = 8;
    public const ulong TypeMask = 7UL << TypeShift;
    public const ulong ErrorCodeValid = 1UL << 11;
    public const ulong Valid = 1UL << 31;
    public const int ErrorCodeShift = 32;

    public static SvmEventInfo None => default;

    /// <summary>A valid event without an error code.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static SvmEventInfo Create(byte vector, SvmEventType type) =>
        new(Valid | ((ulong)type << TypeShift) | vector);

    /// <summary>A valid event that pushes <paramref name="errorCode"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static SvmEventInfo Create(byte vector, SvmEventType type, uint errorCode) =>
        new(((ulong)errorCode << ErrorCodeShift) | Valid | ErrorCodeValid | ((ulong)type << TypeShift) | vector);

    public bool IsValid => (Raw & Valid) != 0;
    public byte Vector => (byte)Raw;
    public SvmEventType Type => (SvmEventType)((Raw & TypeMask) >> TypeShift);
    public bool HasErrorCode => (Raw & ErrorCodeValid) != 0;
    public uint ErrorCode => (uint)(Raw >> ErrorCodeShift);

    public override string ToString() =>
        !IsValid ? "none" : HasErrorCode ? $"{Type} vector 0x{Vector:x2} error 0x{ErrorCode:x}" : $"{Type} vector 0x{Vector:x2}";
}
