using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Rap;
using Hypervisor.Core.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Rap;

public class ReturnAddressPredictorTests
{
    /// <summary>The default model with ERAPS (CPUID 0x80000021 EAX[24]) forced on or off.</summary>
    private static Hypervisor.Core.Machine.Models.HostCpuModel Eraps(bool on) => Support.Data.ModelMachine.DefaultWith(0x80000021, 'a', 24, on);

    [Test]
    public void Untagged_HostConsumesGuestEntry_CountsCrossDomainUse()
    {
        var rap = new ReturnAddressPredictor(32);
        rap.Call(0x1000, RapDomain.Guest);
        rap.Return(0x1000, RapDomain.Host);
        Assert.That((rap.CrossDomainUses, rap.ReverseDomainUses, rap.Predictions, rap.TagMismatches), Is.EqualTo((1L, 0L, 1L, 0L)));
    }

    [Test]
    public void Untagged_L1ConsumesL2Entry_CountsCrossDomainUse_GuestConsumingHostEntryIsReverse()
    {
        var rap = new ReturnAddressPredictor(32);
        rap.Call(0x2000, RapDomain.Host);
        rap.Call(0x1000, RapDomain.NestedGuest);
        rap.Return(0x1000, RapDomain.Guest);
        rap.Return(0x2000, RapDomain.Guest);
        Assert.That((rap.CrossDomainUses, rap.ReverseDomainUses), Is.EqualTo((1L, 1L)));
    }

    [Test]
    public void Tagged_GuestMeetsHostEntry_NotUsedNotCrossDomain()
    {
        var rap = new ReturnAddressPredictor(64) { Tagged = true };
        rap.Call(0x1000, RapDomain.Host);
        rap.Return(0x1000, RapDomain.Guest);
        Assert.That((rap.CrossDomainUses, rap.Predictions, rap.Mispredictions, rap.TagMismatches), Is.EqualTo((0L, 0L, 1L, 1L)));
    }

    [Test]
    public void Capacity_Overflow_OldestEntriesOverwritten()
    {
        var rap = new ReturnAddressPredictor(64);
        rap.SetCapacity(32);
        for (ulong k = 0; k < 40; k++)
            rap.Call(k, RapDomain.Guest);
        var entries = rap.Snapshot();
        Assert.That(entries, Has.Count.EqualTo(32));
        Assert.That(entries[0].ReturnAddress, Is.EqualTo(8UL), "the 8 oldest were overwritten");
        Assert.That(entries[^1].ReturnAddress, Is.EqualTo(39UL));
    }

    [Test]
    public void Fill_OverwritesWithOneDomain_HostReturnsConsumeNoGuestEntry()
    {
        var rap = new ReturnAddressPredictor(32);
        for (ulong k = 0; k < 10; k++)
            rap.Call(0x5000 + k, RapDomain.Guest);
        rap.Fill(32, 0xFFFF_FFFF_8100_0000, RapDomain.Host);
        for (int k = 0; k < 5; k++)
            rap.Return(0xFFFF_FFFF_8000_0000, RapDomain.Host);
        Assert.That(rap.CrossDomainUses, Is.Zero);
    }

    private static ReturnAddressPredictor RunCalls(GuestMachine m, Action<Iced.Intel.Assembler> between)
    {
        // Three nested calls leave three entries; then the operation under test; then HLT.
        m.RunToHlt(a =>
        {
            var f = a.CreateLabel();
            var done = a.CreateLabel();
            a.call(f);
            a.jmp(done);
            a.Label(ref f);
            var g = a.CreateLabel();
            a.call(g);
            a.ret();
            a.Label(ref g);
            var h = a.CreateLabel();
            a.call(h);
            a.ret();
            a.Label(ref h);
            between(a);
            a.hlt();
            a.Label(ref done);
        });
        return m.Cpu.Rap;
    }

    [Test]
    public void ErapsModel_MovCr3_ClearsRap()
    {
        using var m = new GuestMachine(GuestMode.Long64, Eraps(true));
        var rap = RunCalls(m, a => { a.mov(rax, cr3); a.mov(cr3, rax); });
        Assert.That(rap.Count, Is.Zero);
    }

    [Test]
    public void ModelWithoutEraps_MovCr3_KeepsRap()
    {
        using var m = new GuestMachine(GuestMode.Long64, Eraps(false));
        var rap = RunCalls(m, a => { a.mov(rax, cr3); a.mov(cr3, rax); });
        Assert.That(rap.Count, Is.EqualTo(3));
    }

    [TestCase(0, 3)]
    [TestCase(1, 0)]
    [TestCase(2, 0)]
    [TestCase(3, 0)]
    public void ErapsModel_Invpcid_ClearsRapForTypesOneToThreeOnly(int type, int expectedEntries)
    {
        using var m = new GuestMachine(GuestMode.Long64, Eraps(true));
        m.Memory.WriteU64(GuestMachine.DataBase, 0);
        m.Memory.WriteU64(GuestMachine.DataBase + 8, 0x1000);
        var rap = RunCalls(m, a => { a.mov(ecx, type); a.mov(rax, GuestMachine.DataBase); a.invpcid(rcx, __[rax]); });
        Assert.That(rap.Count, Is.EqualTo(expectedEntries));
    }

    [Test]
    public void ErapsModel_Invlpg_KeepsRap()
    {
        using var m = new GuestMachine(GuestMode.Long64, Eraps(true));
        var rap = RunCalls(m, a => { a.mov(rax, 0x1000); a.invlpg(__[rax]); });
        Assert.That(rap.Count, Is.EqualTo(3));
    }
}
