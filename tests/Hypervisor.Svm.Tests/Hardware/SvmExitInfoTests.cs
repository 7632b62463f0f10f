using Hypervisor.Svm.Hardware;

namespace Hypervisor.Svm.Tests.Hardware;

/// <summary>EXITINFO1/EXITINFO2 encodings (APM vol. 2 §15.7-§15.13, §15.25.6, §15.35) and the EVENTINJ/EXITINTINFO format (§15.20).</summary>
public class SvmExitInfoTests
{
    // IOIO, figure 15-2: port 31:16, SEG 12:10, A64/A32/A16 9:7, SZ32/SZ16/SZ8 6:4, REP 3, STR 2, TYPE 0.
    [TestCase((ushort)0x60, 1, 2, true, false, false, 0, 0x0060_0091UL, TestName = "InAl_Port60_A16")]
    [TestCase((ushort)0x3F8, 1, 8, false, false, false, 0, 0x03F8_0210UL, TestName = "OutAl_Com1_A64")]
    [TestCase((ushort)0xCF8, 4, 4, false, false, false, 0, 0x0CF8_0140UL, TestName = "OutEax_A32")]
    [TestCase((ushort)0x1F0, 2, 8, true, true, true, 0, 0x01F0_022DUL, TestName = "RepInsw_A64")]
    [TestCase((ushort)0x80, 1, 4, false, true, true, 3, 0x0080_0D1CUL, TestName = "RepOutsb_DsSegment_A32")]
    [TestCase((ushort)0xFFFF, 4, 8, false, true, false, 5, 0xFFFF_1644UL, TestName = "Outsd_Gs_PortFFFF")]
    public void Ioio_Create_MatchesFigure15_2(ushort port, int size, int addressSize, bool isIn, bool isString, bool isRep, int seg, ulong expected)
    {
        var info = SvmIoioInfo.Create(port, size, addressSize, isIn, isString, isRep, seg);
        Assert.Multiple(() =>
        {
            Assert.That(info.Raw, Is.EqualTo(expected), $"0x{info.Raw:x}");
            Assert.That(info.Port, Is.EqualTo(port));
            Assert.That(info.Size, Is.EqualTo(size));
            Assert.That(info.AddressSize, Is.EqualTo(addressSize));
            Assert.That(info.IsIn, Is.EqualTo(isIn));
            Assert.That(info.IsString, Is.EqualTo(isString));
            Assert.That(info.IsRep, Is.EqualTo(isRep));
            Assert.That(info.Segment, Is.EqualTo(seg));
            Assert.That(info.Raw & 2, Is.EqualTo(0UL), "bit 1 is reserved");
        });
    }

    [Test]
    public void Ioio_Masks_AreApmBits()
    {
        Assert.Multiple(() =>
        {
            Assert.That(SvmIoioInfo.TypeIn, Is.EqualTo(1UL));
            Assert.That(SvmIoioInfo.Str, Is.EqualTo(4UL));
            Assert.That(SvmIoioInfo.Rep, Is.EqualTo(8UL));
            Assert.That(SvmIoioInfo.Sz8 | SvmIoioInfo.Sz16 | SvmIoioInfo.Sz32, Is.EqualTo(0x70UL));
            Assert.That(SvmIoioInfo.A16 | SvmIoioInfo.A32 | SvmIoioInfo.A64, Is.EqualTo(0x380UL));
            Assert.That(SvmIoioInfo.SegMask, Is.EqualTo(0x1C00UL));
            Assert.That(new SvmIoioInfo(0).Size, Is.EqualTo(0));
            Assert.That(new SvmIoioInfo(0).AddressSize, Is.EqualTo(0));
        });
    }

    [Test]
    public void Ioio_ExitInfo2_IsNextRip()
    {
        var (i1, i2) = SvmExitInfo.Ioio(SvmIoioInfo.Create(0x70, 1, 4, isIn: false), 0x1234);
        Assert.That((i1, i2), Is.EqualTo((0x0070_0110UL, 0x1234UL)));
    }

    [Test]
    public void Msr_ExitInfo1_IsZeroForReadOneForWrite()
    {
        Assert.Multiple(() =>
        {
            Assert.That(SvmExitInfo.Msr(write: false), Is.EqualTo(0UL));
            Assert.That(SvmExitInfo.Msr(write: true), Is.EqualTo(1UL));
            Assert.That(SvmExitInfo.IsMsrWrite(1), Is.True);
            Assert.That(SvmExitInfo.IsMsrWrite(0), Is.False);
        });
    }

    [TestCase(0, 0x8000_0000_0000_0000UL)]
    [TestCase(4, 0x8000_0000_0000_0004UL)]
    [TestCase(15, 0x8000_0000_0000_000FUL)]
    public void CrAccess_Mov_SetsBit63AndGpr(int gpr, ulong expected)
    {
        var info = SvmCrAccessInfo.MovCr(gpr);
        Assert.Multiple(() =>
        {
            Assert.That(info.Raw, Is.EqualTo(expected));
            Assert.That(info.IsMov, Is.True);
            Assert.That(info.Gpr, Is.EqualTo(gpr));
        });
    }

    [Test]
    public void CrAccess_LmswClts_HasBit63Clear_DrMovHasOnlyGpr()
    {
        Assert.Multiple(() =>
        {
            Assert.That(SvmCrAccessInfo.NotMov.Raw, Is.EqualTo(0UL));
            Assert.That(SvmCrAccessInfo.NotMov.IsMov, Is.False);
            Assert.That(SvmCrAccessInfo.MovDr(9).Raw, Is.EqualTo(9UL));
            Assert.That(SvmCrAccessInfo.MovDr(9).Gpr, Is.EqualTo(9));
        });
    }

    [TestCase(SvmNpfErrorCode.Present, 0)]
    [TestCase(SvmNpfErrorCode.Write, 1)]
    [TestCase(SvmNpfErrorCode.User, 2)]
    [TestCase(SvmNpfErrorCode.ReservedBit, 3)]
    [TestCase(SvmNpfErrorCode.InstructionFetch, 4)]
    [TestCase(SvmNpfErrorCode.ProtectionKey, 5)]
    [TestCase(SvmNpfErrorCode.ShadowStack, 6)]
    [TestCase(SvmNpfErrorCode.Rmp, 31)]
    [TestCase(SvmNpfErrorCode.FinalTranslation, 32)]
    [TestCase(SvmNpfErrorCode.PageTableWalk, 33)]
    [TestCase(SvmNpfErrorCode.Encrypted, 34)]
    [TestCase(SvmNpfErrorCode.SizeMismatch, 35)]
    [TestCase(SvmNpfErrorCode.Vmpl, 36)]
    public void NpfErrorCode_Flag_IsApmBit(SvmNpfErrorCode flag, int bit) => Assert.That((ulong)flag, Is.EqualTo(1UL << bit));

    [Test]
    public void Npf_ExitInfo_IsErrorCodeThenGuestPhysical()
    {
        var (i1, i2) = SvmExitInfo.Npf(SvmNpfErrorCode.Write | SvmNpfErrorCode.User | SvmNpfErrorCode.FinalTranslation, 0x1_2345_6000);
        Assert.That((i1, i2), Is.EqualTo((0x1_0000_0006UL, 0x1_2345_6000UL)));
    }

    [TestCase(8, true)]
    [TestCase(10, true)]
    [TestCase(11, true)]
    [TestCase(12, true)]
    [TestCase(13, true)]
    [TestCase(14, true)]
    [TestCase(17, true)]
    [TestCase(21, true)]
    [TestCase(29, true)]
    [TestCase(30, true)]
    [TestCase(0, false)]
    [TestCase(1, false)]
    [TestCase(3, false)]
    [TestCase(6, false)]
    [TestCase(7, false)]
    [TestCase(16, false)]
    [TestCase(18, false)]
    [TestCase(19, false)]
    [TestCase(31, false)]
    [TestCase(32, false)]
    [TestCase(-1, false)]
    public void ExceptionHasErrorCode_Vector_MatchesArchitecture(int vector, bool expected) =>
        Assert.That(SvmExitInfo.ExceptionHasErrorCode(vector), Is.EqualTo(expected));

    [Test]
    public void PageFault_ExitInfo_IsErrorCodeThenAddress()
    {
        Assert.That(SvmExitInfo.PageFault(0x7, 0xFFFF_8000_DEAD_B000), Is.EqualTo((7UL, 0xFFFF_8000_DEAD_B000UL)));
    }

    [Test]
    public void Invpcid_ExitInfo_IsDescriptorAddressThenType()
    {
        Assert.Multiple(() =>
        {
            Assert.That(SvmExitInfo.Invpcid(0x7000, 1), Is.EqualTo((0x7000UL, 1UL)));
            Assert.That(SvmExitInfo.Invlpg(0xFFFF_FFFF_8000_0000), Is.EqualTo(0xFFFF_FFFF_8000_0000UL));
            Assert.That(SvmExitInfo.Swint(0x80), Is.EqualTo(0x80UL));
            Assert.That(SvmExitInfo.WriteTrap(0x8005_0033), Is.EqualTo(0x8005_0033UL));
        });
    }

    [Test]
    public void TaskSwitch_Bits_AreIret36Jmp38Ev44Rf48()
    {
        var info = SvmTaskSwitchInfo.Create(iret: true, jmp: false, rf: true, errorCode: 0x1C);
        Assert.Multiple(() =>
        {
            Assert.That(info.Raw, Is.EqualTo((1UL << 36) | (1UL << 44) | (1UL << 48) | 0x1C));
            Assert.That(info.IsIret, Is.True);
            Assert.That(info.IsJmp, Is.False);
            Assert.That(info.HasErrorCode, Is.True);
            Assert.That(info.ErrorCode, Is.EqualTo(0x1Cu));
            Assert.That(info.RfValue, Is.True);
            Assert.That(SvmTaskSwitchInfo.Create(false, true, false).Raw, Is.EqualTo(1UL << 38));
            Assert.That(SvmExitInfo.TaskSwitch(0x28, info), Is.EqualTo((0x28UL, info.Raw)));
        });
    }

    [Test]
    public void EventInfo_ExceptionWithErrorCode_EncodesVectorTypeEvVAndErrorCode()
    {
        var e = SvmEventInfo.Create(13, SvmEventType.Exception, 0x18);
        Assert.Multiple(() =>
        {
            Assert.That(e.Raw, Is.EqualTo(0x0000_0018_8000_0B0DUL));
            Assert.That(e.IsValid, Is.True);
            Assert.That(e.Vector, Is.EqualTo(13));
            Assert.That(e.Type, Is.EqualTo(SvmEventType.Exception));
            Assert.That(e.HasErrorCode, Is.True);
            Assert.That(e.ErrorCode, Is.EqualTo(0x18u));
        });
    }

    [TestCase(0x20, SvmEventType.Intr, 0x8000_0020UL)]
    [TestCase(0x02, SvmEventType.Nmi, 0x8000_0202UL)]
    [TestCase(0x03, SvmEventType.Exception, 0x8000_0303UL)]
    [TestCase(0x80, SvmEventType.SoftwareInterrupt, 0x8000_0480UL)]
    public void EventInfo_WithoutErrorCode_EncodesTypeInBits10To8(int vector, SvmEventType type, ulong expected)
    {
        var e = SvmEventInfo.Create((byte)vector, type);
        Assert.Multiple(() =>
        {
            Assert.That(e.Raw, Is.EqualTo(expected));
            Assert.That(e.HasErrorCode, Is.False);
            Assert.That(e.Type, Is.EqualTo(type));
        });
    }

    [Test]
    public void EventInfo_None_IsNotValid()
    {
        Assert.Multiple(() =>
        {
            Assert.That(SvmEventInfo.None.IsValid, Is.False);
            Assert.That(new SvmEventInfo(0x0000_0B0E).IsValid, Is.False, "V is bit 31");
        });
    }

    [Test]
    public void EventInj_And_ExitIntInfo_ShareTheFormatInTheVmcb()
    {
        using var vmcb = new Vmcb();
        vmcb.EventInj = SvmEventInfo.Create(14, SvmEventType.Exception, 2);
        vmcb.ExitIntInfo = SvmEventInfo.Create(0x30, SvmEventType.Intr);
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.Read32(0x0A8), Is.EqualTo(0x8000_0B0Eu));
            Assert.That(vmcb.Read32(0x0AC), Is.EqualTo(2u), "EVENTINJ error code in 63:32");
            Assert.That(vmcb.Read64(0x088), Is.EqualTo(0x8000_0030UL));
            Assert.That(vmcb.EventInj.Vector, Is.EqualTo(14));
        });
    }
}
