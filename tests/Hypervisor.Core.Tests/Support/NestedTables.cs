using Hypervisor.Core.Machine.Memory;

namespace Hypervisor.Core.Tests.Support;

/// <summary>
/// Hand-built nested (second-stage) tables for CPU tests, in long-mode format, kept in their own
/// memory slot far above the guest's RAM. <see cref="IdentityMap"/> maps guest physical = host
/// physical with 2 MiB pages; <see cref="Map4K"/> gives one 4 KiB page its own frame and bits
/// (splitting the 2 MiB page that held it).
/// </summary>
public sealed class NestedTables
{
    public const ulong P = 1, RW = 2, US = 4, A = 32, D = 64, PS = 128, NX = 1UL << 63;
    /// <summary>Leaf bits of an ordinary mapping: present, writable, user (nested accesses are user accesses).</summary>
    public const ulong Prw = P | RW | US;
    private const ulong FrameMask = 0x000F_FFFF_FFFF_F000UL;

    private readonly PhysicalMemory _memory;
    private readonly ulong _base, _size;
    private ulong _next;

    /// <param name="tableBase">Where this set of tables lives; a slot is added there.</param>
    public NestedTables(PhysicalMemory memory, ulong tableBase = 1UL << 40, int slotId = 90, ulong size = 1 << 20)
    {
        _memory = memory;
        _base = _next = tableBase;
        _size = size;
        memory.AddSlot(slotId, tableBase, size);
        Root = NewTable();
    }

    /// <summary>nCR3.</summary>
    public ulong Root { get; }

    private ulong NewTable()
    {
        if (_next + 0x1000 > _base + _size)
            throw new InvalidOperationException("nested table slot full");
        ulong t = _next;
        _next += 0x1000;
        return t;
    }

    /// <summary>Address of the entry for <paramref name="gpa"/> at <paramref name="level"/> (4 = PML4 .. 1 = PT),
    /// creating non-leaf tables (P|RW|US) above it as needed.</summary>
    public ulong EntryAddress(ulong gpa, int level)
    {
        ulong table = Root;
        for (int l = 4; ; l--)
        {
            ulong addr = table + ((gpa >> (12 + 9 * (l - 1))) & 511) * 8;
            if (l == level)
                return addr;
            ulong e = _memory.ReadU64(addr);
            if ((e & P) == 0)
            {
                e = NewTable() | Prw;
                _memory.WriteU64(addr, e);
            }
            else if ((e & PS) != 0)
            {
                // Split the large page into the next level with the same frames and bits.
                ulong next = NewTable();
                ulong childSize = 1UL << (12 + 9 * (l - 2));
                ulong frame = e & FrameMask & ~((childSize << 9) - 1);
                ulong bits = e & ~FrameMask & (l - 1 == 1 ? ~PS : ulong.MaxValue);
                for (ulong k = 0; k < 512; k++)
                    _memory.WriteU64(next + k * 8, (frame + k * childSize) | bits);
                e = next | Prw;
                _memory.WriteU64(addr, e);
            }
            table = e & FrameMask;
        }
    }

    /// <summary>guest physical [<paramref name="gpaBase"/>, +<paramref name="size"/>) → the same host
    /// physical addresses, 2 MiB pages (both 2 MiB-aligned).</summary>
    public void IdentityMap(ulong gpaBase, ulong size, ulong bits = Prw)
    {
        for (ulong g = gpaBase; g < gpaBase + size; g += 0x20_0000)
            _memory.WriteU64(EntryAddress(g, 2), g | bits | PS);
    }

    /// <summary>Maps the 4 KiB guest physical page at <paramref name="gpa"/> to <paramref name="hpa"/>; returns the entry's address.</summary>
    public ulong Map4K(ulong gpa, ulong hpa, ulong bits = Prw)
    {
        ulong addr = EntryAddress(gpa, 1);
        _memory.WriteU64(addr, (hpa & FrameMask) | bits);
        return addr;
    }

    /// <summary>Removes the 4 KiB mapping of <paramref name="gpa"/> (the page becomes not present).</summary>
    public ulong Unmap4K(ulong gpa) => Map4K(gpa, 0, 0);

    /// <summary>Sets an entry's raw value.</summary>
    public void SetEntry(ulong gpa, int level, ulong value) => _memory.WriteU64(EntryAddress(gpa, level), value);

    public ulong Entry(ulong gpa, int level) => _memory.ReadU64(EntryAddress(gpa, level));
}
