using Hypervisor.Core.Machine.Mmu;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>How memory is accessed, for permission checks and #PF error codes.</summary>
internal enum AccessType : byte { Read, Write, Execute }

/// <summary>Page-fault error code bits (SDM vol. 3 §4.7).</summary>
internal static class PfErr
{
    public const uint P = 1, W = 2, U = 4, Rsvd = 8, I = 16, Pk = 32;
}

/// <summary>The page walker: linear → guest physical through 32-bit, PAE or 4-level tables (SDM vol. 3 ch. 4).</summary>
public sealed unsafe partial class X86Cpu
{
    private const ulong PteP = 1, PteRw = 2, PteUs = 4, PtePwt = 8, PtePcd = 16, PteA = 32, PteD = 64, PtePs = 128, PteG = 256;
    private const ulong PteXd = 1UL << 63;

    /// <summary>PAE page-directory-pointer-table entries, loaded when CR3 is loaded in PAE mode (SDM §4.4.1).</summary>
    public readonly ulong[] Pdpte = new ulong[4];

    internal ushort CurrentPcid => (Cr4 & Cpu.Cr4.Pcide) != 0 ? (ushort)(Cr3 & Cr3Bits.PcidMask) : (ushort)0;

    private ulong PhysAddrMask => ((1UL << Model.MaxPhysAddrBits) - 1) & ~0xFFFUL;

    /// <summary>Translates a linear address for an access; on failure raises #PF (or #GP for a
    /// non-canonical address) and returns false. <paramref name="implicitSupervisor"/> marks
    /// accesses to GDT/IDT/TSS that are supervisor accesses whatever the CPL.</summary>
    internal bool Translate(ulong linear, AccessType access, bool implicitSupervisor, out ulong physical, out TlbEntry entry)
    {
        bool user = Cpl == 3 && !implicitSupervisor;
        entry = default;
        physical = 0;
        if (!IsPaging)
        {
            physical = linear & (IsLongMode ? ulong.MaxValue : 0xFFFFFFFFUL);
            entry = new TlbEntry { LinearPage = linear & ~0xFFFUL, PhysicalPage = physical & ~0xFFFUL, PageBase = linear & ~0xFFFUL, PageSize = 0x1000, Valid = true, Writable = true, User = true, Dirty = true };
            return FinalAddress(ref physical, access, linear); // guest paging off: linear = guest physical

        }
        if (IsLongMode && !IsCanonical(linear))
        {
            RaiseFault(Vector.GP, 0);
            return false;
        }
        ushort pcid = CurrentPcid;
        if (!Tlb.TryLookup(linear, pcid, out entry) || (access == AccessType.Write && !entry.Dirty))
        {
            if (!Walk(linear, access, user, implicitSupervisor, pcid, out entry))
                return false;
        }
        if (!CheckPermissions(in entry, access, user, implicitSupervisor))
        {
            RaisePageFault(linear, access, user, present: true, reserved: false);
            return false;
        }
        physical = entry.PhysicalPage | (linear & 0xFFF);
        // With nested paging the guest's translation (and its #PF) come first, then the final
        // guest physical address goes through the nested tables (APM vol. 2 §15.25.6).
        return FinalAddress(ref physical, access, linear);
    }

    private bool CheckPermissions(in TlbEntry e, AccessType access, bool user, bool implicitSupervisor)
    {
        if (user && !e.User)
            return false;
        if (access == AccessType.Write && !e.Writable && (user || (Cr0 & Cpu.Cr0.Wp) != 0))
            return false;
        if (access == AccessType.Execute)
        {
            if (e.NoExecute)
                return false;
            if (!user && e.User && (Cr4 & Cpu.Cr4.Smep) != 0)
                return false;
        }
        else if (!user && e.User && (Cr4 & Cpu.Cr4.Smap) != 0 && (implicitSupervisor || Cpl == 3 || (_rflags & RFlags.Ac) == 0))
        {
            return false;
        }
        return true;
    }

    internal static bool IsCanonical(ulong a) => (ulong)(((long)(a << 16)) >> 16) == a;

    private void RaisePageFault(ulong linear, AccessType access, bool user, bool present, bool reserved)
    {
        uint err = (present ? PfErr.P : 0) | (access == AccessType.Write ? PfErr.W : 0) | (user ? PfErr.U : 0) | (reserved ? PfErr.Rsvd : 0);
        // I/D is reported for fetches when SMEP is on, or when NXE is on with PAE or 4-level paging (SDM §4.7).
        if (access == AccessType.Execute && ((Cr4 & Cpu.Cr4.Smep) != 0 || ((Efer & Cpu.Efer.Nxe) != 0 && (Cr4 & Cpu.Cr4.Pae) != 0)))
            err |= PfErr.I;
        RaiseFault(Vector.PF, err, cr2: linear);
    }

    /// <summary>Walks the tables, setting accessed (and for writes dirty) bits, and caches the result.</summary>
    private bool Walk(ulong linear, AccessType access, bool user, bool implicitSupervisor, ushort pcid, out TlbEntry entry)
    {
        entry = default;
        bool nxe = (Efer & Cpu.Efer.Nxe) != 0;
        // Reserved physical-address bits: 51:MAXPHYADDR with 4-level paging (62:52 are ignored,
        // free for software), 62:MAXPHYADDR with PAE paging (SDM tables 4-14..4-19, 4-8..4-11).
        ulong rsvdHigh = ~((1UL << Model.MaxPhysAddrBits) - 1) & (IsLongMode ? (1UL << 52) - 1 : ~PteXd);
        ulong xdReserved = nxe ? 0 : PteXd;
        bool writable = true, usr = true, nx = false;
        int levels;
        ulong table;
        int shift;
        bool pae = (Cr4 & Cpu.Cr4.Pae) != 0;

        if (IsLongMode)
        {
            levels = 4;
            table = Cr3 & PhysAddrMask;
            shift = 39;
        }
        else if (pae)
        {
            ulong pdpte = Pdpte[(linear >> 30) & 3];
            if ((pdpte & PteP) == 0)
            {
                RaisePageFault(linear, access, user, present: false, reserved: false);
                return false;
            }
            levels = 2;
            table = pdpte & PhysAddrMask;
            shift = 21;
        }
        else
        {
            return Walk32(linear, access, user, implicitSupervisor, pcid, out entry);
        }

        for (int level = levels; level >= 1; level--, shift -= 9)
        {
            ulong pteAddr = table + ((linear >> shift) & 511) * 8;
            if (!ReadGuestTableU64(pteAddr, linear, out ulong pte))
                return false;
            if ((pte & PteP) == 0)
            {
                RaisePageFault(linear, access, user, present: false, reserved: false);
                return false;
            }
            bool leaf = level == 1 || ((pte & PtePs) != 0 && level <= 3);
            ulong rsvd = (pte & rsvdHigh) | (pte & xdReserved);
            if (IsLongMode && level == 4 && (pte & PtePs) != 0) rsvd |= PtePs;
            if (leaf && level == 3 && !Model.Has1GbPages) rsvd |= PtePs;
            if (leaf && level > 1)
                rsvd |= pte & (((1UL << shift) - 1) & ~0x1FFFUL); // bits between PAT (12) and the frame are reserved
            if (rsvd != 0)
            {
                RaisePageFault(linear, access, user, present: true, reserved: true);
                return false;
            }
            writable &= (pte & PteRw) != 0;
            usr &= (pte & PteUs) != 0;
            nx |= nxe && (pte & PteXd) != 0;
            if (!leaf)
            {
                if ((pte & PteA) == 0 && !WriteGuestTableU64(pteAddr, pte | PteA, linear))
                    return false;
                table = pte & PhysAddrMask;
                continue;
            }
            ulong pageSize = 1UL << shift;
            var e = new TlbEntry
            {
                LinearPage = linear & ~0xFFFUL,
                PageBase = linear & ~(pageSize - 1),
                PageSize = pageSize,
                PhysicalPage = ((pte & PhysAddrMask & ~(pageSize - 1)) | (linear & (pageSize - 1))) & ~0xFFFUL,
                Pcid = pcid,
                Valid = true,
                Global = (pte & PteG) != 0 && (Cr4 & Cpu.Cr4.Pge) != 0,
                Writable = writable,
                User = usr,
                NoExecute = nx,
            };
            // Accessed and dirty are set only when the access is allowed (SDM §4.8).
            if (!CheckPermissions(in e, access, user, implicitSupervisor))
            {
                entry = e;
                return true; // the caller raises the protection fault
            }
            ulong newPte = pte | PteA | (access == AccessType.Write ? PteD : 0);
            if (newPte != pte && !WriteGuestTableU64(pteAddr, newPte, linear))
                return false;
            e.Dirty = (newPte & PteD) != 0;
            Tlb.Insert(in e);
            entry = e;
            return true;
        }
        return false; // unreachable: level 1 is always a leaf
    }

    /// <summary>32-bit paging: 4-byte entries, 4 MiB pages with CR4.PSE (PSE-36 high bits).</summary>
    private bool Walk32(ulong linear, AccessType access, bool user, bool implicitSupervisor, ushort pcid, out TlbEntry entry)
    {
        entry = default;
        ulong pdeAddr = (Cr3 & 0xFFFFF000) + ((linear >> 22) & 1023) * 4;
        if (!ReadGuestTableU32(pdeAddr, linear, out ulong pde))
            return false;
        if ((pde & PteP) == 0)
        {
            RaisePageFault(linear, access, user, present: false, reserved: false);
            return false;
        }
        bool writable = (pde & PteRw) != 0, usr = (pde & PteUs) != 0;
        ulong frame, pageSize, leafAddr, leaf;
        if ((pde & PtePs) != 0 && (Cr4 & Cpu.Cr4.Pse) != 0)
        {
            if ((pde & (1UL << 21)) != 0) // bit 21 is reserved in a 4 MiB PDE
            {
                RaisePageFault(linear, access, user, present: true, reserved: true);
                return false;
            }
            pageSize = 1UL << 22;
            frame = (pde & 0xFFC00000) | (((pde >> 13) & 0xFF) << 32);
            leafAddr = pdeAddr;
            leaf = pde;
        }
        else
        {
            if ((pde & PteA) == 0 && !WriteGuestTableU32(pdeAddr, (uint)(pde | PteA), linear))
                return false;
            leafAddr = (pde & 0xFFFFF000) + ((linear >> 12) & 1023) * 4;
            if (!ReadGuestTableU32(leafAddr, linear, out leaf))
                return false;
            if ((leaf & PteP) == 0)
            {
                RaisePageFault(linear, access, user, present: false, reserved: false);
                return false;
            }
            writable &= (leaf & PteRw) != 0;
            usr &= (leaf & PteUs) != 0;
            pageSize = 0x1000;
            frame = leaf & 0xFFFFF000;
        }
        var e = new TlbEntry
        {
            LinearPage = linear & ~0xFFFUL,
            PageBase = linear & ~(pageSize - 1),
            PageSize = pageSize,
            PhysicalPage = (frame | (linear & (pageSize - 1))) & ~0xFFFUL,
            Pcid = pcid,
            Valid = true,
            Global = (leaf & PteG) != 0 && (Cr4 & Cpu.Cr4.Pge) != 0,
            Writable = writable,
            User = usr,
        };
        if (!CheckPermissions(in e, access, user, implicitSupervisor))
        {
            entry = e;
            return true;
        }
        ulong newLeaf = leaf | PteA | (access == AccessType.Write ? PteD : 0);
        if (newLeaf != leaf && !WriteGuestTableU32(leafAddr, (uint)newLeaf, linear))
            return false;
        e.Dirty = (newLeaf & PteD) != 0;
        Tlb.Insert(in e);
        entry = e;
        return true;
    }

    /// <summary>Loads the four PDPTEs for PAE paging; false when one is present with reserved bits
    /// set (the caller raises #GP(0), SDM §4.4.1), or after a nested page fault reading them (the
    /// exit is pending, so the caller's #GP is dropped).</summary>
    internal bool LoadPdptes(ulong cr3)
    {
        // The 32-byte table lies within one page: one nested translation covers it.
        if (!GuestTableAddress(cr3 & 0xFFFFFFE0, write: false, 0, hasLinear: false, out ulong baseAddr))
            return false;
        Span<ulong> tmp = stackalloc ulong[4];
        ulong rsvd = ~((1UL << Model.MaxPhysAddrBits) - 1) | 0x1E6; // bits 2:1, 8:5 and above MAXPHYADDR
        for (int i = 0; i < 4; i++)
        {
            tmp[i] = ReadPhysicalU64(baseAddr + (ulong)i * 8);
            if ((tmp[i] & PteP) != 0 && (tmp[i] & rsvd) != 0)
                return false;
        }
        tmp.CopyTo(Pdpte);
        return true;
    }

    public bool IsPaePaging => IsPaging && (Cr4 & Cpu.Cr4.Pae) != 0 && !IsLongMode;

    // ---- TLB maintenance: every architectural flush also drops the fast lookup caches. ----

    /// <summary>INVLPG semantics: the current PCID's and global translations of one page.</summary>
    public void InvalidatePage(ulong linear)
    {
        Tlb.InvalidatePage(linear, CurrentPcid, includeGlobal: true);
        FlushFastTlb();
    }

    /// <summary>INVLPGA: one page in every context, global translations included (no RAP effect).</summary>
    public void InvalidatePageAllContexts(ulong linear)
    {
        Tlb.InvalidatePageAllContexts(linear);
        FlushFastTlb();
    }

    public void FlushTlbAll()
    {
        Tlb.FlushAll();
        FlushFastTlb();
        ClearRapOnTlbInvalidation();
    }

    public void FlushTlbPcid(ushort pcid)
    {
        Tlb.FlushPcid(pcid);
        FlushFastTlb();
        ClearRapOnTlbInvalidation();
    }

    public void FlushTlbAllNonGlobal()
    {
        Tlb.FlushAllNonGlobal();
        FlushFastTlb();
        ClearRapOnTlbInvalidation();
    }

    /// <summary>ERAPS hardware clears the RAP whenever a context's translations are invalidated
    /// (MOV CR3, INVPCID types 1-3, CR0/CR4 changes that flush); INVLPG and INVPCID type 0 do not.</summary>
    private void ClearRapOnTlbInvalidation()
    {
        if (Model.HasEraps)
            Rap.Clear();
    }

    public void InvalidatePcidAddress(ushort pcid, ulong linear)
    {
        Tlb.InvalidatePage(linear, pcid, includeGlobal: false);
        FlushFastTlb();
    }
}
