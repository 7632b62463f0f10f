namespace Hypervisor.Core.Tests.Support;

/// <summary>Edits the long-mode guest's identity map (PML4 at <see cref="GuestMachine.Pml4Base"/>,
/// 2 MiB pages over the first 4 GiB) so tests can give single 4 KiB pages their own frames and bits.</summary>
public static class PageTables
{
    public const ulong P = 1, RW = 2, US = 4, A = 32, D = 64, PS = 128, G = 256, XD = 1UL << 63;
    public const ulong PtBase = 0x500000;

    /// <summary>Guest physical address of the PD entry mapping <paramref name="linear"/> (below 4 GiB).</summary>
    public static ulong PdeAddress(ulong linear) =>
        GuestMachine.Pml4Base + 0x2000 + (linear >> 30) * 0x1000 + ((linear >> 21) & 511) * 8;

    /// <summary>Guest physical address of the PDPT entry mapping <paramref name="linear"/>.</summary>
    public static ulong PdpteAddress(ulong linear) => GuestMachine.Pml4Base + 0x1000 + (linear >> 30) * 8;

    /// <summary>Replaces the 2 MiB page holding <paramref name="linear"/> by a page table with the same
    /// identity mapping in 4 KiB pages and returns the address of <paramref name="linear"/>'s PTE.</summary>
    public static ulong PteAddress(GuestMachine m, ulong linear)
    {
        ulong pdeAddr = PdeAddress(linear);
        ulong pde = m.Memory.ReadU64(pdeAddr);
        ulong region = linear >> 21;
        ulong pt = PtBase + region * 0x1000;
        if ((pde & PS) != 0)
        {
            ulong flags = pde & (P | RW | US);
            ulong regionBase = region << 21;
            var bytes = new byte[4096];
            for (int k = 0; k < 512; k++)
                BitConverter.GetBytes(regionBase + (ulong)k * 0x1000 | flags).CopyTo(bytes, k * 8);
            m.Memory.Write(pt, bytes);
            m.Memory.WriteU64(pdeAddr, pt | P | RW | US);
        }
        return pt + ((linear >> 12) & 511) * 8;
    }

    /// <summary>Maps the 4 KiB page at <paramref name="linear"/> to <paramref name="physical"/> with <paramref name="flags"/>.</summary>
    public static ulong Map(GuestMachine m, ulong linear, ulong physical, ulong flags)
    {
        ulong pte = PteAddress(m, linear);
        m.Memory.WriteU64(pte, physical | flags);
        return pte;
    }

    /// <summary>Sets the flags of the 2 MiB page holding <paramref name="linear"/> (identity frame kept).</summary>
    public static void SetLargePageFlags(GuestMachine m, ulong linear, ulong flags) =>
        m.Memory.WriteU64(PdeAddress(linear), (linear & ~0x1FFFFFUL) | PS | flags);
}
