using Hypervisor.Vmx.Hardware;

namespace Hypervisor.Vmx.Tests.Hardware;

/// <summary>The interruption-information format (SDM §25.8.3, §25.9.2).</summary>
public class VmxInterruptionInfoTests
{
    [Test]
    public void PageFault_HardwareExceptionWithErrorCode_Is0x80000B0E()
    {
        var i = VmxInterruptionInfo.Create(14, VmxInterruptionType.HardwareException, hasErrorCode: true);
        Assert.Multiple(() =>
        {
            Assert.That(i.Raw, Is.EqualTo(0x8000_0B0Eu));
            Assert.That(i.Vector, Is.EqualTo(14));
            Assert.That(i.Type, Is.EqualTo(VmxInterruptionType.HardwareException));
            Assert.That(i.HasErrorCode && i.IsValid, Is.True);
            Assert.That(i.IsNmiUnblockingDueToIret, Is.False);
        });
    }

    [TestCase(VmxInterruptionType.ExternalInterrupt, 0x20, 0x8000_0020u)]
    [TestCase(VmxInterruptionType.NonMaskableInterrupt, 2, 0x8000_0202u)]
    [TestCase(VmxInterruptionType.SoftwareInterrupt, 0x80, 0x8000_0480u)]
    [TestCase(VmxInterruptionType.PrivilegedSoftwareException, 1, 0x8000_0501u)]
    [TestCase(VmxInterruptionType.SoftwareException, 3, 0x8000_0603u)]
    [TestCase(VmxInterruptionType.OtherEvent, 0, 0x8000_0700u)]
    public void Type_IsBits10To8(VmxInterruptionType type, int vector, uint raw)
    {
        var i = VmxInterruptionInfo.Create(vector, type);
        Assert.Multiple(() =>
        {
            Assert.That(i.Raw, Is.EqualTo(raw));
            Assert.That(i.Type, Is.EqualTo(type));
        });
    }

    [Test]
    public void NmiUnblocking_IsBit12_AndReservedOnEntry()
    {
        var i = VmxInterruptionInfo.Create(13, VmxInterruptionType.HardwareException, true, nmiUnblocking: true);
        Assert.Multiple(() =>
        {
            Assert.That(i.Raw, Is.EqualTo(0x8000_1B0Du));
            Assert.That(i.IsNmiUnblockingDueToIret, Is.True);
            Assert.That(i.Raw & VmxInterruptionInfo.EntryReservedMask, Is.Not.Zero);
            Assert.That(new VmxInterruptionInfo(0).IsValid, Is.False);
        });
    }
}
