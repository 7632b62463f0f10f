using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Svm.Hardware;

namespace Hypervisor.Svm.Tests.Hardware;

/// <summary>
/// The VMCB's packed attribute (type/S/DPL/P in 7:0, AVL/L/D/B/G in 11:8; APM vol. 2 §15.5.1)
/// against the CPU's access-rights layout (same low byte, AVL/L/D/B/G in 15:12).
/// </summary>
public class VmcbSegmentAttribTests
{
    [TestCase((ushort)0x0093, (ushort)0x0093, TestName = "Data_RealMode")]
    [TestCase((ushort)0xC09B, (ushort)0x0C9B, TestName = "Code32_Flat_GAndDb")]
    [TestCase((ushort)0xA09B, (ushort)0x0A9B, TestName = "Code64_LAndG")]
    [TestCase((ushort)0xC0F3, (ushort)0x0CF3, TestName = "Data32_Dpl3")]
    [TestCase((ushort)0x008B, (ushort)0x008B, TestName = "Tss64Busy")]
    [TestCase((ushort)0x0082, (ushort)0x0082, TestName = "Ldt")]
    [TestCase((ushort)0x1093, (ushort)0x0193, TestName = "Avl")]
    [TestCase((ushort)0xF0FF, (ushort)0x0FFF, TestName = "AllDefinedBits")]
    public void FromAccessRights_KnownDescriptors_PackAsApm(ushort accessRights, ushort vmcb)
    {
        Assert.Multiple(() =>
        {
            Assert.That(VmcbSegmentAttrib.FromAccessRights(accessRights), Is.EqualTo(vmcb));
            Assert.That(VmcbSegmentAttrib.ToAccessRights(vmcb), Is.EqualTo(accessRights));
        });
    }

    [Test]
    public void RoundTrip_EveryVmcbAttrib_IsExact()
    {
        for (int a = 0; a <= 0x0FFF; a++)
        {
            ushort ar = VmcbSegmentAttrib.ToAccessRights((ushort)a);
            Assert.That(VmcbSegmentAttrib.FromAccessRights(ar), Is.EqualTo((ushort)a), $"attrib 0x{a:x3}");
            Assert.That(ar & 0x0F00, Is.EqualTo(0), $"attrib 0x{a:x3}: access-rights bits 11:8 stay reserved");
        }
    }

    [Test]
    public void RoundTrip_EveryAccessRightsWithReservedBitsClear_IsExact()
    {
        for (int ar = 0; ar <= 0xFFFF; ar++)
        {
            if ((ar & 0x0F00) != 0)
                continue;
            ushort a = VmcbSegmentAttrib.FromAccessRights((ushort)ar);
            Assert.That(VmcbSegmentAttrib.ToAccessRights(a), Is.EqualTo((ushort)ar), $"access rights 0x{ar:x4}");
            Assert.That(a & 0xF000, Is.EqualTo(0), $"access rights 0x{ar:x4}: VMCB bits 15:12 stay reserved");
        }
    }

    [Test]
    public void Conversion_ReservedBits_AreDropped()
    {
        Assert.Multiple(() =>
        {
            Assert.That(VmcbSegmentAttrib.FromAccessRights(0x0F93), Is.EqualTo(0x0093), "access-rights 11:8");
            Assert.That(VmcbSegmentAttrib.ToAccessRights(0xF093), Is.EqualTo(0x0093), "VMCB 15:12");
        });
    }

    [Test]
    public void FieldMasks_MatchSegmentHelpers()
    {
        var seg = new Segment { Attributes = VmcbSegmentAttrib.ToAccessRights(VmcbSegmentAttrib.P | VmcbSegmentAttrib.S | VmcbSegmentAttrib.L | VmcbSegmentAttrib.Db | 0x0B | (2 << 5)) };
        Assert.Multiple(() =>
        {
            Assert.That(seg.Present, Is.True);
            Assert.That(seg.IsCode, Is.True);
            Assert.That(seg.Long, Is.True);
            Assert.That(seg.DefaultBig, Is.True);
            Assert.That(seg.Dpl, Is.EqualTo(2));
            Assert.That(seg.Type, Is.EqualTo(0xB));
            Assert.That(seg.Attributes & Segment.AttrG, Is.EqualTo(0));
        });
    }
}
