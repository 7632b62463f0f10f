using System.Runtime.InteropServices;
using Hypervisor.Svm.Hardware;

namespace Hypervisor.Svm.Tests.Hardware;

/// <summary>Where the VMCB page lives: owned, caller memory, unmanaged memory.</summary>
public class VmcbTests
{
    [Test]
    public void New_OwnedPage_IsZeroed4KiB()
    {
        using var vmcb = new Vmcb();
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.Bytes.Length, Is.EqualTo(4096));
            Assert.That(vmcb.Bytes.ToArray().All(b => b == 0), Is.True);
        });
    }

    [Test]
    public void Vmcb_OverCallerMemory_SharesTheBytes()
    {
        var page = new byte[8192];
        using var vmcb = new Vmcb(page.AsMemory(4096, 4096));
        vmcb.Rip = 0x1122_3344_5566_7788;
        Assert.That(BitConverter.ToUInt64(page, 4096 + 0x578), Is.EqualTo(0x1122_3344_5566_7788UL));
        page[4096 + 0x072] = 0;
        page[4096 + 0x070] = 0x78;
        Assert.That(vmcb.ExitCode, Is.EqualTo(SvmExitCode.Hlt));
    }

    [Test]
    public void Vmcb_WrongSizeMemory_Throws()
    {
        Assert.Throws<ArgumentException>(() => new Vmcb(new byte[4095]));
        Assert.Throws<ArgumentException>(() => new Vmcb(new byte[8192]));
    }

    [Test]
    public unsafe void Vmcb_OverUnmanagedMemory_SharesTheBytes()
    {
        byte* page = (byte*)NativeMemory.AllocZeroed(4096);
        try
        {
            using (var vmcb = new Vmcb(page))
            {
                vmcb.GuestAsid = 0xABCD;
                Assert.That(vmcb.Pointer == page, Is.True);
            }
            Assert.That(*(uint*)(page + 0x58), Is.EqualTo(0xABCDu));
        }
        finally
        {
            NativeMemory.Free(page);
        }
    }

    [Test]
    public void CopyFrom_And_Clear_CoverTheWholePage()
    {
        using var a = new Vmcb();
        using var b = new Vmcb();
        a.GuestAsid = 1;
        a.Rip = 2;
        a.LastExcpTo = 3;
        a.Bytes[0xFFF] = 4;
        b.CopyFrom(a);
        Assert.That(b.Bytes.ToArray(), Is.EqualTo(a.Bytes.ToArray()));
        b.Clear();
        Assert.That(b.Bytes.ToArray().All(x => x == 0), Is.True);
    }

    [Test]
    public void RawAccessors_AreLittleEndian()
    {
        using var vmcb = new Vmcb();
        vmcb.Write64(0x100, 0x0102_0304_0506_0708);
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.Bytes[0x100], Is.EqualTo(0x08));
            Assert.That(vmcb.Bytes[0x107], Is.EqualTo(0x01));
            Assert.That(vmcb.Read32(0x104), Is.EqualTo(0x0102_0304u));
            Assert.That(vmcb.Read16(0x102), Is.EqualTo(0x0506));
            Assert.That(vmcb.Read8(0x101), Is.EqualTo(0x07));
        });
    }
}
