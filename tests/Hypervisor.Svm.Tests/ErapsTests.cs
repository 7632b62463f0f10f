using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86;
using Hypervisor.Svm.Hardware;
using Hypervisor.Svm.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Svm.Tests;

/// <summary>ERAPS virtualization, rule by rule (KVM-FACTS §4), observed through what the processor
/// did on each VMRUN (real hardware hides this; here it is visible).</summary>
public class ErapsTests
{
    /// <summary>The supported CPUID without ERAPS (EAX[24] and the RAP size in EBX[23:16] cleared).</summary>
    private static IReadOnlyList<CpuidEntry> WithoutEraps(IReadOnlyList<CpuidEntry> cpuid) =>
        cpuid.Select(e => e.Function == 0x80000021 ? e with { Eax = e.Eax & ~(1u << 24), Ebx = e.Ebx & ~0x00FF_0000u } : e).ToList();

    /// <summary>Runs to the next KVM_EXIT_IO (an OUT the guest uses as a marker) and returns whether
    /// the VMRUN that led to it cleared the RAP.</summary>
    private static bool RunToMarker(SvmGuest g)
    {
        var exit = g.Run();
        Assert.That(exit.Reason, Is.EqualTo(KvmExitReason.Io), $"expected the OUT marker, got {exit}");
        return g.Svm.Processor.LastVmrunClearedRap;
    }

    private static void Marker(Assembler a) => a.@out(0x80, al);

    // ---- Capacity ----

    [Test]
    public void GuestWithEraps_AllowLargerRap_GuestUses64Entries()
    {
        using var g = new SvmGuest();
        Assert.That(g.Svm.Vmcb.ErapCtl & ErapCtl.AllowLargerRap, Is.EqualTo(ErapCtl.AllowLargerRap));
        g.Load(a => a.hlt());
        g.Run();
        Assert.That(g.Svm.Processor.LastGuestRapCapacity, Is.EqualTo(64));
    }

    [Test]
    public void GuestWithoutEraps_HardwareHasIt_GuestLimitedTo32()
    {
        using var g = new SvmGuest(editCpuid: WithoutEraps);
        Assert.That(g.Svm.Vmcb.ErapCtl & ErapCtl.AllowLargerRap, Is.EqualTo(ErapCtl.None), "never just because the hardware has it");
        g.Load(a => a.hlt());
        g.Run();
        Assert.That(g.Svm.Processor.LastGuestRapCapacity, Is.EqualTo(32));
    }

    [TestCase(true, 35)]
    [TestCase(false, 27)]
    public void DeepCallChain_RapHoldsWhatCapacityAllows(bool guestHasEraps, int entriesAfterExit)
    {
        // The first VMRUN clears the RAP (CR3 is dirty from KVM_SET_SREGS) along with the host's 5
        // entries; then 40 nested calls and an exit at the bottom. With 64 entries all 40 survive;
        // with 32 the guest keeps its newest 32. After #VMEXIT the host's 5 returns pop 5 (tagged,
        // so not used for prediction). Nested paging is off so that no demand-paging exits
        // interleave with the call chain.
        using var g = new SvmGuest(editCpuid: guestHasEraps ? null : WithoutEraps, vmOptions: new VmOptions { NestedPaging = false });
        g.Load(a =>
        {
            var f = a.CreateLabel();
            var bottom = a.CreateLabel();
            a.mov(ecx, 40);
            a.call(f);
            a.hlt();
            a.Label(ref f);
            a.dec(ecx);
            a.je(bottom);
            a.call(f);
            a.ret();
            a.Label(ref bottom);
            Marker(a);
            a.ret();
        });
        RunToMarker(g);
        Assert.That(g.Vcpu.Cpu.Rap.Count, Is.EqualTo(entriesAfterExit));
    }

    [Test]
    public void SetCpuidAfterCreation_AllowLargerRapRecomputed()
    {
        using var g = new SvmGuest(editCpuid: WithoutEraps);
        Assert.That(g.Svm.Vmcb.ErapCtl & ErapCtl.AllowLargerRap, Is.EqualTo(ErapCtl.None));
        g.Vcpu.SetCpuid(g.Kvm.GetSupportedCpuid());
        Assert.That(g.Svm.Vmcb.ErapCtl & ErapCtl.AllowLargerRap, Is.EqualTo(ErapCtl.AllowLargerRap), "better than upstream: recomputed after KVM_SET_CPUID2");
    }

    // ---- CLEAR_RAP around emulated CR3 writes and INVPCID ----

    private static SvmGuest Intercepting(bool nestedPaging = true) =>
        new(vmOptions: new VmOptions { InterceptCr3AndInvpcid = true, NestedPaging = nestedPaging });

    [Test]
    public void EmulatedMovCr3_NextVmrunClearsRap_ThenBitIsClearedAfter()
    {
        using var g = Intercepting();
        g.Load(a => { Marker(a); a.mov(rax, cr3); a.mov(cr3, rax); Marker(a); Marker(a); a.hlt(); });
        RunToMarker(g); // first entry: CR3 from KVM_SET_SREGS was dirty
        Assert.That(RunToMarker(g), Is.True, "the VMRUN after the emulated MOV CR3");
        Assert.That(g.Svm.Vmcb.ErapCtl & ErapCtl.ClearRap, Is.EqualTo(ErapCtl.None), "masked off after VMRUN");
        Assert.That(RunToMarker(g), Is.False, "and not again");
        Assert.That(g.Vcpu.Stats.ByVendorExit["VMEXIT_CR3_WRITE"], Is.EqualTo(1));
    }

    [Test]
    public void MovCr3WithNoFlushBitToSameValue_NoClearRap()
    {
        using var g = Intercepting();
        g.Load(a =>
        {
            a.mov(rax, cr4);
            a.or(eax, (int)Cr4.Pcide);
            a.mov(cr4, rax);     // PCIDE on (a guest flush: clears the RAP once)
            Marker(a);
            a.mov(rax, cr3);
            a.bts(rax, 63);
            a.mov(cr3, rax);     // same CR3, "do not flush"
            Marker(a);
            a.hlt();
        });
        RunToMarker(g);
        Assert.That(RunToMarker(g), Is.False);
    }

    [TestCase(0, false)]
    [TestCase(1, true)]
    [TestCase(2, true)]
    [TestCase(3, true)]
    public void EmulatedInvpcid_ClearsRapForTypesOneToThree(int type, bool clears)
    {
        using var g = Intercepting();
        g.Vm.Memory.WriteU64(SvmGuest.DataBase + 8, 0x1000); // descriptor: PCID 0, address 0x1000
        g.Load(a => { Marker(a); a.mov(ecx, type); a.mov(eax, (uint)SvmGuest.DataBase); a.invpcid(rcx, __[rax]); Marker(a); a.hlt(); });
        RunToMarker(g);
        Assert.That(RunToMarker(g), Is.EqualTo(clears));
        Assert.That(g.Vcpu.Stats.ByVendorExit["VMEXIT_INVPCID"], Is.EqualTo(1));
    }

    [Test]
    public void InvpcidType1_NestedPagingOff_StillClearsRap()
    {
        // Upstream tests the ERAPS dirty bit here instead of setting it, so without nested paging
        // no RAP clear happens. This project marks it dirty (KVM-FACTS §3).
        using var g = Intercepting(nestedPaging: false);
        g.Vm.Memory.WriteU64(SvmGuest.DataBase + 8, 0x1000);
        g.Load(a => { Marker(a); a.mov(ecx, 1); a.mov(eax, (uint)SvmGuest.DataBase); a.invpcid(rcx, __[rax]); Marker(a); a.hlt(); });
        RunToMarker(g);
        Assert.That(RunToMarker(g), Is.True);
    }

    [Test]
    public void KvmSetSregs_MarksCr3Dirty_NextVmrunClearsRap()
    {
        using var g = new SvmGuest();
        g.Load(a => { Marker(a); Marker(a); a.hlt(); });
        RunToMarker(g);
        g.Vcpu.SetSregs(g.Vcpu.GetSregs());
        Assert.That(RunToMarker(g), Is.True);
    }

    [Test]
    public void GuestWithoutEraps_Cr3Dirty_NoClearRap()
    {
        using var g = new SvmGuest(editCpuid: WithoutEraps, vmOptions: new VmOptions { InterceptCr3AndInvpcid = true });
        g.Load(a => { Marker(a); a.mov(rax, cr3); a.mov(cr3, rax); Marker(a); a.hlt(); });
        RunToMarker(g);
        Assert.That(RunToMarker(g), Is.False, "CLEAR_RAP only for guests that have ERAPS");
    }

    [Test]
    public void FlushTlbGuest_MarksErapsDirty()
    {
        using var g = new SvmGuest();
        g.Load(a => { Marker(a); Marker(a); a.hlt(); });
        RunToMarker(g);
        g.Vcpu.MakeRequest(VcpuRequest.TlbFlushGuest);
        Assert.That(RunToMarker(g), Is.True);
        Assert.That(g.Svm.Vmcb.TlbControl, Is.EqualTo(TlbControl.DoNothing), "reset to 'do nothing' after VMRUN");
    }

    // ---- Cross-domain uses ----

    /// <summary>A guest doing call/return work around many exits (an OUT 3 calls deep, 50 times).</summary>
    private static long CrossDomainUses(HostCpuModel model, bool rsbFill)
    {
        using var g = new SvmGuest(model, new SvmOptions { RsbFillAfterVmExit = rsbFill });
        g.Load(a =>
        {
            var f1 = a.CreateLabel(); var f2 = a.CreateLabel(); var f3 = a.CreateLabel(); var loop = a.CreateLabel();
            a.mov(ebx, 50);
            a.Label(ref loop);
            a.call(f1);
            a.dec(ebx);
            a.jne(loop);
            a.hlt();
            a.Label(ref f1); a.call(f2); a.ret();
            a.Label(ref f2); a.call(f3); a.ret();
            a.Label(ref f3); Marker(a); a.ret();
        });
        while (g.Run().Reason == KvmExitReason.Io) { }
        return g.Vcpu.Cpu.Rap.CrossDomainUses;
    }

    [Test]
    public void CrossDomainUses_Zen5WithEraps_Zero() => Assert.That(CrossDomainUses(HostCpuModel.Zen5, rsbFill: true), Is.Zero);

    [Test]
    public void CrossDomainUses_Zen4WithRsbFill_Zero() => Assert.That(CrossDomainUses(HostCpuModel.Zen4, rsbFill: true), Is.Zero);

    [Test]
    public void CrossDomainUses_Zen4WithoutRsbFill_CounterCatchesThem() =>
        Assert.That(CrossDomainUses(HostCpuModel.Zen4, rsbFill: false), Is.GreaterThan(0));

    [Test]
    public void Zen4_NoErapsInSupportedCpuid_GuestRapIs32()
    {
        using var g = new SvmGuest(HostCpuModel.Zen4);
        var leaf = g.Kvm.GetSupportedCpuid().Single(e => e.Function == 0x80000021);
        Assert.That((leaf.Eax, leaf.Ebx, leaf.Edx), Is.EqualTo((0u, 0u, 0u)));
        g.Load(a => a.hlt());
        g.Run();
        Assert.That(g.Svm.Processor.LastGuestRapCapacity, Is.EqualTo(32));
    }
}
