using Hypervisor.Vmx.Hardware;

namespace Hypervisor.Vmx.Tests.Hardware;

/// <summary>VMREAD/VMWRITE semantics (SDM §31.3) and the launch-state and pointer rules with their error numbers (§31.4).</summary>
public class VmcsTests
{
    private const uint Revision = 0x12345;

    [Test]
    public void VmWrite_ThenVmRead_NaturalWidth_KeepsAll64Bits()
    {
        var vmcs = new Vmcs(Revision);
        Assert.Multiple(() =>
        {
            Assert.That(vmcs.VmWrite((ulong)VmcsField.GuestRip, 0xFFFF_8000_1234_5678), Is.EqualTo(VmxInstructionError.None));
            Assert.That(vmcs.VmRead((ulong)VmcsField.GuestRip, out ulong v), Is.EqualTo(VmxInstructionError.None));
            Assert.That(v, Is.EqualTo(0xFFFF_8000_1234_5678));
            Assert.That(vmcs[VmcsField.GuestRip], Is.EqualTo(0xFFFF_8000_1234_5678));
        });
    }

    [TestCase(VmcsField.VirtualProcessorId, 0x1234_5678_9ABC_DEF0UL, 0xDEF0UL)]
    [TestCase(VmcsField.GuestCsSelector, 0xFFFF_FFFF_FFFF_0008UL, 0x0008UL)]
    [TestCase(VmcsField.ExceptionBitmap, 0x1234_5678_9ABC_DEF0UL, 0x9ABC_DEF0UL)]
    [TestCase(VmcsField.GuestCsLimit, 0xFFFF_FFFF_FFFF_FFFFUL, 0xFFFF_FFFFUL)]
    [TestCase(VmcsField.EptPointer, 0x1234_5678_9ABC_DEF0UL, 0x1234_5678_9ABC_DEF0UL)]
    [TestCase(VmcsField.Cr0GuestHostMask, 0x8000_0000_0000_0021UL, 0x8000_0000_0000_0021UL)]
    public void VmWrite_TruncatesToFieldWidth(VmcsField field, ulong written, ulong read)
    {
        var vmcs = new Vmcs(Revision);
        vmcs.VmWrite((ulong)field, written);
        vmcs.VmRead((ulong)field, out ulong v);
        Assert.That(v, Is.EqualTo(read));
    }

    [Test]
    public void HighAccess_Of64BitField_ReadsAndWritesBits63To32()
    {
        var vmcs = new Vmcs(Revision);
        vmcs.VmWrite((ulong)VmcsField.EptPointer, 0x1111_2222_3333_4000);
        Assert.Multiple(() =>
        {
            Assert.That(vmcs.VmRead(0x201B, out ulong high), Is.EqualTo(VmxInstructionError.None));
            Assert.That(high, Is.EqualTo(0x1111_2222UL));
            // A high write replaces bits 63:32 with bits 31:0 of the operand and keeps the low half.
            Assert.That(vmcs.VmWrite(0x201B, 0xDEAD_BEEF_AAAA_BBBB), Is.EqualTo(VmxInstructionError.None));
            Assert.That(vmcs[VmcsField.EptPointer], Is.EqualTo(0xAAAA_BBBB_3333_4000));
        });
    }

    [Test]
    public void FullAccessWrite_Of64BitField_WritesAll64Bits()
    {
        var vmcs = new Vmcs(Revision);
        vmcs[VmcsField.GuestIa32Efer] = 0xFFFF_FFFF_0000_0000;
        vmcs.VmWrite((ulong)VmcsField.GuestIa32Efer, 0x500);
        Assert.That(vmcs[VmcsField.GuestIa32Efer], Is.EqualTo(0x500UL));
    }

    [TestCase(0x0001UL)]        // high access of a 16-bit field
    [TestCase(0x4003UL)]        // high access of a 32-bit field
    [TestCase(0x6801UL)]        // high access of a natural-width field
    [TestCase(0x0006UL + 0x10)] // 16-bit control index 0Bh: no such field
    [TestCase(0x1000UL)]        // bit 12 reserved
    [TestCase(0x8000UL)]        // bit 15 reserved
    [TestCase(0x1_0000_681EUL)] // bits 63:32 of the operand set
    [TestCase(0x2046UL)]        // unassigned 64-bit control
    [TestCase(0x2402UL)]        // unassigned 64-bit read-only data
    [TestCase(0x4830UL)]        // unassigned 32-bit guest-state
    public void UnsupportedEncoding_FailsWithError12(ulong encoding)
    {
        var vmcs = new Vmcs(Revision);
        Assert.Multiple(() =>
        {
            Assert.That(vmcs.VmRead(encoding, out ulong v), Is.EqualTo(VmxInstructionError.UnsupportedVmcsComponent));
            Assert.That(v, Is.Zero);
            Assert.That(vmcs.VmWrite(encoding, 1), Is.EqualTo(VmxInstructionError.UnsupportedVmcsComponent));
            Assert.That((int)VmxInstructionError.UnsupportedVmcsComponent, Is.EqualTo(12));
            if (encoding <= uint.MaxValue)
                Assert.That(Vmcs.IsSupported((uint)encoding), Is.False);
        });
    }

    [TestCase(VmcsField.ExitReason)]
    [TestCase(VmcsField.VmInstructionError)]
    [TestCase(VmcsField.ExitQualification)]
    [TestCase(VmcsField.GuestPhysicalAddress)]
    [TestCase(VmcsField.VmExitInstructionLength)]
    [TestCase(VmcsField.GuestLinearAddress)]
    public void VmWrite_ReadOnlyField_FailsWithError13_AndKeepsTheValue(VmcsField field)
    {
        var vmcs = new Vmcs(Revision);
        vmcs[field] = 7;
        Assert.Multiple(() =>
        {
            Assert.That(vmcs.VmWrite((ulong)field, 99), Is.EqualTo(VmxInstructionError.VmwriteReadOnlyComponent));
            Assert.That((int)VmxInstructionError.VmwriteReadOnlyComponent, Is.EqualTo(13));
            Assert.That(vmcs[field], Is.EqualTo(7UL));
        });
    }

    [Test]
    public void VmWrite_ReadOnlyField_WithVmwriteAnyField_Succeeds()
    {
        var vmcs = new Vmcs(Revision, vmwriteAnyField: true);
        Assert.Multiple(() =>
        {
            Assert.That(vmcs.VmWrite((ulong)VmcsField.ExitQualification, 0x1234), Is.EqualTo(VmxInstructionError.None));
            Assert.That(vmcs[VmcsField.ExitQualification], Is.EqualTo(0x1234UL));
            Assert.That(vmcs.VmWrite(VmcsEncoding.High(VmcsField.GuestPhysicalAddress), 0x5), Is.EqualTo(VmxInstructionError.None));
            Assert.That(vmcs[VmcsField.GuestPhysicalAddress], Is.EqualTo(0x5_0000_0000UL));
        });
    }

    [Test]
    public void EveryField_IsSupported_AndStoredSeparately()
    {
        var vmcs = new Vmcs(Revision);
        var fields = Enum.GetValues<VmcsField>();
        for (int i = 0; i < fields.Length; i++)
            vmcs[fields[i]] = (ulong)(i + 1);
        for (int i = 0; i < fields.Length; i++)
        {
            Assert.That(Vmcs.IsSupported((uint)fields[i]), Is.True, fields[i].ToString());
            Assert.That(vmcs[fields[i]], Is.EqualTo((ulong)(i + 1)), fields[i].ToString());
            if (VmcsEncoding.Width(fields[i]) == VmcsFieldWidth.Bits64)
                Assert.That(Vmcs.IsSupported(VmcsEncoding.High(fields[i])), Is.True, fields[i] + " high");
        }
    }

    [Test]
    public void HighestIndex_IsThatOfInjectedEventData_29h()
        => Assert.That(Vmcs.HighestIndex, Is.EqualTo(0x29));

    [Test]
    public void LaunchState_StartsClear_VmlaunchAllowed_VmresumeError5()
    {
        var vmcs = new Vmcs(Revision);
        Assert.Multiple(() =>
        {
            Assert.That(vmcs.LaunchState, Is.EqualTo(VmcsLaunchState.Clear));
            Assert.That(vmcs.CheckEntry(isResume: false), Is.EqualTo(VmxInstructionError.None));
            Assert.That(vmcs.CheckEntry(isResume: true), Is.EqualTo(VmxInstructionError.VmresumeNonLaunchedVmcs));
            Assert.That((int)VmxInstructionError.VmresumeNonLaunchedVmcs, Is.EqualTo(5));
        });
    }

    [Test]
    public void LaunchState_AfterLaunch_VmlaunchError4_VmresumeAllowed_UntilVmclear()
    {
        var vmcs = new Vmcs(Revision);
        vmcs.MarkLaunched();
        Assert.Multiple(() =>
        {
            Assert.That(vmcs.CheckEntry(isResume: false), Is.EqualTo(VmxInstructionError.VmlaunchNonClearVmcs));
            Assert.That((int)VmxInstructionError.VmlaunchNonClearVmcs, Is.EqualTo(4));
            Assert.That(vmcs.CheckEntry(isResume: true), Is.EqualTo(VmxInstructionError.None));
        });
        vmcs.Clear();
        Assert.That(vmcs.CheckEntry(isResume: false), Is.EqualTo(VmxInstructionError.None));
    }

    [TestCase(0x1000UL, 0x2000UL, 36, VmxInstructionError.None)]
    [TestCase(0x1800UL, 0x2000UL, 36, VmxInstructionError.VmclearInvalidAddress)]
    [TestCase(0x10_0000_0000UL, 0x2000UL, 36, VmxInstructionError.VmclearInvalidAddress)]
    [TestCase(0xF_FFFF_F000UL, 0x2000UL, 36, VmxInstructionError.None)]
    [TestCase(0x2000UL, 0x2000UL, 36, VmxInstructionError.VmclearWithVmxonPointer)]
    public void CheckVmclearPointer_ReturnsSdmError(ulong address, ulong vmxon, int width, VmxInstructionError expected)
        => Assert.That(Vmcs.CheckVmclearPointer(address, vmxon, width), Is.EqualTo(expected));

    [Test]
    public void CheckVmptrld_ErrorNumbers_9_10_11()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Vmcs.CheckVmptrld(0x1004, 0x2000, 46, Revision, Revision, false), Is.EqualTo(VmxInstructionError.VmptrldInvalidAddress));
            Assert.That((int)VmxInstructionError.VmptrldInvalidAddress, Is.EqualTo(9));
            Assert.That(Vmcs.CheckVmptrld(0x2000, 0x2000, 46, Revision, Revision, false), Is.EqualTo(VmxInstructionError.VmptrldWithVmxonPointer));
            Assert.That((int)VmxInstructionError.VmptrldWithVmxonPointer, Is.EqualTo(10));
            Assert.That(Vmcs.CheckVmptrld(0x1000, 0x2000, 46, Revision + 1, Revision, false), Is.EqualTo(VmxInstructionError.VmptrldIncorrectRevisionId));
            Assert.That((int)VmxInstructionError.VmptrldIncorrectRevisionId, Is.EqualTo(11));
            Assert.That(Vmcs.CheckVmptrld(0x1000, 0x2000, 46, Revision, Revision, false), Is.EqualTo(VmxInstructionError.None));
        });
    }

    [Test]
    public void CheckVmptrld_ShadowVmcs_NeedsVmcsShadowing()
    {
        var vmcs = new Vmcs(Revision) { IsShadow = true };
        Assert.Multiple(() =>
        {
            Assert.That(vmcs.HeaderDword, Is.EqualTo(Revision | 0x8000_0000));
            Assert.That(Vmcs.CheckVmptrld(0x1000, 0x2000, 46, vmcs.HeaderDword, Revision, supportsVmcsShadowing: false),
                Is.EqualTo(VmxInstructionError.VmptrldIncorrectRevisionId));
            Assert.That(Vmcs.CheckVmptrld(0x1000, 0x2000, 46, vmcs.HeaderDword, Revision, supportsVmcsShadowing: true),
                Is.EqualTo(VmxInstructionError.None));
        });
    }

    [Test]
    public void Constructor_KeepsRevisionBits30To0()
        => Assert.That(new Vmcs(0xFFFF_FFFF).RevisionId, Is.EqualTo(0x7FFF_FFFFu));
}
