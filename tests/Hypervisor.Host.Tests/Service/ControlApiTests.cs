using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Hypervisor.Host.Tests.Service;

/// <summary>The control API over a real Unix socket, in process: the routes' contract.</summary>
public class ControlApiTests
{
    private ServiceFixture _hv = null!;
    private ServiceGuests _guests = null!;

    [SetUp]
    public async Task SetUp()
    {
        _guests = new ServiceGuests();
        _hv = await ServiceFixture.StartAsync();
    }

    [TearDown]
    public async Task TearDown()
    {
        await _hv.DisposeAsync();
        _guests.Dispose();
    }

    private static async Task<JsonElement> ProblemAsync(HttpResponseMessage r, HttpStatusCode status)
    {
        string text = await r.Content.ReadAsStringAsync();
        Assert.That(r.StatusCode, Is.EqualTo(status), text);
        Assert.That(r.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"), text);
        var problem = JsonDocument.Parse(text).RootElement;
        Assert.That(problem.GetProperty("status").GetInt32(), Is.EqualTo((int)status));
        return problem;
    }

    [Test]
    public async Task CreateStartRun_ReportsTheEndExitsAndSerialOutput()
    {
        var created = await _hv.Http.PostAsJsonAsync("/vms", new { image = ServiceGuests.Hello, memory = "16M" });
        Assert.That(created.StatusCode, Is.EqualTo(HttpStatusCode.Created));
        string id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        Assert.That(created.Headers.Location?.ToString(), Is.EqualTo($"/vms/{id}"));
        Assert.That((await _hv.GetVmAsync(id)).GetProperty("state").GetString(), Is.EqualTo("created"));

        Assert.That((await _hv.ActAsync(id, "start")).StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        var vm = await _hv.WaitForAsync(id, v => v.GetProperty("state").GetString() == "stopped", "the guest to end");
        var end = vm.GetProperty("end");
        Assert.That(end.GetProperty("reason").GetString(), Is.EqualTo("debug-exit"));
        Assert.That(end.GetProperty("status").GetInt32(), Is.EqualTo(1), "what hv run exits with");
        Assert.That(vm.GetProperty("vendor").GetString(), Is.EqualTo("svm"));
        Assert.That(vm.GetProperty("memory").GetString(), Is.EqualTo("16M"));
        Assert.That(vm.GetProperty("instructions").GetUInt64(), Is.GreaterThan(0));
        Assert.That(vm.GetProperty("exits").GetProperty("KVM_EXIT_IO").GetInt64(), Is.GreaterThanOrEqualTo(15 + 1), "at least one per serial byte, and the debug-exit write");
        Assert.That(vm.GetProperty("vendorExits").GetProperty("VMEXIT_IOIO").GetInt64(), Is.GreaterThan(0));

        var serial = await _hv.Http.GetAsync($"/vms/{id}/serial");
        Assert.That(serial.Content.Headers.ContentType?.MediaType, Is.EqualTo("text/plain"));
        Assert.That(await serial.Content.ReadAsStringAsync(), Is.EqualTo("Hello from hv!\n"));
        Assert.That(_hv.ReadLog(), Does.Contain($"VM {id} exit debug-exit (status 1)"));
    }

    [Test]
    public async Task PauseResumeStop_FollowTheGuest()
    {
        string id = await _hv.CreateVmAsync(new { image = _guests.Forever, memory = "16M", vendor = "bare" });
        await _hv.ActAsync(id, "start");
        await _hv.WaitForAsync(id, v => v.GetProperty("serialBytes").GetInt64() >= 2, "output");

        Assert.That((await _hv.ActAsync(id, "pause")).StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        var paused = await _hv.GetVmAsync(id);
        Assert.That(paused.GetProperty("state").GetString(), Is.EqualTo("paused"));
        await Task.Delay(100);
        var still = await _hv.GetVmAsync(id);
        Assert.That(still.GetProperty("instructions").GetUInt64(), Is.EqualTo(paused.GetProperty("instructions").GetUInt64()));
        Assert.That(still.GetProperty("exits").GetProperty("io").GetInt64(), Is.EqualTo(paused.GetProperty("serialBytes").GetInt64()));

        Assert.That((await _hv.ActAsync(id, "resume")).StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        long before = paused.GetProperty("serialBytes").GetInt64();
        await _hv.WaitForAsync(id, v => v.GetProperty("serialBytes").GetInt64() > before, "output after resume");

        Assert.That((await _hv.ActAsync(id, "stop")).StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        var stopped = await _hv.GetVmAsync(id);
        Assert.That(stopped.GetProperty("state").GetString(), Is.EqualTo("stopped"));
        Assert.That(stopped.GetProperty("end").GetProperty("reason").GetString(), Is.EqualTo("stopped"));
        Assert.That(stopped.GetProperty("end").GetProperty("status").ValueKind, Is.EqualTo(JsonValueKind.Null));
    }

    [Test]
    public async Task ActionInTheWrongState_Is409()
    {
        string id = await _hv.CreateVmAsync(new { image = _guests.Forever, memory = "16M" });
        var problem = await ProblemAsync(await _hv.ActAsync(id, "pause"), HttpStatusCode.Conflict);
        Assert.That(problem.GetProperty("detail").GetString(), Is.EqualTo($"cannot pause VM {id}: it is created (start it first)"));
        await ProblemAsync(await _hv.ActAsync(id, "resume"), HttpStatusCode.Conflict);
        await _hv.ActAsync(id, "start");
        await ProblemAsync(await _hv.ActAsync(id, "start"), HttpStatusCode.Conflict);
        await _hv.ActAsync(id, "stop");
        await ProblemAsync(await _hv.ActAsync(id, "stop"), HttpStatusCode.Conflict);
    }

    [Test]
    public async Task UnknownId_Is404OnEveryRoute()
    {
        await ProblemAsync(await _hv.Http.GetAsync("/vms/vm-99"), HttpStatusCode.NotFound);
        await ProblemAsync(await _hv.Http.DeleteAsync("/vms/vm-99"), HttpStatusCode.NotFound);
        await ProblemAsync(await _hv.ActAsync("vm-99", "start"), HttpStatusCode.NotFound);
        await ProblemAsync(await _hv.Http.GetAsync("/vms/vm-99/serial"), HttpStatusCode.NotFound);
        await ProblemAsync(await _hv.Http.GetAsync("/vms/vm-99/snapshot"), HttpStatusCode.NotFound);
        await ProblemAsync(await _hv.Http.GetAsync("/nowhere"), HttpStatusCode.NotFound);
    }

    [TestCase("{\"image\": ", "", "not valid JSON")]
    [TestCase("[]", "", "must be a JSON object")]
    [TestCase("{\"image\": \"x\", \"size\": 1}", "size", "unknown field")]
    [TestCase("{\"image\": \"x\", \"memory\": \"lots\"}", "memory", "not a memory size")]
    [TestCase("{\"image\": \"x\", \"vendor\": \"ppc\"}", "vendor", "not a vendor")]
    [TestCase("{\"image\": \"x\", \"cpu\": \"host,+warp\"}", "cpu", "warp")]
    [TestCase("{\"image\": \"/nonexistent/k.elf\"}", "image", "no such file")]
    [TestCase("{\"image\": \"x\", \"hostCpu\": \"i486\"}", "hostCpu", "unknown host CPU model")]
    public async Task BadCreateRequest_Is400AndCreatesNothing(string body, string field, string message)
    {
        var r = await _hv.Http.PostAsync("/vms", new StringContent(body, Encoding.UTF8, "application/json"));
        var problem = await ProblemAsync(r, HttpStatusCode.BadRequest);
        Assert.That(problem.GetProperty("detail").GetString(), Does.Contain(message));
        if (field.Length > 0)
            Assert.That(problem.GetProperty("errors").GetProperty(field)[0].GetString(), Does.Contain(message));
        Assert.That(await _hv.Http.GetStringAsync("/vms"), Is.EqualTo("[]"));
    }

    [TestCase("{\"action\": \"reboot\"}", "must be one of start, pause, resume, stop")]
    [TestCase("{\"action\": \"start\", \"force\": true}", "unknown field")]
    [TestCase("{}", "required")]
    [TestCase("\"start\"", "must be a JSON object")]
    [TestCase("{action: start}", "not valid JSON")]
    public async Task BadActionRequest_Is400AndChangesNothing(string body, string message)
    {
        string id = await _hv.CreateVmAsync(new { image = ServiceGuests.Hello, memory = "16M" });
        var r = await _hv.Http.PutAsync($"/vms/{id}/actions", new StringContent(body, Encoding.UTF8, "application/json"));
        var problem = await ProblemAsync(r, HttpStatusCode.BadRequest);
        Assert.That(problem.GetProperty("detail").GetString(), Does.Contain(message));
        Assert.That((await _hv.GetVmAsync(id)).GetProperty("state").GetString(), Is.EqualTo("created"));
    }

    [Test]
    public async Task ListAndDelete_ShowEveryVmInOrderAndForgetDeletedOnes()
    {
        string a = await _hv.CreateVmAsync(new { image = ServiceGuests.Hello, memory = "16M" });
        string b = await _hv.CreateVmAsync(new { image = _guests.Forever, memory = "16M" });
        await _hv.ActAsync(b, "start");
        var list = await _hv.Http.GetFromJsonAsync<JsonElement>("/vms");
        Assert.That(list.EnumerateArray().Select(v => v.GetProperty("id").GetString()), Is.EqualTo(new[] { a, b }));

        Assert.That((await _hv.Http.DeleteAsync($"/vms/{b}")).StatusCode, Is.EqualTo(HttpStatusCode.NoContent));
        await ProblemAsync(await _hv.Http.GetAsync($"/vms/{b}"), HttpStatusCode.NotFound);
        list = await _hv.Http.GetFromJsonAsync<JsonElement>("/vms");
        Assert.That(list.EnumerateArray().Select(v => v.GetProperty("id").GetString()), Is.EqualTo(new[] { a }));
    }

    [Test]
    public async Task Append_ReachesTheGuestAsItsMultibootCommandLine()
    {
        string id = await _hv.CreateVmAsync(new { image = _guests.CommandLine, memory = "16M", append = "console=ttyS0 quiet" });
        Assert.That((await _hv.GetVmAsync(id)).GetProperty("append").GetString(), Is.EqualTo("console=ttyS0 quiet"));
        await _hv.ActAsync(id, "start");
        await _hv.WaitForAsync(id, v => v.GetProperty("state").GetString() == "stopped", "the guest to end");
        Assert.That(await _hv.Http.GetStringAsync($"/vms/{id}/serial"), Is.EqualTo($"{_guests.CommandLine} console=ttyS0 quiet"));
    }

    [Test]
    public async Task Snapshot_OfAPausedVm_IsTheVcpuSnapshotJson()
    {
        string id = await _hv.CreateVmAsync(new { image = _guests.Forever, memory = "16M" });
        var early = await ProblemAsync(await _hv.Http.GetAsync($"/vms/{id}/snapshot"), HttpStatusCode.Conflict);
        Assert.That(early.GetProperty("detail").GetString(), Does.Contain("only a paused or stopped VM"));
        await _hv.ActAsync(id, "start");
        await ProblemAsync(await _hv.Http.GetAsync($"/vms/{id}/snapshot"), HttpStatusCode.Conflict);
        await _hv.WaitForAsync(id, v => v.GetProperty("serialBytes").GetInt64() > 0, "output");
        await _hv.ActAsync(id, "pause");

        var r = await _hv.Http.GetAsync($"/vms/{id}/snapshot");
        string text = await r.Content.ReadAsStringAsync();
        Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.OK), text);
        Assert.That(r.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/json"));
        var snapshot = JsonDocument.Parse(text).RootElement;
        Assert.That(snapshot.GetProperty("format").GetString(), Is.EqualTo("hv-snapshot"));
        Assert.That(snapshot.GetProperty("vendor").GetString(), Is.EqualTo("svm"));
        Assert.That(snapshot.GetProperty("memory").ValueKind, Is.EqualTo(JsonValueKind.Null));
        Assert.That(snapshot.TryGetProperty("checksum", out _), Is.True);
        Assert.That(snapshot.GetProperty("devices").EnumerateObject().Select(d => d.Name), Is.EqualTo(new[] { "com1", "debugExit" }));
        // Held: a second capture is the same snapshot.
        Assert.That(await _hv.Http.GetStringAsync($"/vms/{id}/snapshot"), Is.EqualTo(text));

        var withMemory = JsonDocument.Parse(await _hv.Http.GetStringAsync($"/vms/{id}/snapshot?memory=true")).RootElement;
        Assert.That(withMemory.GetProperty("memory").GetProperty("sha256").GetString(), Has.Length.EqualTo(64));
        Assert.That(withMemory.GetProperty("memory").GetProperty("file").ValueKind, Is.EqualTo(JsonValueKind.Null));
        await ProblemAsync(await _hv.Http.GetAsync($"/vms/{id}/snapshot?memory=maybe"), HttpStatusCode.BadRequest);
        await ProblemAsync(await _hv.Http.GetAsync($"/vms/{id}/snapshot?regs=all"), HttpStatusCode.BadRequest);

        await _hv.ActAsync(id, "stop");
        var stopped = await _hv.Http.GetAsync($"/vms/{id}/snapshot");
        Assert.That(stopped.StatusCode, Is.EqualTo(HttpStatusCode.OK), "a stopped VM can be captured too");
        Assert.That(await stopped.Content.ReadAsStringAsync(), Is.EqualTo(text), "stop changes nothing in the vCPU held at a slice boundary");
    }

    [Test]
    public async Task Snapshot_OfTheBareMachine_IsRefused()
    {
        string id = await _hv.CreateVmAsync(new { image = ServiceGuests.Hello, memory = "16M", vendor = "bare" });
        await _hv.ActAsync(id, "stop");
        var problem = await ProblemAsync(await _hv.Http.GetAsync($"/vms/{id}/snapshot"), HttpStatusCode.Conflict);
        Assert.That(problem.GetProperty("detail").GetString(), Does.Contain("bare machine"));
    }

    [Test]
    public async Task Snapshot_UnderVmx_HasTheVmcsSection()
    {
        string id = await _hv.CreateVmAsync(new { image = ServiceGuests.Hello, memory = "16M", vendor = "vmx" });
        Assert.That((await _hv.GetVmAsync(id)).GetProperty("hostCpu").GetString(), Is.EqualTo("diamond-rapids"));
        await _hv.ActAsync(id, "start");
        await _hv.WaitForAsync(id, v => v.GetProperty("state").GetString() == "stopped", "the guest to end");
        Assert.That(await _hv.Http.GetStringAsync($"/vms/{id}/serial"), Is.EqualTo("Hello from hv!\n"));
        var r = await _hv.Http.GetAsync($"/vms/{id}/snapshot");
        Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var snapshot = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;
        Assert.That(snapshot.GetProperty("vendor").GetString(), Is.EqualTo("vmx"));
        Assert.That(snapshot.GetProperty("hostCpu").GetString(), Is.EqualTo("diamond-rapids"));
        Assert.That(snapshot.TryGetProperty("vmcs", out _), Is.True);
        Assert.That(snapshot.TryGetProperty("vmcb", out _), Is.False);
    }

    [Test]
    public async Task TripleFault_FailsThatVmAndTheOthersGoOn()
    {
        string good = await _hv.CreateVmAsync(new { image = _guests.Forever, memory = "16M" });
        string bad = await _hv.CreateVmAsync(new { image = ServiceGuests.Triple, memory = "16M" });
        await _hv.ActAsync(good, "start");
        await _hv.ActAsync(bad, "start");
        var failed = await _hv.WaitForAsync(bad, v => v.GetProperty("state").GetString() == "failed", "the triple fault");
        Assert.That(failed.GetProperty("end").GetProperty("reason").GetString(), Is.EqualTo("shutdown"));
        Assert.That(failed.GetProperty("end").GetProperty("status").GetInt32(), Is.EqualTo(3));
        long printed = (await _hv.GetVmAsync(good)).GetProperty("serialBytes").GetInt64();
        await _hv.WaitForAsync(good, v => v.GetProperty("serialBytes").GetInt64() > printed, "the other VM to go on");
        Assert.That(_hv.ReadLog(), Does.Contain($"VM {bad} exit shutdown"));
    }
}
