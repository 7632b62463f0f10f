namespace Hypervisor.Host.Loading;

/// <summary>
/// The checks every loader makes on the ranges it will write, before it writes any: the image
/// fits the guest's memory, every range lies inside it, no two overlap, none covers what the
/// loader itself puts in memory, and the entry point is in code loaded from the file.
/// Each failure is an <see cref="ImageException"/> naming the range and the addresses.
/// </summary>
internal static class SegmentChecks
{
    /// <param name="describe">How messages name a range: "program header 2 (PT_LOAD [0x..., 0x...))".</param>
    /// <param name="reach">Where the ranges must end: the guest's memory, or less when the entry
    /// mode cannot address all of it.</param>
    /// <param name="reserved">A range the loader keeps for its own structures, if any, and what it holds.</param>
    public static void Check(IReadOnlyList<LoadSegment> segments, Func<LoadSegment, string> describe, ulong memorySize, ulong reach,
        ulong entry, (ulong Start, ulong End, string What)? reserved = null)
    {
        ulong total = 0;
        foreach (var s in segments)
            total += s.MemorySize;
        if (total > memorySize)
            throw new ImageException($"image larger than memory: its segments need {total} bytes (0x{total:x}), guest memory is {memorySize} bytes (0x{memorySize:x}); try --memory");
        foreach (var s in segments)
        {
            if (s.End > reach || s.End < s.Address)
                throw new ImageException($"{describe(s)} is outside guest memory [0x0, 0x{reach:x})");
        }
        var sorted = new List<LoadSegment>(segments);
        sorted.Sort((a, b) => a.Address.CompareTo(b.Address));
        for (int k = 1; k < sorted.Count; k++)
        {
            if (sorted[k].Address < sorted[k - 1].End)
                throw new ImageException($"{describe(sorted[k - 1])} and {describe(sorted[k])} overlap");
        }
        if (reserved is { } r)
        {
            foreach (var s in segments)
            {
                if (s.Address < r.End && r.Start < s.End)
                    throw new ImageException($"{describe(s)} overlaps [0x{r.Start:x}, 0x{r.End:x}), where hv puts {r.What}; load the image elsewhere");
            }
        }
        bool entryLoaded = false;
        foreach (var s in segments)
            entryLoaded |= entry >= s.Address && entry < s.FileEnd;
        if (!entryLoaded)
        {
            var ranges = new List<string>();
            foreach (var s in segments)
                ranges.Add($"[0x{s.Address:x}, 0x{s.FileEnd:x})");
            throw new ImageException($"entry point 0x{entry:x} is outside the loaded code {string.Join(", ", ranges)}");
        }
    }
}
