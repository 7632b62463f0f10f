namespace Hypervisor.Core.Machine.Rap;

/// <summary>Which world created (or consumes) a RAP entry.</summary>
public enum RapDomain : byte
{
    Host = 0,
    /// <summary>The L1 guest (a VM run by this hypervisor).</summary>
    Guest = 1,
    /// <summary>A nested (L2) guest run by the L1 guest.</summary>
    NestedGuest = 2,
}

/// <summary>One predicted return address and the domain that pushed it.</summary>
public readonly record struct RapEntry(ulong ReturnAddress, RapDomain Domain);

/// <summary>The predictor's counters (see <see cref="ReturnAddressPredictor"/>).</summary>
public readonly record struct RapCounters(long Calls, long Returns, long Predictions, long Mispredictions, long Underflows,
    long CrossDomainUses, long ReverseDomainUses, long Clears, long TagMismatches);

/// <summary>
/// The return address predictor (AMD's RAP, Intel's RSB): CALL pushes the return address, RET
/// pops the newest entry and predicts it. A circular stack: when full, a push overwrites the
/// oldest entry; when empty, RET has no prediction. Unlike hardware it shows its contents and
/// counts what matters for ERAPS and RSB stuffing: mispredictions and cross-domain uses.
/// </summary>
public sealed class ReturnAddressPredictor
{
    private readonly RapEntry[] _entries;
    private int _top;     // index of the next free slot
    private int _count;   // valid entries (≤ Capacity)

    public ReturnAddressPredictor(int physicalEntries)
    {
        if (physicalEntries is < 1 or > 1024)
            throw new ArgumentOutOfRangeException(nameof(physicalEntries), physicalEntries, "RAP size must be 1..1024 entries");
        PhysicalEntries = physicalEntries;
        Capacity = physicalEntries;
        _entries = new RapEntry[physicalEntries];
    }

    /// <summary>Entries the hardware has (CPUID 0x80000021 EBX[23:16] on ERAPS parts).</summary>
    public int PhysicalEntries { get; }
    /// <summary>Entries in use now: the vendor limits a guest to the legacy 32 unless allowed more.</summary>
    public int Capacity { get; private set; }
    public int Count => _count;

    public long Calls { get; private set; }
    public long Returns { get; private set; }
    /// <summary>RETs whose predicted address was the actual target.</summary>
    public long Predictions { get; private set; }
    public long Mispredictions { get; private set; }
    /// <summary>RETs with no entry to predict from.</summary>
    public long Underflows { get; private set; }
    /// <summary>RETs in a more trusted domain that consumed an entry created in a less trusted one (host
    /// consuming a guest's, L1 consuming L2's): what ERAPS tagging and the host's RSB fill prevent.</summary>
    public long CrossDomainUses { get; private set; }
    /// <summary>RETs that consumed an entry of a more trusted domain (a guest meeting host-made
    /// entries, e.g. the RSB fill): only a misprediction for the consumer, counted for visibility.</summary>
    public long ReverseDomainUses { get; private set; }
    public long Clears { get; private set; }
    /// <summary>RETs that met an entry of another domain and, the RAP being tagged, did not use it.</summary>
    public long TagMismatches { get; private set; }

    /// <summary>True on ERAPS hardware: entries carry their domain and only predict in it.</summary>
    public bool Tagged { get; set; }

    /// <summary>Changes how many entries are usable; entries beyond the new capacity are dropped.</summary>
    public void SetCapacity(int entries)
    {
        if (entries < 1 || entries > PhysicalEntries)
            throw new ArgumentOutOfRangeException(nameof(entries), entries, $"RAP capacity must be 1..{PhysicalEntries}");
        if (entries == Capacity) return;
        var keep = Snapshot();
        Capacity = entries;
        Array.Clear(_entries);
        _top = _count = 0;
        foreach (var e in keep.Skip(Math.Max(0, keep.Count - entries)))
            Push(e);
    }

    public void Call(ulong returnAddress, RapDomain domain)
    {
        Calls++;
        Push(new RapEntry(returnAddress, domain));
    }

    /// <summary>Pops the prediction for a RET whose real target is <paramref name="actualTarget"/>.</summary>
    public void Return(ulong actualTarget, RapDomain domain)
    {
        Returns++;
        if (_count == 0)
        {
            Underflows++;
            Mispredictions++;
            return;
        }
        _top = _top == 0 ? Capacity - 1 : _top - 1;
        _count--;
        var e = _entries[_top];
        if (e.Domain != domain)
        {
            if (Tagged)
            {
                // ERAPS hardware tags entries: one made in another domain is never used to predict.
                TagMismatches++;
                Mispredictions++;
                return;
            }
            // Domains are ordered by trust: host, then guest, then nested guest. A more trusted domain
            // consuming a less trusted one's entry is what ERAPS tagging and RSB filling exist to
            // stop; the reverse only makes the less trusted side mispredict.
            if (domain < e.Domain)
                CrossDomainUses++;
            else
                ReverseDomainUses++;
        }
        if (e.ReturnAddress == actualTarget)
            Predictions++;
        else
            Mispredictions++;
    }

    private void Push(RapEntry e)
    {
        _entries[_top] = e;
        if (++_top == Capacity) _top = 0;
        if (_count < Capacity) _count++;
    }

    /// <summary>Drops every entry (ERAPS clear, or a host flush).</summary>
    public void Clear()
    {
        Array.Clear(_entries);
        _top = _count = 0;
        Clears++;
    }

    /// <summary>Overwrites the whole RAP with entries of one domain, as the host's RSB-filling
    /// sequence does (32 CALLs whose returns are never taken).</summary>
    public void Fill(int entries, ulong address, RapDomain domain)
    {
        var e = new RapEntry(address, domain);
        if (entries >= Capacity)
        {
            // Every slot is overwritten: the order no longer matters.
            Array.Fill(_entries, e, 0, Capacity);
            _top = 0;
            _count = Capacity;
            return;
        }
        for (int k = 0; k < entries; k++)
            Push(e);
    }

    /// <summary>Entries oldest first.</summary>
    public IReadOnlyList<RapEntry> Snapshot()
    {
        var list = new List<RapEntry>(_count);
        for (int k = _count; k > 0; k--)
            list.Add(_entries[(_top - k + Capacity * 2) % Capacity]);
        return list;
    }

    /// <summary>The counters in one record, in the order snapshots list them.</summary>
    public RapCounters Counters => new(Calls, Returns, Predictions, Mispredictions, Underflows, CrossDomainUses, ReverseDomainUses, Clears, TagMismatches);

    /// <summary>Snapshot restore: capacity, entries (oldest first) and counters exactly as captured.
    /// Only the order of entries matters to the predictor, so the circular position is not kept.</summary>
    public void Restore(int capacity, bool tagged, IReadOnlyList<RapEntry> entries, RapCounters counters)
    {
        if (capacity < 1 || capacity > PhysicalEntries)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, $"RAP capacity must be 1..{PhysicalEntries}");
        if (entries.Count > capacity)
            throw new ArgumentException($"RAP: {entries.Count} entries do not fit a capacity of {capacity}");
        Capacity = capacity;
        Tagged = tagged;
        Array.Clear(_entries);
        _top = _count = 0;
        foreach (var e in entries)
            Push(e);
        (Calls, Returns, Predictions, Mispredictions, Underflows, CrossDomainUses, ReverseDomainUses, Clears, TagMismatches) =
            (counters.Calls, counters.Returns, counters.Predictions, counters.Mispredictions, counters.Underflows,
             counters.CrossDomainUses, counters.ReverseDomainUses, counters.Clears, counters.TagMismatches);
    }

    public void ResetCounters()
    {
        Calls = Returns = Predictions = Mispredictions = Underflows = CrossDomainUses = ReverseDomainUses = Clears = TagMismatches = 0;
    }
}
