using Hypervisor.Host.Devices;

namespace Hypervisor.Host.Tests.Devices;

public class DebugExitTests
{
    [TestCase(0u, 1)]
    [TestCase(1u, 3)]
    [TestCase(0x2Au, 0x55)]
    [TestCase(0x1234u, 0x2469)]
    public void StatusFor_IsValueShiftedLeftOrOne(uint value, int status) =>
        Assert.That(DebugExit.StatusFor(value), Is.EqualTo(status));

    [Test]
    public void Write_FirstValueWins()
    {
        var d = new DebugExit();
        Assert.That(d.Value, Is.Null);
        d.Write(0xF4, 1, 5);
        d.Write(0xF4, 1, 6);
        Assert.That(d.Value, Is.EqualTo(5));
        Assert.That(d.Read(0xF4, 4), Is.EqualTo(0));
    }
}
