using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Hypervisor.Host.Cli;
using Hypervisor.Host.Service;

namespace Hypervisor.Host.Tests.Service;

/// <summary>Starting and stopping the service: the socket file, configuration (declared VMs,
/// validation at start) and shutdown.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public class ServiceHostTests
{
    private readonly List<string> _directories = [];

    [TearDown]
    public void TearDown()
    {
        foreach (string d in _directories)
            Directory.Delete(d, recursive: true);
        _directories.Clear();
    }

    private string NewDirectory()
    {
        string d = ServiceFixture.NewDirectory();
        _directories.Add(d);
        return d;
    }

    private static async Task<ServeException> StartFails(ServeSettings settings)
    {
        try
        {
            var app = await ServiceHost.StartAsync(settings);
            await app.StopAsync();
            await app.DisposeAsync();
        }
        catch (ServeException e)
        {
            return e;
        }
        Assert.Fail("the service started");
        return null!;
    }

    [Test]
    public async Task Socket_IsOwnerOnlyAndRemovedAtStop()
    {
        await using (var hv = await ServiceFixture.StartAsync())
        {
            Assert.That(File.GetUnixFileMode(hv.Socket), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
            Assert.That(await hv.Http.GetStringAsync("/vms"), Is.EqualTo("[]"));
            await hv.App.StopAsync();
            Assert.That(File.Exists(hv.Socket), Is.False);
        }
    }

    [Test]
    public void OwnerOnlyUmask_CreatesOwnerOnlyFilesThenRestoresTheUmask()
    {
        // The socket gets its mode at bind time from the umask; the chmod after start only confirms it.
        string dir = NewDirectory();
        // A socket, not a file: bind asks for mode 0777, so only the umask makes it 0600.
        string socket = Path.Combine(dir, "s");
        File.WriteAllText(Path.Combine(dir, "before"), "");
        using (var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            using (UnixSocketFile.OwnerOnlyUmask())
                s.Bind(new UnixDomainSocketEndPoint(socket));
            Assert.That(File.GetUnixFileMode(socket), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        }
        File.WriteAllText(Path.Combine(dir, "after"), "");
        Assert.That(File.GetUnixFileMode(Path.Combine(dir, "after")), Is.EqualTo(File.GetUnixFileMode(Path.Combine(dir, "before"))));
    }

    [Test]
    public async Task StaleSocket_IsReplaced()
    {
        string dir = NewDirectory();
        string socket = Path.Combine(dir, "hv.sock");
        using (var stale = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            // Bound, never listening; moved away first since .NET removes the file it bound at Dispose.
            stale.Bind(new UnixDomainSocketEndPoint(socket + ".tmp"));
            File.Move(socket + ".tmp", socket);
        }
        Assert.That(File.Exists(socket), Is.True);
        var app = await ServiceHost.StartAsync(new ServeSettings { SocketPath = socket, Overrides = ServiceFixture.BaseConfiguration(dir) });
        using (var http = ServiceFixture.Connect(socket))
            Assert.That((await http.GetAsync("/vms")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        await app.StopAsync();
        await app.DisposeAsync();
    }

    [Test]
    public async Task SocketInUse_IsAServiceFailure()
    {
        await using var hv = await ServiceFixture.StartAsync();
        var e = await StartFails(new ServeSettings { SocketPath = hv.Socket, Overrides = ServiceFixture.BaseConfiguration(hv.Directory) });
        Assert.That(e.Status, Is.EqualTo(ExitCodes.ServiceFailure));
        Assert.That(e.Message, Does.Contain("another process is listening on it"));
        Assert.That(await hv.Http.GetStringAsync("/vms"), Is.EqualTo("[]"), "the running service is untouched");
    }

    [Test]
    public async Task SocketPathHoldingAFile_IsRefusedAndTheFileKept()
    {
        string dir = NewDirectory();
        string path = Path.Combine(dir, "notes.txt");
        File.WriteAllText(path, "keep me");
        var e = await StartFails(new ServeSettings { SocketPath = path, Overrides = ServiceFixture.BaseConfiguration(dir) });
        Assert.That(e.Status, Is.EqualTo(ExitCodes.ServiceFailure));
        Assert.That(e.Message, Does.Contain("is not a socket"));
        Assert.That(File.ReadAllText(path), Is.EqualTo("keep me"));
        var missing = await StartFails(new ServeSettings { SocketPath = Path.Combine(dir, "no", "hv.sock") });
        Assert.That(missing.Message, Does.Contain("does not exist"));
    }

    [TestCase("Hv:SliceInstructions", "10", "Hv:SliceInstructions is 10; it must be at least 1000")]
    [TestCase("Hv:SliceInstruction", "100000", "SliceInstruction")]
    [TestCase("Hv:ShutdownSeconds", "soon", "soon")]
    [TestCase("Hv:Vms:0:Memory", "12Q", "Hv:Vms:0:Image: required")]
    public async Task BadConfiguration_IsRefusedAtStartNamingTheKey(string key, string value, string message)
    {
        string dir = NewDirectory();
        var config = ServiceFixture.BaseConfiguration(dir);
        config[key] = value;
        var e = await StartFails(new ServeSettings { SocketPath = Path.Combine(dir, "hv.sock"), Overrides = config });
        Assert.That(e.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(e.Message, Does.StartWith("bad configuration:"));
        Assert.That(e.Message, Does.Contain(message));
        Assert.That(File.Exists(Path.Combine(dir, "hv.sock")), Is.False);
    }

    [Test]
    public async Task ConfigFile_MissingOrMalformed_IsBadConfiguration()
    {
        string dir = NewDirectory();
        var missing = await StartFails(new ServeSettings { SocketPath = Path.Combine(dir, "hv.sock"), ConfigFile = Path.Combine(dir, "none.json") });
        Assert.That(missing.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(missing.Message, Does.Contain("none.json: no such file"));
        string bad = Path.Combine(dir, "bad.json");
        File.WriteAllText(bad, "{ \"Hv\": ");
        var malformed = await StartFails(new ServeSettings { SocketPath = Path.Combine(dir, "hv.sock"), ConfigFile = bad });
        Assert.That(malformed.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
    }

    [Test]
    public async Task DeclaredVms_StartWithTheServiceFromTheConfigFile()
    {
        string dir = NewDirectory();
        string config = Path.Combine(dir, "hv.json");
        File.WriteAllText(config, JsonSerializer.Serialize(new
        {
            Hv = new
            {
                Vms = new[]
                {
                    new { Image = ServiceGuests.Triple, Memory = "16M" },
                    new { Image = ServiceGuests.Hello, Memory = "16M" },
                },
            },
        }));
        var app = await ServiceHost.StartAsync(new ServeSettings
        {
            SocketPath = Path.Combine(dir, "hv.sock"),
            ConfigFile = config,
            Overrides = ServiceFixture.BaseConfiguration(dir),
        });
        await using var _ = app;
        using var http = ServiceFixture.Connect(Path.Combine(dir, "hv.sock"));
        var deadline = DateTime.UtcNow.AddSeconds(30);
        string[] states;
        do
        {
            var list = JsonDocument.Parse(await http.GetStringAsync("/vms")).RootElement;
            states = list.EnumerateArray().Select(v => v.GetProperty("state").GetString()!).ToArray();
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), string.Join(",", states));
            await Task.Delay(10);
        }
        while (states.Any(s => s is "created" or "running"));
        Assert.That(states, Is.EqualTo(new[] { "failed", "stopped" }), "the triple fault ends only its own VM");
        Assert.That(await http.GetStringAsync("/vms/vm-2/serial"), Is.EqualTo("Hello from hv!\n"));
        await app.StopAsync();
    }

    [Test]
    public async Task Stop_PausesRunningVmsAndLogsTheirFinalState()
    {
        var guests = new ServiceGuests();
        try
        {
            await using var hv = await ServiceFixture.StartAsync();
            string id = await hv.CreateVmAsync(new { image = guests.Forever, memory = "16M" });
            await hv.ActAsync(id, "start");
            await hv.WaitForAsync(id, v => v.GetProperty("instructions").GetUInt64() > 0, "the guest to run");
            var stopwatch = System.Diagnostics.Stopwatch.StartNew();
            await hv.App.StopAsync();
            Assert.That(stopwatch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
            Assert.That(hv.ReadLog(), Does.Match($"VM {id} final state paused after [0-9]+ instructions"));
        }
        finally
        {
            guests.Dispose();
        }
    }
}
