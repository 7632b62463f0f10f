using System.Runtime.CompilerServices;
using Hypervisor.Core.Machine.Cpu;

namespace Hypervisor.Svm.Hardware;

/// <summary>
/// The ten segment-shaped records of the state save area, in the order the APM lays them out
/// (table B-2): each is 16 bytes at 400h + 10h × value (selector, attrib, limit, base).
/// </summary>
public enum VmcbSegment
{
    Es = 0, Cs = 1, Ss = 2, Ds = 3, Fs = 4, Gs = 5,
    /// <summary>Only limit and base are used.</summary>
    Gdtr = 6,
    Ldtr = 7,
    /// <summary>Only limit and base are used.</summary>
    Idtr = 8,
    Tr = 9,
}

/// <summary>
/// The VMCB's packed segment attribute (APM vol. 2 §15.5.1, table B-2): the 12 attribute
/// bits of the descriptor, bits 7:0 = descriptor bits 47:40 (type, S, DPL, P) and bits 11:8 =
/// descriptor bits 55:52 (AVL, L, D/B, G). The CPU keeps attributes in the VMX access-rights
/// layout (<see cref="Segment.Attributes"/>): the same low byte, AVL/L/D/B/G in bits 15:12.
/// </summary>
public static class VmcbSegmentAttrib
{
    public const ushort TypeMask = 0x00F, S = 1 << 4, DplMask = 3 << 5, P = 1 << 7;
    public const ushort Avl = 1 << 8, L = 1 << 9, Db = 1 << 10, G = 1 << 11;
    /// <summary>The 12 bits the field defines; bits 15:12 are reserved.</summary>
    public const ushort Defined = 0x0FFF;

    /// <summary>VMCB attrib → CPU access rights. Reserved bits 15:12 of the VMCB form are dropped.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort ToAccessRights(ushort attrib) => (ushort)((attrib & 0x00FF) | ((attrib & 0x0F00) << 4));

    /// <summary>CPU access rights → VMCB attrib. Bits 11:8 of the access-rights form are reserved there and dropped.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FromAccessRights(ushort accessRights) => (ushort)((accessRights & 0x00FF) | ((accessRights >> 4) & 0x0F00));

    /// <summary>Offset of a record's first byte in the VMCB page.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Offset(VmcbSegment segment) => VmcbOffset.SaveArea + (int)segment * VmcbOffset.SegmentSize;

    /// <summary>The VMCB record of a CPU segment register numbered as <see cref="SegReg"/> (ES..GS, LDTR, TR).</summary>
    public static VmcbSegment FromSegReg(int segReg) => segReg switch
    {
        SegReg.Es => VmcbSegment.Es,
        SegReg.Cs => VmcbSegment.Cs,
        SegReg.Ss => VmcbSegment.Ss,
        SegReg.Ds => VmcbSegment.Ds,
        SegReg.Fs => VmcbSegment.Fs,
        SegReg.Gs => VmcbSegment.Gs,
        SegReg.Ldtr => VmcbSegment.Ldtr,
        SegReg.Tr => VmcbSegment.Tr,
        _ => throw new ArgumentOutOfRangeException(nameof(segReg), segReg, "not a segment register number"),
    };
}
