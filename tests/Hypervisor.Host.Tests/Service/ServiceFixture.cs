using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Hypervisor.Host.Service;
using Microsoft.AspNetCore.Builder;

namespace Hypervisor.Host.Tests.Service;

/// <summary>An in-process <c>hv serve</c> on a temporary socket, with an HTTP client connected to it.</summary>
internal sealed class ServiceFixture : IAsyncDisposable
{
    private ServiceFixture(string directory, string socket, WebApplication app)
    {
        Directory = directory;
        Socket = socket;
        App = app;
        Http = Connect(socket);
    }

    public string Directory { get; }
    public string Socket { get; }
    public WebApplication App { get; }
    public HttpClient Http { get; }
    public string LogDirectory => Path.Combine(Directory, "logs");

    /// <summary>Configuration every test service gets: small slices (fast actions), logs in the
    /// temporary directory, only warnings on the console.</summary>
    public static Dictionary<string, string?> BaseConfiguration(string directory) => new()
    {
        ["Hv:SliceInstructions"] = "20000",
        ["Serilog:WriteTo:File:Args:path"] = Path.Combine(directory, "logs", "hv-.log"),
        ["Serilog:WriteTo:Console:Args:restrictedToMinimumLevel"] = "Warning",
    };

    public static string NewDirectory()
    {
        // Short: a Unix socket path holds at most 107 bytes.
        string dir = Path.Combine(Path.GetTempPath(), $"hvs-{Guid.NewGuid():N}"[..12]);
        System.IO.Directory.CreateDirectory(dir);
        return dir;
    }

    public static async Task<ServiceFixture> StartAsync(IReadOnlyDictionary<string, string?>? extra = null)
    {
        string dir = NewDirectory();
        var config = BaseConfiguration(dir);
        foreach (var (k, v) in extra ?? new Dictionary<string, string?>())
            config[k] = v;
        string socket = Path.Combine(dir, "hv.sock");
        var app = await ServiceHost.StartAsync(new ServeSettings { SocketPath = socket, Overrides = config });
        return new ServiceFixture(dir, socket, app);
    }

    public static HttpClient Connect(string socket) => new(new SocketsHttpHandler
    {
        ConnectCallback = async (_, ct) =>
        {
            var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await s.ConnectAsync(new UnixDomainSocketEndPoint(socket), ct);
            return new NetworkStream(s, ownsSocket: true);
        },
    })
    {
        BaseAddress = new Uri("http://hv"),
        Timeout = TimeSpan.FromSeconds(30),
    };

    public async Task<string> CreateVmAsync(object body)
    {
        var r = await Http.PostAsJsonAsync("/vms", body);
        Assert.That((int)r.StatusCode, Is.EqualTo(201), await r.Content.ReadAsStringAsync());
        return (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    public Task<HttpResponseMessage> ActAsync(string id, string action) =>
        Http.PutAsJsonAsync($"/vms/{id}/actions", new { action });

    public async Task<JsonElement> GetVmAsync(string id)
    {
        var r = await Http.GetAsync($"/vms/{id}");
        Assert.That((int)r.StatusCode, Is.EqualTo(200), await r.Content.ReadAsStringAsync());
        return await r.Content.ReadFromJsonAsync<JsonElement>();
    }

    /// <summary>Polls until <paramref name="condition"/> holds for the VM's status.</summary>
    public async Task<JsonElement> WaitForAsync(string id, Func<JsonElement, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var vm = await GetVmAsync(id);
            if (condition(vm))
                return vm;
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), $"timed out waiting for {what}: {vm}");
            await Task.Delay(10);
        }
    }

    /// <summary>Everything the rolling file sink wrote.</summary>
    public string ReadLog() =>
        string.Concat(System.IO.Directory.GetFiles(LogDirectory).Select(f =>
        {
            using var s = new FileStream(f, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            return new StreamReader(s).ReadToEnd();
        }));

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
