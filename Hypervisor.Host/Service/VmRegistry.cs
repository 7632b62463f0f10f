using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypervisor.Host.Service;

/// <summary>The service's VMs by id. Ids are "vm-1", "vm-2" ... in creation order, never reused
/// while the service runs.</summary>
public sealed partial class VmRegistry : IDisposable
{
    private readonly ConcurrentDictionary<string, ManagedVm> _vms = new(StringComparer.Ordinal);
    private readonly ServiceOptions _options;
    private readonly ILoggerFactory _logging;
    private readonly ILogger _log;
    private int _lastId;

    public VmRegistry(IOptions<ServiceOptions> options, ILoggerFactory logging)
    {
        _options = options.Value;
        _logging = logging;
        _log = logging.CreateLogger<VmRegistry>();
    }

    /// <summary>Builds and loads a VM; it is listed only once that succeeded.</summary>
    /// <exception cref="VmRequestException">the spec cannot be carried out.</exception>
    public ManagedVm Create(VmSpec spec)
    {
        string id = $"vm-{Interlocked.Increment(ref _lastId)}";
        var vm = ManagedVm.Create(id, spec, _options, _logging);
        _vms[id] = vm;
        return vm;
    }

    public ManagedVm? Find(string id) => _vms.GetValueOrDefault(id);

    /// <summary>Every VM, in creation order.</summary>
    public IReadOnlyList<ManagedVm> List() =>
        _vms.Values.OrderBy(v => int.Parse(v.Id.AsSpan(3), System.Globalization.CultureInfo.InvariantCulture)).ToList();

    /// <summary>Stops the VM if it runs, frees it and forgets it; false when no such VM exists.</summary>
    public bool Remove(string id)
    {
        if (!_vms.TryRemove(id, out var vm))
            return false;
        vm.Dispose();
        LogDeleted(id);
        return true;
    }

    /// <summary>Shutdown: pauses every running VM and logs where each one is.</summary>
    public void PauseAll()
    {
        foreach (var vm in List())
        {
            if (vm.State == VmState.Running)
                vm.TryAct(VmAction.Pause, out _);
            LogFinalState(vm.Id, VmStates.Name(vm.State), vm.Instructions, vm.End?.ToString() ?? "-");
        }
    }

    public void Dispose()
    {
        foreach (var vm in _vms.Values)
            vm.Dispose();
        _vms.Clear();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "VM {VmId} deleted")]
    private partial void LogDeleted(string vmId);

    [LoggerMessage(Level = LogLevel.Information, Message = "VM {VmId} final state {State} after {Instructions} instructions (end: {End})")]
    private partial void LogFinalState(string vmId, string state, ulong instructions, string end);
}
