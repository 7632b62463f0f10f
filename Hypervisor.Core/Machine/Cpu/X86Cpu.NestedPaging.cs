using System.Runtime.CompilerServices;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Virtualization;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>
/// The second-stage walk (AMD nested paging, APM vol. 2 §15.25): in guest mode with
/// <see cref="NestedPaging"/> set, every guest physical address the CPU produces (guest page-table
/// entries, PDPTEs, the final address of each access, or the linear address itself with guest paging
/// off) is translated to a host physical address through 4-level long-mode tables rooted at nCR3.
/// Nested accesses are user accesses; accessed and dirty bits are set in nested entries. A failed
/// walk leaves guest mode with <see cref="InterceptReason.NestedPageFault"/>.
/// <para>Caching: the fast TLBs hold the combined linear → host page; the architectural TLB keeps the
/// guest's own linear → guest physical translations; a small nested TLB keeps guest physical → host
/// physical. The nested TLB belongs to the same flush domain as the architectural TLB: every flush
/// of it (any FlushTlb*, INVLPG, INVPCID, TLB_CONTROL) drops the nested entries too.</para>
/// </summary>
public sealed unsafe partial class X86Cpu
{
    private struct NestedTlbEntry
    {
        public ulong GuestPage;   // guest physical page | 1 (valid)
        public ulong HostPage;
        public long Generation;   // Tlb.Flushes when it was made
        public bool Writable;     // R/W=1 at every level
        public bool NoExecute;    // NX=1 at some level (with the host's EFER.NXE)
        public bool Dirty;        // D=1 in the leaf
    }

    private const int NestedTlbSize = 4096;
    private readonly NestedTlbEntry[] _ntlb = new NestedTlbEntry[NestedTlbSize];

    private NestedPaging? _nestedPaging;
    private bool _hasNestedPaging;
    private ulong _nestedRoot;
    private bool _nestedNx;
    private bool _nestedEpt;
    // The last nested address space translations were made through: setting the same one again
    // (a vendor does on every entry) keeps the TLB.
    private NestedPaging? _lastNestedPaging;

    /// <summary>Nested walks performed (nested TLB misses), for tests and statistics.</summary>
    public long NestedWalks { get; private set; }

    /// <summary>Second-stage translation for the guest; it applies only in guest mode
    /// (<see cref="Intercepts"/> set). Setting a different nested address space flushes every
    /// translation (the guest's walks went through the old one); setting the same one again does
    /// not, so a vendor can set it on every entry and leave it set across exits.</summary>
    public NestedPaging? NestedPaging
    {
        get => _nestedPaging;
        set
        {
            if (value == _nestedPaging)
                return;
            if (value.HasValue && value != _lastNestedPaging)
            {
                Tlb.FlushAll(); // also ends every nested TLB entry's generation
                _lastNestedPaging = value;
            }
            _nestedPaging = value;
            _hasNestedPaging = value.HasValue;
            _nestedRoot = value?.Root ?? 0;
            _nestedNx = value?.NoExecute ?? false;
            _nestedEpt = value?.Ept ?? false;
            FlushFastTlb();
        }
    }

    /// <summary>True while guest physical addresses go through the nested tables.</summary>
    internal bool IsNestedPagingActive
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _hasNestedPaging && Intercepts != null;
    }

    /// <summary>Guest physical → host physical for an access of kind <paramref name="access"/>. On
    /// failure raises the nested-page-fault intercept and returns false. <paramref name="guestTable"/>
    /// marks accesses the guest's own page walk makes (they are reads, or writes for A/D updates).</summary>
    internal bool NestedTranslate(ulong gpa, AccessType access, bool guestTable, ulong linear, bool hasLinear, out ulong hpa)
    {
        ulong page = gpa & ~0xFFFUL;
        ref var e = ref _ntlb[(int)(page >> 12) & (NestedTlbSize - 1)];
        if (e.GuestPage == (page | 1) && e.Generation == Tlb.Flushes)
        {
            bool allowed = access switch
            {
                AccessType.Write => e.Writable && e.Dirty,
                AccessType.Execute => !e.NoExecute,
                _ => true,
            };
            if (allowed)
            {
                hpa = e.HostPage | (gpa & 0xFFF);
                return true;
            }
        }
        return NestedWalk(gpa, access, guestTable, linear, hasLinear, out hpa);
    }

    /// <summary>The 4-level walk of the nested tables (APM vol. 2 §15.25.5): long-mode format with
    /// the host's MAXPHYADDR and EFER.NXE; every access is a user access, so U/S=0 at any level
    /// faults; WP does not apply.</summary>
    private bool NestedWalk(ulong gpa, AccessType access, bool guestTable, ulong linear, bool hasLinear, out ulong hpa)
    {
        if (_nestedEpt)
            return EptWalk(gpa, access, guestTable, linear, hasLinear, out hpa);
        hpa = 0;
        NestedWalks++;
        ulong rsvdHigh = ~((1UL << Model.MaxPhysAddrBits) - 1) & ((1UL << 52) - 1);
        ulong xdReserved = _nestedNx ? 0 : PteXd;
        ulong table = _nestedRoot & PhysAddrMask;
        bool writable = true, user = true, nx = false;
        int shift = 39;
        for (int level = 4; level >= 1; level--, shift -= 9)
        {
            ulong pteAddr = table + ((gpa >> shift) & 511) * 8;
            ulong pte = ReadPhysicalU64(pteAddr);
            if ((pte & PteP) == 0)
                return RaiseNestedPageFault(gpa, access, guestTable, linear, hasLinear, present: false, reserved: false);
            bool leaf = level == 1 || ((pte & PtePs) != 0 && level <= 3);
            ulong rsvd = (pte & rsvdHigh) | (pte & xdReserved);
            if (level == 4 && (pte & PtePs) != 0) rsvd |= PtePs;
            if (leaf && level == 3 && !Model.Has1GbPages) rsvd |= PtePs;
            if (leaf && level > 1)
                rsvd |= pte & (((1UL << shift) - 1) & ~0x1FFFUL); // between PAT (12) and the frame
            if (rsvd != 0)
                return RaiseNestedPageFault(gpa, access, guestTable, linear, hasLinear, present: true, reserved: true);
            writable &= (pte & PteRw) != 0;
            user &= (pte & PteUs) != 0;
            nx |= _nestedNx && (pte & PteXd) != 0;
            if (!leaf)
            {
                if ((pte & PteA) == 0)
                    WritePhysicalU64(pteAddr, pte | PteA);
                table = pte & PhysAddrMask;
                continue;
            }
            bool allowed = user
                && (access != AccessType.Write || writable)
                && (access != AccessType.Execute || !nx);
            if (!allowed) // accessed and dirty are set only for an allowed access, as in the guest walk
                return RaiseNestedPageFault(gpa, access, guestTable, linear, hasLinear, present: true, reserved: false);
            ulong newPte = pte | PteA | (access == AccessType.Write ? PteD : 0);
            if (newPte != pte)
                WritePhysicalU64(pteAddr, newPte);
            ulong pageSize = 1UL << shift;
            hpa = (pte & PhysAddrMask & ~(pageSize - 1)) | (gpa & (pageSize - 1));
            ref var e = ref _ntlb[(int)(gpa >> 12) & (NestedTlbSize - 1)];
            e.GuestPage = (gpa & ~0xFFFUL) | 1;
            e.HostPage = hpa & ~0xFFFUL;
            e.Generation = Tlb.Flushes;
            e.Writable = writable;
            e.NoExecute = nx;
            e.Dirty = (newPte & PteD) != 0;
            return true;
        }
        return false; // unreachable: level 1 is always a leaf
    }

    /// <summary>Leaves guest mode with a nested page fault (APM vol. 2 §15.25.6). The run loop puts
    /// RIP back on the instruction and the exit record takes it from there.</summary>
    private bool RaiseNestedPageFault(ulong gpa, AccessType access, bool guestTable, ulong linear, bool hasLinear, bool present, bool reserved)
    {
        uint error = PfErr.U
            | (present ? PfErr.P : 0)
            | (access == AccessType.Write ? PfErr.W : 0)
            | (reserved ? PfErr.Rsvd : 0)
            | (access == AccessType.Execute ? PfErr.I : 0);
        if (_exitPending)
            return false; // the first exit of an instruction wins
        RaiseIntercept(new InterceptInfo
        {
            Reason = InterceptReason.NestedPageFault,
            Rip = Rip,
            NextRip = Rip,
            Gpr = 0xFF,
            ErrorCode = error,
            Address = gpa,
            LinearAddress = hasLinear ? linear : 0,
            HasLinearAddress = hasLinear,
            DuringGuestWalk = guestTable,
        });
        return false;
    }

    /// <summary>Called when a nested-page-fault exit is taken: RIP is back on the faulting
    /// instruction only now, so the record takes it here.</summary>
    internal void CompleteNestedPageFaultRecord(ref CpuExit exit)
    {
        _intercept.Rip = _intercept.NextRip = Rip;
        exit.Address = Rip;
    }

    // ---- The guest's page walk: its table accesses are guest physical ----

    /// <summary>Host physical address of a guest paging-structure entry (identity outside nested
    /// paging); false after a nested page fault flagged as "during the guest's walk".</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool GuestTableAddress(ulong gpa, bool write, ulong linear, bool hasLinear, out ulong hpa)
    {
        if (!IsNestedPagingActive)
        {
            hpa = gpa;
            return true;
        }
        return NestedTranslate(gpa, write ? AccessType.Write : AccessType.Read, guestTable: true, linear, hasLinear, out hpa);
    }

    private bool ReadGuestTableU64(ulong gpa, ulong linear, out ulong value)
    {
        if (!GuestTableAddress(gpa, write: false, linear, hasLinear: true, out ulong hpa))
        {
            value = 0;
            return false;
        }
        value = ReadPhysicalU64(hpa);
        return true;
    }

    private bool ReadGuestTableU32(ulong gpa, ulong linear, out ulong value)
    {
        if (!GuestTableAddress(gpa, write: false, linear, hasLinear: true, out ulong hpa))
        {
            value = 0;
            return false;
        }
        value = ReadPhysicalU32(hpa);
        return true;
    }

    private bool WriteGuestTableU64(ulong gpa, ulong value, ulong linear)
    {
        if (!GuestTableAddress(gpa, write: true, linear, hasLinear: true, out ulong hpa))
            return false;
        WritePhysicalU64(hpa, value);
        return true;
    }

    private bool WriteGuestTableU32(ulong gpa, uint value, ulong linear)
    {
        if (!GuestTableAddress(gpa, write: true, linear, hasLinear: true, out ulong hpa))
            return false;
        WritePhysicalU32(hpa, value);
        return true;
    }

    /// <summary>The final guest physical address of an access → host physical (identity outside
    /// nested paging).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool FinalAddress(ref ulong physical, AccessType access, ulong linear) =>
        !IsNestedPagingActive || NestedTranslate(physical, access, guestTable: false, linear, hasLinear: true, out physical);
}
