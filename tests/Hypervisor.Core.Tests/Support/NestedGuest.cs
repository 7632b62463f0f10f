using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Virtualization;
using Iced.Intel;

namespace Hypervisor.Core.Tests.Support;

/// <summary>Guests for nested-paging tests: a <see cref="GuestMachine"/> in guest mode whose
/// hand-built <see cref="NestedTables"/> identity-map its RAM, plus the addresses and error bits
/// the tests share.</summary>
public static class NestedGuest
{
    public const ulong Page = 0x800000;                 // a guest physical page the tests remap
    public const ulong FrameA = 0x900000, FrameB = 0x901000;
    public const ulong CodePage = 0x600000;             // a page some tests run code from
    public const ulong Unbacked = 0x4000_0000;          // host physical, no slot backs it
    public const ulong U = 4, W = 2, I = 16, Rsvd = 8;
    public const ulong Final = 1UL << 32, GuestWalk = 1UL << 33;

    /// <summary>A guest with nested tables that identity-map its 16 MiB of RAM with 2 MiB pages.</summary>
    public static (GuestMachine M, NestedTables N) Create(GuestMode mode = GuestMode.Long64)
    {
        var m = new GuestMachine(mode);
        var n = new NestedTables(m.Memory);
        n.IdentityMap(0, GuestMachine.RamSize);
        return (m, n);
    }

    public static void Enter(GuestMachine m, NestedTables n, bool noExecute = true, uint exceptions = 0)
    {
        m.Cpu.Intercepts = new GuestIntercepts { Exceptions = exceptions };
        m.Cpu.NestedPaging = new NestedPaging(n.Root, noExecute);
    }

    /// <summary>Loads <paramref name="build"/> + HLT at the code base and runs it in guest mode with nested paging.</summary>
    public static CpuExit Run(GuestMachine m, NestedTables n, Action<Assembler> build, bool noExecute = true, uint exceptions = 0)
    {
        var a = m.NewAssembler();
        build(a);
        a.hlt();
        m.Load(a);
        Enter(m, n, noExecute, exceptions);
        return m.Run(100_000);
    }

    /// <summary>The address right after the code <paramref name="prefix"/> assembles to at <paramref name="start"/>.</summary>
    public static ulong AddressAfter(GuestMachine m, Action<Assembler> prefix, ulong start = GuestMachine.CodeBase)
    {
        var a = m.NewAssembler();
        prefix(a);
        var ms = new MemoryStream();
        a.Assemble(new StreamCodeWriter(ms), start);
        return start + (ulong)ms.Length;
    }

    /// <summary>Asserts the exit is a nested page fault and returns its record.</summary>
    public static InterceptInfo ExpectNpf(GuestMachine m, CpuExit exit)
    {
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Intercept), exit.ToString());
        var info = m.Cpu.LastIntercept;
        Assert.That(info.Reason, Is.EqualTo(InterceptReason.NestedPageFault), info.ToString());
        return info;
    }
}
