using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Memory;
using Hypervisor.Core.Machine.Models;

namespace Hypervisor.Core.Tests.Machine.Cpu;

/// <summary>R16..R31 storage and the accessors a vendor's VM entry/exit uses (X86Cpu.Apx.cs).</summary>
public class ExtendedGprTests
{
    private static X86Cpu NewCpu(out PhysicalMemory memory)
    {
        memory = new PhysicalMemory();
        memory.AddSlot(0, 0, 1 << 20);
        return new X86Cpu(memory, HostCpuModel.DiamondRapids);
    }

    [Test]
    public void ExtendedGpr_SetGet_SeparateFromLegacyRegisters()
    {
        using var cpu = NewCpu(out var mem);
        using var _ = mem;
        for (int n = 16; n < 32; n++)
            cpu.SetExtendedGpr(n, 0x1000UL * (ulong)n);
        Assert.That(cpu.GetExtendedGpr(16), Is.EqualTo(0x10000));
        Assert.That(cpu.GetExtendedGpr(31), Is.EqualTo(0x1F000));
        Assert.That(cpu.GetGpr(Gpr.R15), Is.EqualTo(0), "R15 untouched");
        Assert.That(() => cpu.GetExtendedGpr(15), Throws.TypeOf<ArgumentOutOfRangeException>());
        Assert.That(() => cpu.SetExtendedGpr(32, 0), Throws.TypeOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void SaveClearLoad_RoundTripsAllSixteen()
    {
        using var cpu = NewCpu(out var mem);
        using var _ = mem;
        var values = Enumerable.Range(0, 16).Select(i => 0xA5A5_0000_0000_0000UL + (ulong)i).ToArray();
        cpu.LoadExtendedGprs(values);
        var saved = new ulong[16];
        cpu.SaveExtendedGprs(saved);
        Assert.That(saved, Is.EqualTo(values));
        cpu.ClearExtendedGprs();
        Assert.That(Enumerable.Range(16, 16).Select(cpu.GetExtendedGpr), Is.All.EqualTo(0UL));
        Assert.That(() => cpu.SaveExtendedGprs(new ulong[15]), Throws.ArgumentException);
    }
}
