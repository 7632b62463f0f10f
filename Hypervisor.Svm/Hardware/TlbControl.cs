namespace Hypervisor.Svm.Hardware;

/// <summary>
/// TLB_CONTROL, VMCB offset 05Ch (APM vol. 2 §15.16.1). VMRUN reads it and never changes it,
/// so the hypervisor resets it to <see cref="DoNothing"/> after each run. Values 3 and 7 need
/// the FlushByASID feature (CPUID Fn8000_000A EDX[6]); every other value is reserved.
/// </summary>
public enum TlbControl : byte
{
    DoNothing = 0x00,
    /// <summary>Flush the entire TLB: every entry of every ASID, host included.</summary>
    FlushAll = 0x01,
    /// <summary>Flush this guest's TLB entries (its ASID).</summary>
    FlushGuest = 0x03,
    /// <summary>Flush this guest's non-global TLB entries.</summary>
    FlushGuestNonGlobal = 0x07,
}
