using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Virtualization;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using static Hypervisor.Core.Tests.Support.NestedTables;
using static Hypervisor.Core.Tests.Support.NestedGuest;

namespace Hypervisor.Core.Tests.Machine.Cpu;

/// <summary>Nested paging: accessed and dirty bits in nested entries, and the caches of combined and
/// nested translations with the flushes that drop them.</summary>
public class NestedPagingTlbTests
{
    // ---- Accessed and dirty bits in nested entries -------------------------------------------------

    [Test]
    public void NestedAccessedDirty_ReadSetsAccessed_WriteSetsDirty()
    {
        var (m, n) = Create();
        using var _ = m;
        ulong leaf = n.Map4K(Page, FrameA);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, Page);
            a.mov(rbx, __qword_ptr[rax]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.Multiple(() =>
        {
            Assert.That(m.Memory.ReadU64(leaf) & (A | D), Is.EqualTo(A), "a read sets A only");
            for (int level = 2; level <= 4; level++)
                Assert.That(n.Entry(Page, level) & A, Is.EqualTo(A), $"level {level} used, so accessed");
        });
        exit = Run(m, n, a =>
        {
            a.mov(rax, Page);
            a.mov(__qword_ptr[rax], rax);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Memory.ReadU64(leaf) & (A | D), Is.EqualTo(A | D), "a write sets D");
    }

    [Test]
    public void NestedAccessedDirty_GuestSettingItsAccessedBit_DirtiesTheTablesNestedPage()
    {
        var (m, n) = Create();
        using var _ = m;
        ulong pte = PageTables.Map(m, Page, FrameA, PageTables.P | PageTables.RW);
        ulong ptLeaf = n.Map4K(pte, pte);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, Page);
            a.mov(rbx, __qword_ptr[rax]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Memory.ReadU64(pte) & PageTables.A, Is.EqualTo(PageTables.A));
        Assert.That(m.Memory.ReadU64(ptLeaf) & (A | D), Is.EqualTo(A | D), "the guest's A update is a write through the nested tables");
    }

    [Test]
    public void NestedAccessedDirty_DeniedAccess_SetsNeither()
    {
        var (m, n) = Create();
        using var _ = m;
        ulong leaf = n.Map4K(Page, Page, P | US);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, Page);
            a.mov(__qword_ptr[rax], rax);
        });
        ExpectNpf(m, exit);
        Assert.That(m.Memory.ReadU64(leaf) & (A | D), Is.Zero);
    }

    // ---- Caching and flushes ------------------------------------------------------------------

    private static CpuExit ReadPage(GuestMachine m, NestedTables n) => Run(m, n, a =>
    {
        a.mov(rax, Page);
        a.mov(rbx, __qword_ptr[rax]);
    });

    [TestCase("all")]
    [TestCase("pcid")]
    [TestCase("nonglobal")]
    [TestCase("invlpg")]
    public void CombinedTranslation_CachedUntilFlushed(string flush)
    {
        var (m, n) = Create();
        using var _ = m;
        m.Memory.WriteU64(FrameA, 0xAAAA);
        m.Memory.WriteU64(FrameB, 0xBBBB);
        ulong leaf = n.Map4K(Page, FrameA);
        ReadPage(m, n);
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0xAAAA));
        m.Memory.WriteU64(leaf, FrameB | Prw); // the hypervisor changes the mapping ...
        ReadPage(m, n);
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0xAAAA), "... the cached translation still holds");
        switch (flush)
        {
            case "all": m.Cpu.FlushTlbAll(); break;
            case "pcid": m.Cpu.FlushTlbPcid(0); break;
            case "nonglobal": m.Cpu.FlushTlbAllNonGlobal(); break;
            default: m.Cpu.InvalidatePage(Page); break;
        }
        ReadPage(m, n);
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0xBBBB), "after the flush the new mapping is used");
    }

    [Test]
    public void CombinedTranslation_ArchitecturalTlbFlushedDirectly_DropsNestedEntriesToo()
    {
        var (m, n) = Create();
        using var _ = m;
        m.Memory.WriteU64(FrameA, 0xAAAA);
        m.Memory.WriteU64(FrameB, 0xBBBB);
        ulong leaf = n.Map4K(Page, FrameA);
        ReadPage(m, n);
        m.Memory.WriteU64(leaf, FrameB | Prw);
        // What a TLB_CONTROL flush on VMRUN does, followed by the state load.
        m.Cpu.Tlb.FlushAll();
        m.Cpu.FlushFastTlb();
        ReadPage(m, n);
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0xBBBB));
    }

    [Test]
    public void NestedRootChange_FlushesCombinedTranslations()
    {
        var (m, n) = Create();
        using var _ = m;
        var other = new NestedTables(m.Memory, tableBase: 1UL << 41, slotId: 91);
        other.IdentityMap(0, GuestMachine.RamSize);
        m.Memory.WriteU64(FrameA, 0xAAAA);
        m.Memory.WriteU64(FrameB, 0xBBBB);
        n.Map4K(Page, FrameA);
        other.Map4K(Page, FrameB);
        ReadPage(m, n);
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0xAAAA));
        ReadPage(m, other);
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0xBBBB));
    }

    [Test]
    public void NestedPaging_SetAgainUnchanged_KeepsTheTlb()
    {
        var (m, n) = Create();
        using var _ = m;
        ReadPage(m, n);
        long flushes = m.Cpu.Tlb.Flushes;
        long walks = m.Cpu.NestedWalks;
        m.Cpu.Intercepts = null;          // an exit ...
        m.Cpu.NestedPaging = null;
        ReadPage(m, n);                   // ... and the same nested tables again
        Assert.That(m.Cpu.Tlb.Flushes, Is.EqualTo(flushes), "no flush for the same nested address space");
        Assert.That(m.Cpu.NestedWalks, Is.EqualTo(walks), "every nested translation came from the nested TLB");
    }
}
