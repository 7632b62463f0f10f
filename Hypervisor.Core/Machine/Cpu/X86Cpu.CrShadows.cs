using System.Runtime.CompilerServices;
using Hypervisor.Core.Machine.Virtualization;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>
/// VMX's CR0/CR4 guest/host masks and read shadows (SDM vol. 3 §25.6.6, §26.3): in guest mode with
/// <see cref="GuestIntercepts.CrShadows"/>, a bit set in a mask belongs to the hypervisor. Reads of
/// CR0/CR4 (MOV from CR, SMSW) return the read shadow's value for those bits; a write (MOV to CR,
/// LMSW, CLTS) that would give one of them a value other than the shadow's leaves guest mode, and
/// one that would not leaves those bits of the real register unchanged.
/// </summary>
public sealed unsafe partial class X86Cpu
{
    /// <summary>CR0 as software in the current mode reads it.</summary>
    internal ulong VisibleCr0
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Intercepts is { CrShadows: true } s ? (Cr0 & ~s.Cr0GuestHostMask) | (s.Cr0ReadShadow & s.Cr0GuestHostMask) : Cr0;
    }

    /// <summary>CR4 as software in the current mode reads it.</summary>
    internal ulong VisibleCr4
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Intercepts is { CrShadows: true } s ? (Cr4 & ~s.Cr4GuestHostMask) | (s.Cr4ReadShadow & s.Cr4GuestHostMask) : Cr4;
    }

    /// <summary>A write of <paramref name="newVisible"/> to CR0/CR4 exits when an owned bit would
    /// differ from its shadow (SDM vol. 3 §26.1.3).</summary>
    private static bool CrShadowWriteExits(GuestIntercepts s, int cr, ulong newVisible) => cr == 0
        ? ((newVisible ^ s.Cr0ReadShadow) & s.Cr0GuestHostMask) != 0
        : ((newVisible ^ s.Cr4ReadShadow) & s.Cr4GuestHostMask) != 0;

    /// <summary>The value a CR write that did not exit loads: owned bits keep the real register's
    /// value. Outside guest mode, without shadows, or for CR2/CR3/CR8: the value itself.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong MergeShadowedCrWrite(int cr, ulong value)
    {
        if (Intercepts is not { CrShadows: true } s)
            return value;
        return cr switch
        {
            0 => (Cr0 & s.Cr0GuestHostMask) | (value & ~s.Cr0GuestHostMask),
            4 => (Cr4 & s.Cr4GuestHostMask) | (value & ~s.Cr4GuestHostMask),
            _ => value,
        };
    }
}
