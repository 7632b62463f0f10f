namespace Hypervisor.Host.Loading;

/// <summary>
/// One range of the image copied into guest physical memory: <see cref="FileSize"/> bytes from
/// <see cref="FileOffset"/> to <see cref="Address"/>, then zeros up to <see cref="MemorySize"/>
/// (the bss). <see cref="Index"/> names it in messages (the ELF program header number).
/// </summary>
public readonly record struct LoadSegment(int Index, ulong Address, ulong FileOffset, ulong FileSize, ulong MemorySize)
{
    public ulong End => Address + MemorySize;

    /// <summary>End of the part loaded from the file (code and data, not bss).</summary>
    public ulong FileEnd => Address + FileSize;

    public override string ToString() => $"[0x{Address:x}, 0x{End:x})";
}
