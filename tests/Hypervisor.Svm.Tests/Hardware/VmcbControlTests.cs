using Hypervisor.Svm.Hardware;
using Hypervisor.Svm.Tests.Support;

namespace Hypervisor.Svm.Tests.Hardware;

/// <summary>The control area against AMD APM vol. 2 table B-1: every field at its offset and width.</summary>
public class VmcbControlTests
{
    private static IEnumerable<FieldCase> ControlFields() => new FieldCase[]
    {
        new("InterceptCrRead", 0x000, 2, (m, v) => m.InterceptCrRead = (ushort)v, m => m.InterceptCrRead),
        new("InterceptCrWrite", 0x002, 2, (m, v) => m.InterceptCrWrite = (ushort)v, m => m.InterceptCrWrite),
        new("InterceptDrRead", 0x004, 2, (m, v) => m.InterceptDrRead = (ushort)v, m => m.InterceptDrRead),
        new("InterceptDrWrite", 0x006, 2, (m, v) => m.InterceptDrWrite = (ushort)v, m => m.InterceptDrWrite),
        new("InterceptExceptions", 0x008, 4, (m, v) => m.InterceptExceptions = (uint)v, m => m.InterceptExceptions),
        new("InterceptMisc1", 0x00C, 4, (m, v) => m.InterceptMisc1 = (uint)v, m => m.InterceptMisc1),
        new("InterceptMisc2", 0x010, 4, (m, v) => m.InterceptMisc2 = (uint)v, m => m.InterceptMisc2),
        new("InterceptMisc3", 0x014, 4, (m, v) => m.InterceptMisc3 = (uint)v, m => m.InterceptMisc3),
        new("PauseFilterThreshold", 0x03C, 2, (m, v) => m.PauseFilterThreshold = (ushort)v, m => m.PauseFilterThreshold),
        new("PauseFilterCount", 0x03E, 2, (m, v) => m.PauseFilterCount = (ushort)v, m => m.PauseFilterCount),
        new("IopmBasePa", 0x040, 8, (m, v) => m.IopmBasePa = v, m => m.IopmBasePa),
        new("MsrpmBasePa", 0x048, 8, (m, v) => m.MsrpmBasePa = v, m => m.MsrpmBasePa),
        new("TscOffset", 0x050, 8, (m, v) => m.TscOffset = v, m => m.TscOffset),
        new("GuestAsid", 0x058, 4, (m, v) => m.GuestAsid = (uint)v, m => m.GuestAsid),
        new("TlbControl", 0x05C, 1, (m, v) => m.TlbControl = (TlbControl)v, m => (ulong)m.TlbControl),
        new("ErapCtl", 0x05D, 1, (m, v) => m.ErapCtl = (ErapCtl)v, m => (ulong)m.ErapCtl),
        new("IntCtl", 0x060, 8, (m, v) => m.IntCtl = v, m => m.IntCtl),
        new("VTpr", 0x060, 1, (m, v) => m.VTpr = (byte)v, m => m.VTpr),
        new("VIntrVector", 0x064, 1, (m, v) => m.VIntrVector = (byte)v, m => m.VIntrVector),
        new("IntState", 0x068, 8, (m, v) => m.IntState = v, m => m.IntState),
        new("ExitCode", 0x070, 8, (m, v) => m.ExitCode = (SvmExitCode)(long)v, m => (ulong)(long)m.ExitCode),
        new("ExitInfo1", 0x078, 8, (m, v) => m.ExitInfo1 = v, m => m.ExitInfo1),
        new("ExitInfo2", 0x080, 8, (m, v) => m.ExitInfo2 = v, m => m.ExitInfo2),
        new("ExitIntInfo", 0x088, 8, (m, v) => m.ExitIntInfo = new SvmEventInfo(v), m => m.ExitIntInfo.Raw),
        new("MiscCtl", 0x090, 8, (m, v) => m.MiscCtl = (SvmMiscControl)v, m => (ulong)m.MiscCtl),
        new("AvicApicBar", 0x098, 8, (m, v) => m.AvicApicBar = v, m => m.AvicApicBar),
        new("GhcbGpa", 0x0A0, 8, (m, v) => m.GhcbGpa = v, m => m.GhcbGpa),
        new("EventInj", 0x0A8, 8, (m, v) => m.EventInj = new SvmEventInfo(v), m => m.EventInj.Raw),
        new("NCr3", 0x0B0, 8, (m, v) => m.NCr3 = v, m => m.NCr3),
        new("MiscCtl2", 0x0B8, 8, (m, v) => m.MiscCtl2 = (SvmMiscControl2)v, m => (ulong)m.MiscCtl2),
        new("CleanBits", 0x0C0, 4, (m, v) => m.CleanBits = (VmcbClean)v, m => (ulong)m.CleanBits),
        new("NRip", 0x0C8, 8, (m, v) => m.NRip = v, m => m.NRip),
        new("GuestInstructionBytesCount", 0x0D0, 1, (m, v) => m.GuestInstructionBytesCount = (byte)v, m => m.GuestInstructionBytesCount),
        new("AvicBackingPage", 0x0E0, 8, (m, v) => m.AvicBackingPage = v, m => m.AvicBackingPage),
        new("AvicLogicalTable", 0x0F0, 8, (m, v) => m.AvicLogicalTable = v, m => m.AvicLogicalTable),
        new("AvicPhysicalTable", 0x0F8, 8, (m, v) => m.AvicPhysicalTable = v, m => m.AvicPhysicalTable),
        new("VmsaPa", 0x108, 8, (m, v) => m.VmsaPa = v, m => m.VmsaPa),
        new("VmgexitRax", 0x110, 8, (m, v) => m.VmgexitRax = v, m => m.VmgexitRax),
        new("VmgexitCpl", 0x118, 1, (m, v) => m.VmgexitCpl = (byte)v, m => m.VmgexitCpl),
        new("BusLockThresholdCounter", 0x120, 2, (m, v) => m.BusLockThresholdCounter = (ushort)v, m => m.BusLockThresholdCounter),
        new("AllowedSevFeatures", 0x138, 8, (m, v) => m.AllowedSevFeatures = v, m => m.AllowedSevFeatures),
        new("GuestSevFeatures", 0x140, 8, (m, v) => m.GuestSevFeatures = v, m => m.GuestSevFeatures),
    };

    [TestCaseSource(nameof(ControlFields))]
    public void Field_WrittenThroughAccessor_LandsAtApmOffset(FieldCase field) => VmcbAssert.FieldAt(field);

    [Test]
    public void ControlArea_KvmFactsOffsets_Match()
    {
        // KVM-FACTS §4: asid 0x58, tlb_ctl 0x5C, erap_ctl 0x5D, int_ctl 0x60.
        Assert.Multiple(() =>
        {
            Assert.That(VmcbOffset.GuestAsid, Is.EqualTo(0x58));
            Assert.That(VmcbOffset.TlbControl, Is.EqualTo(0x5C));
            Assert.That(VmcbOffset.ErapCtl, Is.EqualTo(0x5D));
            Assert.That(VmcbOffset.IntCtl, Is.EqualTo(0x60));
            Assert.That(VmcbOffset.SaveArea, Is.EqualTo(0x400));
            Assert.That(VmcbOffset.Size, Is.EqualTo(4096));
        });
    }

    [Test]
    public void ErapCtl_Bits_AreAllowLargerRapBit0AndClearRapBit1()
    {
        using var vmcb = new Vmcb();
        vmcb.ErapCtl = ErapCtl.AllowLargerRap;
        Assert.That(vmcb.Bytes[0x5D], Is.EqualTo(0x01));
        vmcb.ErapCtl |= ErapCtl.ClearRap;
        Assert.That(vmcb.Bytes[0x5D], Is.EqualTo(0x03));
        vmcb.ErapCtl &= ~ErapCtl.ClearRap;
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.Bytes[0x5D], Is.EqualTo(0x01));
            Assert.That(vmcb.Bytes[0x5C], Is.EqualTo(0), "tlb_ctl untouched");
            Assert.That(vmcb.Bytes[0x60], Is.EqualTo(0), "int_ctl untouched");
        });
    }

    [TestCase(TlbControl.DoNothing, 0x00)]
    [TestCase(TlbControl.FlushAll, 0x01)]
    [TestCase(TlbControl.FlushGuest, 0x03)]
    [TestCase(TlbControl.FlushGuestNonGlobal, 0x07)]
    public void TlbControl_Value_IsApmEncoding(TlbControl value, int expected)
    {
        using var vmcb = new Vmcb();
        vmcb.TlbControl = value;
        Assert.That(vmcb.Bytes[0x5C], Is.EqualTo(expected));
    }

    /// <summary>Each V_* accessor against its bit of the 64-bit field at 060h.</summary>
    private static IEnumerable<TestCaseData> IntCtlBits()
    {
        yield return Bit("VIrq", 8, (m, b) => m.VIrq = b, m => m.VIrq);
        yield return Bit("VGif", 9, (m, b) => m.VGif = b, m => m.VGif);
        yield return Bit("VNmi", 11, (m, b) => m.VNmi = b, m => m.VNmi);
        yield return Bit("VNmiMask", 12, (m, b) => m.VNmiMask = b, m => m.VNmiMask);
        yield return Bit("VIgnTpr", 20, (m, b) => m.VIgnTpr = b, m => m.VIgnTpr);
        yield return Bit("VIntrMasking", 24, (m, b) => m.VIntrMasking = b, m => m.VIntrMasking);
        yield return Bit("VGifEnable", 25, (m, b) => m.VGifEnable = b, m => m.VGifEnable);
        yield return Bit("VNmiEnable", 26, (m, b) => m.VNmiEnable = b, m => m.VNmiEnable);
        yield return Bit("X2AvicEnable", 30, (m, b) => m.X2AvicEnable = b, m => m.X2AvicEnable);
        yield return Bit("AvicEnable", 31, (m, b) => m.AvicEnable = b, m => m.AvicEnable);

        static TestCaseData Bit(string name, int bit, Action<Vmcb, bool> set, Func<Vmcb, bool> get) =>
            new TestCaseData(bit, set, get).SetArgDisplayNames(name, bit.ToString());
    }

    [TestCaseSource(nameof(IntCtlBits))]
    public void IntCtlFlag_Set_IsTheApmBitOf060h(int bit, Action<Vmcb, bool> set, Func<Vmcb, bool> get)
    {
        using var vmcb = new Vmcb();
        vmcb.IntCtl = 0xFFUL << 32; // a vector already there must survive
        set(vmcb, true);
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.Read64(0x060), Is.EqualTo((0xFFUL << 32) | (1UL << bit)));
            Assert.That(get(vmcb), Is.True);
        });
        set(vmcb, false);
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.Read64(0x060), Is.EqualTo(0xFFUL << 32));
            Assert.That(get(vmcb), Is.False);
        });
    }

    [Test]
    public void IntCtl_FieldsWithValues_AreAtTheirApmBits()
    {
        using var vmcb = new Vmcb();
        vmcb.VTpr = 0x0A;
        vmcb.VIntrPrio = 0xC;
        vmcb.VIntrVector = 0x30;
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.Read64(0x060), Is.EqualTo(0x0AUL | (0xCUL << 16) | (0x30UL << 32)));
            Assert.That(vmcb.VIntrPrio, Is.EqualTo(0xC));
            Assert.That(IntCtl.VIntrPrioMask, Is.EqualTo(0xFUL << 16));
            Assert.That(IntCtl.VIntrVectorMask, Is.EqualTo(0xFFUL << 32));
        });
        vmcb.VIntrPrio = 0x13; // only bits 19:16 exist
        Assert.That(vmcb.Read64(0x060), Is.EqualTo(0x0AUL | (0x3UL << 16) | (0x30UL << 32)));
    }

    [Test]
    public void IntState_Bits_AreShadowBit0AndGuestInterruptMaskBit1()
    {
        using var vmcb = new Vmcb();
        vmcb.InterruptShadow = true;
        Assert.That(vmcb.Read64(0x068), Is.EqualTo(1UL));
        vmcb.GuestInterruptMask = true;
        Assert.That(vmcb.Read64(0x068), Is.EqualTo(3UL));
        vmcb.InterruptShadow = false;
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.Read64(0x068), Is.EqualTo(2UL));
            Assert.That(vmcb.InterruptShadow, Is.False);
            Assert.That(vmcb.GuestInterruptMask, Is.True);
        });
    }

    [TestCase(SvmMiscControl.NpEnable, 0)]
    [TestCase(SvmMiscControl.SevEnable, 1)]
    [TestCase(SvmMiscControl.SevEsEnable, 2)]
    [TestCase(SvmMiscControl.GuestModeExecuteTrap, 3)]
    [TestCase(SvmMiscControl.SssCheckEn, 4)]
    [TestCase(SvmMiscControl.VirtualTransparentEncryption, 5)]
    [TestCase(SvmMiscControl.ReadOnlyGuestPageTables, 6)]
    [TestCase(SvmMiscControl.InvlpgbTlbsyncEnable, 7)]
    public void MiscCtl_Flag_IsApmBitOf090h(SvmMiscControl flag, int bit)
    {
        using var vmcb = new Vmcb();
        vmcb.MiscCtl = flag;
        Assert.That(vmcb.Read64(0x090), Is.EqualTo(1UL << bit));
    }

    [Test]
    public void NpEnable_Toggle_ChangesOnlyBit0()
    {
        using var vmcb = new Vmcb();
        vmcb.MiscCtl = SvmMiscControl.SevEnable;
        vmcb.NpEnable = true;
        Assert.That(vmcb.Read64(0x090), Is.EqualTo(3UL));
        vmcb.NpEnable = false;
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.Read64(0x090), Is.EqualTo(2UL));
            Assert.That(vmcb.NpEnable, Is.False);
        });
    }

    [TestCase(SvmMiscControl2.LbrVirtualizationEnable, 0)]
    [TestCase(SvmMiscControl2.VirtualVmsaveVmloadEnable, 1)]
    [TestCase(SvmMiscControl2.IbsVirtualizationEnable, 2)]
    [TestCase(SvmMiscControl2.PmcVirtualizationEnable, 3)]
    public void MiscCtl2_Flag_IsApmBitOf0B8h(SvmMiscControl2 flag, int bit)
    {
        using var vmcb = new Vmcb();
        vmcb.MiscCtl2 = flag;
        Assert.That(vmcb.Read64(0x0B8), Is.EqualTo(1UL << bit));
    }

    [TestCase(VmcbClean.Intercepts, 0)]
    [TestCase(VmcbClean.Iopm, 1)]
    [TestCase(VmcbClean.Asid, 2)]
    [TestCase(VmcbClean.Tpr, 3)]
    [TestCase(VmcbClean.Np, 4)]
    [TestCase(VmcbClean.Crx, 5)]
    [TestCase(VmcbClean.Drx, 6)]
    [TestCase(VmcbClean.Dt, 7)]
    [TestCase(VmcbClean.Seg, 8)]
    [TestCase(VmcbClean.Cr2, 9)]
    [TestCase(VmcbClean.Lbr, 10)]
    [TestCase(VmcbClean.Avic, 11)]
    [TestCase(VmcbClean.Cet, 12)]
    public void CleanBit_Flag_IsApmBit(VmcbClean flag, int bit) => Assert.That((uint)flag, Is.EqualTo(1u << bit));

    [Test]
    public void MarkDirty_ClearsOnlyTheNamedCleanBits()
    {
        using var vmcb = new Vmcb();
        vmcb.CleanBits = (VmcbClean)0xFFFF_FFFF;
        vmcb.MarkDirty(VmcbClean.Crx | VmcbClean.Seg);
        Assert.That(vmcb.Read32(0x0C0), Is.EqualTo(0xFFFF_FFFFu & ~((1u << 5) | (1u << 8))));
        vmcb.MarkAllDirty();
        Assert.That(vmcb.Read32(0x0C0), Is.EqualTo(0u));
    }

    [Test]
    public void AvicPhysicalMaxIndex_IsBits11To0Of0F8h()
    {
        using var vmcb = new Vmcb();
        vmcb.AvicPhysicalTable = 0x0000_0012_3456_7000;
        vmcb.AvicPhysicalMaxIndex = 0x1FF;
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.Read64(0x0F8), Is.EqualTo(0x0000_0012_3456_71FFUL));
            Assert.That(vmcb.AvicPhysicalMaxIndex, Is.EqualTo(0x1FF));
        });
    }

    [Test]
    public void ExitCode_Negative_IsStoredAsFull64Bits()
    {
        using var vmcb = new Vmcb();
        vmcb.ExitCode = SvmExitCode.Invalid;
        Assert.That(vmcb.Read64(0x070), Is.EqualTo(0xFFFF_FFFF_FFFF_FFFFUL));
        vmcb.ExitCode = SvmExitCode.Busy;
        Assert.That(vmcb.Read64(0x070), Is.EqualTo(0xFFFF_FFFF_FFFF_FFFEUL));
        vmcb.Write64(0x070, 0x72);
        Assert.That(vmcb.ExitCode, Is.EqualTo(SvmExitCode.Cpuid));
    }

    [Test]
    public void GuestInstructionBytes_Are15BytesFrom0D1h()
    {
        using var vmcb = new Vmcb();
        var span = vmcb.GuestInstructionBytes;
        Assert.That(span.Length, Is.EqualTo(15));
        for (int i = 0; i < 15; i++)
            span[i] = (byte)(0xA0 + i);
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.Bytes[0x0D0], Is.EqualTo(0), "the count byte is separate");
            Assert.That(vmcb.Bytes[0x0D1], Is.EqualTo(0xA0));
            Assert.That(vmcb.Bytes[0x0DF], Is.EqualTo(0xAE));
            Assert.That(vmcb.Bytes[0x0E0], Is.EqualTo(0), "nothing past 0DFh");
        });
    }

    [Test]
    public void ReservedForHost_Is32BytesFrom3E0h()
    {
        using var vmcb = new Vmcb();
        var span = vmcb.ReservedForHost;
        span.Fill(0x5A);
        int length = span.Length;
        Assert.Multiple(() =>
        {
            Assert.That(length, Is.EqualTo(32));
            Assert.That(vmcb.Bytes[0x3DF], Is.EqualTo(0));
            Assert.That(vmcb.Bytes[0x3E0], Is.EqualTo(0x5A));
            Assert.That(vmcb.Bytes[0x3FF], Is.EqualTo(0x5A));
            Assert.That(vmcb.Bytes[0x400], Is.EqualTo(0));
        });
    }
}
