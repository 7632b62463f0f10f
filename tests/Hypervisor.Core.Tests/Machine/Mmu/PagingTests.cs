using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using static Hypervisor.Core.Tests.Support.PageTables;
using static Hypervisor.Core.Tests.Support.SystemGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Mmu;

/// <summary>The page walker (SDM vol. 3 ch. 4): 4-level, PAE and 32-bit paging, page sizes,
/// permissions (NX, WP, U/S, SMEP, SMAP), reserved bits and accessed/dirty write-back.</summary>
public class PagingTests
{
    private const ulong Page = 0x800000;     // a 4 KiB page the tests remap
    private const ulong FrameA = 0x900000, FrameB = 0x901000;
    private const ulong UserPage = 0xA00000; // in a 2 MiB user page of the identity map
    private const ulong UserCode = 0x50000;

    private static GuestMachine Long()
    {
        var m = new GuestMachine(GuestMode.Long64);
        InstallIdt(m);
        InstallTss64(m);
        return m;
    }

    private static void EnterUser(Iced.Intel.Assembler a)
    {
        a.push((int)UserData);
        a.push((int)UserStack);
        a.push(2);
        a.push((int)UserCode64);
        a.push((int)UserCode);
        a.iretq();
    }

    private static ulong Pte(GuestMachine m, ulong address) => m.Memory.ReadU64(address);

    [Test]
    public void FourKilobytePage_ReadThenWrite_TranslatesAndSetsAccessedThenDirty()
    {
        using var m = Long();
        m.Memory.WriteU64(FrameA, 0x1111);
        ulong pte = Map(m, Page, FrameA, P | RW);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, Page);
            a.mov(rbx, __qword_ptr[rax]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x1111));
        Assert.That(Pte(m, pte) & (A | D), Is.EqualTo(A), "a read sets A only");
        Assert.That(m.Memory.ReadU64(PdeAddress(Page)) & A, Is.EqualTo(A), "the PDE used is accessed too");

        exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, Page + 8);
            a.mov(ecx, 0x2222);
            a.mov(__qword_ptr[rax], rcx);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Memory.ReadU64(FrameA + 8), Is.EqualTo(0x2222));
        Assert.That(Pte(m, pte) & (A | D), Is.EqualTo(A | D), "the first write through a clean TLB entry sets D");
    }

    [Test]
    public void TwoMegabytePage_Write_SetsDirtyInPde()
    {
        using var m = Long();
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, FrameA);
            a.mov(__qword_ptr[rax], rax);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Memory.ReadU64(PdeAddress(FrameA)) & (A | D), Is.EqualTo(A | D));
    }

    [Test]
    public void OneGigabytePage_TranslatesOffsetWithinThePage()
    {
        using var m = Long();
        m.Memory.WriteU64(PdpteAddress(0xC000_0000), P | RW | PS); // 1 GiB page at physical 0
        m.Memory.WriteU64(FrameA, 0x5555);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, 0xC000_0000 + FrameA);
            a.mov(rbx, __qword_ptr[rax]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x5555));
    }

    [Test]
    public void NoExecutePage_Fetch_PageFaultWithInstructionBit()
    {
        using var m = Long();
        Map(m, Page, FrameA, P | RW | XD);
        m.Memory.Write(FrameA, new byte[] { 0xF4 });
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, Page);
            a.jmp(rax);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.PF));
        Assert.That(Frame(m, 0), Is.EqualTo(PfErr.P | PfErr.I));
        Assert.That(Frame(m, 1), Is.EqualTo(Page));
        Assert.That(m.Cpu.Cr2, Is.EqualTo(Page));
    }

    [TestCase(true, ExpectedResult = Vector.PF)]
    [TestCase(false, ExpectedResult = -1)]
    public int SupervisorWriteToReadOnlyPage_FaultsOnlyWithWp(bool wp)
    {
        using var m = Long();
        Map(m, Page, FrameA, P);
        var exit = SystemGuest.Run(m, a =>
        {
            if (!wp)
            {
                a.mov(rax, cr0);
                a.and(rax, ~(int)Cr0.Wp);
                a.mov(cr0, rax);
            }
            a.mov(rax, Page);
            a.mov(__qword_ptr[rax], rax);
        });
        if (wp)
            Assert.That(Frame(m, 0), Is.EqualTo(PfErr.P | PfErr.W));
        else
            Assert.That(m.Memory.ReadU64(FrameA), Is.EqualTo(Page));
        return VectorOf(m, exit);
    }

    [TestCase(P | RW, false, PfErr.P | PfErr.U)]
    [TestCase(P | US, true, PfErr.P | PfErr.W | PfErr.U)]
    [TestCase(0UL, false, PfErr.U)]
    public void UserAccess_Denied_PageFaultWithUserBit(ulong flags, bool write, uint error)
    {
        using var m = Long();
        Map(m, Page, FrameA, flags);
        Place(m, UserCode, a =>
        {
            a.mov(rax, Page);
            if (write) a.mov(__qword_ptr[rax], rax);
            else a.mov(rax, __qword_ptr[rax]);
        });
        var exit = SystemGuest.Run(m, EnterUser);
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.PF));
        Assert.That(Frame(m, 0), Is.EqualTo(error));
        Assert.That(m.Cpu.Cr2, Is.EqualTo(Page));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Smep_SupervisorFetchFromUserPage(bool smep)
    {
        using var m = Long();
        SetLargePageFlags(m, 0, P | RW); // kernel code, stacks and tables become supervisor pages
        m.Memory.Write(UserPage, new byte[] { 0xF4 });
        var exit = SystemGuest.Run(m, a =>
        {
            if (smep)
            {
                a.mov(rax, cr4);
                a.or(rax, (int)Cr4.Smep);
                a.mov(cr4, rax);
            }
            a.mov(rax, UserPage);
            a.jmp(rax);
        });
        if (smep)
        {
            Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.PF));
            Assert.That(Frame(m, 0), Is.EqualTo(PfErr.P | PfErr.I));
        }
        else
        {
            Assert.That(exit.Address, Is.EqualTo(UserPage));
        }
    }

    [TestCase(false, Vector.PF)]
    [TestCase(true, -1)]
    public void Smap_SupervisorReadOfUserPage_AllowedOnlyWithAc(bool ac, int vector)
    {
        using var m = Long();
        SetLargePageFlags(m, 0, P | RW);
        m.Memory.WriteU64(UserPage, 0x77);
        m.Cpu.WriteCr4(m.Cpu.Cr4 | Cr4.Smap);
        if (ac) m.Cpu.SetRFlags(RFlags.Fixed1 | RFlags.Ac);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, UserPage);
            a.mov(rbx, __qword_ptr[rax]);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(vector));
        if (vector == Vector.PF)
            Assert.That(Frame(m, 0), Is.EqualTo(PfErr.P));
        else
            Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x77));
    }

    [Test]
    public void Smap_ImplicitSupervisorAccess_FaultsEvenWithAc()
    {
        using var m = Long();
        SetLargePageFlags(m, 0, P | RW);
        m.Cpu.WriteCr4(m.Cpu.Cr4 | Cr4.Smap);
        m.Cpu.SetRFlags(RFlags.Fixed1 | RFlags.Ac);
        // The IDT on a user page: reading the gate is an implicit supervisor access.
        m.Cpu.Idtr = new DescriptorTable { Base = UserPage, Limit = 0xFFF };
        var exit = SystemGuest.Run(m, a => a.ud2());
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Shutdown));
    }

    [TestCase(1UL << 51, false, true)]
    [TestCase(1UL << 48, true, true)]
    [TestCase(0x7FFUL << 52, false, false)] // bits 62:52 are ignored by 4-level paging
    public void ReservedBits_PageFaultWithRsvd(ulong bits, bool write, bool faults)
    {
        using var m = Long();
        Map(m, Page, FrameA | bits, P | RW);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, Page);
            if (write) a.mov(__qword_ptr[rax], rax);
            else a.mov(rbx, __qword_ptr[rax]);
        });
        if (!faults)
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
            Assert.That(VectorOf(m, exit), Is.EqualTo(-1));
            return;
        }
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.PF));
        Assert.That(Frame(m, 0), Is.EqualTo(PfErr.P | PfErr.Rsvd | (write ? PfErr.W : 0)));
    }

    [Test]
    public void XdBitWithoutNxe_IsReserved()
    {
        using var m = Long();
        Map(m, Page, FrameA, P | RW | XD);
        Assert.That(m.Cpu.WriteEfer(Efer.Lme | Efer.Sce), Is.True);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, Page);
            a.mov(rbx, __qword_ptr[rax]);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.PF));
        Assert.That(Frame(m, 0), Is.EqualTo(PfErr.P | PfErr.Rsvd));
    }

    [Test]
    public void PageSizeBitInPml4e_IsReserved()
    {
        using var m = Long();
        m.Memory.WriteU64(GuestMachine.Pml4Base + 8, (GuestMachine.Pml4Base + 0x1000) | P | RW | PS);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rax, 0x80_0000_0000UL);
            a.mov(rbx, __qword_ptr[rax]);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.PF));
        Assert.That(Frame(m, 0), Is.EqualTo(PfErr.P | PfErr.Rsvd));
        Assert.That(m.Cpu.Cr2, Is.EqualTo(0x80_0000_0000UL));
    }

    // ---- 32-bit paging ----

    private const ulong Pd32 = 0x400000, Pt32 = 0x401000;

    /// <summary>Protected mode with 32-bit paging: PDE 0 maps the first 4 MiB in 4 KiB pages.</summary>
    private static GuestMachine Paging32(bool pse)
    {
        var m = new GuestMachine(GuestMode.Protected32);
        InstallIdt(m);
        var pt = new byte[4096];
        for (int k = 0; k < 1024; k++)
            BitConverter.GetBytes((uint)(k * 0x1000) | 7u).CopyTo(pt, k * 4);
        m.Memory.Write(Pt32, pt);
        m.Memory.Write(Pd32, new byte[4096]);
        m.Memory.WriteU32(Pd32, (uint)Pt32 | 7);
        Assert.That(m.Cpu.WriteCr4(pse ? Cr4.Pse : 0), Is.True);
        Assert.That(m.Cpu.WriteCr3(Pd32), Is.True);
        Assert.That(m.Cpu.WriteCr0(m.Cpu.Cr0 | Cr0.Pg), Is.True);
        return m;
    }

    [Test]
    public void Paging32_FourMegabytePage_TranslatesAndSetsAccessedDirty()
    {
        using var m = Paging32(pse: true);
        m.Memory.WriteU32(Pd32 + 4 * 3, 0x800000 | 0x83); // linear 12 MiB → physical 8 MiB, 4 MiB page
        m.Memory.WriteU64(FrameA, 0x4242);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(eax, 0xC00000 + (uint)(FrameA - 0x800000));
            a.mov(ebx, __dword_ptr[eax]);
            a.mov(__dword_ptr[eax + 4], ebx);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x4242));
        Assert.That(m.Memory.ReadU32(Pd32 + 12) & 0x60, Is.EqualTo(0x60u));
    }

    [Test]
    public void Paging32_Pse36_FrameBitsAboveFourGigabytes()
    {
        using var m = Paging32(pse: true);
        m.Memory.WriteU32(Pd32 + 4 * 3, 0x800000 | (1u << 13) | 0x83); // PDE bits 20:13 → physical bits 39:32
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(eax, 0xC00010);
            a.mov(ebx, __dword_ptr[eax]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Mmio), "no RAM above 4 GiB: the read leaves as MMIO");
        Assert.That(exit.Address, Is.EqualTo(0x1_0080_0010UL));
    }

    [Test]
    public void Paging32_WithoutPse_PsBitIsIgnored()
    {
        using var m = Paging32(pse: false);
        m.Memory.WriteU32(Pd32 + 4 * 3, (uint)Pt32 | 0x83); // PS ignored: Pt32 is a page table
        m.Memory.WriteU64(0x5000, 0x3131);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(eax, 0xC05000);
            a.mov(ebx, __dword_ptr[eax]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x3131));
    }

    [Test]
    public void Paging32_FourMegabytePageBit21_IsReserved()
    {
        using var m = Paging32(pse: true);
        m.Memory.WriteU32(Pd32 + 4 * 3, 0x800000 | (1u << 21) | 0x83);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(eax, 0xC00000);
            a.mov(ebx, __dword_ptr[eax]);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.PF));
        Assert.That(Frame(m, 0, 4), Is.EqualTo(PfErr.P | PfErr.Rsvd));
    }

    [Test]
    public void Paging32_FetchFault_HasNoInstructionBitWithoutSmep()
    {
        using var m = Paging32(pse: false);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(eax, 0xC00000); // PDE 3 is not present
            a.jmp(eax);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.PF));
        Assert.That(Frame(m, 0, 4), Is.EqualTo(0), "NXE does not apply to 32-bit paging");
    }

    // ---- PAE paging ----

    private const ulong Pdpt = 0x400000, PdA = 0x401000, PdB = 0x402000;

    private static GuestMachine Pae()
    {
        var m = new GuestMachine(GuestMode.Protected32);
        InstallIdt(m);
        var pd = new byte[4096];
        for (int k = 0; k < 512; k++)
            BitConverter.GetBytes((ulong)k << 21 | 0x87).CopyTo(pd, k * 8);
        m.Memory.Write(PdA, pd);
        BitConverter.GetBytes(0xC00000UL | 0x87).CopyTo(pd, 4 * 8); // PD B maps linear 8 MiB to 12 MiB
        m.Memory.Write(PdB, pd);
        m.Memory.Write(Pdpt, new byte[32]);
        m.Memory.WriteU64(Pdpt, PdA | 1);
        Assert.That(m.Cpu.WriteCr4(Cr4.Pae), Is.True);
        Assert.That(m.Cpu.WriteCr3(Pdpt), Is.True);
        Assert.That(m.Cpu.WriteCr0(m.Cpu.Cr0 | Cr0.Pg), Is.True);
        return m;
    }

    [Test]
    public void Pae_PdptesAreLoadedWithCr3_NotReadOnEachWalk()
    {
        using var m = Pae();
        m.Memory.WriteU32(0x800000, 0xAAAA);
        m.Memory.WriteU32(0xC00000, 0xBBBB);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(__dword_ptr[(uint)Pdpt], (uint)PdB | 1); // memory now points PDPTE 0 at PD B
            a.mov(eax, 0x800000);
            a.mov(ebx, __dword_ptr[eax]);                  // still through the loaded PDPTE (PD A)
            a.mov(ecx, cr3);
            a.mov(cr3, ecx);                               // reloads the PDPTEs
            a.mov(edx, __dword_ptr[eax]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0xAAAA));
        Assert.That(m.Cpu.GetGpr(Gpr.Rdx), Is.EqualTo(0xBBBB));
    }

    [Test]
    public void Pae_MovCr3WithReservedPdpteBits_GpAndCr3Unchanged()
    {
        using var m = Pae();
        m.Memory.WriteU64(Pdpt + 0x1000 - 32 + 8, PdB | 1 | 2); // a second PDPT whose entry 1 sets reserved bit 1
        m.Memory.WriteU64(Pdpt + 0x1000 - 32, PdA | 1);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(eax, (uint)(Pdpt + 0x1000 - 32));
            a.mov(cr3, eax);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.GP));
        Assert.That(Frame(m, 0, 4), Is.EqualTo(0));
        Assert.That(m.Cpu.Cr3, Is.EqualTo(Pdpt));
    }

    [Test]
    public void Pae_EnablingPagingWithBadPdpte_Gp()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        m.Memory.WriteU64(Pdpt, PdA | 1 | (1UL << 5)); // bit 5 is reserved in a PDPTE
        Assert.That(m.Cpu.WriteCr4(Cr4.Pae), Is.True);
        Assert.That(m.Cpu.WriteCr3(Pdpt), Is.True, "CR3 loads do not check PDPTEs while paging is off");
        Assert.That(m.Cpu.WriteCr0(m.Cpu.Cr0 | Cr0.Pg), Is.False);
        Assert.That(m.Cpu.IsPaging, Is.False);
    }

    [Test]
    public void Pae_Cr4WriteChangingPge_ReloadsPdptesAndChecksThem()
    {
        using var m = Pae();
        m.Memory.WriteU64(Pdpt + 8, PdB | 1 | (1UL << 6)); // now invalid in memory
        Assert.That(m.Cpu.WriteCr4(Cr4.Pae), Is.True, "no paging bit changes: no reload");
        Assert.That(m.Cpu.WriteCr4(Cr4.Pae | Cr4.Pge), Is.False, "changing PGE reloads the PDPTEs");
        Assert.That(m.Cpu.Cr4 & Cr4.Pge, Is.Zero);
        m.Memory.WriteU64(Pdpt + 8, PdB | 1);
        Assert.That(m.Cpu.WriteCr4(Cr4.Pae | Cr4.Pge), Is.True);
        Assert.That(m.Cpu.Pdpte[1], Is.EqualTo(PdB | 1));
    }
}
