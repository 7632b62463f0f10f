using Hypervisor.Core.X86;

namespace Hypervisor.Core.Tests.X86;

public class RegisterCacheTests
{
    /// <summary>A vendor stand-in: a control structure with known values, counting loads.</summary>
    private sealed class FakeVmcs : IRegisterSource
    {
        public readonly Dictionary<VcpuReg, ulong> Fields = new();
        public readonly List<VcpuReg> Loads = new();

        public void CacheReg(RegisterCache cache, VcpuReg reg)
        {
            Loads.Add(reg);
            cache.Fill(reg, Fields.GetValueOrDefault(reg));
        }
    }

    [Test]
    public void Numbering_MatchesKvm()
    {
        Assert.Multiple(() =>
        {
            Assert.That((int)VcpuReg.Rax, Is.EqualTo(0));
            Assert.That((int)VcpuReg.R15, Is.EqualTo(15));
            Assert.That((int)VcpuReg.Rip, Is.EqualTo(16));
            Assert.That((int)VcpuReg.Pdptr, Is.EqualTo(17));
            Assert.That((int)VcpuReg.Cr0, Is.EqualTo(18));
            Assert.That((int)VcpuReg.Cr3, Is.EqualTo(19));
            Assert.That((int)VcpuReg.Cr4, Is.EqualTo(20));
            Assert.That((int)VcpuReg.Rflags, Is.EqualTo(21));
            Assert.That((int)VcpuReg.Segments, Is.EqualTo(22));
            Assert.That((int)VcpuReg.ExitInfo1, Is.EqualTo(23));
            Assert.That((int)VcpuReg.ExitInfo2, Is.EqualTo(24));
            Assert.That(VcpuReg.Eraps, Is.EqualTo(VcpuReg.Cr3), "ERAPS is an alias of CR3");
        });
    }

    [Test]
    public void NewCache_EverythingAvailableAndDirty()
    {
        var c = new RegisterCache();
        Assert.That(c.Available, Is.EqualTo(VcpuRegs.AllMask));
        Assert.That(c.Dirty, Is.EqualTo(VcpuRegs.AllMask));
    }

    [Test]
    public void NotAvailableNotDirty_Read_LoadsThroughVendorOnce()
    {
        var vmcs = new FakeVmcs();
        vmcs.Fields[VcpuReg.Rip] = 0x1234;
        var c = new RegisterCache { Source = vmcs };
        c.ClearDirty();
        c.ClearAvailable(VcpuReg.Rip);

        Assert.That(c.Read(VcpuReg.Rip), Is.EqualTo(0x1234));
        Assert.That(c.Read(VcpuReg.Rip), Is.EqualTo(0x1234));
        Assert.That(vmcs.Loads, Is.EqualTo(new[] { VcpuReg.Rip }), "loaded once, then available");
        Assert.That(c.IsAvailable(VcpuReg.Rip) && !c.IsDirty(VcpuReg.Rip), Is.True, "available, in sync");
    }

    [Test]
    public void AvailableNotDirty_Read_UsesCacheWithoutVendor()
    {
        var vmcs = new FakeVmcs();
        var c = new RegisterCache { Source = vmcs };
        c.Write(VcpuReg.Rax, 7);
        c.ClearDirty();
        Assert.That(c.Read(VcpuReg.Rax), Is.EqualTo(7));
        Assert.That(vmcs.Loads, Is.Empty);
        Assert.That(c.IsDirty(VcpuReg.Rax), Is.False);
    }

    [Test]
    public void Write_MakesAvailableAndDirty()
    {
        var c = new RegisterCache { Source = new FakeVmcs() };
        c.ClearDirty();
        c.ClearAvailable(VcpuRegs.Bit(VcpuReg.Rsp));
        c.Write(VcpuReg.Rsp, 0x8000);
        Assert.That(c.IsAvailable(VcpuReg.Rsp) && c.IsDirty(VcpuReg.Rsp), Is.True);
        Assert.That(c.Read(VcpuReg.Rsp), Is.EqualTo(0x8000));
    }

    [Test]
    public void DirtyWithoutAvailable_CannotBeProduced()
    {
        var c = new RegisterCache();
        // Marking dirty always marks available ...
        c.ClearDirty();
        c.ClearAvailable(VcpuReg.Cr4);
        c.MarkDirty(VcpuReg.Cr4);
        Assert.That(c.IsAvailable(VcpuReg.Cr4), Is.True);
        // ... and dropping availability of a dirty register is refused.
        Assert.That(() => c.ClearAvailable(VcpuReg.Cr4), Throws.InvalidOperationException.With.Message.Contains("CR4"));
        Assert.That(c.IsAvailable(VcpuReg.Cr4) && c.IsDirty(VcpuReg.Cr4), Is.True, "state unchanged after the refusal");
    }

    [Test]
    public void MarkDirtyCr3_AlsoMarksEraps()
    {
        var c = new RegisterCache();
        c.ClearDirty();
        c.MarkDirty(VcpuReg.Cr3);
        Assert.That(c.IsDirty(VcpuReg.Eraps), Is.True);
    }

    [Test]
    public void Pdptrs_LoadLazilyAsOneRegister()
    {
        var src = new PdptrSource();
        var c = new RegisterCache { Source = src };
        c.ClearDirty();
        c.ClearAvailable(VcpuReg.Pdptr);
        Assert.That(c.ReadPdptr(2), Is.EqualTo(0x3001));
        Assert.That(c.ReadPdptr(3), Is.EqualTo(0x4001));
        Assert.That(src.Loads, Is.EqualTo(1));
    }

    private sealed class PdptrSource : IRegisterSource
    {
        public int Loads;
        public void CacheReg(RegisterCache cache, VcpuReg reg)
        {
            Loads++;
            cache.FillPdptrs(new ulong[] { 0x1001, 0x2001, 0x3001, 0x4001 });
        }
    }

    [Test]
    public void ReadUnavailable_WithoutSource_ReportsWhichRegister()
    {
        var c = new RegisterCache();
        c.ClearDirty();
        c.ClearAvailable(VcpuReg.Rflags);
        Assert.That(() => c.Read(VcpuReg.Rflags), Throws.InvalidOperationException.With.Message.Contains("RFLAGS"));
    }
}
