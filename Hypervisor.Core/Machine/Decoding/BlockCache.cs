using Hypervisor.Core.Machine.Cpu;

namespace Hypervisor.Core.Machine.Decoding;

/// <summary>
/// Translated blocks by guest physical address, plus the set of physical pages holding translated
/// code. A store to such a page drops every block on it (self-modifying code), and the CPU never
/// caches a fast write path to it, so the check costs nothing on ordinary stores.
/// </summary>
internal sealed class BlockCache
{
    private readonly X86Cpu _cpu;
    private readonly Dictionary<ulong, Block> _byPhysical = new();
    private readonly Dictionary<ulong, List<Block>> _byPage = new();
    private readonly BlockTranslator _translator;

    public BlockCache(X86Cpu cpu)
    {
        _cpu = cpu;
        _translator = new BlockTranslator(cpu);
    }

    public long Translations { get; private set; }
    public long Invalidations { get; private set; }
    public int Count => _byPhysical.Count;

    public bool IsCodePage(ulong physPage) => _byPage.ContainsKey(physPage);

    public Block? Lookup(ulong physical, ulong ip, ulong linear, int decodeKey)
    {
        if (_byPhysical.TryGetValue(physical, out var b) && b.Ip == ip && b.Linear == linear && b.DecodeKey == decodeKey)
            return b;
        return null;
    }

    /// <summary>Decodes a new block at the current RIP. Returns null when fetching its first
    /// instruction faulted or the CPU must exit (the fault or exit is pending on the CPU).</summary>
    public Block? Translate(ulong physical, ulong ip, ulong linear, int decodeKey)
    {
        var block = _translator.Translate(physical, ip, linear, decodeKey);
        if (block == null)
            return null;
        if (_byPhysical.TryGetValue(physical, out var old))
            Remove(old);
        _byPhysical[physical] = block;
        AddToPage(physical & ~0xFFFUL, block);
        if (block.SecondPage != Block.NoSecondPage)
            AddToPage(block.SecondPage, block);
        Translations++;
        return block;
    }

    private void AddToPage(ulong page, Block block)
    {
        if (!_byPage.TryGetValue(page, out var list))
        {
            list = new List<Block>();
            _byPage[page] = list;
            _cpu.ProtectCodePage(page);
        }
        list.Add(block);
    }

    private void Remove(Block b)
    {
        b.Valid = false;
        if (_byPhysical.TryGetValue(b.Physical, out var cur) && ReferenceEquals(cur, b))
            _byPhysical.Remove(b.Physical);
    }

    /// <summary>Drops every block with bytes on the page.</summary>
    public void InvalidatePage(ulong physPage)
    {
        if (!_byPage.Remove(physPage, out var list))
            return;
        foreach (var b in list)
            Remove(b);
        Invalidations++;
    }

    public void Clear()
    {
        foreach (var b in _byPhysical.Values)
            b.Valid = false;
        _byPhysical.Clear();
        _byPage.Clear();
    }
}
