using Hypervisor.Vmx.Hardware;

namespace Hypervisor.Vmx.Tests.Hardware;

/// <summary>Basic exit reasons (SDM appendix C; KVM-FACTS §7) and the exit-reason field (SDM §25.9.1).</summary>
public class VmxExitReasonTests
{
    [TestCase(VmxExitReason.ExceptionOrNmi, 0)]
    [TestCase(VmxExitReason.ExternalInterrupt, 1)]
    [TestCase(VmxExitReason.TripleFault, 2)]
    [TestCase(VmxExitReason.InterruptWindow, 7)]
    [TestCase(VmxExitReason.TaskSwitch, 9)]
    [TestCase(VmxExitReason.Cpuid, 10)]
    [TestCase(VmxExitReason.Hlt, 12)]
    [TestCase(VmxExitReason.Invlpg, 14)]
    [TestCase(VmxExitReason.Rdtsc, 16)]
    [TestCase(VmxExitReason.Vmcall, 18)]
    [TestCase(VmxExitReason.Vmxon, 27)]
    [TestCase(VmxExitReason.ControlRegisterAccess, 28)]
    [TestCase(VmxExitReason.MovDr, 29)]
    [TestCase(VmxExitReason.IoInstruction, 30)]
    [TestCase(VmxExitReason.Rdmsr, 31)]
    [TestCase(VmxExitReason.Wrmsr, 32)]
    [TestCase(VmxExitReason.EntryFailureInvalidGuestState, 33)]
    [TestCase(VmxExitReason.EntryFailureMsrLoading, 34)]
    [TestCase(VmxExitReason.Mwait, 36)]
    [TestCase(VmxExitReason.MonitorTrapFlag, 37)]
    [TestCase(VmxExitReason.Monitor, 39)]
    [TestCase(VmxExitReason.Pause, 40)]
    [TestCase(VmxExitReason.EntryFailureMachineCheck, 41)]
    [TestCase(VmxExitReason.TprBelowThreshold, 43)]
    [TestCase(VmxExitReason.GdtrIdtrAccess, 46)]
    [TestCase(VmxExitReason.LdtrTrAccess, 47)]
    [TestCase(VmxExitReason.EptViolation, 48)]
    [TestCase(VmxExitReason.EptMisconfiguration, 49)]
    [TestCase(VmxExitReason.Invept, 50)]
    [TestCase(VmxExitReason.VmxPreemptionTimerExpired, 52)]
    [TestCase(VmxExitReason.Invvpid, 53)]
    [TestCase(VmxExitReason.Xsetbv, 55)]
    [TestCase(VmxExitReason.Invpcid, 58)]
    [TestCase(VmxExitReason.Xsaves, 63)]
    [TestCase(VmxExitReason.Xrstors, 64)]
    [TestCase(VmxExitReason.BusLock, 74)]
    [TestCase(VmxExitReason.InstructionTimeout, 75)]
    [TestCase(VmxExitReason.Tdcall, 77)]
    [TestCase(VmxExitReason.Wrmsrlist, 79)]
    public void ExitReason_Number_IsTheSdmNumber(VmxExitReason reason, int number)
        => Assert.That((int)reason, Is.EqualTo(number));

    [TestCase(VmxExitReason.Cpuid, "EXIT_REASON_CPUID")]
    [TestCase(VmxExitReason.ControlRegisterAccess, "EXIT_REASON_CR_ACCESS")]
    [TestCase(VmxExitReason.EptViolation, "EXIT_REASON_EPT_VIOLATION")]
    [TestCase(VmxExitReason.EntryFailureInvalidGuestState, "EXIT_REASON_INVALID_STATE")]
    [TestCase((VmxExitReason)35, "EXIT_REASON_UNKNOWN")]
    [TestCase((VmxExitReason)71, "EXIT_REASON_UNKNOWN")]
    [TestCase((VmxExitReason)80, "EXIT_REASON_UNKNOWN")]
    [TestCase((VmxExitReason)0xFFFF, "EXIT_REASON_UNKNOWN")]
    public void Name_ForLogs(VmxExitReason reason, string name)
        => Assert.That(VmxExitReasons.Name(reason), Is.EqualTo(name));

    [Test]
    public void IsDefined_ExactlyTheEnumMembers()
    {
        var members = Enum.GetValues<VmxExitReason>().Select(r => (int)r).ToHashSet();
        for (int n = 0; n < 100; n++)
            Assert.That(VmxExitReasons.IsDefined((VmxExitReason)n), Is.EqualTo(members.Contains(n)), n.ToString());
        Assert.That(new[] { 35, 38, 42, 71 }.Any(members.Contains), Is.False);
    }

    [Test]
    public void EntryFailure_SetsBit31_KeepsBasicReason()
    {
        var f = VmxExitReasonField.EntryFailure(VmxExitReason.EntryFailureInvalidGuestState);
        Assert.Multiple(() =>
        {
            Assert.That(f.Raw, Is.EqualTo(0x8000_0021u));
            Assert.That(f.IsVmEntryFailure, Is.True);
            Assert.That(f.Basic, Is.EqualTo(VmxExitReason.EntryFailureInvalidGuestState));
            Assert.That(VmxExitReasons.IsEntryFailureReason(f.Basic), Is.True);
            Assert.That(VmxExitReasons.IsEntryFailureReason(VmxExitReason.Hlt), Is.False);
        });
    }

    [Test]
    public void ExitReasonField_FlagBits_26To29()
    {
        var f = new VmxExitReasonField((1u << 26) | (1u << 27) | (1u << 28) | (1u << 29) | 48);
        Assert.Multiple(() =>
        {
            Assert.That(f.Basic, Is.EqualTo(VmxExitReason.EptViolation));
            Assert.That(f.IsBusLockAsserted && f.IsFromEnclaveMode && f.IsPendingMtf && f.IsFromVmxRoot, Is.True);
            Assert.That(f.IsVmEntryFailure, Is.False);
            Assert.That(VmxExitReasonField.Exit(VmxExitReason.Cpuid).Raw, Is.EqualTo(10u));
        });
    }
}
