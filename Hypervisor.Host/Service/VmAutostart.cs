using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypervisor.Host.Service;

/// <summary>
/// Starts the VMs declared in configuration (<c>Hv:Vms</c>) with the service, and at shutdown
/// (SIGTERM, Ctrl-C) pauses every running VM and logs where each one is. A declared VM that cannot
/// be created is logged and skipped: it does not keep the others from starting.
/// </summary>
internal sealed partial class VmAutostart(VmRegistry registry, IOptions<ServiceOptions> options, ILogger<VmAutostart> log) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var declared = options.Value.Vms;
        for (int i = 0; i < declared.Count; i++)
        {
            try
            {
                var vm = registry.Create(declared[i].ToSpec());
                vm.TryAct(VmAction.Start, out _);
            }
            catch (VmRequestException e)
            {
                LogNotCreated(i, e.Message);
            }
        }
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        LogStopping();
        registry.PauseAll();
        return Task.CompletedTask;
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "VM declared at Hv:Vms:{Index} not created: {Reason}")]
    private partial void LogNotCreated(int index, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Service stopping: pausing the running VMs")]
    private partial void LogStopping();
}
