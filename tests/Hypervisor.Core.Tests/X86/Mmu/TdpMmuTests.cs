using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.Machine.Virtualization;
using Hypervisor.Core.Tests.Support;
using Hypervisor.Core.X86;
using Hypervisor.Core.X86.Cpuid;
using Hypervisor.Core.X86.Mmu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.X86.Mmu;

/// <summary>The TDP MMU: nested tables built on demand in private memory, run by the software
/// CPU in guest mode. The test loop plays the vendor: on a nested page fault it calls
/// <see cref="TdpMmu.HandleFault"/> and resumes the guest when told to.</summary>
public class TdpMmuTests
{
    private const ulong U = 4, W = 2, P = 1, Rsvd = 8, Final = 1UL << 32;
    private const ulong LeafRw = 2, LeafPs = 128, LeafA = 32, LeafD = 64;
    private const ulong Mmio = 0xFEE0_0000; // in the guest's identity map, no slot

    private sealed class Guest : IDisposable
    {
        public readonly GuestMachine M = new(GuestMode.Long64);
        public readonly TdpMmu Mmu;
        public readonly List<(ulong Gpa, ulong Error, bool Resumed, bool IsMmio)> Faults = new();

        public Guest() => Mmu = new TdpMmu(M.Memory);

        public void Load(Action<Assembler> build)
        {
            var a = M.NewAssembler();
            build(a);
            a.hlt();
            M.Load(a);
            M.Cpu.Intercepts = new GuestIntercepts();
            M.Cpu.NestedPaging = new NestedPaging(Mmu.Root, true);
        }

        /// <summary>Runs, resolving nested page faults, until an exit the MMU does not resolve.</summary>
        public CpuExit Run()
        {
            for (int k = 0; k < 100; k++)
            {
                var exit = M.Run(100_000);
                if (exit.Reason != CpuExitReason.Intercept || M.Cpu.LastIntercept.Reason != InterceptReason.NestedPageFault)
                    return exit;
                var info = M.Cpu.LastIntercept;
                bool resume = Mmu.HandleFault(info.Address, info.NestedFaultErrorCode, out bool isMmio);
                Faults.Add((info.Address, info.NestedFaultErrorCode, resume, isMmio));
                if (!resume)
                    return exit;
            }
            throw new InvalidOperationException("the guest keeps faulting");
        }

        public void Dispose() => M.Dispose();
    }

    [Test]
    public void DemandPaging_GuestTouchesMemory_FaultsInTwoMegabytePagesThenCompletes()
    {
        using var g = new Guest();
        g.M.Memory.WriteU64(0x800000, 0x1234);
        g.Load(a =>
        {
            a.mov(rax, 0x800000);
            a.mov(rbx, __qword_ptr[rax]);
            a.mov(rcx, 0xA00000);
            a.mov(__qword_ptr[rcx], rbx);
            a.push(rbx);
            a.pop(rdx);
        });
        var exit = g.Run();
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.Multiple(() =>
        {
            Assert.That(g.M.Cpu.GetGpr(Gpr.Rdx), Is.EqualTo(0x1234));
            Assert.That(g.M.Memory.ReadU64(0xA00000), Is.EqualTo(0x1234));
            // Code, stack and guest tables share the first 2 MiB; then 0x800000 and 0xA00000.
            Assert.That(g.Mmu.FaultsHandled, Is.EqualTo(3));
            Assert.That(g.Mmu.LargePagesMapped, Is.EqualTo(3));
            Assert.That(g.Mmu.SmallPagesMapped, Is.Zero);
            Assert.That(g.Faults.Select(f => f.Gpa & ~0x1FFFFFUL), Is.EqualTo(new ulong[] { 0, 0x800000, 0xA00000 }));
            Assert.That(g.Faults.All(f => f.Resumed && !f.IsMmio));
            Assert.That(g.Mmu.LookupLeaf(0x800000), Is.EqualTo(0x800000 | P | LeafRw | U | LeafPs | LeafA), "read only: accessed");
            Assert.That(g.Mmu.LookupLeaf(0xA00000) & (LeafA | LeafD), Is.EqualTo(LeafA | LeafD), "written: dirty");
            Assert.That(g.Mmu.TablePages, Is.EqualTo(3), "PML4, PDPT, PD");
        });

        g.Faults.Clear();
        g.Load(a => a.mov(rbx, __qword_ptr[0x800008]));
        Assert.That(g.Run().Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(g.Faults, Is.Empty, "everything is mapped now");
    }

    [Test]
    public void DemandPaging_FirstFault_IsTheGuestWalkOrTheFetch()
    {
        using var g = new Guest();
        g.Load(a => a.nop());
        var exit = g.M.Run(1000);
        var info = g.M.Cpu.LastIntercept;
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Intercept));
        Assert.That(info.Reason, Is.EqualTo(InterceptReason.NestedPageFault));
        Assert.That(info.DuringGuestWalk, Is.True, "the guest's PML4 is the first thing the CPU touches");
        Assert.That(info.Address, Is.EqualTo(GuestMachine.Pml4Base));
    }

    [Test]
    public void PartlyBackedTwoMegabyteRange_MapsFourKilobytePages()
    {
        using var g = new Guest();
        const ulong Small = GuestMachine.RamSize; // 16 MiB: a 4 KiB slot right after RAM
        g.M.Memory.AddSlot(1, Small, 0x1000);
        g.M.Memory.WriteU64(Small + 8, 0x5A5A);
        g.Load(a => a.mov(rbx, __qword_ptr[Small + 8]));
        Assert.That(g.Run().Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.Multiple(() =>
        {
            Assert.That(g.M.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x5A5A));
            Assert.That(g.Mmu.SmallPagesMapped, Is.EqualTo(1));
            Assert.That(g.Mmu.LookupLeaf(Small) & ~(LeafA | LeafD), Is.EqualTo(Small | P | LeafRw | U), "4 KiB leaf");
            Assert.That(g.Mmu.LookupLeaf(Small + 0x1000), Is.Zero, "the rest of the 2 MiB stays unmapped");
        });
    }

    [Test]
    public void UnbackedGpa_Read_ReportsMmioThenTheRetryIsAnMmioExit()
    {
        using var g = new Guest();
        g.Load(a =>
        {
            a.mov(rax, Mmio);
            a.mov(ebx, __dword_ptr[rax + 0x20]);
        });
        var exit = g.Run();
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Mmio), exit.ToString());
        Assert.Multiple(() =>
        {
            Assert.That(exit.Address, Is.EqualTo(Mmio + 0x20));
            Assert.That(exit.Size, Is.EqualTo(4));
            Assert.That(exit.IsWrite, Is.False);
            var last = g.Faults[^1];
            Assert.That(last.Gpa, Is.EqualTo(Mmio + 0x20));
            Assert.That(last.IsMmio && last.Resumed, "MMIO: an MMIO mapping was installed and the guest retried");
            Assert.That(g.Mmu.MmioFaults, Is.EqualTo(1));
            Assert.That(g.Mmu.FaultsHandled, Is.EqualTo(1), "only the first 2 MiB of RAM was demand-paged");
        });
        g.M.Cpu.CompleteMmioRead(exit.Address, 0xD00D);
        exit = g.Run();
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.That(g.M.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0xD00D));

        Assert.That(g.Mmu.HandleFault(Mmio, U | Final, out bool isMmio), Is.False, "already mapped: the exit is for userspace");
        Assert.That(isMmio, Is.True);
    }

    [Test]
    public void UnbackedGpa_Write_IsAnMmioWriteExitAndTheInstructionCompletes()
    {
        using var g = new Guest();
        g.Load(a =>
        {
            a.mov(rax, Mmio);
            a.mov(__dword_ptr[rax + 0x10], 0x55);
            a.mov(ecx, 1);
        });
        var exit = g.Run();
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Mmio), exit.ToString());
        Assert.That((exit.Address, exit.IsWrite, exit.Data, exit.Size), Is.EqualTo((Mmio + 0x10, true, 0x55UL, (byte)4)));
        exit = g.Run();
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.That(g.M.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(1));
    }

    [Test]
    public void ReadOnlySlot_ReadIsMappedReadOnly_WriteIsReportedAsMmio()
    {
        using var g = new Guest();
        const ulong Rom = 0x2000000;
        g.M.Memory.AddSlot(2, Rom, 0x200000, readOnly: true);
        g.M.Memory.WriteU64(Rom + 0x100, 0x0B0B); // host-side load ignores read-only
        g.Load(a =>
        {
            a.mov(rax, Rom + 0x100);
            a.mov(rbx, __qword_ptr[rax]);
            a.mov(__qword_ptr[rax], rax);
        });
        var exit = g.Run();
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Intercept), exit.ToString());
        var last = g.Faults[^1];
        Assert.Multiple(() =>
        {
            Assert.That(g.M.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x0B0B), "the read went through");
            Assert.That(g.Mmu.LookupLeaf(Rom) & (LeafRw | LeafPs | P), Is.EqualTo(LeafPs | P), "a read-only 2 MiB leaf");
            Assert.That(last.Gpa, Is.EqualTo(Rom + 0x100));
            Assert.That(last.Error, Is.EqualTo(P | W | U | Final));
            Assert.That(last.IsMmio, Is.True, "a write to a read-only slot goes to userspace as MMIO");
            Assert.That(last.Resumed, Is.False);
            Assert.That(g.M.Memory.ReadU64(Rom + 0x100), Is.EqualTo(0x0B0B));
        });
    }

    [Test]
    public void PrivateWindow_GuestPointingAtTheTables_IsNeverMapped()
    {
        using var g = new Guest();
        const ulong Window = 0xC00000; // a guest linear page the test points at the MMU's root
        PageTables.Map(g.M, Window, g.Mmu.Root, PageTables.P | PageTables.RW);
        g.Load(a =>
        {
            a.mov(rax, Window);
            a.mov(rbx, __qword_ptr[rax]);
        });
        var exit = g.Run();
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Intercept), exit.ToString());
        var last = g.Faults[^1];
        Assert.Multiple(() =>
        {
            Assert.That(TdpMmu.IsPrivate(g.Mmu.Root), Is.True);
            Assert.That(last.Gpa, Is.EqualTo(g.Mmu.Root));
            Assert.That(last.IsMmio, Is.True);
            Assert.That(last.Resumed, Is.False);
            Assert.That(g.Mmu.LookupLeaf(g.Mmu.Root), Is.Zero, "the window is never mapped");
            Assert.That(g.M.Cpu.GetGpr(Gpr.Rbx), Is.Zero, "the guest read nothing");
        });
    }

    [Test]
    public void PrivateMemory_IsASlotAboveTheGuestNotAUserSlot()
    {
        using var g = new Guest();
        var slot = g.M.Memory.FindSlot(g.Mmu.Root)!;
        Assert.That(slot, Is.Not.Null);
        Assert.That(slot.Id, Is.GreaterThanOrEqualTo(TdpMmu.PrivateSlotIdBase));
        Assert.That(slot.GuestBase, Is.EqualTo(TdpMmu.PrivateBase));
        Assert.That(g.Mmu.Root, Is.EqualTo(TdpMmu.PrivateBase));
    }

    [Test]
    public void ReservedBitFault_IsNotResolved()
    {
        using var g = new Guest();
        Assert.That(g.Mmu.HandleFault(0x1000, P | Rsvd | U | Final, out bool isMmio), Is.False);
        Assert.That(isMmio, Is.False);
        Assert.That(g.Mmu.LookupLeaf(0x1000), Is.Zero);
    }

    [Test]
    public void ManyTables_GrowThePrivateWindowByChunks()
    {
        using var g = new Guest();
        // An MMIO page in each of 1,100 2 MiB ranges needs a page table each: more than a chunk holds.
        for (ulong k = 0; k < 1100; k++)
            Assert.That(g.Mmu.HandleFault((1UL << 37) + k * 0x200000, U | Final, out bool mmio) && mmio, Is.True);
        Assert.That(g.Mmu.TablePages, Is.GreaterThan(1024));
        Assert.That(g.M.Memory.Slots.Count(s => s.Id >= TdpMmu.PrivateSlotIdBase), Is.EqualTo(2));
        Assert.That(g.Mmu.LookupLeaf((1UL << 37) + 1099 * 0x200000UL), Is.Not.Zero);
    }

    [Test]
    public void Zap_DropsEveryMapping_AndTheGuestFaultsThemInAgain()
    {
        using var g = new Guest();
        g.Load(a => a.mov(rbx, __qword_ptr[0x800000]));
        Assert.That(g.Run().Reason, Is.EqualTo(CpuExitReason.Hlt));
        ulong root = g.Mmu.Root;
        g.Mmu.Zap();
        Assert.Multiple(() =>
        {
            Assert.That(g.Mmu.LookupLeaf(0x800000), Is.Zero);
            Assert.That(g.Mmu.LookupLeaf(0), Is.Zero);
            Assert.That(g.Mmu.TablePages, Is.EqualTo(1), "only the root");
            Assert.That(g.Mmu.Root, Is.EqualTo(root));
        });
        g.M.Cpu.FlushTlbAll(); // a bare machine flushes itself; a VM's vCPUs get a request
        g.Faults.Clear();
        g.Load(a => a.mov(rbx, __qword_ptr[0x800000]));
        Assert.That(g.Run().Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(g.Faults, Has.Count.EqualTo(2), "the first 2 MiB and 0x800000 again");
    }

    [Test]
    public void Zap_OnAVm_RequestsATlbFlushOnEveryVcpu()
    {
        var kvm = KvmX86.Register(new StubOps(), HostCpuModel.Zen5);
        using var vm = kvm.CreateVm();
        vm.SetUserMemoryRegion(0, 0, 0x200000);
        var v0 = vm.CreateVcpu(0);
        var v1 = vm.CreateVcpu(1);
        var mmu = vm.Mmu!; // the VM creates its MMU with its first vCPU
        Assert.That(mmu.HandleFault(0x1000, U | Final, out _), Is.True);
        Assert.That(v0.PendingRequests & VcpuRequest.TlbFlush, Is.EqualTo(VcpuRequest.None));
        mmu.Zap();
        Assert.That(v0.PendingRequests & VcpuRequest.TlbFlush, Is.EqualTo(VcpuRequest.TlbFlush));
        Assert.That(v1.PendingRequests & VcpuRequest.TlbFlush, Is.EqualTo(VcpuRequest.TlbFlush));
    }
}
