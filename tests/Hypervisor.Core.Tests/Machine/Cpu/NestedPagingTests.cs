using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Virtualization;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using static Hypervisor.Core.Tests.Support.NestedTables;

namespace Hypervisor.Core.Tests.Machine.Cpu;

/// <summary>The second-stage walk (AMD nested paging, APM vol. 2 §15.25) with hand-built nested
/// tables: translation of the final address and of the guest's own table accesses, permissions,
/// reserved bits, accessed/dirty bits in nested entries, the #NPF record, and the caches' flushes.</summary>
public class NestedPagingTests
{
    private const ulong Page = 0x800000;                 // a guest physical page the tests remap
    private const ulong FrameA = 0x900000, FrameB = 0x901000;
    private const ulong CodePage = 0x600000;             // a page some tests run code from
    private const ulong Unbacked = 0x4000_0000;          // host physical, no slot backs it
    private const ulong U = 4, W = 2, I = 16, Rsvd = 8;
    private const ulong Final = 1UL << 32, GuestWalk = 1UL << 33;

    /// <summary>A guest with nested tables that identity-map its 16 MiB of RAM with 2 MiB pages.</summary>
    private static (GuestMachine M, NestedTables N) Guest(GuestMode mode = GuestMode.Long64)
    {
        var m = new GuestMachine(mode);
        var n = new NestedTables(m.Memory);
        n.IdentityMap(0, GuestMachine.RamSize);
        return (m, n);
    }

    private static void EnterGuest(GuestMachine m, NestedTables n, bool noExecute = true, uint exceptions = 0)
    {
        m.Cpu.Intercepts = new GuestIntercepts { Exceptions = exceptions };
        m.Cpu.NestedPaging = new NestedPaging(n.Root, noExecute);
    }

    /// <summary>Loads <paramref name="build"/> + HLT at the code base and runs it in guest mode with nested paging.</summary>
    private static CpuExit Run(GuestMachine m, NestedTables n, Action<Assembler> build, bool noExecute = true, uint exceptions = 0)
    {
        var a = m.NewAssembler();
        build(a);
        a.hlt();
        m.Load(a);
        EnterGuest(m, n, noExecute, exceptions);
        return m.Run(100_000);
    }

    private static ulong AddressAfter(GuestMachine m, Action<Assembler> prefix, ulong start = GuestMachine.CodeBase)
    {
        var a = m.NewAssembler();
        prefix(a);
        var ms = new MemoryStream();
        a.Assemble(new StreamCodeWriter(ms), start);
        return start + (ulong)ms.Length;
    }

    private static InterceptInfo ExpectNpf(GuestMachine m, CpuExit exit)
    {
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Intercept), exit.ToString());
        var info = m.Cpu.LastIntercept;
        Assert.That(info.Reason, Is.EqualTo(InterceptReason.NestedPageFault), info.ToString());
        return info;
    }

    // ---- Translation ----------------------------------------------------------------------------

    [Test]
    public void FinalAddress_RemappedPage_ReadsAndWritesTheHostFrame()
    {
        var (m, n) = Guest();
        using var _ = m;
        m.Memory.WriteU64(Page, 0x9999);
        m.Memory.WriteU64(FrameA, 0x1111);
        n.Map4K(Page, FrameA);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, Page);
            a.mov(rbx, __qword_ptr[rax]);
            a.mov(ecx, 0x2222);
            a.mov(__qword_ptr[rax + 8], rcx);
            a.mov(rdx, __qword_ptr[rax + 8]); // again, now through the fast TLB
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.Multiple(() =>
        {
            Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x1111));
            Assert.That(m.Cpu.GetGpr(Gpr.Rdx), Is.EqualTo(0x2222));
            Assert.That(m.Memory.ReadU64(FrameA + 8), Is.EqualTo(0x2222), "the store reached the host frame");
            Assert.That(m.Memory.ReadU64(Page + 8), Is.EqualTo(0), "not the identity frame");
        });
    }

    [Test]
    public void FinalAddress_GuestPagingOff_LinearIsTheGuestPhysicalAddress()
    {
        var (m, n) = Guest(GuestMode.Protected32);
        using var _ = m;
        m.Memory.WriteU32(FrameA + 4, 0xCAFE);
        n.Map4K(Page, FrameA);
        var exit = Run(m, n, a =>
        {
            a.mov(eax, (uint)Page);
            a.mov(ebx, __dword_ptr[eax + 4]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0xCAFE));
    }

    [Test]
    public void GuestWalk_LongMode_ReadsGuestTablesThroughTheNestedTables()
    {
        var (m, n) = Guest();
        using var _ = m;
        m.Memory.WriteU64(FrameA, 0xAAAA);
        m.Memory.WriteU64(FrameB, 0xBBBB);
        // At its guest physical address the guest PTE says FrameA; the nested tables put that
        // page-table page elsewhere, where the PTE says FrameB: the walk must read the latter.
        ulong pte = PageTables.Map(m, Page, FrameA, PageTables.P | PageTables.RW);
        ulong ptPage = pte & ~0xFFFUL, ptCopy = 0xA00000;
        var bytes = new byte[4096];
        m.Memory.Read(ptPage, bytes);
        m.Memory.Write(ptCopy, bytes);
        m.Memory.WriteU64(ptCopy + (pte & 0xFFF), FrameB | PageTables.P | PageTables.RW);
        n.Map4K(ptPage, ptCopy);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, Page);
            a.mov(rbx, __qword_ptr[rax]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0xBBBB));
        Assert.That(m.Memory.ReadU64(ptCopy + (pte & 0xFFF)) & PageTables.A, Is.EqualTo(PageTables.A), "A was set in the host copy");
        Assert.That(m.Memory.ReadU64(pte) & PageTables.A, Is.Zero, "not at the guest physical address");
    }

    [Test]
    public void GuestWalk_ThirtyTwoBitPaging_ReadsGuestTablesThroughTheNestedTables()
    {
        var (m, n) = Guest(GuestMode.Protected32);
        using var _ = m;
        const ulong Pd = 0x300000, Pt = 0x301000, PtCopy = 0x302000;
        // Identity 4 MiB pages for the first 16 MiB, except the 4 MiB holding Page, which uses a page table.
        for (ulong k = 0; k < 4; k++)
            m.Memory.WriteU32(Pd + k * 4, (uint)((k << 22) | 0x83));
        m.Memory.WriteU32(Pd + (Page >> 22) * 4, (uint)(Pt | 3));
        for (ulong k = 0; k < 1024; k++)
            m.Memory.WriteU32(Pt + k * 4, (uint)((((Page >> 22) << 22) + (k << 12)) | 3));
        var bytes = new byte[4096];
        m.Memory.Read(Pt, bytes);
        m.Memory.Write(PtCopy, bytes);
        m.Memory.WriteU32(PtCopy + ((Page >> 12) & 1023) * 4, (uint)(FrameB | 3));
        m.Memory.WriteU32(FrameB, 0xB0B0);
        m.Memory.WriteU32(Page, 0x1D1D);
        m.Cpu.WriteCr4(Cr4.Pse);
        m.Cpu.WriteCr3(Pd);
        m.Cpu.WriteCr0(m.Cpu.Cr0 | Cr0.Pg);
        n.Map4K(Pt, PtCopy);
        var exit = Run(m, n, a =>
        {
            a.mov(eax, (uint)Page);
            a.mov(ebx, __dword_ptr[eax]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0xB0B0));
    }

    [Test]
    public void LargeNestedPages_OneGigabyteLeaf_Translates()
    {
        var (m, n) = Guest();
        using var _ = m;
        n.SetEntry(0, 3, Prw | PS); // PDPTE: the first 1 GiB, identity
        m.Memory.WriteU64(Page, 0x4242);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, Page);
            a.mov(rbx, __qword_ptr[rax]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x4242));
    }

    [Test]
    public void OutsideGuestMode_NestedPagingIsIgnored()
    {
        var (m, n) = Guest();
        using var _ = m;
        m.Memory.WriteU64(Page, 0x5151);
        n.Map4K(Page, FrameA);
        m.Cpu.NestedPaging = new NestedPaging(n.Root, true);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, Page);
            a.mov(rbx, __qword_ptr[rax]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x5151));
    }

    [Test]
    public void FinalAddress_HostPhysicalNoSlotBacks_IsAnMmioExit()
    {
        var (m, n) = Guest();
        using var _ = m;
        n.Map4K(Page, Unbacked);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, Page);
            a.mov(ebx, __dword_ptr[rax + 0x10]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Mmio), exit.ToString());
        Assert.That(exit.Address, Is.EqualTo(Unbacked + 0x10));
        Assert.That(exit.Size, Is.EqualTo(4));
        m.Cpu.CompleteMmioRead(exit.Address, 0x600D);
        exit = m.Run(1000);
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x600D));
    }

    // ---- Nested page faults -------------------------------------------------------------------

    [Test]
    public void ReadOnlyNestedPage_GuestWrite_ExitsWithWriteProtectUserFinal()
    {
        var (m, n) = Guest();
        using var _ = m;
        m.Memory.WriteU64(Page + 0x10, 0x77);
        n.Map4K(Page, Page, P | US);
        Action<Assembler> prefix = a =>
        {
            a.mov(rax, Page + 0x10);
            a.mov(rcx, __qword_ptr[rax]); // reads are allowed
            a.mov(ebx, 5);
        };
        ulong store = AddressAfter(m, prefix);
        var exit = Run(m, n, a =>
        {
            prefix(a);
            a.mov(__qword_ptr[rax], rbx);
        });
        var info = ExpectNpf(m, exit);
        Assert.Multiple(() =>
        {
            Assert.That(info.ErrorCode, Is.EqualTo(1 | W | U), "P|W|U");
            Assert.That(info.NestedFaultErrorCode, Is.EqualTo(1 | W | U | Final));
            Assert.That(info.DuringGuestWalk, Is.False);
            Assert.That(info.Address, Is.EqualTo(Page + 0x10), "the guest physical address, offset included");
            Assert.That(info.HasLinearAddress, Is.True);
            Assert.That(info.LinearAddress, Is.EqualTo(Page + 0x10));
            Assert.That(info.Rip, Is.EqualTo(store), "RIP of the store");
            Assert.That(exit.Address, Is.EqualTo(store));
            Assert.That(m.Cpu.Rip, Is.EqualTo(store), "the store has not run");
            Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(0x77));
            Assert.That(m.Memory.ReadU64(Page + 0x10), Is.EqualTo(0x77), "memory unchanged");
        });
    }

    [Test]
    public void NestedFault_MappingFixed_InstructionRetriesAndCompletes()
    {
        var (m, n) = Guest();
        using var _ = m;
        ulong entry = n.Map4K(Page, Page, P | US);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, Page);
            a.mov(ebx, 5);
            a.mov(__qword_ptr[rax], rbx);
            a.add(rbx, 1);
        });
        ExpectNpf(m, exit);
        m.Memory.WriteU64(entry, Page | Prw);
        m.Cpu.FlushTlbAll();
        exit = m.Run(1000);
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.That(m.Memory.ReadU64(Page), Is.EqualTo(5));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(6), "each instruction ran once");
    }

    [Test]
    public void NotPresentNestedPage_Read_ExitsWithUserFinalOnly()
    {
        var (m, n) = Guest();
        using var _ = m;
        n.Unmap4K(Page);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, Page + 0x123);
            a.mov(bl, __byte_ptr[rax]);
        });
        var info = ExpectNpf(m, exit);
        Assert.That(info.NestedFaultErrorCode, Is.EqualTo(U | Final));
        Assert.That(info.Address, Is.EqualTo(Page + 0x123));
    }

    [Test]
    public void NotPresentNestedPage_InstructionFetch_ReportsFetch()
    {
        var (m, n) = Guest();
        using var _ = m;
        SystemGuest.Place(m, CodePage, a => a.hlt());
        n.Unmap4K(CodePage);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, CodePage);
            a.jmp(rax);
        });
        var info = ExpectNpf(m, exit);
        Assert.That(info.NestedFaultErrorCode, Is.EqualTo(I | U | Final));
        Assert.That(info.Address, Is.EqualTo(CodePage));
        Assert.That(info.Rip, Is.EqualTo(CodePage));
    }

    [TestCase(true, 1 | I | U, TestName = "NestedNoExecute_HostNxe_FetchIsAProtectionFault")]
    [TestCase(false, 1 | Rsvd | I | U, TestName = "NestedNoExecute_NoHostNxe_BitIsReserved")]
    public void NestedNoExecute_Fetch(bool hostNxe, ulong expected)
    {
        var (m, n) = Guest();
        using var _ = m;
        SystemGuest.Place(m, CodePage, a => a.hlt());
        n.Map4K(CodePage, CodePage, Prw | NX);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, CodePage);
            a.jmp(rax);
        }, noExecute: hostNxe);
        var info = ExpectNpf(m, exit);
        Assert.That(info.NestedFaultErrorCode, Is.EqualTo(expected | Final));
    }

    [Test]
    public void NestedNoExecute_DataAccess_IsAllowed()
    {
        var (m, n) = Guest();
        using var _ = m;
        m.Memory.WriteU64(Page, 0x3131);
        n.Map4K(Page, Page, Prw | NX);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, Page);
            a.mov(rbx, __qword_ptr[rax]);
            a.mov(__qword_ptr[rax], rax);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x3131));
    }

    [TestCase(1, TestName = "NestedSupervisorOnly_Leaf_EveryAccessIsAUserAccess")]
    [TestCase(2, TestName = "NestedSupervisorOnly_Directory_EveryAccessIsAUserAccess")]
    public void NestedSupervisorOnly(int level)
    {
        var (m, n) = Guest();
        using var _ = m;
        n.Map4K(Page, Page);
        n.SetEntry(Page, level, n.Entry(Page, level) & ~US);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, Page);
            a.mov(rbx, __qword_ptr[rax]);
        });
        var info = ExpectNpf(m, exit);
        Assert.That(info.NestedFaultErrorCode, Is.EqualTo(1 | U | Final));
    }

    [Test]
    public void NestedReadOnlyDirectory_Write_Faults()
    {
        var (m, n) = Guest();
        using var _ = m;
        n.Map4K(Page, Page);
        // The directory entry of Page's 2 MiB (higher ones also cover the guest's own tables).
        n.SetEntry(Page, 2, n.Entry(Page, 2) & ~RW);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, Page);
            a.mov(__qword_ptr[rax], rax);
        });
        Assert.That(ExpectNpf(m, exit).NestedFaultErrorCode, Is.EqualTo(1 | W | U | Final));
    }

    [TestCase(2, 1UL << 13, TestName = "NestedReservedBits_LargePageFrameLowBits_Rsvd")]
    [TestCase(1, 1UL << 50, TestName = "NestedReservedBits_AboveMaxPhysAddr_Rsvd")]
    public void NestedReservedBits(int level, ulong bit)
    {
        var (m, n) = Guest();
        using var _ = m;
        if (level == 1)
            n.Map4K(Page, Page);
        n.SetEntry(Page, level, n.Entry(Page, level) | bit);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, Page);
            a.mov(rbx, __qword_ptr[rax]);
        });
        Assert.That(ExpectNpf(m, exit).NestedFaultErrorCode, Is.EqualTo(1 | Rsvd | U | Final));
    }

    [Test]
    public void NestedReservedBits_PsInPml4e_TheFirstFetchFaults()
    {
        var (m, n) = Guest(GuestMode.Protected32);
        using var _ = m;
        n.SetEntry(0, 4, n.Entry(0, 4) | PS);
        var info = ExpectNpf(m, Run(m, n, a => a.nop()));
        Assert.That(info.NestedFaultErrorCode, Is.EqualTo(1 | Rsvd | I | U | Final));
        Assert.That(info.Address, Is.EqualTo(GuestMachine.CodeBase));
    }

    [Test]
    public void GuestPageTableNotMapped_ReportsTheGuestWalkWithTheTableAddress()
    {
        var (m, n) = Guest();
        using var _ = m;
        ulong pte = PageTables.Map(m, Page, FrameA, PageTables.P | PageTables.RW);
        n.Unmap4K(pte);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, Page + 8);
            a.mov(rbx, __qword_ptr[rax]);
        });
        var info = ExpectNpf(m, exit);
        Assert.Multiple(() =>
        {
            Assert.That(info.NestedFaultErrorCode, Is.EqualTo(U | GuestWalk), "a read during the walk: U and bit 33");
            Assert.That(info.DuringGuestWalk, Is.True);
            Assert.That(info.Address, Is.EqualTo(pte), "the guest physical address of the PTE");
            Assert.That(info.HasLinearAddress, Is.True);
            Assert.That(info.LinearAddress, Is.EqualTo(Page + 8), "the linear address being translated");
        });
    }

    [Test]
    public void GuestPageTableNotMapped_DuringAFetch_IsStillADataRead()
    {
        var (m, n) = Guest();
        using var _ = m;
        SystemGuest.Place(m, CodePage, a => a.hlt());
        ulong pte = PageTables.Map(m, CodePage, CodePage, PageTables.P | PageTables.RW);
        n.Unmap4K(pte);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, CodePage);
            a.jmp(rax);
        });
        Assert.That(ExpectNpf(m, exit).NestedFaultErrorCode, Is.EqualTo(U | GuestWalk), "no I: the walk reads the table");
    }

    [TestCase(false, TestName = "ReadOnlyGuestPageTable_AccessedBitClear_WriteDuringWalkFaults")]
    [TestCase(true, TestName = "ReadOnlyGuestPageTable_AccessedBitSet_ReadSucceeds")]
    public void ReadOnlyGuestPageTable(bool accessedAlready)
    {
        var (m, n) = Guest();
        using var _ = m;
        m.Memory.WriteU64(FrameA, 0x7A7A);
        // Every guest table entry on the way must already be accessed for the walk to need no write.
        ulong pte = PageTables.Map(m, Page, FrameA, PageTables.P | PageTables.RW | (accessedAlready ? PageTables.A : 0));
        m.Memory.WriteU64(PageTables.PdeAddress(Page), m.Memory.ReadU64(PageTables.PdeAddress(Page)) | PageTables.A);
        m.Memory.WriteU64(PageTables.PdpteAddress(Page), m.Memory.ReadU64(PageTables.PdpteAddress(Page)) | PageTables.A);
        m.Memory.WriteU64(GuestMachine.Pml4Base, m.Memory.ReadU64(GuestMachine.Pml4Base) | PageTables.A);
        n.Map4K(pte, pte, P | US);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, Page);
            a.mov(rbx, __qword_ptr[rax]);
        });
        if (accessedAlready)
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
            Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x7A7A));
            return;
        }
        var info = ExpectNpf(m, exit);
        Assert.That(info.NestedFaultErrorCode, Is.EqualTo(1 | W | U | GuestWalk), "setting A is a write to the guest table");
        Assert.That(info.Address, Is.EqualTo(pte));
        Assert.That(m.Memory.ReadU64(pte) & PageTables.A, Is.Zero);
    }

    [Test]
    public void GuestPageFault_TakesPriorityOverTheFinalNestedFault()
    {
        var (m, n) = Guest();
        using var _ = m;
        PageTables.Map(m, Page, Page, 0); // not present for the guest
        n.Unmap4K(Page);                   // nor in the nested tables
        var exit = Run(m, n, a =>
        {
            a.mov(rax, Page);
            a.mov(rbx, __qword_ptr[rax]);
        }, exceptions: 1u << Vector.PF);
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Intercept));
        Assert.That(m.Cpu.LastIntercept.Reason, Is.EqualTo(InterceptReason.Exception));
        Assert.That(m.Cpu.LastIntercept.Number, Is.EqualTo(Vector.PF));
        Assert.That(m.Cpu.LastIntercept.Address, Is.EqualTo(Page));
    }

    [Test]
    public void PaePdpteLoad_TableNotMapped_ReportsGuestWalkWithoutLinearAddress()
    {
        var (m, n) = Guest(GuestMode.Protected32);
        using var _ = m;
        const ulong Pdpt = 0x300000, Pd = 0x301000, OtherPdpt = 0x302000;
        m.Memory.WriteU64(Pdpt, Pd | 1);
        m.Memory.WriteU64(OtherPdpt, Pd | 1);
        for (ulong k = 0; k < 8; k++)
            m.Memory.WriteU64(Pd + k * 8, (k << 21) | 0x83);
        m.Cpu.WriteCr4(Cr4.Pae);
        m.Cpu.WriteCr3(Pdpt);
        m.Cpu.WriteCr0(m.Cpu.Cr0 | Cr0.Pg);
        n.Unmap4K(OtherPdpt);
        var exit = Run(m, n, a =>
        {
            a.mov(eax, (uint)OtherPdpt);
            a.mov(cr3, eax);
        });
        var info = ExpectNpf(m, exit);
        Assert.Multiple(() =>
        {
            Assert.That(info.NestedFaultErrorCode, Is.EqualTo(U | GuestWalk));
            Assert.That(info.Address, Is.EqualTo(OtherPdpt));
            Assert.That(info.HasLinearAddress, Is.False);
            Assert.That(m.Cpu.Cr3, Is.EqualTo(Pdpt), "MOV CR3 did not complete");
        });
        n.Map4K(OtherPdpt, OtherPdpt);
        exit = m.Run(1000);
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.That(m.Cpu.Cr3, Is.EqualTo(OtherPdpt));
    }

    [Test]
    public void InstructionStraddlingIntoAnUnmappedPage_EarlierInstructionsRunThenFetchFaults()
    {
        var (m, n) = Guest();
        using var _ = m;
        ulong start = CodePage + 0x1000 - 8;
        Action<Assembler> prefix = a => a.mov(ebx, 1); // 5 bytes: the next instruction crosses the page end
        ulong straddler = AddressAfter(m, prefix, start);
        var a = m.NewAssembler();
        prefix(a);
        a.mov(rax, 0x1122334455667788UL);
        a.hlt();
        m.Load(a, start);
        n.Unmap4K(CodePage + 0x1000);
        EnterGuest(m, n);
        var info = ExpectNpf(m, m.Run(1000));
        Assert.Multiple(() =>
        {
            Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(1), "the instruction before ran");
            Assert.That(info.NestedFaultErrorCode, Is.EqualTo(I | U | Final));
            Assert.That(info.Address, Is.EqualTo(CodePage + 0x1000));
            Assert.That(info.Rip, Is.EqualTo(straddler));
        });
    }

    [Test]
    public void CrossPageStore_SecondPageReadOnly_WritesNeitherPage()
    {
        var (m, n) = Guest();
        using var _ = m;
        n.Map4K(Page + 0x1000, Page + 0x1000, P | US);
        var exit = Run(m, n, a =>
        {
            a.mov(rax, Page + 0xFFC);
            a.mov(rbx, -1L);
            a.mov(__qword_ptr[rax], rbx);
        });
        var info = ExpectNpf(m, exit);
        Assert.That(info.Address, Is.EqualTo(Page + 0x1000));
        Assert.That(m.Memory.ReadU32(Page + 0xFFC), Is.Zero);
    }

    // ---- Accessed and dirty bits in nested entries -------------------------------------------------

    [Test]
    public void NestedAccessedDirty_ReadSetsAccessed_WriteSetsDirty()
    {
        var (m, n) = Guest();
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
        var (m, n) = Guest();
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
        var (m, n) = Guest();
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
        var (m, n) = Guest();
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
        var (m, n) = Guest();
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
        var (m, n) = Guest();
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
        var (m, n) = Guest();
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
