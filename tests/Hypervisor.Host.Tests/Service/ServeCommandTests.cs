using Hypervisor.Host.Tests.Support;

namespace Hypervisor.Host.Tests.Service;

public class ServeCommandTests
{
    [Test]
    public void NoSocket_IsAUsageError()
    {
        var r = InProcessHv.Invoke("serve");
        Assert.That(r.Status, Is.EqualTo(2));
        Assert.That(r.Error, Does.Contain("--socket"));
    }

    [Test]
    public void SocketInAMissingDirectory_IsAServiceFailureWithOneLine()
    {
        var r = InProcessHv.Invoke("serve", "--socket", "/nonexistent-hv-dir/hv.sock");
        Assert.That(r.Status, Is.EqualTo(5));
        Assert.That(r.Error, Is.EqualTo("hv serve: cannot listen on /nonexistent-hv-dir/hv.sock: the directory /nonexistent-hv-dir does not exist\n"));
    }

    [Test]
    public void Help_ListsServeAndStatus5()
    {
        var r = InProcessHv.Invoke("--help");
        Assert.That(r.Out, Does.Contain("serve"));
        Assert.That(r.Out, Does.Contain("5          hv serve: the service failed"));
    }
}
