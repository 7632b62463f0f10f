using System.Runtime.CompilerServices;

namespace Hypervisor.Vmx.Hardware;

/// <summary>Launch state of a VMCS (SDM §25.1): VMCLEAR makes it clear, a successful VMLAUNCH launched.</summary>
public enum VmcsLaunchState
{
    Clear = 0,
    Launched = 1,
}

/// <summary>
/// A virtual-machine control structure (SDM vol. 3 chapter 25): the header of the VMCS region
/// (revision identifier, shadow-VMCS indicator, VMX-abort indicator), the launch state, and the
/// value of every component of <see cref="VmcsField"/>. The SDM leaves the layout of the data
/// implementation-specific (§25.2), so the values live in one array indexed through
/// <see cref="VmcsLayout"/>, not in guest memory.
/// <para>
/// Two ways in: <see cref="VmRead"/>/<see cref="VmWrite"/> are the instructions (checked
/// encodings, read-only fields refused, VM-instruction error numbers), for a guest hypervisor
/// or for code that wants the hardware's answers; <see cref="this[VmcsField]"/> is the
/// processor's own access (it writes the exit-information fields on a VM exit), with the width
/// truncation but no permission check.
/// </para>
/// </summary>
public sealed class Vmcs
{
    /// <summary>Bits 30:0 of the first dword of the region (SDM §25.2).</summary>
    public const uint RevisionIdMask = 0x7FFF_FFFF;
    /// <summary>Bit 31 of the first dword: the region is a shadow VMCS (SDM §25.2).</summary>
    public const uint ShadowVmcsIndicator = 0x8000_0000;

    private readonly ulong[] _values = new ulong[VmcsLayout.SlotCount];

    /// <param name="revisionId">the VMCS revision identifier (IA32_VMX_BASIC[30:0]) software writes into the region</param>
    /// <param name="vmwriteAnyField">IA32_VMX_MISC[29]: VMWRITE may write the VM-exit information fields</param>
    public Vmcs(uint revisionId, bool vmwriteAnyField = false)
    {
        RevisionId = revisionId & RevisionIdMask;
        VmwriteAnyField = vmwriteAnyField;
    }

    /// <summary>The revision identifier in the region header; VMPTRLD compares it with the processor's.</summary>
    public uint RevisionId { get; set; }

    /// <summary>Bit 31 of the header: VMPTRLD of a shadow VMCS needs the VMCS-shadowing capability.</summary>
    public bool IsShadow { get; set; }

    /// <summary>The VMX-abort indicator (second dword of the region, SDM §25.2): non-zero after a VMX abort.</summary>
    public uint AbortIndicator { get; set; }

    public VmcsLaunchState LaunchState { get; private set; }

    /// <summary>Whether VMWRITE may write the read-only data fields (IA32_VMX_MISC bit 29, SDM §25.11.5 / A.6).</summary>
    public bool VmwriteAnyField { get; }

    /// <summary>The first dword of the region as software writes it: revision id and shadow indicator.</summary>
    public uint HeaderDword => RevisionId | (IsShadow ? ShadowVmcsIndicator : 0);

    /// <summary>Whether an encoding names a component of this VMCS (full access, or high access of a 64-bit field).</summary>
    public static bool IsSupported(uint encoding) => Slot(encoding) >= 0;

    /// <summary>
    /// The highest index of any supported encoding (what IA32_VMX_VMCS_ENUM bits 9:1 report, SDM A.9).
    /// </summary>
    public static int HighestIndex
    {
        get
        {
            int max = 0;
            foreach (var f in VmcsLayout.FieldOfSlot)
                max = Math.Max(max, VmcsEncoding.Index(f));
            return max;
        }
    }

    /// <summary>The processor's own access to a field: reads the stored value; writes truncate to the width.</summary>
    public ulong this[VmcsField field]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _values[VmcsLayout.SlotOfKey[VmcsLayout.Key((uint)field)]];
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => _values[VmcsLayout.SlotOfKey[VmcsLayout.Key((uint)field)]] = value & VmcsEncoding.ValueMask(VmcsEncoding.Width(field));
    }

    /// <summary>
    /// VMREAD (SDM §31.3): the value of the component <paramref name="encoding"/> names, zero-extended.
    /// A high access reads bits 63:32 of a 64-bit field. Natural-width fields return all 64 bits;
    /// outside 64-bit mode the caller keeps the low 32. Error 12 for an unsupported encoding.
    /// </summary>
    public VmxInstructionError VmRead(ulong encoding, out ulong value)
    {
        int slot = encoding > uint.MaxValue ? -1 : Slot((uint)encoding);
        if (slot < 0)
        {
            value = 0;
            return VmxInstructionError.UnsupportedVmcsComponent;
        }
        ulong v = _values[slot];
        value = VmcsEncoding.IsHighAccess((uint)encoding) ? v >> 32 : v;
        return VmxInstructionError.None;
    }

    /// <summary>
    /// VMWRITE (SDM §31.3): stores <paramref name="value"/> in the component, truncated to its
    /// width; a high access replaces bits 63:32 of a 64-bit field with bits 31:0 of the value and
    /// keeps bits 31:0. Error 12 for an unsupported encoding, 13 for a read-only data field unless
    /// <see cref="VmwriteAnyField"/>.
    /// </summary>
    public VmxInstructionError VmWrite(ulong encoding, ulong value)
    {
        int slot = encoding > uint.MaxValue ? -1 : Slot((uint)encoding);
        if (slot < 0)
            return VmxInstructionError.UnsupportedVmcsComponent;
        uint e = (uint)encoding;
        if (VmcsEncoding.Type(e) == VmcsFieldType.ReadOnlyData && !VmwriteAnyField)
            return VmxInstructionError.VmwriteReadOnlyComponent;
        if (VmcsEncoding.IsHighAccess(e))
            _values[slot] = (_values[slot] & 0xFFFF_FFFF) | (value << 32);
        else
            _values[slot] = value & VmcsEncoding.ValueMask(VmcsEncoding.Width(e));
        return VmxInstructionError.None;
    }

    /// <summary>
    /// VMCLEAR's effect on the VMCS itself (SDM §31.3): data written back and launch state set to
    /// clear. The address checks come first: <see cref="CheckVmclearPointer"/>.
    /// </summary>
    public void Clear() => LaunchState = VmcsLaunchState.Clear;

    /// <summary>VMLAUNCH needs a clear VMCS (error 4), VMRESUME a launched one (error 5) (SDM §31.3).</summary>
    public VmxInstructionError CheckEntry(bool isResume) => isResume
        ? LaunchState == VmcsLaunchState.Launched ? VmxInstructionError.None : VmxInstructionError.VmresumeNonLaunchedVmcs
        : LaunchState == VmcsLaunchState.Clear ? VmxInstructionError.None : VmxInstructionError.VmlaunchNonClearVmcs;

    /// <summary>A VMLAUNCH that reached the guest (SDM §27: after the checks succeed) sets the launch state.</summary>
    public void MarkLaunched() => LaunchState = VmcsLaunchState.Launched;

    /// <summary>
    /// VMCLEAR's operand checks (SDM §31.3): the address must be 4-KiB aligned and within the
    /// physical-address width (error 2) and must not be the VMXON pointer (error 3).
    /// </summary>
    public static VmxInstructionError CheckVmclearPointer(ulong address, ulong vmxonPointer, int physicalAddressWidth)
    {
        if (!IsValidRegionAddress(address, physicalAddressWidth))
            return VmxInstructionError.VmclearInvalidAddress;
        return address == vmxonPointer ? VmxInstructionError.VmclearWithVmxonPointer : VmxInstructionError.None;
    }

    /// <summary>
    /// VMPTRLD's checks (SDM §31.3): aligned address within the physical-address width (error 9),
    /// not the VMXON pointer (error 10), and a region whose revision identifier matches the
    /// processor's; a shadow VMCS also needs the VMCS-shadowing capability (otherwise error 11).
    /// </summary>
    public static VmxInstructionError CheckVmptrld(ulong address, ulong vmxonPointer, int physicalAddressWidth,
        uint regionHeaderDword, uint processorRevisionId, bool supportsVmcsShadowing)
    {
        if (!IsValidRegionAddress(address, physicalAddressWidth))
            return VmxInstructionError.VmptrldInvalidAddress;
        if (address == vmxonPointer)
            return VmxInstructionError.VmptrldWithVmxonPointer;
        bool shadow = (regionHeaderDword & ShadowVmcsIndicator) != 0;
        if ((regionHeaderDword & RevisionIdMask) != (processorRevisionId & RevisionIdMask) || (shadow && !supportsVmcsShadowing))
            return VmxInstructionError.VmptrldIncorrectRevisionId;
        return VmxInstructionError.None;
    }

    /// <summary>4-KiB aligned and no bit set beyond the physical-address width (SDM §31.3, VMCLEAR/VMPTRLD/VMXON).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsValidRegionAddress(ulong address, int physicalAddressWidth)
        => (address & 0xFFF) == 0 && (physicalAddressWidth >= 64 || address >> physicalAddressWidth == 0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Slot(uint encoding)
    {
        if ((encoding & VmcsEncoding.ReservedMask) != 0)
            return -1;
        // Only 64-bit fields have a high half (SDM §25.11.2: access type must be full otherwise).
        if (VmcsEncoding.IsHighAccess(encoding) && VmcsEncoding.Width(encoding) != VmcsFieldWidth.Bits64)
            return -1;
        return VmcsLayout.SlotOfKey[VmcsLayout.Key(encoding)];
    }
}
