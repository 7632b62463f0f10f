using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.X86;
using Hypervisor.Svm.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Svm.Tests;

/// <summary>XSETBV always exits; the guest's XCR0 is loaded into the processor before VMRUN and the
/// host's restored after #VMEXIT (kvm_load_guest_xsave_state / kvm_load_host_xsave_state).</summary>
public class SvmXcr0Tests
{
    [Test]
    public void Xgetbv_AfterXsetbv_ReadsTheGuestsValue_HostValueBackAfterExit()
    {
        // The AMD models do not enumerate XSAVE; a Zen 5 with XSAVE (CPUID.1:ECX[26]) does, and the
        // guest table enumerates SSE state (bit 1) so XCR0 = 3 passes the common checks.
        var model = Hypervisor.Core.Machine.Models.HostCpuModel.Zen5.WithFeature(1, 'c', 26, true);
        using var g = new SvmGuest(model, editCpuid: c => c.Select(e => e.Function == 0xD && e.Index == 0 ? e with { Eax = e.Eax | 2 } : e).ToList());
        g.Load(a =>
        {
            a.mov(rax, cr4); a.bts(rax, 18); a.mov(cr4, rax);               // CR4.OSXSAVE
            a.xor(ecx, ecx); a.mov(eax, 3); a.xor(edx, edx); a.xsetbv();     // exits; common code keeps 3
            a.xor(ecx, ecx); a.xgetbv(); a.mov(r8, rax);                     // the processor's XCR0
            a.hlt();
        });
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(g.Vcpu.Xcr0, Is.EqualTo(3UL));
        Assert.That(g.Vcpu.ReadGpr(8), Is.EqualTo(3UL), "XGETBV in the guest sees the XCR0 it set (it used to read 1)");
        Assert.That(g.Vcpu.Cpu.Xcr0, Is.EqualTo(1UL), "the host's XCR0 after the exit");
        Assert.That(g.Vcpu.Stats.ByVendorExit["VMEXIT_XSETBV"], Is.EqualTo(1));
    }
}
