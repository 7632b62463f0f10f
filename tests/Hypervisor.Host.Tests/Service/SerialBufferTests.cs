using System.Text;
using Hypervisor.Host.Service;

namespace Hypervisor.Host.Tests.Service;

public class SerialBufferTests
{
    [Test]
    public void Write_BelowCapacity_KeepsEverything()
    {
        var b = new SerialBuffer(16);
        b.Write("hello "u8);
        b.WriteByte((byte)'!');
        Assert.That(Encoding.ASCII.GetString(b.ToArray()), Is.EqualTo("hello !"));
        Assert.That(b.Dropped, Is.Zero);
    }

    [Test]
    public void Write_PastCapacity_KeepsTheMostRecentBytesAndCountsTheRest()
    {
        var b = new SerialBuffer(8);
        b.Write("0123456"u8);
        b.Write("789ab"u8);
        Assert.That(Encoding.ASCII.GetString(b.ToArray()), Is.EqualTo("456789ab"));
        Assert.That(b.TotalWritten, Is.EqualTo(12));
        Assert.That(b.Dropped, Is.EqualTo(4));
    }

    [Test]
    public void Write_LargerThanCapacity_KeepsItsTail()
    {
        var b = new SerialBuffer(4);
        b.Write("xy"u8);
        b.Write("abcdefghij"u8);
        Assert.That(Encoding.ASCII.GetString(b.ToArray()), Is.EqualTo("ghij"));
        Assert.That(b.TotalWritten, Is.EqualTo(12));
    }
}
