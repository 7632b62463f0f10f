using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine;

public class SmokeTests
{
    [TestCase(GuestMode.Real)]
    [TestCase(GuestMode.Protected32)]
    [TestCase(GuestMode.Long64)]
    public void CountingLoop_EveryMode_SumsAndHalts(GuestMode mode)
    {
        using var m = new GuestMachine(mode);
        m.RunToHlt(a =>
        {
            var loop = a.CreateLabel();
            a.mov(ecx, 10);
            a.xor(eax, eax);
            a.Label(ref loop);
            a.add(eax, ecx);
            a.dec(ecx);
            a.jne(loop);
        });
        Assert.That(m.Rax & 0xFFFFFFFF, Is.EqualTo(55));
    }

    [Test]
    public void Out_ToDebugPort_IsCollected()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            a.mov(al, (byte)'h');
            a.@out(0xE9, al);
            a.mov(al, (byte)'i');
            a.mov(dx, 0xE9);
            a.@out(dx, al);
        });
        Assert.That(m.Output.ToString(), Is.EqualTo("hi"));
    }

    [Test]
    public void UnimplementedInstruction_StopsWithReport()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        var a = m.NewAssembler();
        a.fsin();
        m.Load(a);
        var exit = m.Run();
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Unimplemented));
        Assert.That(exit.Message, Does.Contain("fsin").And.Contain("d9 fe"));
    }
}
