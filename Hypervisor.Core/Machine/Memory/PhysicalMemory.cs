namespace Hypervisor.Core.Machine.Memory;

/// <summary>
/// Guest physical address space: a set of non-overlapping memory slots. Any address no slot
/// covers is MMIO and leaves the CPU as an exit.
/// </summary>
public sealed unsafe class PhysicalMemory : IDisposable
{
    public const int PageShift = 12;
    public const ulong PageSize = 1UL << PageShift;
    public const ulong PageMask = PageSize - 1;

    private readonly List<MemorySlot> _slots = new();

    /// <summary>Raised with the guest physical page number of every page whose contents change
    /// through a path other than the CPU's own stores (loaders, host writes), so cached code is dropped.</summary>
    internal event Action<ulong>? PageWritten;

    /// <summary>Incremented whenever the slot layout changes so cached host pointers are refreshed.</summary>
    internal int LayoutGeneration { get; private set; }

    public IReadOnlyList<MemorySlot> Slots => _slots;

    /// <summary>Adds a slot (KVM_SET_USER_MEMORY_REGION). Sizes and bases are page-aligned.</summary>
    public MemorySlot AddSlot(int id, ulong guestBase, ulong size, bool readOnly = false)
    {
        if (size == 0 || (size & PageMask) != 0 || (guestBase & PageMask) != 0)
            throw new ArgumentException($"slot {id}: base 0x{guestBase:x} and size 0x{size:x} must be non-zero multiples of 4 KiB");
        if (guestBase + size < guestBase)
            throw new ArgumentException($"slot {id}: base 0x{guestBase:x} + size 0x{size:x} wraps the address space");
        foreach (var s in _slots)
        {
            if (s.Id == id)
                throw new ArgumentException($"slot {id} already exists");
            if (guestBase < s.GuestEnd && s.GuestBase < guestBase + size)
                throw new ArgumentException($"slot {id} [0x{guestBase:x}, 0x{guestBase + size:x}) overlaps slot {s.Id} [0x{s.GuestBase:x}, 0x{s.GuestEnd:x})");
        }
        var slot = new MemorySlot(id, guestBase, size, readOnly);
        _slots.Add(slot);
        LayoutGeneration++;
        return slot;
    }

    public MemorySlot? FindSlot(ulong gpa)
    {
        // Few slots: a linear scan beats any structure, and the CPU caches the result per page.
        foreach (var s in _slots)
            if (s.Contains(gpa))
                return s;
        return null;
    }

    /// <summary>Host pointer for a guest physical address, or null when no slot covers it (MMIO).</summary>
    internal byte* HostPointer(ulong gpa, out bool readOnly)
    {
        foreach (var s in _slots)
        {
            if (s.Contains(gpa))
            {
                readOnly = s.ReadOnly;
                return s.Host + (gpa - s.GuestBase);
            }
        }
        readOnly = true;
        return null;
    }

    public bool IsRam(ulong gpa) => FindSlot(gpa) != null;

    /// <summary>Copies guest physical memory out; throws when part of the range is not RAM.</summary>
    public void Read(ulong gpa, Span<byte> destination)
    {
        int done = 0;
        while (done < destination.Length)
        {
            ulong addr = gpa + (ulong)done;
            var slot = FindSlot(addr) ?? throw new ArgumentOutOfRangeException(nameof(gpa), $"guest physical 0x{addr:x} is not backed by RAM");
            int n = (int)Math.Min((ulong)(destination.Length - done), slot.GuestEnd - addr);
            slot.AsSpan(addr - slot.GuestBase, n).CopyTo(destination[done..]);
            done += n;
        }
    }

    /// <summary>Host-side write (loaders, devices): ignores the read-only flag and drops cached code.</summary>
    public void Write(ulong gpa, ReadOnlySpan<byte> source)
    {
        int done = 0;
        while (done < source.Length)
        {
            ulong addr = gpa + (ulong)done;
            var slot = FindSlot(addr) ?? throw new ArgumentOutOfRangeException(nameof(gpa), $"guest physical 0x{addr:x} is not backed by RAM");
            int n = (int)Math.Min((ulong)(source.Length - done), slot.GuestEnd - addr);
            source.Slice(done, n).CopyTo(slot.AsSpan(addr - slot.GuestBase, n));
            done += n;
        }
        if (PageWritten != null && source.Length > 0)
        {
            for (ulong p = gpa >> PageShift; p <= (gpa + (ulong)source.Length - 1) >> PageShift; p++)
                PageWritten(p);
        }
    }

    public ulong ReadU64(ulong gpa)
    {
        Span<byte> b = stackalloc byte[8];
        Read(gpa, b);
        return BitConverter.ToUInt64(b);
    }

    public uint ReadU32(ulong gpa)
    {
        Span<byte> b = stackalloc byte[4];
        Read(gpa, b);
        return BitConverter.ToUInt32(b);
    }

    public void WriteU32(ulong gpa, uint value) => Write(gpa, BitConverter.GetBytes(value));
    public void WriteU64(ulong gpa, ulong value) => Write(gpa, BitConverter.GetBytes(value));

    public void Dispose()
    {
        foreach (var s in _slots)
            s.Dispose();
        _slots.Clear();
    }
}
