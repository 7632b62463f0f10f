using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using NUnit.Framework;

namespace Hypervisor.Core.Tests.Machine.Models;

/// <summary>The Intel host CPU models: what their CPUID reports and which XCR0 values they accept.</summary>
public sealed class IntelModelTests
{
    [TestCase("diamond-rapids", true)]
    [TestCase("granite-rapids", false)]
    public void IntelModel_Cpuid_VmxXsaveAndApxAsNamed(string name, bool apx)
    {
        var m = HostCpuModel.Find(name)!;
        Assert.Multiple(() =>
        {
            Assert.That(m.IsIntel, Is.True);
            Assert.That(m.HasFeature(1, 0, 'c', 5), Is.True, "VMX");
            Assert.That(m.HasFeature(1, 0, 'c', 26), Is.True, "XSAVE");
            Assert.That(m.HasFeature(0x80000001, 0, 'c', 2), Is.False, "SVM");
            Assert.That(m.HasApx, Is.EqualTo(apx));
            Assert.That(m.HasEraps, Is.False);
            // SDM vol. 1 §13.2: CPUID.(0Dh,0):EAX lists XCR0 bit 19 exactly when APX is present.
            Assert.That((m.Cpuid.Lookup(0xD, 0).Eax >> 19) & 1, Is.EqualTo(apx ? 1u : 0u));
            Assert.That(m.Cpuid.Lookup(0xD, 0).Ecx, Is.EqualTo(apx ? 1088u : 576u));
        });
    }

    [Test]
    public void DiamondRapids_XsaveComponent19_128BytesAtOffset960()
    {
        var e = HostCpuModel.DiamondRapids.Cpuid.Lookup(0xD, 19);
        Assert.That((e.Eax, e.Ebx), Is.EqualTo((128u, 960u)));
    }

    [TestCase("diamond-rapids", 0x80001UL, true)]
    [TestCase("granite-rapids", 0x80001UL, false)]
    [TestCase("diamond-rapids", 0x80000UL, false)] // x87 must stay enabled
    [TestCase("diamond-rapids", 0x1UL, true)]
    public void IntelModel_Xcr0WithApx_AcceptedOnlyWhereSupported(string name, ulong xcr0, bool valid)
    {
        var cpu = new X86Cpu(new Hypervisor.Core.Machine.Memory.PhysicalMemory(), HostCpuModel.Find(name)!);
        Assert.That(cpu.IsValidXcr0(xcr0), Is.EqualTo(valid));
    }
}
