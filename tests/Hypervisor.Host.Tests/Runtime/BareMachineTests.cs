using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Host.Tests.Runtime;

/// <summary>What is particular to the bare machine: CPU exits by kind, the host model's own CPUID,
/// and no hypervisor options.</summary>
public class BareMachineTests
{
    private const ulong Mem = 16 << 20;

    private static BareMachine Bare(MachineOptions? options = null) =>
        (BareMachine)VirtualMachine.Create(Mem, Stream.Null, (options ?? new MachineOptions()) with { Vendor = VendorKind.Bare });

    [Test]
    public void Statistics_Report_HasEveryLine()
    {
        using var vm = Bare();
        vm.Load(MultibootKernel.Check(TestImages.Aout(a => { a.mov(dx, 0x3F8); a.@out(dx, al); a.hlt(); }), Mem));
        vm.Run(1000);
        var w = new StringWriter();
        vm.Statistics.WriteTo(w);
        Assert.That(vm.Statistics.Exits(CpuExitReason.Hlt), Is.EqualTo(1));
        Assert.That(vm.Statistics.Vendor, Is.Null);
        Assert.That(w.ToString(), Does.Match("^instructions retired: 3\nwall time: \\d+\\.\\d{3} s\nMIPS: \\d+\\.\\d\n"
            + "exit reason  count  kind\nhlt              1  cpu exit\nio               1  cpu exit\n$"));
    }

    [Test]
    public void Cpuid_IsTheHostModelsOwn()
    {
        using var vm = Bare(new MachineOptions { HostCpu = HostCpuModel.Zen4 });
        vm.Load(MultibootKernel.Check(TestImages.Aout(a => { a.mov(eax, 0x80000001); a.cpuid(); a.mov(eax, ecx); a.@out(0xF4, eax); }), Mem));
        var r = vm.Run(1000);
        Assert.That(vm.Cpu.Model, Is.SameAs(HostCpuModel.Zen4));
        Assert.That(r.DebugExitValue & (1u << 2), Is.Not.Zero, "the bare CPU reports SVM: no hypervisor hides it");
    }

    [Test]
    public void HypervisorOptions_AreRefused()
    {
        CpuSpec.TryParse("host,-pcid", out var spec, out _);
        Assert.Throws<MachineConfigurationException>(() => Bare(new MachineOptions { Cpu = spec }));
        Assert.Throws<MachineConfigurationException>(() => Bare(new MachineOptions { InterceptCr3AndInvpcid = true }));
    }
}
