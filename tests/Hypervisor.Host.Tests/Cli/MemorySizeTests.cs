using Hypervisor.Host.Cli;

namespace Hypervisor.Host.Tests.Cli;

public class MemorySizeTests
{
    [TestCase("256M", 256UL << 20)]
    [TestCase("1G", 1UL << 30)]
    [TestCase("65536K", 64UL << 20)]
    [TestCase("16777216", 16UL << 20)]
    [TestCase("2m", 2UL << 20)]
    [TestCase("512MiB", 512UL << 20)]
    [TestCase("1T", 1UL << 40)]
    [TestCase(" 4G ", 4UL << 30)]
    public void TryParse_ValidSize_GivesBytes(string text, ulong bytes)
    {
        Assert.That(MemorySize.TryParse(text, out ulong b, out string error), Is.True, error);
        Assert.That(b, Is.EqualTo(bytes));
    }

    [TestCase("", "is not a memory size")]
    [TestCase("M", "is not a memory size")]
    [TestCase("-1G", "is not a memory size")]
    [TestCase("12Q", "unknown unit 'Q'")]
    [TestCase("1.5G", "unknown unit '.5G'")]
    [TestCase("512K", "less than the minimum of 1 MiB")]
    [TestCase("1048577", "not a multiple of 4 KiB")]
    [TestCase("99999999999999999999", "too large")]
    [TestCase("20000000T", "too large")]
    public void TryParse_Invalid_SaysWhy(string text, string why)
    {
        Assert.That(MemorySize.TryParse(text, out _, out string error), Is.False);
        Assert.That(error, Does.Contain(why));
    }

    [TestCase(256UL << 20, "256M")]
    [TestCase(1UL << 30, "1G")]
    [TestCase(1028UL << 10, "1028K")]
    [TestCase(4097UL, "4097")]
    public void ToString_UsesLargestExactUnit(ulong bytes, string text) =>
        Assert.That(new MemorySize(bytes).ToString(), Is.EqualTo(text));
}
