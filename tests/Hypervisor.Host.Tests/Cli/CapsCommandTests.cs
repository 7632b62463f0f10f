using System.Text.Json;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86;
using Hypervisor.Core.X86.Cpuid;
using Hypervisor.Host.Cli;
using Hypervisor.Host.Tests.Support;
using Hypervisor.Svm;

namespace Hypervisor.Host.Tests.Cli;

public class CapsCommandTests
{
    private static IReadOnlyList<CpuidEntry> Supported(HostCpuModel model) => KvmX86.Register(new SvmOps(), model).GetSupportedCpuid();

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    [Test]
    public void Caps_Default_IsSvmOnZen5AsATable()
    {
        var o = InProcessHv.Invoke("caps");
        Assert.That(o.Status, Is.EqualTo(0), o.Error);
        var lines = Lines(o.Out);
        Assert.That(lines[0], Is.EqualTo("KVM_GET_SUPPORTED_CPUID of the svm module on host CPU model zen5 (AMD Zen 5-class processor with ERAPS (64-entry RAP)):"));
        Assert.That(lines[1], Does.Match(@"^leaf\s+subleaf\s+eax\s+ebx\s+ecx\s+edx\s+features$"));
        Assert.That(lines.Length - 2, Is.EqualTo(Supported(HostCpuModel.Zen5).Count), "one row per entry");
        Assert.That(lines, Has.Some.EqualTo("0x80000021  -        0x01000000  0x00400000  0x00000000  0x00000000  eax: eraps; ebx: rap_size=64"));
        Assert.That(lines, Has.Some.Match(@"^0x00000001  -  .* ecx: cx16 pcid popcnt; edx: pse tsc msr pae cx8 pge cmov pat pse36 clflush$"));
        Assert.That(lines, Has.Some.Match(@"^0x00000007  0  .* ebx: bmi1 smep invpcid smap; ecx: rdpid$"));
        Assert.That(o.Serial, Is.Empty);
    }

    [Test]
    public void Caps_Zen4_HasNoEraps()
    {
        var o = InProcessHv.Invoke("caps", "--host-cpu", "zen4");
        Assert.That(o.Status, Is.EqualTo(0), o.Error);
        Assert.That(Lines(o.Out), Has.Some.EqualTo("0x80000021  -        0x00000000  0x00000000  0x00000000  0x00000000"));
        Assert.That(o.Out, Does.Not.Contain("eraps"));
    }

    [TestCase("zen5")]
    [TestCase("zen4")]
    public void Caps_Json_IsKvmCpuidEntry2Shaped(string model)
    {
        var o = InProcessHv.Invoke("caps", "--json", "--host-cpu", model);
        Assert.That(o.Status, Is.EqualTo(0), o.Error);
        using var doc = JsonDocument.Parse(o.Out);
        Assert.That(doc.RootElement.ValueKind, Is.EqualTo(JsonValueKind.Array));
        var expected = Supported(HostCpuModel.Find(model)!);
        var got = new List<CpuidEntry>();
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            Assert.That(e.EnumerateObject().Select(p => p.Name), Is.EqualTo(new[] { "function", "index", "flags", "eax", "ebx", "ecx", "edx" }));
            Assert.That(e.EnumerateObject().Select(p => p.Value.ValueKind), Is.All.EqualTo(JsonValueKind.Number));
            got.Add(new CpuidEntry(e.GetProperty("function").GetUInt32(), e.GetProperty("index").GetUInt32(), e.GetProperty("flags").GetUInt32(),
                e.GetProperty("eax").GetUInt32(), e.GetProperty("ebx").GetUInt32(), e.GetProperty("ecx").GetUInt32(), e.GetProperty("edx").GetUInt32()));
        }
        Assert.That(got, Is.EqualTo(expected));
    }

    [Test]
    public void Caps_ListModels_NamesAndDescriptions()
    {
        var o = InProcessHv.Invoke("caps", "--list-models");
        Assert.That(o.Status, Is.EqualTo(0), o.Error);
        int width = HostCpuModel.All.Max(m => m.Name.Length);
        Assert.That(Lines(o.Out), Is.EqualTo(HostCpuModel.All.Select(m =>
            $"{m.Name.PadRight(width)}  {m.Description}{(m == HostCpuModel.Default ? " (default for svm)" : m == HostCpuModel.DefaultIntel ? " (default for vmx)" : "")}").ToArray()));
    }

    [Test]
    public void Caps_ListModelsJson_OneObjectPerModel()
    {
        var o = InProcessHv.Invoke("caps", "--list-models", "--json");
        using var doc = JsonDocument.Parse(o.Out);
        var names = doc.RootElement.EnumerateArray().Select(e => e.GetProperty("name").GetString()).ToArray();
        Assert.That(names, Is.EqualTo(HostCpuModel.All.Select(m => m.Name).ToArray()));
        Assert.That(doc.RootElement.EnumerateArray().Select(e => e.GetProperty("eraps").GetBoolean()), Is.EqualTo(HostCpuModel.All.Select(m => m.HasEraps)));
    }

    [Test]
    public void Caps_Vmx_DefaultIntelModelWithApxAndWithoutSvm()
    {
        var o = InProcessHv.Invoke("caps", "--vendor", "vmx");
        Assert.That((o.Status, o.Error), Is.EqualTo((0, "")));
        Assert.That(o.Out, Does.StartWith($"KVM_GET_SUPPORTED_CPUID of the vmx module on host CPU model {HostCpuModel.DefaultIntel.Name} "));
        var json = InProcessHv.Invoke("caps", "--vendor", "vmx", "--json");
        using var doc = JsonDocument.Parse(json.Out);
        Assert.That(doc.RootElement.GetRawText(), Is.Not.Empty);
        var kvm = Hypervisor.Core.X86.KvmX86.Register(new Hypervisor.Vmx.VmxOps(), HostCpuModel.DefaultIntel);
        Assert.That(kvm.SupportedCaps.Has(Hypervisor.Core.X86.Cpuid.CpuFeatures.ApxF), Is.True, "VMX offers APX where the host has it");
        Assert.That(kvm.SupportedCaps.Has(Hypervisor.Core.X86.Cpuid.CpuFeatures.Vmx), Is.False, "no nested VMX");
    }

    [Test]
    public void Caps_VmxOnAnAmdModel_Status2()
    {
        var o = InProcessHv.Invoke("caps", "--vendor", "vmx", "--host-cpu", "zen5");
        Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(o.Error, Does.StartWith("hv: --vendor vmx on host CPU model zen5: "));
        Assert.That(o.Out, Is.Empty);
    }

    [TestCase("--vendor", "bare", "--vendor: 'bare' is not a vendor this command takes; use svm, vmx")]
    [TestCase("--host-cpu", "zen9", "--host-cpu: unknown host CPU model 'zen9'; the models are: zen5 (")]
    public void Caps_BadOption_Status2(string option, string value, string message)
    {
        var o = InProcessHv.Invoke("caps", option, value);
        Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(o.Error, Does.StartWith("hv: " + message));
    }

    [Test]
    public void Describe_NamesEveryFeatureBitSet()
    {
        var e = new CpuidEntry(0x1, 0, 0, 0, 0, CpuFeatures.Pcid.Mask | CpuFeatures.Sse3.Mask, CpuFeatures.Fpu.Mask);
        Assert.That(CpuidFormat.Describe(e), Is.EqualTo("ecx: sse3 pcid; edx: fpu"));
    }

    [Test]
    public void Describe_SubleafSelectsTheFeatures()
    {
        // APX_F lives in leaf 7 subleaf 1 EDX[21]; the same bit of subleaf 0 names nothing.
        var sub1 = new CpuidEntry(0x7, 1, CpuidEntry.SignificantIndex, 0, 0, 0, 1u << 21);
        var sub0 = sub1 with { Index = 0 };
        Assert.That(CpuidFormat.Describe(sub1), Is.EqualTo("edx: apx_f"));
        Assert.That(CpuidFormat.Describe(sub0), Is.Empty);
    }
}
