namespace Hypervisor.Core.Machine.Virtualization;

/// <summary>
/// Second-stage translation as a vendor's Hardware part enables it for a guest (AMD nested
/// paging, or Intel EPT with its own entry format). A value, so a vendor can set it on every entry
/// and the CPU flushes only when it actually changes.
/// </summary>
/// <param name="Root">nCR3 (APM vol. 2 §15.25.4) or the EPTP's address: host physical address of
/// the nested PML4.</param>
/// <param name="NoExecute">The host's EFER.NXE, which the nested walk uses: without it, bit 63 of a
/// nested entry is reserved (APM vol. 2 §15.25.5). Ignored for EPT.</param>
/// <param name="Ept">The tables are EPT paging structures (SDM vol. 3 §29.3): read/write/execute
/// permissions in bits 2:0, no user bit, violations and misconfigurations instead of #NPF.</param>
public readonly record struct NestedPaging(ulong Root, bool NoExecute, bool Ept = false);

/// <summary>The bits of an EPT violation's exit qualification the CPU reports (SDM vol. 3 §28.2.1,
/// table 28-7): the access in bits 2:0 and the permissions of the translation in bits 5:3.</summary>
public static class EptViolationCode
{
    public const ulong Read = 1, Write = 2, Fetch = 4;
    public const int PermissionShift = 3;
}

/// <summary>The bits of a nested-page-fault error code (APM vol. 2 §15.25.6, EXITINFO1).</summary>
public static class NestedFaultCode
{
    /// <summary>The nested entry was present (a protection or reserved-bit fault).</summary>
    public const ulong P = 1;
    /// <summary>The access was a write.</summary>
    public const ulong W = 2;
    /// <summary>Always set: every nested access is a user access.</summary>
    public const ulong U = 4;
    /// <summary>A reserved bit was set in a nested entry.</summary>
    public const ulong Rsvd = 8;
    /// <summary>The access was an instruction fetch.</summary>
    public const ulong I = 16;
    /// <summary>The fault happened translating the final guest physical address of the access.</summary>
    public const ulong FinalTranslation = 1UL << 32;
    /// <summary>The fault happened translating a guest page-table address during the guest's walk.</summary>
    public const ulong GuestPageTable = 1UL << 33;
}
