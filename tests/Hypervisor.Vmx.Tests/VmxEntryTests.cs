using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.X86;
using Hypervisor.Vmx.Hardware;
using Hypervisor.Vmx.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmx.Tests;

/// <summary>VM entry: the guest-state checks fail entry with basic reason 33 and bit 31
/// (KVM_EXIT_FAIL_ENTRY with that hardware reason); the control checks fail the instruction
/// (VMfailValid, VM-instruction error 7).</summary>
public class VmxEntryTests
{
    private const ulong InvalidGuestState = 0x8000_0021;

    private static VcpuExit RunBroken(Action<Vmcs> breakIt, out VmxGuest guest, Action<Vcpu>? breakCache = null)
    {
        guest = new VmxGuest();
        guest.Load(a => a.hlt());
        breakIt(guest.Vmcs);
        breakCache?.Invoke(guest.Vcpu); // dirty cached registers reach the VMCS at entry
        return guest.Run();
    }

    [TestCase("rflags", "RFLAGS")]
    [TestCase("cr0-no-ne", "IA32_VMX_CR0_FIXED0")]
    [TestCase("cr4-no-vmxe", "IA32_VMX_CR4_FIXED0")]
    [TestCase("tr-available", "busy TSS")]
    [TestCase("link-pointer", "VMCS link pointer")]
    [TestCase("ia32e-without-lma", "IA32_EFER.LMA")]
    [TestCase("activity", "activity state")]
    [TestCase("rip-high", "RIP has bits 63:32")]
    public void GuestState_Invalid_FailEntryWithReason33AndBit31(string what, string why)
    {
        var exit = RunBroken(vmcs =>
        {
            switch (what)
            {
                case "rflags": break;
                case "cr0-no-ne": vmcs[VmcsField.GuestCr0] &= ~Cr0.Ne; break;
                case "cr4-no-vmxe": vmcs[VmcsField.GuestCr4] &= ~Cr4.Vmxe; break;
                case "tr-available": vmcs[VmcsField.GuestTrAccessRights] = 0x89; break;
                case "link-pointer": vmcs[VmcsField.VmcsLinkPointer] = 0; break;
                case "ia32e-without-lma": vmcs[VmcsField.GuestIa32Efer] &= ~Efer.Lma; break;
                case "activity": vmcs[VmcsField.GuestActivityState] = 1; break;
                case "rip-high":
                    vmcs[VmcsField.GuestCsAccessRights] &= ~(ulong)Segment.AttrL;
                    vmcs[VmcsField.GuestCsAccessRights] |= Segment.AttrDb;
                    break;
            }
        }, out var g, vcpu =>
        {
            if (what == "rflags") vcpu.Regs.Write(VcpuReg.Rflags, 0); // bit 1 clear
            if (what == "rip-high") vcpu.Regs.Write(VcpuReg.Rip, 1UL << 32); // compatibility mode with a 64-bit RIP
        });
        using (g)
        {
            Assert.That((exit.Reason, exit.HardwareReason), Is.EqualTo((KvmExitReason.FailEntry, InvalidGuestState)), exit.ToString());
            Assert.That(exit.Message, Does.Contain(why));
            Assert.That(new VmxExitReasonField((uint)g.Vmcs[VmcsField.ExitReason]).IsVmEntryFailure, Is.True);
            Assert.That(g.Vmcs.LaunchState, Is.EqualTo(VmcsLaunchState.Clear), "a failed VMLAUNCH does not launch the VMCS");
        }
    }

    [TestCase("unrestricted-without-ept")]
    [TestCase("vpid-zero")]
    [TestCase("eptp-uncacheable")]
    [TestCase("reserved-pin-bit")]
    [TestCase("cr3-target-count")]
    public void Controls_Invalid_VmFailValidError7(string what)
    {
        var exit = RunBroken(vmcs =>
        {
            switch (what)
            {
                case "unrestricted-without-ept": vmcs[VmcsField.SecondaryProcessorBasedVmExecutionControls] &= ~(ulong)VmxSecondaryProcessorControls.EnableEpt; break;
                case "vpid-zero": vmcs[VmcsField.VirtualProcessorId] = 0; break;
                case "eptp-uncacheable": vmcs[VmcsField.EptPointer] &= ~7UL; break;
                case "reserved-pin-bit": vmcs[VmcsField.PinBasedVmExecutionControls] &= ~0x16UL; break;
                case "cr3-target-count": vmcs[VmcsField.Cr3TargetCount] = 5; break;
            }
        }, out var g);
        using (g)
        {
            Assert.That((exit.Reason, exit.HardwareReason), Is.EqualTo((KvmExitReason.FailEntry, (ulong)VmxInstructionError.VmEntryInvalidControlFields)), exit.ToString());
            Assert.That(g.Vmcs[VmcsField.VmInstructionError], Is.EqualTo((ulong)VmxInstructionError.VmEntryInvalidControlFields));
        }
    }

    [Test]
    public void ValidState_LaunchesThenResumes()
    {
        using var g = new VmxGuest();
        g.Load(a => { a.hlt(); a.hlt(); });
        Assert.That(g.Vmcs.LaunchState, Is.EqualTo(VmcsLaunchState.Clear));
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(g.Vmcs.LaunchState, Is.EqualTo(VmcsLaunchState.Launched));
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt), "VMRESUME of the launched VMCS");
        Assert.That(g.Vmx.Processor.Enter(resume: false), Is.EqualTo(VmxInstructionError.VmlaunchNonClearVmcs), "VMLAUNCH needs a clear VMCS");
    }

    [Test]
    public void RealModeGuest_RunsAsUnrestrictedGuest_AndFailsEntryWithoutIt()
    {
        foreach (bool unrestricted in new[] { true, false })
        {
            using var g = new VmxGuest(options: new VmxOptions { UnrestrictedGuest = unrestricted });
            g.Vcpu.Reset(initEvent: false);
            // Real mode (CR0.PE and PG clear) at 0000:7C00, as a boot sector starts.
            var sregs = g.Vcpu.GetSregs();
            sregs.Cs = Segment.RealMode(0, 0x9B);
            g.Vcpu.SetSregs(sregs);
            g.Vcpu.Rip = 0x7C00;
            g.Vm.Memory.Write(0x7C00, new byte[] { 0xF4 }); // HLT
            var exit = g.Run();
            if (unrestricted)
                Assert.That(exit.Reason, Is.EqualTo(KvmExitReason.Hlt), exit.ToString());
            else
                Assert.That((exit.Reason, exit.HardwareReason), Is.EqualTo((KvmExitReason.FailEntry, InvalidGuestState)), exit.ToString());
        }
    }
}
