using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86.Cpuid;

namespace Hypervisor.Core.Tests.X86;

public class CpuidCapsTests
{
    /// <summary>A hardware model with ERAPS (RAP size 64), junk in the reserved EDX of 0x80000021
    /// and bits outside the RAP-size field of its EBX, to see them filtered.</summary>
    private static HostCpuModel ErapsHardware(bool eraps = true)
    {
        var t = new CpuidTable();
        t.Set(0, 0, 0xD, 0x68747541, 0x444d4163, 0x69746e65);
        t.Set(1, 0, 0x00B40F40, 0, CpuFeatures.Pcid.Mask | CpuFeatures.Osxsave.Mask | CpuFeatures.Xsave.Mask | (1u << 30), CpuFeatures.Pae.Mask | CpuFeatures.Fpu.Mask);
        t.Set(7, 0, 0, CpuFeatures.Invpcid.Mask | CpuFeatures.Smep.Mask, 0, 0, indexed: true);
        t.Set(0x80000000, 0, 0x80000021, 0, 0, 0);
        t.Set(0x80000021, 0, (eraps ? CpuFeatures.Eraps.Mask : 0) | 1u, 0x1240_0000u | 0xFF, 0, 0xDEAD_BEEF);
        return new HostCpuModel("test", "test", "AuthenticAMD", t, 48, 64, 0x00B40F40);
    }

    private static CpuidEntry Leaf(IEnumerable<CpuidEntry> entries, uint fn) => entries.Single(e => e.Function == fn);

    [Test]
    public void SupportedCaps_HardwareAndVirtualizable_Intersection()
    {
        var hw = ErapsHardware();
        var caps = CpuCaps.FromHardware(hw, new[] { CpuFeatures.Pcid, CpuFeatures.Invpcid, CpuFeatures.Eraps, CpuFeatures.Smap });
        Assert.Multiple(() =>
        {
            Assert.That(caps.Has(CpuFeatures.Pcid), Is.True);
            Assert.That(caps.Has(CpuFeatures.Invpcid), Is.True);
            Assert.That(caps.Has(CpuFeatures.Eraps), Is.True);
            Assert.That(caps.Has(CpuFeatures.Smap), Is.False, "virtualizable but not in hardware");
            Assert.That(caps.Has(CpuFeatures.Smep), Is.False, "in hardware but not virtualizable");
        });
    }

    [Test]
    public void SupportedCpuid_Leaf80000021_EdxZeroEbxOnlyRapSize()
    {
        var hw = ErapsHardware();
        var caps = CpuCaps.FromHardware(hw, new[] { CpuFeatures.Eraps });
        var e = Leaf(SupportedCpuid.Build(hw, caps), 0x80000021);
        Assert.Multiple(() =>
        {
            Assert.That(e.Eax, Is.EqualTo(CpuFeatures.Eraps.Mask), "EAX masked by caps: unknown bit 0 dropped");
            Assert.That(e.Ebx, Is.EqualTo(0x0040_0000u), "EBX[23:16] = 64, other bits dropped");
            Assert.That(e.Edx, Is.Zero);
        });
    }

    [Test]
    public void SupportedCpuid_WithoutErapsSupport_EbxIsZero()
    {
        var hw = ErapsHardware();
        var caps = CpuCaps.FromHardware(hw, Array.Empty<CpuFeature>());
        var e = Leaf(SupportedCpuid.Build(hw, caps), 0x80000021);
        Assert.That((e.Eax, e.Ebx, e.Edx), Is.EqualTo((0u, 0u, 0u)));
    }

    [Test]
    public void SupportedCpuid_Leaf1_FeatureRegistersMaskedAndOsxsaveDropped()
    {
        var hw = ErapsHardware();
        var caps = CpuCaps.FromHardware(hw, new[] { CpuFeatures.Pcid, CpuFeatures.Osxsave, CpuFeatures.Xsave, CpuFeatures.Pae });
        var e = Leaf(SupportedCpuid.Build(hw, caps), 1);
        Assert.Multiple(() =>
        {
            Assert.That(e.Eax, Is.EqualTo(0x00B40F40u), "signature passes through");
            Assert.That(e.Ecx, Is.EqualTo(CpuFeatures.Pcid.Mask | CpuFeatures.Xsave.Mask), "unknown bit 30 and OSXSAVE dropped");
            Assert.That(e.Edx, Is.EqualTo(CpuFeatures.Pae.Mask), "FPU not virtualizable here");
        });
    }

    [Test]
    public void GuestCaps_AreGuestTableIntersectSupported()
    {
        var hw = ErapsHardware();
        var supported = CpuCaps.FromHardware(hw, new[] { CpuFeatures.Pcid, CpuFeatures.Eraps });
        var guestTable = new[]
        {
            new CpuidEntry(1, 0, 0, 0, 0, CpuFeatures.Pcid.Mask | CpuFeatures.Movbe.Mask, 0),
            new CpuidEntry(0x80000021, 0, 0, CpuFeatures.Eraps.Mask, 0x0040_0000, 0, 0),
        };
        var guest = GuestCpuid.Create(guestTable, supported);
        Assert.Multiple(() =>
        {
            Assert.That(guest.Caps.Has(CpuFeatures.Pcid), Is.True);
            Assert.That(guest.Caps.Has(CpuFeatures.Eraps), Is.True);
            Assert.That(guest.Caps.Has(CpuFeatures.Movbe), Is.False, "in the guest table but not supported");
            Assert.That(guest.Entries, Is.EqualTo(guestTable), "stored exactly as given");
        });
    }

    [Test]
    public void GuestCaps_FeatureAbsentFromGuestTable_NotGranted()
    {
        var hw = ErapsHardware();
        var supported = CpuCaps.FromHardware(hw, new[] { CpuFeatures.Eraps });
        var guest = GuestCpuid.Create(new[] { new CpuidEntry(1, 0, 0, 0, 0, 0, 0) }, supported);
        Assert.That(guest.Caps.Has(CpuFeatures.Eraps), Is.False);
    }

    [Test]
    public void SetCpuid_DuplicateLeaf_RefusedNamingIt()
    {
        var entries = new[] { new CpuidEntry(7, 0, 1, 0, 0, 0, 0), new CpuidEntry(7, 0, 1, 1, 0, 0, 0) };
        Assert.That(() => GuestCpuid.Create(entries, new CpuCaps()),
            Throws.TypeOf<CpuidException>().With.Message.Contains("0x7.0").And.Message.Contains("twice"));
    }

    [Test]
    public void SetCpuid_SameFunctionDifferentSignificantIndex_Accepted()
    {
        var entries = new[] { new CpuidEntry(7, 0, 1, 0, 0, 0, 0), new CpuidEntry(7, 1, 1, 0, 0, 0, 0) };
        Assert.That(GuestCpuid.Create(entries, new CpuCaps()).Entries, Has.Count.EqualTo(2));
    }

    [Test]
    public void SetCpuid_UnknownFlags_Refused()
    {
        var entries = new[] { new CpuidEntry(1, 0, 0x8, 0, 0, 0, 0) };
        Assert.That(() => GuestCpuid.Create(entries, new CpuCaps()), Throws.TypeOf<CpuidException>().With.Property("Errno").EqualTo("EINVAL"));
    }

    [Test]
    public void SetCpuid_TooManyEntries_RefusedWithE2big()
    {
        var entries = Enumerable.Range(0, 257).Select(i => new CpuidEntry(0x40000000u + (uint)i, 0, 0, 0, 0, 0, 0)).ToArray();
        Assert.That(() => GuestCpuid.Create(entries, new CpuCaps()), Throws.TypeOf<CpuidException>().With.Property("Errno").EqualTo("E2BIG"));
    }

    [Test]
    public void IsIdentical_SameTable_TrueOtherwiseFalse()
    {
        var entries = new[] { new CpuidEntry(1, 0, 0, 1, 2, 3, 4) };
        var g = GuestCpuid.Create(entries, new CpuCaps());
        Assert.That(g.IsIdentical(new[] { new CpuidEntry(1, 0, 0, 1, 2, 3, 4) }), Is.True);
        Assert.That(g.IsIdentical(new[] { new CpuidEntry(1, 0, 0, 1, 2, 3, 5) }), Is.False);
    }
}
