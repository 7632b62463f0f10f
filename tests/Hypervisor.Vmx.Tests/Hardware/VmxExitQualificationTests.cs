using Hypervisor.Vmx.Hardware;

namespace Hypervisor.Vmx.Tests.Hardware;

/// <summary>Exit-qualification bit positions (SDM §28.2.1).</summary>
public class VmxExitQualificationTests
{
    [Test]
    public void CrAccess_MovToCr3FromRbx_Is0x303()
    {
        var q = VmxCrAccessQualification.MovToCr(3, 3);
        Assert.Multiple(() =>
        {
            Assert.That(q.Raw, Is.EqualTo(0x303UL));
            Assert.That(q.ControlRegister, Is.EqualTo(3));
            Assert.That(q.AccessType, Is.EqualTo(VmxCrAccessType.MovToCr));
            Assert.That(q.Gpr, Is.EqualTo(3));
        });
    }

    [Test]
    public void CrAccess_MovFromCr8ToR15_TypeBits5To4Is1()
    {
        var q = VmxCrAccessQualification.MovFromCr(8, 15);
        Assert.Multiple(() =>
        {
            Assert.That(q.Raw, Is.EqualTo(0xF18UL));
            Assert.That(q.ControlRegister, Is.EqualTo(8));
            Assert.That(q.AccessType, Is.EqualTo(VmxCrAccessType.MovFromCr));
            Assert.That(q.Gpr, Is.EqualTo(15));
        });
    }

    [Test]
    public void CrAccess_CltsAndLmsw()
    {
        var clts = VmxCrAccessQualification.Clts;
        var lmsw = VmxCrAccessQualification.Lmsw(0xFFF1, memoryOperand: true);
        Assert.Multiple(() =>
        {
            Assert.That(clts.Raw, Is.EqualTo(0x20UL));
            Assert.That(clts.AccessType, Is.EqualTo(VmxCrAccessType.Clts));
            Assert.That(lmsw.Raw, Is.EqualTo(0xFFF1_0070UL));
            Assert.That(lmsw.AccessType, Is.EqualTo(VmxCrAccessType.Lmsw));
            Assert.That(lmsw.IsLmswMemoryOperand, Is.True);
            Assert.That(lmsw.LmswSource, Is.EqualTo(0xFFF1));
            Assert.That(lmsw.ControlRegister, Is.Zero);
        });
    }

    [Test]
    public void MovDr_FromDr7ToRax_Bit4Set()
    {
        var q = VmxMovDrQualification.Create(7, 0, fromDr: true);
        Assert.Multiple(() =>
        {
            Assert.That(q.Raw, Is.EqualTo(0x17UL));
            Assert.That(q.DebugRegister, Is.EqualTo(7));
            Assert.That(q.IsFromDr, Is.True);
            Assert.That(VmxMovDrQualification.Create(0, 9, false).Raw, Is.EqualTo(0x900UL));
        });
    }

    [TestCase((ushort)0x3F8, 1, false, false, false, false, 0x03F8_0000UL)]
    [TestCase((ushort)0x3F8, 1, true, false, false, false, 0x03F8_0008UL)]
    [TestCase((ushort)0xCFC, 4, true, false, false, false, 0x0CFC_000BUL)]
    [TestCase((ushort)0x80, 2, false, false, false, true, 0x0080_0041UL)]
    [TestCase((ushort)0xFFFF, 1, true, true, true, false, 0xFFFF_0038UL)]
    public void Io_BitPositions(ushort port, int size, bool isIn, bool isString, bool isRep, bool isImm, ulong raw)
    {
        var q = VmxIoQualification.Create(port, size, isIn, isString, isRep, isImm);
        Assert.Multiple(() =>
        {
            Assert.That(q.Raw, Is.EqualTo(raw));
            Assert.That(q.Port, Is.EqualTo(port));
            Assert.That(q.Size, Is.EqualTo(size));
            Assert.That(q.IsIn, Is.EqualTo(isIn));
            Assert.That(q.IsString, Is.EqualTo(isString));
            Assert.That(q.IsRep, Is.EqualTo(isRep));
            Assert.That(q.IsImmediate, Is.EqualTo(isImm));
        });
    }

    [Test]
    public void EptViolation_WriteToReadOnlyPage_WithLinearAddress()
    {
        // A write (bit 1) to a page whose EPT entries allow read and execute (bits 3 and 5).
        var q = VmxEptViolationQualification.Create(access: 2, eptPermissions: 5, linearAddressValid: true, translated: true);
        Assert.Multiple(() =>
        {
            Assert.That(q.Raw, Is.EqualTo(0x1AAUL));
            Assert.That(q.IsWrite && !q.IsRead && !q.IsFetch, Is.True);
            Assert.That(q.EptPermissions, Is.EqualTo(5));
            Assert.That(q.IsGuestLinearAddressValid && q.IsTranslatedAccess, Is.True);
        });
    }

    [Test]
    public void EptViolation_NotPresent_PagingStructureAccess_AndNoLinearAddress()
    {
        Assert.Multiple(() =>
        {
            Assert.That(VmxEptViolationQualification.Create(1, 0, linearAddressValid: true, translated: false).Raw, Is.EqualTo(0x81UL));
            // Bit 8 is only meaningful with bit 7: no linear address leaves it clear.
            Assert.That(VmxEptViolationQualification.Create(4, 0, linearAddressValid: false, translated: true).Raw, Is.EqualTo(0x4UL));
            Assert.That(VmxEptViolationQualification.NmiUnblockingDueToIret, Is.EqualTo(1UL << 12));
            Assert.That(VmxEptViolationQualification.EptUserExecutable, Is.EqualTo(1UL << 6));
        });
    }

    [Test]
    public void Debug_BitPositions()
    {
        var q = new VmxDebugQualification(0x4000 | 0x2000 | 0x0800 | 0x1_0000 | 0x5);
        Assert.Multiple(() =>
        {
            Assert.That(q.IsBreakpointHit(0) && !q.IsBreakpointHit(1) && q.IsBreakpointHit(2) && !q.IsBreakpointHit(3), Is.True);
            Assert.That(q.IsSingleStep && q.IsDebugRegisterAccess && q.IsBusLock && q.IsRtm, Is.True);
            Assert.That(new VmxDebugQualification(0x4000).IsDebugRegisterAccess, Is.False);
        });
    }

    [Test]
    public void TaskSwitch_SelectorAndSourceBits31To30()
    {
        var q = VmxTaskSwitchQualification.Create(0x28, VmxTaskSwitchSource.TaskGateInIdt);
        Assert.Multiple(() =>
        {
            Assert.That(q.Raw, Is.EqualTo(0xC000_0028UL));
            Assert.That(q.Selector, Is.EqualTo(0x28));
            Assert.That(q.Source, Is.EqualTo(VmxTaskSwitchSource.TaskGateInIdt));
        });
    }
}
