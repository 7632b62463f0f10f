using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Svm.Hardware;
using Hypervisor.Svm.Tests.Support;

namespace Hypervisor.Svm.Tests.Hardware;

/// <summary>The state save area against AMD APM vol. 2 table B-2 (offsets here are from the page start, 400h + the table's).</summary>
public class VmcbSaveTests
{
    private static IEnumerable<FieldCase> SaveFields() => new FieldCase[]
    {
        new("Vmpl", 0x4CA, 1, (m, v) => m.Vmpl = (byte)v, m => m.Vmpl),
        new("Cpl", 0x4CB, 1, (m, v) => m.Cpl = (byte)v, m => m.Cpl),
        new("Efer", 0x4D0, 8, (m, v) => m.Efer = v, m => m.Efer),
        new("Cr4", 0x548, 8, (m, v) => m.Cr4 = v, m => m.Cr4),
        new("Cr3", 0x550, 8, (m, v) => m.Cr3 = v, m => m.Cr3),
        new("Cr0", 0x558, 8, (m, v) => m.Cr0 = v, m => m.Cr0),
        new("Dr7", 0x560, 8, (m, v) => m.Dr7 = v, m => m.Dr7),
        new("Dr6", 0x568, 8, (m, v) => m.Dr6 = v, m => m.Dr6),
        new("Rflags", 0x570, 8, (m, v) => m.Rflags = v, m => m.Rflags),
        new("Rip", 0x578, 8, (m, v) => m.Rip = v, m => m.Rip),
        new("Rsp", 0x5D8, 8, (m, v) => m.Rsp = v, m => m.Rsp),
        new("SCet", 0x5E0, 8, (m, v) => m.SCet = v, m => m.SCet),
        new("Ssp", 0x5E8, 8, (m, v) => m.Ssp = v, m => m.Ssp),
        new("IsstAddr", 0x5F0, 8, (m, v) => m.IsstAddr = v, m => m.IsstAddr),
        new("Rax", 0x5F8, 8, (m, v) => m.Rax = v, m => m.Rax),
        new("Star", 0x600, 8, (m, v) => m.Star = v, m => m.Star),
        new("Lstar", 0x608, 8, (m, v) => m.Lstar = v, m => m.Lstar),
        new("Cstar", 0x610, 8, (m, v) => m.Cstar = v, m => m.Cstar),
        new("Sfmask", 0x618, 8, (m, v) => m.Sfmask = v, m => m.Sfmask),
        new("KernelGsBase", 0x620, 8, (m, v) => m.KernelGsBase = v, m => m.KernelGsBase),
        new("SysenterCs", 0x628, 8, (m, v) => m.SysenterCs = v, m => m.SysenterCs),
        new("SysenterEsp", 0x630, 8, (m, v) => m.SysenterEsp = v, m => m.SysenterEsp),
        new("SysenterEip", 0x638, 8, (m, v) => m.SysenterEip = v, m => m.SysenterEip),
        new("Cr2", 0x640, 8, (m, v) => m.Cr2 = v, m => m.Cr2),
        new("GPat", 0x668, 8, (m, v) => m.GPat = v, m => m.GPat),
        new("DbgCtl", 0x670, 8, (m, v) => m.DbgCtl = v, m => m.DbgCtl),
        new("BrFrom", 0x678, 8, (m, v) => m.BrFrom = v, m => m.BrFrom),
        new("BrTo", 0x680, 8, (m, v) => m.BrTo = v, m => m.BrTo),
        new("LastExcpFrom", 0x688, 8, (m, v) => m.LastExcpFrom = v, m => m.LastExcpFrom),
        new("LastExcpTo", 0x690, 8, (m, v) => m.LastExcpTo = v, m => m.LastExcpTo),
        new("SpecCtrl", 0x6E0, 8, (m, v) => m.SpecCtrl = v, m => m.SpecCtrl),
    };

    [TestCaseSource(nameof(SaveFields))]
    public void Field_WrittenThroughAccessor_LandsAtApmOffset(FieldCase field) => VmcbAssert.FieldAt(field);

    // The ten 16-byte records in table B-2 order: ES, CS, SS, DS, FS, GS, GDTR, LDTR, IDTR, TR.
    [TestCase(VmcbSegment.Es, 0x400)]
    [TestCase(VmcbSegment.Cs, 0x410)]
    [TestCase(VmcbSegment.Ss, 0x420)]
    [TestCase(VmcbSegment.Ds, 0x430)]
    [TestCase(VmcbSegment.Fs, 0x440)]
    [TestCase(VmcbSegment.Gs, 0x450)]
    [TestCase(VmcbSegment.Gdtr, 0x460)]
    [TestCase(VmcbSegment.Ldtr, 0x470)]
    [TestCase(VmcbSegment.Idtr, 0x480)]
    [TestCase(VmcbSegment.Tr, 0x490)]
    public void SegmentRecord_Fields_AreSelectorAttribLimitBaseAtApmOffset(VmcbSegment segment, int offset)
    {
        using var vmcb = new Vmcb();
        vmcb.SetSegmentSelector(segment, 0x1122);
        vmcb.SetSegmentAttrib(segment, 0x0C9B);
        vmcb.SetSegmentLimit(segment, 0x3344_5566);
        vmcb.SetSegmentBase(segment, 0x7788_99AA_BBCC_DDEE);
        byte[] expected =
        {
            0x22, 0x11, 0x9B, 0x0C, 0x66, 0x55, 0x44, 0x33,
            0xEE, 0xDD, 0xCC, 0xBB, 0xAA, 0x99, 0x88, 0x77,
        };
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.Bytes.Slice(offset, 16).ToArray(), Is.EqualTo(expected));
            Assert.That(vmcb.Bytes.ToArray().Count(b => b != 0), Is.EqualTo(16), "nothing outside the record changed");
            Assert.That(vmcb.GetSegmentSelector(segment), Is.EqualTo(0x1122));
            Assert.That(vmcb.GetSegmentAttrib(segment), Is.EqualTo(0x0C9B));
            Assert.That(vmcb.GetSegmentLimit(segment), Is.EqualTo(0x3344_5566u));
            Assert.That(vmcb.GetSegmentBase(segment), Is.EqualTo(0x7788_99AA_BBCC_DDEEUL));
        });
    }

    [Test]
    public void SetSegment_CpuAccessRights_AreStoredPacked()
    {
        using var vmcb = new Vmcb();
        // 64-bit code: type 0xB, S, DPL 0, P, L, G → access rights 0xA09B; VMCB attrib 0x0A9B.
        var cs = new Segment { Selector = 0x08, Base = 0, Limit = 0xFFFF_FFFF, Attributes = 0xA09B };
        vmcb.Cs = cs;
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.Read16(0x410), Is.EqualTo(0x08));
            Assert.That(vmcb.Read16(0x412), Is.EqualTo(0x0A9B));
            Assert.That(vmcb.Read32(0x414), Is.EqualTo(0xFFFF_FFFFu));
            Assert.That(vmcb.Read64(0x418), Is.EqualTo(0UL));
            Assert.That(vmcb.Cs, Is.EqualTo(cs));
        });
    }

    [Test]
    public void SegmentProperties_EachWriteTheirOwnRecord()
    {
        using var vmcb = new Vmcb();
        var seg = new Segment { Selector = 0x10, Base = 0x1000, Limit = 0xFFFF, Attributes = 0x0093 };
        vmcb.Es = seg with { Selector = 1 };
        vmcb.Cs = seg with { Selector = 2 };
        vmcb.Ss = seg with { Selector = 3 };
        vmcb.Ds = seg with { Selector = 4 };
        vmcb.Fs = seg with { Selector = 5 };
        vmcb.Gs = seg with { Selector = 6 };
        vmcb.Ldtr = seg with { Selector = 7, Attributes = 0x0082 };
        vmcb.Tr = seg with { Selector = 8, Attributes = 0x008B };
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.Read16(0x400), Is.EqualTo(1));
            Assert.That(vmcb.Read16(0x410), Is.EqualTo(2));
            Assert.That(vmcb.Read16(0x420), Is.EqualTo(3));
            Assert.That(vmcb.Read16(0x430), Is.EqualTo(4));
            Assert.That(vmcb.Read16(0x440), Is.EqualTo(5));
            Assert.That(vmcb.Read16(0x450), Is.EqualTo(6));
            Assert.That(vmcb.Read16(0x470), Is.EqualTo(7));
            Assert.That(vmcb.Read16(0x472), Is.EqualTo(0x0082));
            Assert.That(vmcb.Read16(0x490), Is.EqualTo(8));
            Assert.That(vmcb.Read16(0x492), Is.EqualTo(0x008B));
            Assert.That(vmcb.Read64(0x460), Is.EqualTo(0UL), "GDTR untouched");
            Assert.That(vmcb.Read64(0x480), Is.EqualTo(0UL), "IDTR untouched");
        });
    }

    [Test]
    public void Gdtr_Idtr_UseOnlyLimitAndBase()
    {
        using var vmcb = new Vmcb();
        vmcb.Gdtr = new DescriptorTable { Base = 0xFFFF_8000_0000_1000, Limit = 0x7F };
        vmcb.Idtr = new DescriptorTable { Base = 0xFFFF_8000_0000_2000, Limit = 0xFFF };
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.Read32(0x460), Is.EqualTo(0u), "GDTR selector/attrib unused");
            Assert.That(vmcb.Read32(0x464), Is.EqualTo(0x7Fu));
            Assert.That(vmcb.Read64(0x468), Is.EqualTo(0xFFFF_8000_0000_1000UL));
            Assert.That(vmcb.Read32(0x480), Is.EqualTo(0u), "IDTR selector/attrib unused");
            Assert.That(vmcb.Read32(0x484), Is.EqualTo(0xFFFu));
            Assert.That(vmcb.Read64(0x488), Is.EqualTo(0xFFFF_8000_0000_2000UL));
            Assert.That(vmcb.Gdtr.Limit, Is.EqualTo(0x7F));
            Assert.That(vmcb.Idtr.Base, Is.EqualTo(0xFFFF_8000_0000_2000UL));
        });
    }

    [TestCase(SegReg.Es, VmcbSegment.Es)]
    [TestCase(SegReg.Cs, VmcbSegment.Cs)]
    [TestCase(SegReg.Ss, VmcbSegment.Ss)]
    [TestCase(SegReg.Ds, VmcbSegment.Ds)]
    [TestCase(SegReg.Fs, VmcbSegment.Fs)]
    [TestCase(SegReg.Gs, VmcbSegment.Gs)]
    [TestCase(SegReg.Ldtr, VmcbSegment.Ldtr)]
    [TestCase(SegReg.Tr, VmcbSegment.Tr)]
    public void FromSegReg_CpuNumber_MapsToRecord(int segReg, VmcbSegment expected) =>
        Assert.That(VmcbSegmentAttrib.FromSegReg(segReg), Is.EqualTo(expected));

    [Test]
    public void FromSegReg_NotASegment_Throws() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => VmcbSegmentAttrib.FromSegReg(SegReg.Count));
}
