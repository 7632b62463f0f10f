using Hypervisor.Host.Runtime;

namespace Hypervisor.Host.Tests.Differential;

public class DifferentialStatusTests
{
    [TestCase(0u, 1)]
    [TestCase(1u, 3)]
    [TestCase(0x34u, 0x69)]
    [TestCase(0x1234u, 0x69)]
    public void DebugExit_SameLow8Bits(uint value, int qemu) =>
        Assert.That(DifferentialStatus.ExpectedQemuStatus(new RunResult(RunEnd.DebugExit, value)), Is.EqualTo(qemu));

    [Test]
    public void Shutdown_IsQemuCleanExit() =>
        Assert.That(DifferentialStatus.ExpectedQemuStatus(new RunResult(RunEnd.Shutdown)), Is.EqualTo(0));

    [TestCase(RunEnd.Halted)]
    [TestCase(RunEnd.Unimplemented)]
    [TestCase(RunEnd.InternalError)]
    [TestCase(RunEnd.InstructionLimit)]
    public void Halt_AndHvFailures_CannotBeCompared(RunEnd end) =>
        Assert.That(DifferentialStatus.ExpectedQemuStatus(new RunResult(end)), Is.Null);
}
