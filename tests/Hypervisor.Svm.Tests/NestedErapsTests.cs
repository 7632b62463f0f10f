using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.Machine.Rap;
using Hypervisor.Core.X86;
using Hypervisor.Svm.Hardware;
using Hypervisor.Svm.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using static Hypervisor.Svm.Tests.Support.NestedGuest;

namespace Hypervisor.Svm.Tests;

/// <summary>ERAPS across nested transitions (KVM-FACTS §4): every nested VMRUN enters L2 with
/// vmcb02.erap_ctl = L1's ALLOW_LARGER_RAP from vmcb12 | CLEAR_RAP, and every nested #VMEXIT sets
/// CLEAR_RAP in vmcb01, because the RAP tags host and guest entries but not guest ASIDs.</summary>
public class NestedErapsTests
{
    /// <summary>L2: marker, CPUID (L1 intercepts), marker, VMMCALL (L1 intercepts). The markers are
    /// OUTs L1 does not intercept: the exits reach userspace right after the nested VMRUN.</summary>
    private static void L2WithMarkers(Assembler a)
    {
        a.@out(0x80, al);
        a.cpuid();
        a.@out(0x80, al);
        a.vmmcall();
    }

    [TestCase(true)]
    [TestCase(false)]
    public void EveryNestedVmrunAndVmexit_ClearRap_AllowFromVmcb12(bool allowInVmcb12)
    {
        using var g = new SvmGuest(HostCpuModel.Zen5);
        var allow = allowInVmcb12 ? ErapCtl.AllowLargerRap : ErapCtl.None;
        LoadL1(g, Vmcb12Image(v => v.ErapCtl = allow), runs: 2, L2WithMarkers);
        var p = g.Svm.Processor;
        for (int round = 0; round < 2; round++)
        {
            RunToL2Marker(g);
            Assert.That(p.LastVmrunErapCtl, Is.EqualTo(allow | ErapCtl.ClearRap), $"nested VMRUN {round + 1}: vmcb02's erap_ctl");
            Assert.That(p.LastVmrunClearedRap, Is.True);
            Assert.That(p.LastGuestRapCapacity, Is.EqualTo(allowInVmcb12 ? 64 : 32), "L2's RAP size follows L1's ALLOW_LARGER_RAP");

            RunToReport(g);
            Assert.That(p.LastVmrunErapCtl & ErapCtl.ClearRap, Is.EqualTo(ErapCtl.ClearRap), $"nested #VMEXIT {round + 1}: vmcb01 has CLEAR_RAP");
            Assert.That(p.LastVmrunClearedRap, Is.True);
            Assert.That(p.LastGuestRapCapacity, Is.EqualTo(64), "L1 itself has ERAPS: its own ALLOW_LARGER_RAP is kept");
            Assert.That(g.Svm.Vmcb.ErapCtl & ErapCtl.ClearRap, Is.EqualTo(ErapCtl.None), "consumed by that VMRUN");
        }
        Assert.That(g.Svm.Nested!.Vmcb02.ErapCtl & ErapCtl.AllowLargerRap, Is.EqualTo(allow));
    }

    [Test]
    public void Zen4_NestedTransitions_ClearRapWrittenButNothingToClear()
    {
        // Without ERAPS hardware the bits are still written (KVM sets them unconditionally); the
        // processor ignores them.
        using var g = new SvmGuest(HostCpuModel.Zen4);
        LoadL1(g, Vmcb12Image(), runs: 1, L2WithMarkers);
        RunToL2Marker(g);
        Assert.That(g.Svm.Processor.LastVmrunErapCtl, Is.EqualTo(ErapCtl.ClearRap));
        Assert.That(g.Svm.Processor.LastVmrunClearedRap, Is.False, "no ERAPS: nothing to clear");
        RunToReport(g);
        Assert.That(g.Svm.Processor.LastVmrunErapCtl & ErapCtl.ClearRap, Is.EqualTo(ErapCtl.ClearRap));
    }

    [Test]
    public void L2CallChain_RapEntriesTaggedNestedGuest()
    {
        using var g = new SvmGuest(HostCpuModel.Zen5);
        LoadL1(g, Vmcb12Image(v => v.ErapCtl = ErapCtl.AllowLargerRap), runs: 1, a =>
        {
            var f = a.CreateLabel();
            var bottom = a.CreateLabel();
            a.mov(ecx, 10);
            a.call(f);
            a.vmmcall();
            a.Label(ref f);
            a.dec(ecx);
            a.je(bottom);
            a.call(f);
            a.ret();
            a.Label(ref bottom);
            a.@out(0x80, al);
            a.ret();
        });
        RunToL2Marker(g);
        var entries = g.Vcpu.Cpu.Rap.Snapshot();
        // The RAP was cleared on entry; L2 made 10 calls and the host's 5 returns popped 5 of them.
        Assert.That(entries, Has.Count.EqualTo(5));
        Assert.That(entries.Select(e => e.Domain), Is.All.EqualTo(RapDomain.NestedGuest));
        Assert.That(entries[0].ReturnAddress, Is.EqualTo(L2Code + 10), "the first call's return address (after mov ecx + call)");
        Assert.That(RunToReport(g), Is.EqualTo((uint)SvmExitCode.Vmmcall));
    }

    /// <summary>L1 calls down into its VMRUN and returns up after each nested #VMEXIT; L2 calls
    /// down to intercepted CPUIDs and L0-handled OUTs. Returns the RAP's cross-domain uses.</summary>
    private static long CrossDomainUses(HostCpuModel model)
    {
        using var g = new SvmGuest(model);
        var b = new Assembler(64);
        var l2Loop = b.CreateLabel(); var f1 = b.CreateLabel(); var f2 = b.CreateLabel();
        b.Label(ref l2Loop);
        b.call(f1);
        b.jmp(l2Loop);
        b.Label(ref f1); b.call(f2); b.ret();
        b.Label(ref f2); b.@out(0x80, al); b.cpuid(); b.ret();
        var ms = new MemoryStream();
        b.Assemble(new StreamCodeWriter(ms), L2Code);
        g.Vm.Memory.Write(L2Code, ms.ToArray());
        var image = Vmcb12Image(v => v.ErapCtl = ErapCtl.AllowLargerRap);
        g.Load(a =>
        {
            var loop = a.CreateLabel(); var run1 = a.CreateLabel(); var run2 = a.CreateLabel();
            a.mov(ecx, 0xC0000080); a.rdmsr(); a.bts(eax, 12); a.wrmsr();
            a.mov(rbx, Vmcb12);
            for (int off = 0; off < image.Length; off += 8)
            {
                ulong q = BitConverter.ToUInt64(image, off);
                if (q == 0) continue;
                a.mov(rax, q);
                a.mov(__qword_ptr[rbx + off], rax);
            }
            a.mov(r12d, 20);
            a.Label(ref loop);
            a.call(run1);
            a.mov(rbx, Vmcb12);
            a.mov(rax, __qword_ptr[rbx + VmcbOffset.NRip]);
            a.mov(__qword_ptr[rbx + VmcbOffset.Rip], rax);
            a.dec(r12d);
            a.jne(loop);
            a.hlt();
            a.Label(ref run1); a.call(run2); a.ret();
            a.Label(ref run2); a.mov(rax, Vmcb12); a.vmrun(); a.ret();
        });
        int exits = 0;
        VcpuExit exit;
        while ((exit = g.Run()).Reason == KvmExitReason.Io)
            exits++;
        Assert.That(exit.Reason, Is.EqualTo(KvmExitReason.Hlt), exit.ToString());
        Assert.That(exits, Is.EqualTo(20), "one L0-handled OUT per nested run");
        Assert.That(g.Svm.Nested!.Vmexits, Is.EqualTo(20));
        return g.Vcpu.Cpu.Rap.CrossDomainUses;
    }

    [Test]
    public void CrossDomainUses_Zen5WithEraps_Zero() => Assert.That(CrossDomainUses(HostCpuModel.Zen5), Is.Zero);
}
