namespace Hypervisor.Vmx.Hardware;

/// <summary>
/// The dense map from a component encoding to its slot in <see cref="Vmcs"/>'s value array.
/// The encoding bits that can vary (width 14:13, type 11:10, index 9:1) form a 13-bit key, so
/// one table of 8192 slot numbers answers "is this a field, and where is it" with a single
/// load; -1 marks encodings no field has. Built once from <see cref="VmcsField"/>.
/// </summary>
internal static class VmcsLayout
{
    public const int KeyCount = 1 << 13;

    /// <summary>Slot of each key, or -1.</summary>
    public static readonly short[] SlotOfKey = BuildSlots(out FieldOfSlot);

    /// <summary>The field stored in each slot (the inverse of <see cref="SlotOfKey"/>).</summary>
    public static readonly VmcsField[] FieldOfSlot;

    public static int SlotCount => FieldOfSlot.Length;

    /// <summary>The 13-bit key of an encoding whose reserved bits are clear (bit 0 ignored).</summary>
    public static int Key(uint encoding) => (int)(((encoding >> 1) & 0x7FF) | ((encoding >> 2) & 0x1800));

    private static short[] BuildSlots(out VmcsField[] fieldOfSlot)
    {
        var table = new short[KeyCount];
        Array.Fill(table, (short)-1);
        fieldOfSlot = Enum.GetValues<VmcsField>();
        for (int slot = 0; slot < fieldOfSlot.Length; slot++)
            table[Key((uint)fieldOfSlot[slot])] = (short)slot;
        return table;
    }
}
