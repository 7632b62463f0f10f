using Hypervisor.Core.Machine.Memory;
using Hypervisor.Core.Machine.Virtualization;

namespace Hypervisor.Core.X86.Mmu;

/// <summary>One leaf of the nested tables: the guest physical page, its size and the entry.</summary>
public readonly record struct TdpLeaf(ulong Gpa, ulong Size, ulong Entry);

/// <summary>The TDP MMU's counters.</summary>
public readonly record struct TdpCounters(long FaultsHandled, long MmioFaults, long SmallPagesMapped, long LargePagesMapped, long Zaps);

/// <summary>
/// KVM's TDP MMU for one VM: the nested (second-stage) tables, built on demand as the guest
/// touches its memory. Guest physical addresses map to the same host physical addresses (the
/// VM's <see cref="PhysicalMemory"/> is the host memory the software CPU sees), in the long-mode
/// format AMD's nested paging walks (APM vol. 2 §15.25.5).
/// <para>The tables live in hypervisor-private memory: slots at <see cref="PrivateBase"/> that are no
/// user slot and that the tables never map, so the guest cannot reach them. Guest physical
/// addresses inside that window are never mapped.</para>
/// <para>Entry format: AMD's long-mode nested format, or Intel's EPT format (SDM vol. 3 §29.3.2:
/// bits 2:0 read/write/execute, bits 5:3 the memory type of a leaf, bit 7 a large page) when the
/// vendor walks EPT (<see cref="TdpFormat.Ept"/>).</para>
/// <para>Mappings: a 2 MiB page when the whole 2 MiB-aligned range lies in one memory slot, else
/// 4 KiB; writable unless the slot is read-only; never no-execute. A guest physical page no slot
/// backs gets an MMIO mapping (like KVM's MMIO SPTEs): it points at the same, unbacked, host physical
/// page, so the retried access leaves the CPU as its own MMIO exit with the access size and data.</para>
/// </summary>
public sealed unsafe class TdpMmu
{
    /// <summary>Host physical base of the private window, far above guest RAM (but below the
    /// smallest MAXPHYADDR of the host models, 46 bits on the Intel ones, that the nested walk accepts).</summary>
    public const ulong PrivateBase = 1UL << 45;
    /// <summary>Size of the private window: the tables can grow to this many bytes.</summary>
    public const ulong PrivateWindowSize = 1UL << 30;
    /// <summary>Slot ids of the private chunks start here, above every user slot id (KVM numbers its
    /// private memslots after KVM_USER_MEM_SLOTS the same way).</summary>
    public const int PrivateSlotIdBase = 0x10000;
    /// <summary>The private window grows by this much at a time (1,024 table pages; host memory is
    /// committed only as pages are used).</summary>
    public const ulong ChunkSize = 4UL << 20;

    private const ulong PageSize = 0x1000, LargePageSize = 0x20_0000;
    // Nested entry bits (long-mode format). Non-leaf entries allow everything: the leaf decides.
    private const ulong P = 1, RW = 2, US = 4, PS = 128;
    // EPT entry bits: read, write, execute; memory type write-back (6) in bits 5:3 of a leaf.
    private const ulong EptR = 1, EptW = 2, EptX = 4, EptWriteBack = 6UL << 3;
    private const ulong FrameMask = 0x000F_FFFF_FFFF_F000UL;

    // The format's bits: what makes an entry present, a readable leaf, its write permission, a table.
    private readonly ulong _present, _leaf, _write, _table;

    private readonly PhysicalMemory _memory;
    private readonly Vm? _vm;
    private readonly List<MemorySlot> _chunks = new();
    private readonly object _gate = new();
    private ulong _nextFree;

    /// <summary>The MMU of <paramref name="vm"/>, in the format its vendor walks: <see cref="Zap"/>
    /// asks its vCPUs to flush.</summary>
    public TdpMmu(Vm vm) : this(vm.Memory, vm.Ops.TdpFormat) => _vm = vm;

    /// <summary>An MMU over <paramref name="memory"/> alone (a bare machine: callers flush themselves).</summary>
    public TdpMmu(PhysicalMemory memory, TdpFormat format = TdpFormat.Npt)
    {
        _memory = memory;
        Format = format;
        if (format == TdpFormat.Ept)
        {
            _present = EptR | EptW | EptX;
            _leaf = EptR | EptX | EptWriteBack;
            _write = EptW;
            _table = EptR | EptW | EptX;
        }
        else
        {
            _present = P;
            _leaf = P | US;
            _write = RW;
            _table = P | RW | US;
        }
        _nextFree = PrivateBase;
        Root = AllocateTable();
    }

    public TdpFormat Format { get; }

    /// <summary>nCR3 / the EPTP's address: host physical address of the nested PML4.</summary>
    public ulong Root { get; }

    /// <summary>Nested page faults resolved by installing a RAM mapping ("demand paging").</summary>
    public long FaultsHandled { get; private set; }
    /// <summary>Nested page faults on guest physical addresses no slot backs (or writes to read-only slots).</summary>
    public long MmioFaults { get; private set; }
    /// <summary>RAM mappings installed, by size.</summary>
    public long SmallPagesMapped { get; private set; }
    public long LargePagesMapped { get; private set; }
    /// <summary>Table pages in use, the root included.</summary>
    public long TablePages => (long)((_nextFree - PrivateBase) / PageSize);
    public long Zaps { get; private set; }

    /// <summary>True for host physical addresses in the private window (no user slot may be there).</summary>
    public static bool IsPrivate(ulong address) => address - PrivateBase < PrivateWindowSize;

    /// <summary>
    /// Resolves a nested page fault at <paramref name="gpa"/> (<paramref name="errorCode"/> as in
    /// EXITINFO1: P, W, U, RSVD, I, bits 32/33). Returns true when the guest should resume and retry.
    /// <list type="bullet">
    /// <item>A slot backs the page: the mapping is installed (true, <paramref name="isMmio"/> false).</item>
    /// <item>No slot backs it: <paramref name="isMmio"/> is true. The first time an MMIO mapping is
    /// installed and the result is true: the retried access leaves the CPU as an MMIO exit carrying
    /// size and data. When that mapping already exists the result is false: the exit is for userspace
    /// (KVM_EXIT_MMIO).</item>
    /// <item>A write to a read-only slot: <paramref name="isMmio"/> true, false (KVM turns such a write
    /// into KVM_EXIT_MMIO).</item>
    /// <item>An address in the private window: <paramref name="isMmio"/> true, false, nothing mapped.</item>
    /// <item>A reserved-bit fault (these tables never set reserved bits): false, not MMIO: a
    /// misconfiguration the vendor reports as an internal error.</item>
    /// </list>
    /// </summary>
    public bool HandleFault(ulong gpa, ulong errorCode, out bool isMmio)
    {
        isMmio = false;
        if ((errorCode & NestedFaultCode.Rsvd) != 0)
            return false;
        lock (_gate)
        {
            if (IsPrivate(gpa))
            {
                isMmio = true;
                MmioFaults++;
                return false;
            }
            var slot = _memory.FindSlot(gpa);
            if (slot == null)
            {
                isMmio = true;
                MmioFaults++;
                return Install(gpa, _leaf | _write, large: false) != 0;
            }
            if ((errorCode & NestedFaultCode.W) != 0 && slot.ReadOnly)
            {
                isMmio = true;
                MmioFaults++;
                return false;
            }
            ulong largeBase = gpa & ~(LargePageSize - 1);
            bool large = largeBase >= slot.GuestBase && largeBase + LargePageSize <= slot.GuestEnd;
            ulong size = Install(gpa, _leaf | (slot.ReadOnly ? 0 : _write), large);
            // Size 0: already mapped (another vCPU got there first, or a stale translation): retry.
            if (size != 0)
            {
                FaultsHandled++;
                if (size == LargePageSize) LargePagesMapped++;
                else SmallPagesMapped++;
            }
            return true;
        }
    }

    /// <summary>Drops every mapping (memory slots changed) and asks the VM's vCPUs to flush their
    /// TLBs before they next run (KVM's remote TLB flush); the root stays the same.</summary>
    public void Zap()
    {
        lock (_gate)
        {
            // Clear what was handed out, root included, and hand it out again.
            for (ulong a = PrivateBase; a < _nextFree; a += PageSize)
                new Span<byte>(HostOf(a), (int)PageSize).Clear();
            _nextFree = PrivateBase + PageSize; // the root keeps its page
            Zaps++;
        }
        if (_vm != null)
            foreach (var v in _vm.Vcpus)
                v.MakeRequest(VcpuRequest.TlbFlush);
    }

    /// <summary>The leaf entry mapping <paramref name="gpa"/>, or 0 (tests, statistics).</summary>
    public ulong LookupLeaf(ulong gpa)
    {
        lock (_gate)
        {
            ulong table = Root;
            for (int shift = 39; shift >= 12; shift -= 9)
            {
                ulong e = *Entry(table, gpa, shift);
                if ((e & _present) == 0)
                    return 0;
                if (shift == 12 || (e & PS) != 0)
                    return e;
                table = e & FrameMask;
            }
            return 0;
        }
    }

    /// <summary>Every leaf entry in guest physical order, with the page size it maps (snapshots).</summary>
    public IReadOnlyList<TdpLeaf> ExportLeaves()
    {
        lock (_gate)
        {
            var leaves = new List<TdpLeaf>();
            Collect(Root, 0, 39, leaves);
            return leaves;
        }
    }

    private void Collect(ulong table, ulong gpaBase, int shift, List<TdpLeaf> leaves)
    {
        for (ulong i = 0; i < 512; i++)
        {
            ulong e = ((ulong*)HostOf(table))[i];
            if ((e & _present) == 0)
                continue;
            ulong gpa = gpaBase | (i << shift);
            if (shift == 12 || (e & PS) != 0)
                leaves.Add(new TdpLeaf(gpa, 1UL << shift, e));
            else
                Collect(e & FrameMask, gpa, shift - 9, leaves);
        }
    }

    /// <summary>The counters, for snapshots.</summary>
    public TdpCounters Counters
    {
        get
        {
            lock (_gate)
                return new TdpCounters(FaultsHandled, MmioFaults, SmallPagesMapped, LargePagesMapped, Zaps);
        }
    }

    /// <summary>Checks leaves read from a snapshot without changing anything; returns why they are unusable, or null.</summary>
    public string? CheckLeaves(IReadOnlyList<TdpLeaf> leaves)
    {
        foreach (var l in leaves)
        {
            if (l.Size != PageSize && l.Size != LargePageSize)
                return $"leaf at 0x{l.Gpa:x} maps 0x{l.Size:x} bytes (4 KiB or 2 MiB pages only)";
            if ((l.Gpa & (l.Size - 1)) != 0 || (l.Entry & _present) == 0 || IsPrivate(l.Gpa) || l.Gpa >= 1UL << 48)
                return $"leaf at 0x{l.Gpa:x} is misaligned, not present or outside guest physical space";
            if ((l.Size == LargePageSize) != ((l.Entry & PS) != 0))
                return $"leaf at 0x{l.Gpa:x}: the PS bit does not match its size";
        }
        return null;
    }

    /// <summary>Snapshot restore: the tables become exactly <paramref name="leaves"/> (checked with
    /// <see cref="CheckLeaves"/>) and the counters <paramref name="counters"/>. The vCPUs are asked to
    /// flush their TLBs.</summary>
    public void Import(IReadOnlyList<TdpLeaf> leaves, TdpCounters counters)
    {
        Zap();
        lock (_gate)
        {
            foreach (var l in leaves)
                InstallExact(l);
            (FaultsHandled, MmioFaults, SmallPagesMapped, LargePagesMapped, Zaps) =
                (counters.FaultsHandled, counters.MmioFaults, counters.SmallPagesMapped, counters.LargePagesMapped, counters.Zaps);
        }
    }

    private void InstallExact(TdpLeaf leaf)
    {
        int leafShift = leaf.Size == LargePageSize ? 21 : 12;
        ulong table = Root;
        for (int shift = 39; ; shift -= 9)
        {
            ulong* e = Entry(table, leaf.Gpa, shift);
            if (shift == leafShift)
            {
                *e = leaf.Entry;
                return;
            }
            if ((*e & _present) == 0)
                *e = AllocateTable() | _table;
            table = *e & FrameMask;
        }
    }

    /// <summary>Installs a leaf for <paramref name="gpa"/>, creating tables on the way: a 2 MiB leaf
    /// when <paramref name="large"/> and the directory slot is free (a directory that already holds a
    /// page table, e.g. from an earlier MMIO page, gets a 4 KiB leaf). Returns the size mapped, or 0
    /// when a leaf is already there.</summary>
    private ulong Install(ulong gpa, ulong flags, bool large)
    {
        ulong table = Root;
        for (int shift = 39; ; shift -= 9)
        {
            ulong* e = Entry(table, gpa, shift);
            if (shift == 12 || (shift == 21 && large && (*e & _present) == 0))
            {
                if ((*e & _present) != 0)
                    return 0;
                ulong size = 1UL << shift;
                *e = (gpa & ~(size - 1)) | flags | (shift == 21 ? PS : 0);
                return size;
            }
            if ((*e & _present) == 0)
                *e = AllocateTable() | _table;
            else if ((*e & PS) != 0)
                return 0; // a larger page maps it already
            table = *e & FrameMask;
        }
    }

    private ulong* Entry(ulong table, ulong gpa, int shift) => (ulong*)HostOf(table) + ((gpa >> shift) & 511);

    private byte* HostOf(ulong hpa)
    {
        ulong offset = hpa - PrivateBase;
        var chunk = _chunks[(int)(offset / ChunkSize)];
        return chunk.Host + offset % ChunkSize;
    }

    /// <summary>A zeroed table page in the private window, adding a chunk when the last one is full.</summary>
    private ulong AllocateTable()
    {
        ulong page = _nextFree;
        if (page - PrivateBase >= (ulong)_chunks.Count * ChunkSize)
        {
            if ((ulong)(_chunks.Count + 1) * ChunkSize > PrivateWindowSize)
                throw new InvalidOperationException($"the nested tables outgrew their private window (0x{PrivateWindowSize:x} bytes)");
            int n = _chunks.Count;
            _chunks.Add(_memory.AddSlot(PrivateSlotIdBase + n, PrivateBase + (ulong)n * ChunkSize, ChunkSize));
        }
        _nextFree = page + PageSize;
        return page;
    }
}

/// <summary>The entry format of the second-stage tables a vendor's hardware walks.</summary>
public enum TdpFormat
{
    /// <summary>AMD nested paging: the long-mode page-table format (APM vol. 2 §15.25.5).</summary>
    Npt,
    /// <summary>Intel EPT (SDM vol. 3 §29.3.2).</summary>
    Ept,
}
