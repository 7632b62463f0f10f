using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86;
using Hypervisor.Core.X86.Cpuid;
using Hypervisor.Host.Runtime;
using Hypervisor.Svm;

namespace Hypervisor.Host.Tests.Runtime;

public class CpuSpecTests
{
    private static IReadOnlyList<CpuidEntry> Supported(HostCpuModel model) => KvmX86.Register(new SvmOps(), model).GetSupportedCpuid();

    private static CpuSpec Parse(string text)
    {
        Assert.That(CpuSpec.TryParse(text, out var spec, out string error), Is.True, error);
        return spec;
    }

    private static string ParseError(string text)
    {
        Assert.That(CpuSpec.TryParse(text, out _, out string error), Is.False, text);
        return error;
    }

    private static CpuidEntry Leaf(IReadOnlyList<CpuidEntry> table, uint function, uint index = 0) =>
        table.Single(e => e.Function == function && e.Index == index);

    [TestCase("host", "host")]
    [TestCase("HOST", "host")]
    [TestCase("host,+eraps", "host,+eraps")]
    [TestCase("host,-eraps,+pcid", "host,-eraps,+pcid")]
    [TestCase("host,pcid=off,invpcid=on", "host,-pcid,+invpcid")]
    [TestCase("host, -pcid", "host,-pcid")]
    [TestCase("host,-lahf-lm", "host,-lahf_lm")]
    [TestCase("host,+NX", "host,+nx")]
    public void TryParse_Valid_EditsInOrder(string text, string canonical) =>
        Assert.That(Parse(text).ToString(), Is.EqualTo(canonical));

    [TestCase("", "is not a CPU model hv offers: only 'host'")]
    [TestCase("EPYC", "'EPYC' is not a CPU model hv offers")]
    [TestCase("host,+frobnicate", "unknown CPU feature 'frobnicate'; known features: fpu")]
    [TestCase("host,-", "'-' is not a feature edit")]
    [TestCase("host,pcid", "'pcid' is not a feature edit: write +pcid, -pcid or pcid=on|off")]
    [TestCase("host,pcid=maybe", "'pcid=maybe': a feature is 'on' or 'off'")]
    [TestCase("host,", "'' is not a feature edit")]
    public void TryParse_Invalid_SaysWhy(string text, string message) =>
        Assert.That(ParseError(text), Does.Contain(message));

    [Test]
    public void Apply_Host_IsTheSupportedTableUnchanged()
    {
        var supported = Supported(HostCpuModel.Zen5);
        Assert.That(CpuSpec.Host.Apply(supported, "zen5"), Is.EqualTo(supported));
    }

    [Test]
    public void Apply_MinusEraps_ClearsTheBitAndTheRapSize()
    {
        var supported = Supported(HostCpuModel.Zen5);
        var e = Leaf(Parse("host,-eraps").Apply(supported, "zen5"), 0x80000021);
        Assert.That(Leaf(supported, 0x80000021).Ebx, Is.EqualTo(64u << 16), "precondition: zen5 reports a 64-entry RAP");
        Assert.That((e.Eax, e.Ebx), Is.EqualTo((0u, 0u)));
    }

    [Test]
    public void Apply_MinusThenPlusEraps_RestoresTheRapSize()
    {
        var supported = Supported(HostCpuModel.Zen5);
        var e = Leaf(Parse("host,-eraps,+eraps").Apply(supported, "zen5"), 0x80000021);
        Assert.That(e, Is.EqualTo(Leaf(supported, 0x80000021)));
    }

    [Test]
    public void Apply_MinusPcidAndInvpcid_ClearOnlyThoseBits()
    {
        var supported = Supported(HostCpuModel.Zen5);
        var edited = Parse("host,-pcid,-invpcid").Apply(supported, "zen5");
        Assert.That(Leaf(edited, 1).Ecx, Is.EqualTo(Leaf(supported, 1).Ecx & ~CpuFeatures.Pcid.Mask));
        Assert.That(Leaf(edited, 7).Ebx, Is.EqualTo(Leaf(supported, 7).Ebx & ~CpuFeatures.Invpcid.Mask));
        int changed = edited.Zip(supported).Count(p => p.First != p.Second);
        Assert.That(changed, Is.EqualTo(2), "no other entry changes");
    }

    [Test]
    public void Apply_LaterEditWins()
    {
        var supported = Supported(HostCpuModel.Zen5);
        Assert.That(Leaf(Parse("host,-pcid,+pcid").Apply(supported, "zen5"), 1), Is.EqualTo(Leaf(supported, 1)));
        Assert.That(Leaf(Parse("host,+pcid,-pcid").Apply(supported, "zen5"), 1).Ecx & CpuFeatures.Pcid.Mask, Is.Zero);
    }

    [Test]
    public void Apply_PlusFeatureTheHostModelLacks_IsRefused()
    {
        var e = Assert.Throws<MachineConfigurationException>(() => Parse("host,+eraps").Apply(Supported(HostCpuModel.Zen4), "zen4"));
        Assert.That(e!.Message, Is.EqualTo("--cpu +eraps: host CPU model zen4 does not support eraps (CPUID 0x80000021.0:Eax[24]): KVM_GET_SUPPORTED_CPUID does not report it"));
    }

    [TestCase("host,+npt")]       // the hardware has it; nested SVM does not offer nested paging to guests
    [TestCase("host,+apx_f")]     // leaf 7.1 is not in the table at all
    [TestCase("host,+osxsave")]   // dynamic: follows the guest's CR4, never a supported static bit
    public void Apply_PlusFeatureNotSupported_IsRefused(string text) =>
        Assert.Throws<MachineConfigurationException>(() => Parse(text).Apply(Supported(HostCpuModel.Zen5), "zen5"));

    [Test]
    public void Apply_MinusFeatureTheHostLacks_ChangesNothing()
    {
        var supported = Supported(HostCpuModel.Zen4);
        Assert.That(Parse("host,-eraps,-apx_f").Apply(supported, "zen4"), Is.EqualTo(supported));
    }
}
