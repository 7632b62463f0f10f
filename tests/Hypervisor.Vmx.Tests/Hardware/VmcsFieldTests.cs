using Hypervisor.Vmx.Hardware;

namespace Hypervisor.Vmx.Tests.Hardware;

/// <summary>VMCS component encodings against the literals of SDM vol. 3 appendix B, and their decoding (§25.11.2).</summary>
public class VmcsFieldTests
{
    [TestCase(VmcsField.VirtualProcessorId, 0x0000u)]
    [TestCase(VmcsField.PostedInterruptNotificationVector, 0x0002u)]
    [TestCase(VmcsField.EptpIndex, 0x0004u)]
    [TestCase(VmcsField.GuestEsSelector, 0x0800u)]
    [TestCase(VmcsField.GuestTrSelector, 0x080Eu)]
    [TestCase(VmcsField.GuestInterruptStatus, 0x0810u)]
    [TestCase(VmcsField.PmlIndex, 0x0812u)]
    [TestCase(VmcsField.HostEsSelector, 0x0C00u)]
    [TestCase(VmcsField.HostTrSelector, 0x0C0Cu)]
    [TestCase(VmcsField.IoBitmapAAddress, 0x2000u)]
    [TestCase(VmcsField.IoBitmapBAddress, 0x2002u)]
    [TestCase(VmcsField.MsrBitmapAddress, 0x2004u)]
    [TestCase(VmcsField.TscOffset, 0x2010u)]
    [TestCase(VmcsField.EptPointer, 0x201Au)]
    [TestCase(VmcsField.XssExitingBitmap, 0x202Cu)]
    [TestCase(VmcsField.TscMultiplier, 0x2032u)]
    [TestCase(VmcsField.TertiaryProcessorBasedVmExecutionControls, 0x2034u)]
    [TestCase(VmcsField.SecondaryVmExitControls, 0x2044u)]
    [TestCase(VmcsField.Ia32SpecCtrlMask, 0x204Au)]
    [TestCase(VmcsField.Ia32SpecCtrlShadow, 0x204Cu)]
    [TestCase(VmcsField.InjectedEventData, 0x2052u)]
    [TestCase(VmcsField.GuestPhysicalAddress, 0x2400u)]
    [TestCase(VmcsField.OriginalEventData, 0x2404u)]
    [TestCase(VmcsField.GuestIa32FredConfig, 0x281Au)]
    [TestCase(VmcsField.GuestIa32FredSsp3, 0x2828u)]
    [TestCase(VmcsField.HostIa32FredConfig, 0x2C08u)]
    [TestCase(VmcsField.HostIa32FredSsp3, 0x2C16u)]
    [TestCase(VmcsField.VmcsLinkPointer, 0x2800u)]
    [TestCase(VmcsField.GuestIa32Debugctl, 0x2802u)]
    [TestCase(VmcsField.GuestIa32Pat, 0x2804u)]
    [TestCase(VmcsField.GuestIa32Efer, 0x2806u)]
    [TestCase(VmcsField.GuestPdpte0, 0x280Au)]
    [TestCase(VmcsField.GuestPdpte3, 0x2810u)]
    [TestCase(VmcsField.HostIa32Pat, 0x2C00u)]
    [TestCase(VmcsField.HostIa32Efer, 0x2C02u)]
    [TestCase(VmcsField.PinBasedVmExecutionControls, 0x4000u)]
    [TestCase(VmcsField.PrimaryProcessorBasedVmExecutionControls, 0x4002u)]
    [TestCase(VmcsField.ExceptionBitmap, 0x4004u)]
    [TestCase(VmcsField.PrimaryVmExitControls, 0x400Cu)]
    [TestCase(VmcsField.VmEntryControls, 0x4012u)]
    [TestCase(VmcsField.VmEntryInterruptionInformation, 0x4016u)]
    [TestCase(VmcsField.VmEntryInstructionLength, 0x401Au)]
    [TestCase(VmcsField.SecondaryProcessorBasedVmExecutionControls, 0x401Eu)]
    [TestCase(VmcsField.VmInstructionError, 0x4400u)]
    [TestCase(VmcsField.ExitReason, 0x4402u)]
    [TestCase(VmcsField.VmExitInterruptionInformation, 0x4404u)]
    [TestCase(VmcsField.IdtVectoringInformation, 0x4408u)]
    [TestCase(VmcsField.VmExitInstructionLength, 0x440Cu)]
    [TestCase(VmcsField.VmExitInstructionInformation, 0x440Eu)]
    [TestCase(VmcsField.GuestEsLimit, 0x4800u)]
    [TestCase(VmcsField.GuestIdtrLimit, 0x4812u)]
    [TestCase(VmcsField.GuestEsAccessRights, 0x4814u)]
    [TestCase(VmcsField.GuestTrAccessRights, 0x4822u)]
    [TestCase(VmcsField.GuestInterruptibilityState, 0x4824u)]
    [TestCase(VmcsField.GuestActivityState, 0x4826u)]
    [TestCase(VmcsField.GuestIa32SysenterCs, 0x482Au)]
    [TestCase(VmcsField.VmxPreemptionTimerValue, 0x482Eu)]
    [TestCase(VmcsField.HostIa32SysenterCs, 0x4C00u)]
    [TestCase(VmcsField.Cr0GuestHostMask, 0x6000u)]
    [TestCase(VmcsField.Cr4GuestHostMask, 0x6002u)]
    [TestCase(VmcsField.Cr0ReadShadow, 0x6004u)]
    [TestCase(VmcsField.Cr4ReadShadow, 0x6006u)]
    [TestCase(VmcsField.Cr3TargetValue3, 0x600Eu)]
    [TestCase(VmcsField.ExitQualification, 0x6400u)]
    [TestCase(VmcsField.GuestLinearAddress, 0x640Au)]
    [TestCase(VmcsField.GuestCr0, 0x6800u)]
    [TestCase(VmcsField.GuestCr3, 0x6802u)]
    [TestCase(VmcsField.GuestCr4, 0x6804u)]
    [TestCase(VmcsField.GuestIdtrBase, 0x6818u)]
    [TestCase(VmcsField.GuestDr7, 0x681Au)]
    [TestCase(VmcsField.GuestRsp, 0x681Cu)]
    [TestCase(VmcsField.GuestRip, 0x681Eu)]
    [TestCase(VmcsField.GuestRflags, 0x6820u)]
    [TestCase(VmcsField.GuestPendingDebugExceptions, 0x6822u)]
    [TestCase(VmcsField.GuestIa32SysenterEip, 0x6826u)]
    [TestCase(VmcsField.HostCr0, 0x6C00u)]
    [TestCase(VmcsField.HostCr3, 0x6C02u)]
    [TestCase(VmcsField.HostFsBase, 0x6C06u)]
    [TestCase(VmcsField.HostIdtrBase, 0x6C0Eu)]
    [TestCase(VmcsField.HostRsp, 0x6C14u)]
    [TestCase(VmcsField.HostRip, 0x6C16u)]
    public void Field_Encoding_IsTheSdmLiteral(VmcsField field, uint encoding)
        => Assert.That((uint)field, Is.EqualTo(encoding));

    [TestCase(VmcsField.VirtualProcessorId, VmcsFieldWidth.Bits16, VmcsFieldType.Control, 0)]
    [TestCase(VmcsField.GuestTrSelector, VmcsFieldWidth.Bits16, VmcsFieldType.GuestState, 7)]
    [TestCase(VmcsField.HostCsSelector, VmcsFieldWidth.Bits16, VmcsFieldType.HostState, 1)]
    [TestCase(VmcsField.EptPointer, VmcsFieldWidth.Bits64, VmcsFieldType.Control, 13)]
    [TestCase(VmcsField.GuestPhysicalAddress, VmcsFieldWidth.Bits64, VmcsFieldType.ReadOnlyData, 0)]
    [TestCase(VmcsField.GuestIa32Efer, VmcsFieldWidth.Bits64, VmcsFieldType.GuestState, 3)]
    [TestCase(VmcsField.HostIa32Efer, VmcsFieldWidth.Bits64, VmcsFieldType.HostState, 1)]
    [TestCase(VmcsField.ExceptionBitmap, VmcsFieldWidth.Bits32, VmcsFieldType.Control, 2)]
    [TestCase(VmcsField.VmExitInstructionLength, VmcsFieldWidth.Bits32, VmcsFieldType.ReadOnlyData, 6)]
    [TestCase(VmcsField.GuestActivityState, VmcsFieldWidth.Bits32, VmcsFieldType.GuestState, 19)]
    [TestCase(VmcsField.HostIa32SysenterCs, VmcsFieldWidth.Bits32, VmcsFieldType.HostState, 0)]
    [TestCase(VmcsField.Cr0ReadShadow, VmcsFieldWidth.Natural, VmcsFieldType.Control, 2)]
    [TestCase(VmcsField.ExitQualification, VmcsFieldWidth.Natural, VmcsFieldType.ReadOnlyData, 0)]
    [TestCase(VmcsField.GuestRip, VmcsFieldWidth.Natural, VmcsFieldType.GuestState, 15)]
    [TestCase(VmcsField.HostRip, VmcsFieldWidth.Natural, VmcsFieldType.HostState, 11)]
    public void Encoding_Decodes_WidthTypeIndex(VmcsField field, VmcsFieldWidth width, VmcsFieldType type, int index)
    {
        Assert.Multiple(() =>
        {
            Assert.That(VmcsEncoding.Width(field), Is.EqualTo(width));
            Assert.That(VmcsEncoding.Type(field), Is.EqualTo(type));
            Assert.That(VmcsEncoding.Index(field), Is.EqualTo(index));
            Assert.That(VmcsEncoding.IsHighAccess((uint)field), Is.False);
            Assert.That(VmcsEncoding.Encode(width, type, index), Is.EqualTo((uint)field));
        });
    }

    [Test]
    public void High_OfEptPointer_Is201B()
    {
        Assert.Multiple(() =>
        {
            Assert.That(VmcsEncoding.High(VmcsField.EptPointer), Is.EqualTo(0x201Bu));
            Assert.That(VmcsEncoding.High(VmcsField.VmcsLinkPointer), Is.EqualTo(0x2801u));
            Assert.That(VmcsEncoding.IsHighAccess(0x201B), Is.True);
            Assert.That(VmcsEncoding.Width(0x201Bu), Is.EqualTo(VmcsFieldWidth.Bits64));
        });
    }

    [Test]
    public void EveryField_IsFullAccess_WithReservedBitsClear_AndWidthMatchesItsSection()
    {
        foreach (var f in Enum.GetValues<VmcsField>())
        {
            uint e = (uint)f;
            Assert.That(e & (VmcsEncoding.ReservedMask | VmcsEncoding.AccessHigh), Is.Zero, f.ToString());
        }
    }

    [Test]
    public void EveryField_HasADistinctEncoding()
    {
        var values = Enum.GetValues<VmcsField>().Select(f => (uint)f).ToArray();
        Assert.That(values.Distinct().Count(), Is.EqualTo(values.Length));
    }

    [TestCase(VmcsFieldWidth.Bits16, 0xFFFFUL)]
    [TestCase(VmcsFieldWidth.Bits32, 0xFFFF_FFFFUL)]
    [TestCase(VmcsFieldWidth.Bits64, ulong.MaxValue)]
    [TestCase(VmcsFieldWidth.Natural, ulong.MaxValue)]
    public void ValueMask_OfWidth_KeepsItsBits(VmcsFieldWidth width, ulong mask)
        => Assert.That(VmcsEncoding.ValueMask(width), Is.EqualTo(mask));
}
