using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Virtualization;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using static Hypervisor.Core.Tests.Support.NestedTables;
using static Hypervisor.Core.Tests.Support.NestedGuest;

namespace Hypervisor.Core.Tests.Machine.Cpu;

/// <summary>The second-stage walk (AMD nested paging, APM vol. 2 §15.25) with hand-built nested
/// tables: translation of the final address and of the guest's own table accesses, permissions,
/// reserved bits and the #NPF record. Accessed/dirty bits and caching: NestedPagingTlbTests.</summary>
public class NestedPagingTests
{
    // ---- Translation ----------------------------------------------------------------------------

    [Test]
    public void FinalAddress_RemappedPage_ReadsAndWritesTheHostFrame()
    {
        var (m, n) = Create();
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
        var (m, n) = Create(GuestMode.Protected32);
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
        var (m, n) = Create();
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
        var (m, n) = Create(GuestMode.Protected32);
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
        var (m, n) = Create();
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
        var (m, n) = Create();
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
        var (m, n) = Create();
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
        var (m, n) = Create();
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
        var (m, n) = Create();
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
        var (m, n) = Create();
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
        var (m, n) = Create();
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
        var (m, n) = Create();
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
        var (m, n) = Create();
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
        var (m, n) = Create();
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
        var (m, n) = Create();
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
        var (m, n) = Create();
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
        var (m, n) = Create(GuestMode.Protected32);
        using var _ = m;
        n.SetEntry(0, 4, n.Entry(0, 4) | PS);
        var info = ExpectNpf(m, Run(m, n, a => a.nop()));
        Assert.That(info.NestedFaultErrorCode, Is.EqualTo(1 | Rsvd | I | U | Final));
        Assert.That(info.Address, Is.EqualTo(GuestMachine.CodeBase));
    }

    [Test]
    public void GuestPageTableNotMapped_ReportsTheGuestWalkWithTheTableAddress()
    {
        var (m, n) = Create();
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
        var (m, n) = Create();
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
        var (m, n) = Create();
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
        var (m, n) = Create();
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
        var (m, n) = Create(GuestMode.Protected32);
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
        var (m, n) = Create();
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
        Enter(m, n);
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
        var (m, n) = Create();
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
}
