using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Hypervisor.Core.Tests.Support.PageTables;
using static Hypervisor.Core.Tests.Support.SystemGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Mmu;

/// <summary>
/// TLB invalidation exactly as SDM vol. 3 §4.10.4 requires, shown by stale translations: the guest
/// reads a page (caching Page → frame A), rewrites the PTE to frame B, then runs the operation
/// under test and reads again. Frame A's value means the old translation survived; B's that it went.
/// </summary>
public class TlbTests
{
    private const ulong Page = 0x800000;
    private const ulong FrameA = 0x900000, FrameB = 0x901000;
    private const ulong ValueA = 0xAAAA, ValueB = 0xBBBB;
    private const ulong Descriptor = GuestMachine.DataBase; // INVPCID descriptor
    private const ulong NoFlush = 1UL << 63;

    private static GuestMachine Long(ulong pteFlags = P | RW)
    {
        var m = new GuestMachine(GuestMode.Long64);
        InstallIdt(m);
        m.Memory.WriteU64(FrameA, ValueA);
        m.Memory.WriteU64(FrameB, ValueB);
        Map(m, Page, FrameA, pteFlags);
        return m;
    }

    /// <summary>Runs: read Page (→ RBX), retarget its PTE to frame B, <paramref name="operation"/>,
    /// read Page again (→ RDI). Returns RDI.</summary>
    private static ulong StaleRead(GuestMachine m, Action<Assembler> operation, Action<Assembler>? setup = null, ulong newFlags = P | RW)
    {
        ulong pte = PteAddress(m, Page);
        var exit = SystemGuest.Run(m, a =>
        {
            setup?.Invoke(a);
            a.mov(rax, Page);
            a.mov(rbx, __qword_ptr[rax]);
            a.mov(rcx, pte);
            a.mov(rdx, FrameB | newFlags);
            a.mov(__qword_ptr[rcx], rdx);
            a.mov(rsi, __qword_ptr[rax]);
            operation(a);
            a.mov(rax, Page);
            a.mov(rdi, __qword_ptr[rax]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.That(VectorOf(m, exit), Is.EqualTo(-1), "no exception expected");
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(ValueA));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsi), Is.EqualTo(ValueA), "a PTE store alone does not invalidate");
        return m.Cpu.GetGpr(Gpr.Rdi);
    }

    private static void EnablePge(Assembler a)
    {
        a.mov(rax, cr4);
        a.or(rax, (int)Cr4.Pge);
        a.mov(cr4, rax);
    }

    private static void EnablePcid(Assembler a, ulong pcid)
    {
        a.mov(rax, cr4);
        a.or(rax, (int)Cr4.Pcide);
        a.mov(cr4, rax);
        a.mov(rax, GuestMachine.Pml4Base | pcid);
        a.mov(cr3, rax);
    }

    private static void MovCr3(Assembler a, ulong value)
    {
        a.mov(rax, value);
        a.mov(cr3, rax);
    }

    [Test]
    public void NoInvalidation_StaleTranslationStays()
    {
        using var m = Long();
        Assert.That(StaleRead(m, a => a.nop()), Is.EqualTo(ValueA));
    }

    [Test]
    public void Invlpg_DropsThePage()
    {
        using var m = Long();
        Assert.That(StaleRead(m, a => a.invlpg(__[rax])), Is.EqualTo(ValueB));
    }

    [Test]
    public void Invlpg_OtherPage_KeepsThisOne()
    {
        using var m = Long();
        Assert.That(StaleRead(m, a => a.invlpg(__[rax + 0x1000])), Is.EqualTo(ValueA));
    }

    [Test]
    public void Invlpg_DropsAGlobalPage()
    {
        using var m = Long(P | RW | G);
        Assert.That(StaleRead(m, a => a.invlpg(__[rax]), EnablePge), Is.EqualTo(ValueB));
    }

    [Test]
    public void MovCr3_DropsNonGlobalTranslations()
    {
        using var m = Long();
        Assert.That(StaleRead(m, a => MovCr3(a, GuestMachine.Pml4Base)), Is.EqualTo(ValueB));
    }

    [Test]
    public void MovCr3_KeepsGlobalTranslations()
    {
        using var m = Long(P | RW | G);
        Assert.That(StaleRead(m, a => MovCr3(a, GuestMachine.Pml4Base), EnablePge), Is.EqualTo(ValueA));
    }

    [Test]
    public void GlobalBitWithoutPge_IsNotGlobal()
    {
        using var m = Long(P | RW | G);
        Assert.That(StaleRead(m, a => MovCr3(a, GuestMachine.Pml4Base)), Is.EqualTo(ValueB));
    }

    [Test]
    public void ClearingCr4Pge_DropsGlobalTranslations()
    {
        using var m = Long(P | RW | G);
        Assert.That(StaleRead(m, a =>
        {
            a.mov(rax, cr4);
            a.and(rax, ~(int)Cr4.Pge);
            a.mov(cr4, rax);
        }, EnablePge), Is.EqualTo(ValueB));
    }

    [Test]
    public void MovCr3WithNoFlushBit_KeepsTheOldPcidsTranslations()
    {
        using var m = Long();
        ulong rdi = StaleRead(m, a =>
        {
            MovCr3(a, GuestMachine.Pml4Base | 2 | NoFlush);
            a.mov(rax, Page);
            a.mov(r8, __qword_ptr[rax]);                  // PCID 2 had nothing cached: walks, sees B
            MovCr3(a, GuestMachine.Pml4Base | 1 | NoFlush); // back to PCID 1 without flushing
        }, a => EnablePcid(a, 1));
        Assert.That(m.Cpu.GetGpr(Gpr.R8), Is.EqualTo(ValueB));
        Assert.That(rdi, Is.EqualTo(ValueA), "PCID 1's stale entry survived both CR3 writes");
        Assert.That(m.Cpu.Cr3, Is.EqualTo(GuestMachine.Pml4Base | 1), "bit 63 is not stored");
    }

    [Test]
    public void MovCr3WithoutNoFlushBit_DropsThatPcidOnly()
    {
        using var m = Long();
        ulong rdi = StaleRead(m, a =>
        {
            MovCr3(a, GuestMachine.Pml4Base | 2);            // flushes PCID 2, not PCID 1
            MovCr3(a, GuestMachine.Pml4Base | 1 | NoFlush);
        }, a => EnablePcid(a, 1));
        Assert.That(rdi, Is.EqualTo(ValueA));

        using var m2 = Long();
        rdi = StaleRead(m2, a => MovCr3(a, GuestMachine.Pml4Base | 1), a => EnablePcid(a, 1));
        Assert.That(rdi, Is.EqualTo(ValueB));
    }

    [Test]
    public void ClearingPcide_DropsEveryPcid()
    {
        using var m = Long();
        ulong rdi = StaleRead(m, a =>
        {
            MovCr3(a, GuestMachine.Pml4Base | NoFlush);     // PCID 0, no flush
            a.mov(rax, cr4);
            a.and(rax, ~(int)Cr4.Pcide);
            a.mov(cr4, rax);
        }, a => EnablePcid(a, 0));
        Assert.That(rdi, Is.EqualTo(ValueB));
    }

    /// <summary>INVPCID with descriptor {pcid, address} at <see cref="Descriptor"/>.</summary>
    private static void Invpcid(Assembler a, int type, ulong pcid, ulong address)
    {
        a.mov(r9, Descriptor);
        a.mov(rax, pcid);
        a.mov(__qword_ptr[r9], rax);
        a.mov(rax, address);
        a.mov(__qword_ptr[r9 + 8], rax);
        a.mov(r10d, type);
        a.invpcid(r10, __[r9]);
    }

    [TestCase(0, 2UL, Page, ExpectedResult = ValueA)]   // another PCID's address
    [TestCase(0, 1UL, Page + 0x1000, ExpectedResult = ValueA)]
    [TestCase(0, 1UL, Page, ExpectedResult = ValueB)]
    [TestCase(1, 2UL, 0UL, ExpectedResult = ValueA)]
    [TestCase(1, 1UL, 0UL, ExpectedResult = ValueB)]
    [TestCase(2, 0UL, 0UL, ExpectedResult = ValueB)]
    [TestCase(3, 0UL, 0UL, ExpectedResult = ValueB)]
    public ulong Invpcid_InvalidatesWhatItsTypeNames(int type, ulong pcid, ulong address)
    {
        using var m = Long();
        return StaleRead(m, a => Invpcid(a, type, pcid, address), a => EnablePcid(a, 1));
    }

    [TestCase(0, ExpectedResult = ValueA)]
    [TestCase(1, ExpectedResult = ValueA)]
    [TestCase(2, ExpectedResult = ValueB)]
    [TestCase(3, ExpectedResult = ValueA)]
    public ulong Invpcid_GlobalTranslationsGoOnlyWithType2(int type)
    {
        using var m = Long(P | RW | G);
        return StaleRead(m, a => Invpcid(a, type, 1, Page), a =>
        {
            EnablePge(a);
            EnablePcid(a, 1);
        }, P | RW | G);
    }

    [TestCase(4, 0UL, 0UL, true)]                        // type above 3
    [TestCase(1, 0x1000UL, 0UL, true)]                   // descriptor bits 63:12
    [TestCase(0, 0UL, 0x0000_8000_0000_0000UL, true)]    // type 0, non-canonical address
    [TestCase(0, 1UL, 0UL, false)]                       // PCIDE=0 and PCID≠0
    [TestCase(1, 1UL, 0UL, false)]
    public void Invpcid_InvalidOperands_Gp0(int type, ulong pcid, ulong address, bool pcide)
    {
        using var m = Long();
        var exit = SystemGuest.Run(m, a =>
        {
            if (pcide) EnablePcid(a, 0);
            Invpcid(a, type, pcid, address);
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.GP));
        Assert.That(Frame(m, 0), Is.EqualTo(0));
    }

    [Test]
    public void Invpcid_Cpl3_Gp0()
    {
        using var m = Long();
        InstallTss64(m);
        Place(m, 0x50000, a => Invpcid(a, 2, 0, 0));
        var exit = SystemGuest.Run(m, a =>
        {
            a.push((int)UserData);
            a.push((int)UserStack);
            a.push(2);
            a.push((int)UserCode64);
            a.push(0x50000);
            a.iretq();
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.GP));
        Assert.That(Frame(m, 0), Is.EqualTo(0));
        Assert.That(Frame(m, 1), Is.GreaterThan(0x50000UL), "faults on INVPCID itself");
    }

    [Test]
    public void SettingPcide_RequiresCr3PcidZero()
    {
        using var m = Long();
        Assert.That(m.Cpu.WriteCr3(GuestMachine.Pml4Base | 5), Is.True);
        Assert.That(m.Cpu.WriteCr4(m.Cpu.Cr4 | Cr4.Pcide), Is.False);
        Assert.That(m.Cpu.WriteCr3(GuestMachine.Pml4Base), Is.True);
        Assert.That(m.Cpu.WriteCr4(m.Cpu.Cr4 | Cr4.Pcide), Is.True);
    }

    [Test]
    public void TogglingCr0Pg_DropsGlobalTranslations()
    {
        // 32-bit paging: PDE 0 → identity page table, PDE 2 → a page table whose entry 0 is Page.
        using var m = new GuestMachine(GuestMode.Protected32);
        InstallIdt(m);
        const ulong pd = 0x3F0000, pt0 = 0x3F1000, pt2 = 0x3F2000; // inside the identity-mapped first 4 MiB
        var pt = new byte[4096];
        for (int k = 0; k < 1024; k++)
            BitConverter.GetBytes((uint)(k * 0x1000) | 7u).CopyTo(pt, k * 4);
        m.Memory.Write(pt0, pt);
        m.Memory.Write(pd, new byte[4096]);
        m.Memory.WriteU32(pd, (uint)pt0 | 7);
        m.Memory.WriteU32(pd + 8, (uint)pt2 | 7);
        m.Memory.WriteU32(pt2, (uint)FrameA | 0x103); // global
        m.Memory.WriteU64(FrameA, ValueA);
        m.Memory.WriteU64(FrameB, ValueB);
        m.Cpu.WriteCr4(Cr4.Pge);
        m.Cpu.WriteCr3(pd);
        m.Cpu.WriteCr0(m.Cpu.Cr0 | Cr0.Pg);
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(eax, 0x800000);
            a.mov(ebx, __dword_ptr[eax]);
            a.mov(__dword_ptr[(uint)pt2], (uint)FrameB | 0x103);
            a.mov(ecx, cr3);
            a.mov(cr3, ecx);
            a.mov(esi, __dword_ptr[eax]);    // global: survived MOV CR3
            a.mov(ecx, cr0);
            a.and(ecx, 0x7FFFFFFF);
            a.mov(cr0, ecx);
            a.or(ecx, unchecked((int)0x80000000));
            a.mov(cr0, ecx);
            a.mov(edi, __dword_ptr[eax]);    // gone with CR0.PG
        });
        Assert.That(VectorOf(m, exit), Is.EqualTo(-1));
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(ValueA));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsi), Is.EqualTo(ValueA));
        Assert.That(m.Cpu.GetGpr(Gpr.Rdi), Is.EqualTo(ValueB));
    }
}
