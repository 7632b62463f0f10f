using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Hypervisor.Host.Service;

/// <summary>
/// The control API, modelled on Firecracker's: HTTP+JSON on the service's Unix socket. The routes
/// are a contract scripts depend on; change them only additively. Every error is an RFC 7807
/// problem body: 400 for a body that is not JSON, has unknown fields or bad values; 404 for an
/// unknown VM; 409 for an action the VM's state does not allow. A refused request changes nothing.
/// </summary>
public static class ControlApi
{
    public static void Map(IEndpointRouteBuilder app)
    {
        var vms = app.MapGroup("/vms");
        vms.MapPost("", CreateVm);
        vms.MapGet("", (VmRegistry registry) => Results.Ok(registry.List().Select(VmStatus.Of)));
        vms.MapGet("/{id}", (string id, VmRegistry registry) =>
            registry.Find(id) is { } vm ? Results.Ok(VmStatus.Of(vm)) : NoSuchVm(id));
        vms.MapDelete("/{id}", (string id, VmRegistry registry) =>
            registry.Remove(id) ? Results.NoContent() : NoSuchVm(id));
        vms.MapPut("/{id}/actions", Act);
        vms.MapGet("/{id}/serial", (string id, VmRegistry registry) =>
            registry.Find(id) is { } vm ? Results.Bytes(vm.Serial.ToArray(), "text/plain; charset=utf-8") : NoSuchVm(id));
        vms.MapGet("/{id}/snapshot", Snapshot);
    }

    /// <summary><c>POST /vms</c>: <c>{"image", "vendor", "memory", "cpu", "append"}</c> → 201 <c>{"id"}</c>.
    /// The VM is created with its image loaded; <c>PUT /vms/{id}/actions {"action": "start"}</c> runs it.</summary>
    private static async Task<IResult> CreateVm(HttpRequest request, VmRegistry registry)
    {
        var body = await ReadJson(request);
        if (body.Problem != null)
            return body.Problem;
        try
        {
            var vm = registry.Create(VmSpec.FromJson(body.Value));
            return Results.Created($"/vms/{vm.Id}", new { id = vm.Id });
        }
        catch (VmRequestException e)
        {
            return BadRequest(e);
        }
    }

    /// <summary><c>PUT /vms/{id}/actions</c>: <c>{"action": "start" | "pause" | "resume" | "stop"}</c> → 204.</summary>
    private static async Task<IResult> Act(string id, HttpRequest request, VmRegistry registry)
    {
        if (registry.Find(id) is not { } vm)
            return NoSuchVm(id);
        var body = await ReadJson(request);
        if (body.Problem != null)
            return body.Problem;
        VmAction action;
        try
        {
            action = ParseAction(body.Value);
        }
        catch (VmRequestException e)
        {
            return BadRequest(e);
        }
        try
        {
            return vm.TryAct(action, out string conflict)
                ? Results.NoContent()
                : Results.Problem(title: "Conflict", detail: conflict, statusCode: StatusCodes.Status409Conflict);
        }
        catch (ObjectDisposedException)
        {
            return NoSuchVm(id); // deleted while the request was on its way
        }
    }

    private static VmAction ParseAction(JsonElement body)
    {
        var errors = new RequestErrors();
        string actions = string.Join(", ", VmStates.ActionNames);
        VmAction? action = null;
        if (body.ValueKind != JsonValueKind.Object)
        {
            errors.Add("", $"the body must be a JSON object {{\"action\": ...}} with one of {actions}");
            throw errors.ToException();
        }
        foreach (var p in body.EnumerateObject())
        {
            if (p.Name != "action")
                errors.Add(p.Name, "unknown field; an action request has only: action");
            else if (action != null)
                errors.Add("action", "given twice");
            else if (p.Value.ValueKind != JsonValueKind.String || VmStates.ParseAction(p.Value.GetString()!) is not { } a)
                errors.Add("action", $"must be one of {actions}");
            else
                action = a;
        }
        if (action == null && !errors.Any)
            errors.Add("action", $"required: one of {actions}");
        errors.ThrowIfAny();
        return action!.Value;
    }

    /// <summary><c>GET /vms/{id}/snapshot[?memory=true]</c>: the vCPU snapshot of a paused or stopped
    /// VM as JSON (<see cref="VmSnapshots"/>); 409 in other states or when it cannot be captured.</summary>
    private static IResult Snapshot(string id, HttpRequest request, VmRegistry registry)
    {
        if (registry.Find(id) is not { } vm)
            return NoSuchVm(id);
        bool memory = false;
        foreach (var (key, value) in request.Query)
        {
            if (key != "memory")
                return BadRequest(VmRequestException.For(key, "unknown query parameter; a snapshot takes only: memory"));
            if (!bool.TryParse(value.ToString(), out memory))
                return BadRequest(VmRequestException.For("memory", $"'{value}' is not true or false"));
        }
        try
        {
            bool held = vm.TryInspect(
                m => VmSnapshots.CannotCapture(m) is { } why ? (Json: null, Why: why) : (Json: VmSnapshots.Capture(m, memory), Why: (string?)null),
                out var snapshot,
                out string conflict);
            if (!held || snapshot.Why != null)
            {
                return Results.Problem(title: "Conflict", statusCode: StatusCodes.Status409Conflict,
                    detail: held ? $"cannot snapshot VM {id}: {snapshot.Why}" : conflict);
            }
            return Results.Text(snapshot.Json, "application/json; charset=utf-8");
        }
        catch (ObjectDisposedException)
        {
            return NoSuchVm(id);
        }
    }

    private static IResult NoSuchVm(string id) =>
        Results.Problem(title: "Not Found", detail: $"no VM with id '{id}'", statusCode: StatusCodes.Status404NotFound);

    private static IResult BadRequest(VmRequestException e) =>
        Results.ValidationProblem(
            e.Errors.ToDictionary(kv => kv.Key, kv => kv.Value),
            detail: e.Message,
            title: "Bad Request");

    private readonly record struct JsonBody(JsonElement Value, IResult? Problem);

    private static async Task<JsonBody> ReadJson(HttpRequest request)
    {
        try
        {
            using var doc = await JsonDocument.ParseAsync(request.Body, cancellationToken: request.HttpContext.RequestAborted);
            return new JsonBody(doc.RootElement.Clone(), null);
        }
        catch (JsonException e)
        {
            return new JsonBody(default, Results.Problem(
                title: "Bad Request",
                detail: $"the body is not valid JSON: {e.Message}",
                statusCode: StatusCodes.Status400BadRequest));
        }
    }
}
