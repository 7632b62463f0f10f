namespace Hypervisor.Core.Machine.Mmu;

/// <summary>A cached translation. Large pages are cached per 4 KiB frame but remember their extent
/// so INVLPG of any address inside the large page drops all of them (SDM vol. 3 §4.10.4.1).</summary>
public struct TlbEntry
{
    public ulong LinearPage;     // linear address of the 4 KiB frame
    public ulong PhysicalPage;   // guest physical address of the 4 KiB frame
    public ulong PageBase;       // linear base of the (possibly large) page
    public ulong PageSize;       // 4 KiB, 2/4 MiB or 1 GiB
    public ushort Pcid;
    public bool Valid;
    public bool Global;
    public bool Writable;        // R/W=1 at every level
    public bool User;            // U/S=1 at every level
    public bool NoExecute;       // XD=1 at some level (with EFER.NXE)
    public bool Dirty;           // D=1 in the leaf entry
}

/// <summary>
/// The architectural TLB: translations tagged by PCID, flushed exactly as the SDM says. It is a cache,
/// so it may drop entries at any time (here: on index collision), but it never keeps one the
/// architecture requires to be gone. Tests can look inside it, which real hardware does not allow.
/// </summary>
public sealed class Tlb
{
    public const int Entries = 4096;
    private readonly TlbEntry[] _e = new TlbEntry[Entries];

    /// <summary>Flush counters, for tests and statistics.</summary>
    public long Flushes { get; private set; }

    // The slot mixes in the PCID so address spaces that share linear pages do not evict each other;
    // global entries live in the PCID-0 slot, which every lookup also probes.
    private static int IndexOf(ulong linearPage, ushort pcid) =>
        (int)((linearPage >> 12) ^ (linearPage >> 24) ^ ((ulong)pcid * 0x9E5)) & (Entries - 1);

    public bool TryLookup(ulong linear, ushort pcid, out TlbEntry entry)
    {
        ulong page = linear & ~0xFFFUL;
        ref var e = ref _e[IndexOf(page, pcid)];
        if (e.Valid && e.LinearPage == page && (e.Global || e.Pcid == pcid))
        {
            entry = e;
            return true;
        }
        if (pcid != 0)
        {
            ref var g = ref _e[IndexOf(page, 0)];
            if (g.Valid && g.Global && g.LinearPage == page)
            {
                entry = g;
                return true;
            }
        }
        entry = default;
        return false;
    }

    public void Insert(in TlbEntry entry) => _e[IndexOf(entry.LinearPage, entry.Global ? (ushort)0 : entry.Pcid)] = entry;

    /// <summary>Marks the cached leaf dirty after the walker set D in memory.</summary>
    public void SetDirty(ulong linear, ushort pcid)
    {
        ulong page = linear & ~0xFFFUL;
        ref var e = ref _e[IndexOf(page, pcid)];
        if (e.Valid && e.LinearPage == page && (e.Global || e.Pcid == pcid))
            e.Dirty = true;
    }

    /// <summary>Everything, global entries included, for every PCID.</summary>
    public void FlushAll()
    {
        Array.Clear(_e);
        Flushes++;
    }

    /// <summary>All non-global entries for every PCID (INVPCID type 3).</summary>
    public void FlushAllNonGlobal()
    {
        for (int i = 0; i < _e.Length; i++)
            if (!_e[i].Global)
                _e[i].Valid = false;
        Flushes++;
    }

    /// <summary>All non-global entries of one PCID (MOV CR3 without no-flush, INVPCID type 1).</summary>
    public void FlushPcid(ushort pcid)
    {
        for (int i = 0; i < _e.Length; i++)
            if (_e[i].Pcid == pcid && !_e[i].Global)
                _e[i].Valid = false;
        Flushes++;
    }

    /// <summary>INVLPG: the page containing <paramref name="linear"/> for <paramref name="pcid"/>, and global
    /// translations of it, whatever the page size.</summary>
    public void InvalidatePage(ulong linear, ushort pcid, bool includeGlobal)
    {
        for (int i = 0; i < _e.Length; i++)
        {
            ref var e = ref _e[i];
            if (!e.Valid || linear - e.PageBase >= e.PageSize)
                continue;
            if (e.Global ? includeGlobal : e.Pcid == pcid)
                e.Valid = false;
        }
        Flushes++;
    }

    /// <summary>Whether a translation of <paramref name="linear"/> usable by <paramref name="pcid"/> is cached (tests).</summary>
    public bool Contains(ulong linear, ushort pcid) => TryLookup(linear, pcid, out _);

    /// <summary>INVLPGA: the page containing <paramref name="linear"/> in every context (PCID) and global.</summary>
    public void InvalidatePageAllContexts(ulong linear)
    {
        for (int i = 0; i < _e.Length; i++)
        {
            ref var e = ref _e[i];
            if (e.Valid && linear - e.PageBase < e.PageSize)
                e.Valid = false;
        }
        Flushes++;
    }

    public int CountValid()
    {
        int n = 0;
        foreach (var e in _e)
            if (e.Valid)
                n++;
        return n;
    }
}
