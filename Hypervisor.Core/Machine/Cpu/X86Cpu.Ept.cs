using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Virtualization;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>
/// The second-stage walk in Intel's EPT format (SDM vol. 3 §29.3): 4 levels rooted at the EPTP's
/// address; entries grant read (bit 0), write (bit 1) and execute (bit 2), and permissions are the
/// logical AND down the walk; bit 7 makes a 1 GiB (PDPTE) or 2 MiB (PDE) page. An entry with none of
/// bits 2:0 is not present. A walk that meets a not-present entry or lacks a permission ends in an
/// EPT violation; one that meets a misconfigured entry (write without read, execute-only without
/// the capability, reserved bits, a reserved memory type) in an EPT misconfiguration. Accessed and
/// dirty flags are not used (the EPTP never enables them here). The nested TLB caches readable
/// translations the same way the AMD-format walk does.
/// </summary>
public sealed unsafe partial class X86Cpu
{
    private const ulong EptRead = 1, EptWrite = 2, EptExecute = 4, EptLarge = 1UL << 7;

    private bool EptWalk(ulong gpa, AccessType access, bool guestTable, ulong linear, bool hasLinear, out ulong hpa)
    {
        hpa = 0;
        NestedWalks++;
        ulong rsvdHigh = ~((1UL << Model.MaxPhysAddrBits) - 1) & ((1UL << 52) - 1);
        ulong table = _nestedRoot & PhysAddrMask;
        ulong permissions = EptRead | EptWrite | EptExecute;
        int shift = 39;
        for (int level = 4; level >= 1; level--, shift -= 9)
        {
            ulong pteAddr = table + ((gpa >> shift) & 511) * 8;
            ulong pte = ReadPhysicalU64(pteAddr);
            ulong rwx = pte & 7;
            if (rwx == 0)
                return RaiseEptViolation(gpa, access, guestTable, linear, hasLinear, permissions: 0);
            bool leaf = level == 1 || ((pte & EptLarge) != 0 && level <= 3);
            if (IsEptMisconfigured(pte, level, leaf, shift, rsvdHigh))
                return RaiseEptMisconfiguration(gpa, linear, hasLinear);
            permissions &= rwx;
            if (!leaf)
            {
                table = pte & PhysAddrMask;
                continue;
            }
            ulong needed = access switch { AccessType.Write => EptWrite, AccessType.Execute => EptExecute, _ => EptRead };
            if ((permissions & needed) == 0)
                return RaiseEptViolation(gpa, access, guestTable, linear, hasLinear, permissions);
            ulong pageSize = 1UL << shift;
            hpa = (pte & PhysAddrMask & ~(pageSize - 1)) | (gpa & (pageSize - 1));
            if ((permissions & EptRead) != 0) // the nested TLB's hits allow every read
            {
                ref var e = ref _ntlb[(int)(gpa >> 12) & (NestedTlbSize - 1)];
                e.GuestPage = (gpa & ~0xFFFUL) | 1;
                e.HostPage = hpa & ~0xFFFUL;
                e.Generation = Tlb.Flushes;
                e.Writable = (permissions & EptWrite) != 0;
                e.NoExecute = (permissions & EptExecute) == 0;
                e.Dirty = true; // no dirty flag to set: writes need only the permission
            }
            return true;
        }
        return false; // unreachable: level 1 is always a leaf
    }

    /// <summary>SDM vol. 3 §29.3.3.1: write without read; execute-only (this CPU does not enumerate
    /// it); reserved bits (above MAXPHYADDR; bits 7:3 of a PML4E, 6:3 of a table entry; between bit
    /// 12 and the frame of a large page); a leaf memory type of 2, 3 or 7.</summary>
    private static bool IsEptMisconfigured(ulong pte, int level, bool leaf, int shift, ulong rsvdHigh)
    {
        ulong rwx = pte & 7;
        if (rwx == EptWrite || rwx == (EptWrite | EptExecute) || rwx == EptExecute)
            return true;
        if ((pte & rsvdHigh) != 0)
            return true;
        if (!leaf)
            return (pte & (level == 4 ? 0xF8UL : 0x78UL)) != 0;
        if ((((pte >> 3) & 7) is 2 or 3 or 7))
            return true;
        return level > 1 && (pte & (((1UL << shift) - 1) & ~0xFFFUL)) != 0;
    }

    private bool RaiseEptViolation(ulong gpa, AccessType access, bool guestTable, ulong linear, bool hasLinear, ulong permissions)
    {
        if (_exitPending)
            return false; // the first exit of an instruction wins
        ulong code = access switch
        {
            AccessType.Write => EptViolationCode.Write,
            AccessType.Execute => EptViolationCode.Fetch,
            _ => EptViolationCode.Read,
        } | (permissions << EptViolationCode.PermissionShift);
        RaiseIntercept(new InterceptInfo
        {
            Reason = InterceptReason.NestedPageFault,
            Rip = Rip,
            NextRip = Rip,
            Gpr = 0xFF,
            ErrorCode = (uint)code,
            Address = gpa,
            LinearAddress = hasLinear ? linear : 0,
            HasLinearAddress = hasLinear,
            DuringGuestWalk = guestTable,
        });
        return false;
    }

    private bool RaiseEptMisconfiguration(ulong gpa, ulong linear, bool hasLinear)
    {
        if (_exitPending)
            return false;
        RaiseIntercept(new InterceptInfo
        {
            Reason = InterceptReason.NestedPageFault,
            Rip = Rip,
            NextRip = Rip,
            Gpr = 0xFF,
            Address = gpa,
            LinearAddress = hasLinear ? linear : 0,
            HasLinearAddress = hasLinear,
            IsEptMisconfiguration = true,
        });
        return false;
    }
}
