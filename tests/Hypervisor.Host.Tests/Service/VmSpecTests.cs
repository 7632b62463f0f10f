using System.Text.Json;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Service;

namespace Hypervisor.Host.Tests.Service;

public class VmSpecTests
{
    private static VmSpec Parse(string json) => VmSpec.FromJson(JsonDocument.Parse(json).RootElement);

    private static IReadOnlyDictionary<string, string[]> Errors(string json) =>
        Assert.Throws<VmRequestException>(() => Parse(json))!.Errors;

    [Test]
    public void ImageOnly_TakesTheRunDefaults()
    {
        var spec = Parse("""{"image": "/tmp/k.elf"}""");
        Assert.That(spec.Image, Is.EqualTo("/tmp/k.elf"));
        Assert.That(spec.Vendor, Is.EqualTo(VendorKind.Svm));
        Assert.That(spec.Memory, Is.EqualTo(256UL << 20));
        Assert.That(spec.Cpu, Is.Null);
    }

    [Test]
    public void EveryField_IsParsedAsHvRunParsesIt()
    {
        var spec = Parse("""{"image": "k.elf", "vendor": "bare", "memory": "64M"}""");
        Assert.That(spec.Image, Is.EqualTo(Path.GetFullPath("k.elf")));
        Assert.That(spec.Vendor, Is.EqualTo(VendorKind.Bare));
        Assert.That(spec.Memory, Is.EqualTo(64UL << 20));
        Assert.That(Parse("""{"image": "k", "memory": 2097152, "cpu": "host,-pcid"}""").Cpu!.ToString(), Is.EqualTo("host,-pcid"));
    }

    [Test]
    public void HostCpu_DefaultsToTheVendorsOwnModel()
    {
        Assert.That(Parse("""{"image": "k"}""").EffectiveHostCpu.Name, Is.EqualTo("zen5"));
        Assert.That(Parse("""{"image": "k", "vendor": "vmx"}""").EffectiveHostCpu.Name, Is.EqualTo("diamond-rapids"));
        Assert.That(Parse("""{"image": "k", "hostCpu": "zen4"}""").MachineOptions.HostCpu.Name, Is.EqualTo("zen4"));
        Assert.That(Errors("""{"image": "k", "hostCpu": "486"}""")["hostCpu"][0], Does.Contain("unknown host CPU model '486'"));
    }

    [Test]
    public void UnknownField_IsNamed()
    {
        var e = Errors("""{"image": "k", "mem": "1G"}""");
        Assert.That(e.Keys, Is.EqualTo(new[] { "mem" }));
        Assert.That(e["mem"][0], Does.Contain("unknown field"));
    }

    [Test]
    public void EveryBadValue_IsReportedAtOnce()
    {
        var e = Errors("""{"vendor": "arm", "memory": "12Q", "cpu": "qemu64"}""");
        Assert.That(e.Keys, Is.EquivalentTo(new[] { "image", "vendor", "memory", "cpu" }));
        Assert.That(e["vendor"][0], Does.Contain("'arm' is not a vendor"));
        Assert.That(e["memory"][0], Does.Contain("unknown unit"));
    }

    [TestCase("""{"image": 5}""", "image", "must be a string")]
    [TestCase("""{"image": "k", "memory": -1}""", "memory", "whole number of bytes")]
    [TestCase("""{"image": "k", "memory": "1000"}""", "memory", "minimum of 1 MiB")]
    [TestCase("""{"image": "k", "vendor": null}""", "vendor", "not null")]
    [TestCase("""{"image": "k", "image": "j"}""", "image", "given twice")]
    [TestCase("""{"image": "k", "vendor": "bare", "cpu": "host,-pcid"}""", "cpu", "vendor bare")]
    [TestCase("""[1, 2]""", "", "must be a JSON object")]
    public void BadValue_IsRefused(string json, string field, string message)
    {
        var e = Errors(json);
        Assert.That(e.ContainsKey(field), Is.True, string.Join(", ", e.Keys));
        Assert.That(e[field][0], Does.Contain(message));
    }

    [Test]
    public void Append_IsKeptForTheCommandLine()
    {
        Assert.That(Parse("""{"image": "k", "append": "console=ttyS0 quiet"}""").Append, Is.EqualTo("console=ttyS0 quiet"));
        Assert.That(Parse("""{"image": "k"}""").Append, Is.Null);
    }
}
