using System.Runtime.CompilerServices;

namespace Hypervisor.Vmx.Hardware;

/// <summary>Bits 14:13 of a VMCS component encoding (SDM §25.11.2, table 25-21).</summary>
public enum VmcsFieldWidth
{
    Bits16 = 0,
    Bits64 = 1,
    Bits32 = 2,
    Natural = 3,
}

/// <summary>Bits 11:10 of a VMCS component encoding (SDM §25.11.2, table 25-21).</summary>
public enum VmcsFieldType
{
    Control = 0,
    /// <summary>The VM-exit information fields: read-only to VMWRITE unless IA32_VMX_MISC[29].</summary>
    ReadOnlyData = 1,
    GuestState = 2,
    HostState = 3,
}

/// <summary>
/// Decoding of the 32-bit value VMREAD and VMWRITE take to name a VMCS component
/// (SDM §25.11.2): bit 0 access type (1 = high 32 bits of a 64-bit field), bits 9:1 index,
/// bits 11:10 type, bit 12 reserved (0), bits 14:13 width, bits 31:15 reserved (0).
/// </summary>
public static class VmcsEncoding
{
    public const uint AccessHigh = 1;
    public const int IndexShift = 1;
    public const uint IndexMask = 0x1FF;
    public const int TypeShift = 10;
    public const int WidthShift = 13;
    /// <summary>Bit 12 and bits 31:15: an encoding with any of them set names no component.</summary>
    public const uint ReservedMask = 0xFFFF_9000;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static VmcsFieldWidth Width(uint encoding) => (VmcsFieldWidth)((encoding >> WidthShift) & 3);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static VmcsFieldType Type(uint encoding) => (VmcsFieldType)((encoding >> TypeShift) & 3);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Index(uint encoding) => (int)((encoding >> IndexShift) & IndexMask);

    /// <summary>Whether the encoding accesses the high half (bits 63:32) of a 64-bit field.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsHighAccess(uint encoding) => (encoding & AccessHigh) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static VmcsFieldWidth Width(VmcsField field) => Width((uint)field);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static VmcsFieldType Type(VmcsField field) => Type((uint)field);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Index(VmcsField field) => Index((uint)field);

    /// <summary>The encoding of the high half of a 64-bit field (the "_HIGH" encodings of appendix B).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint High(VmcsField field) => (uint)field | AccessHigh;

    /// <summary>Builds an encoding from its parts.</summary>
    public static uint Encode(VmcsFieldWidth width, VmcsFieldType type, int index, bool high = false)
        => ((uint)width << WidthShift) | ((uint)type << TypeShift) | (((uint)index & IndexMask) << IndexShift) | (high ? AccessHigh : 0);

    /// <summary>Bits a field of this width holds; VMWRITE truncates to them (SDM §31.3, VMWRITE).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong ValueMask(VmcsFieldWidth width) => width switch
    {
        VmcsFieldWidth.Bits16 => 0xFFFF,
        VmcsFieldWidth.Bits32 => 0xFFFF_FFFF,
        _ => ulong.MaxValue,
    };
}
