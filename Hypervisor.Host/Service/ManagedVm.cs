using Hypervisor.Host.Cli;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Service;

/// <summary>
/// One VM of the host service, on its own thread. The thread runs the guest in budget slices of
/// <see cref="ServiceOptions.SliceInstructions"/> (each a <see cref="VirtualMachine.Run"/> that
/// ends at the budget, as <c>hv run --max-instructions</c> does) and looks at what the host asked
/// between two slices, so pause, resume and stop are cooperative and a paused guest resumes at
/// exactly the instruction where it stopped. A guest that ends by itself, well or badly, ends only
/// its own thread: the failure is recorded and logged, the other VMs go on.
/// </summary>
public sealed partial class ManagedVm : IDisposable
{
    /// <summary>How long an action waits for the VM's thread to reach a slice boundary.</summary>
    private static readonly TimeSpan ActionTimeout = TimeSpan.FromSeconds(10);

    private enum Request { Run, Pause, Stop }

    private readonly object _gate = new();
    private readonly VirtualMachine _machine;
    private readonly ulong _slice;
    private readonly ILogger _log;
    private Thread? _thread;
    private VmState _state = VmState.Created;
    private Request _request = Request.Run;
    private RunResult? _end;
    private bool _disposed;

    private ManagedVm(string id, VmSpec spec, VirtualMachine machine, SerialBuffer serial, ulong slice, ILogger log)
    {
        Id = id;
        Spec = spec;
        _machine = machine;
        Serial = serial;
        _slice = slice;
        _log = log;
    }

    public string Id { get; }
    public VmSpec Spec { get; }
    public SerialBuffer Serial { get; }

    /// <summary>The machine, for reading its statistics; only the VM's thread runs it.</summary>
    internal VirtualMachine Machine => _machine;

    public VmState State
    {
        get { lock (_gate) return _state; }
    }

    /// <summary>How the guest ended (Stopped or Failed), null before that.</summary>
    public RunResult? End
    {
        get { lock (_gate) return _end; }
    }

    /// <summary>Instructions the guest has retired (read live while it runs).</summary>
    public ulong Instructions => _machine.InstructionsRetired;

    /// <summary>Reads the image, checks it against the memory size, builds the machine and loads the
    /// image into it, as <c>hv run IMAGE [--append ...]</c> does before running. Any problem is a
    /// <see cref="VmRequestException"/> naming the field at fault, and nothing is left behind.</summary>
    public static ManagedVm Create(string id, VmSpec spec, ServiceOptions options, ILoggerFactory logging)
    {
        byte[] file = ReadImage(spec.Image);
        BootImage image;
        try
        {
            // As hv run loads it: a multiboot kernel (its command line the image's path, then
            // append), or an ELF64 kernel started in 64-bit mode.
            image = BootImageLoader.Load(file, spec.Memory, new LoadOptions { Name = spec.Image, Append = spec.Append });
        }
        catch (ImageException e)
        {
            throw VmRequestException.For(VmSpec.ImageField, $"{spec.Image}: {e.Message}");
        }

        var serial = new SerialBuffer(options.SerialBufferBytes);
        VirtualMachine machine;
        try
        {
            machine = VirtualMachine.Create(spec.Memory, serial, spec.MachineOptions, logging);
        }
        catch (MachineConfigurationException e)
        {
            throw VmRequestException.For(spec.Cpu != null ? VmSpec.CpuField : VmSpec.VendorField, e.Message);
        }
        catch (OutOfMemoryException)
        {
            throw VmRequestException.For(VmSpec.MemoryField, $"cannot allocate {new MemorySize(spec.Memory)} of guest memory");
        }
        try
        {
            machine.Load(image);
        }
        catch
        {
            machine.Dispose();
            throw;
        }
        var vm = new ManagedVm(id, spec, machine, serial, options.SliceInstructions, logging.CreateLogger<ManagedVm>());
        vm.LogCreated(id, spec.Image, VendorKinds.Name(spec.Vendor), new MemorySize(spec.Memory).ToString());
        return vm;
    }

    private static byte[] ReadImage(string path)
    {
        try
        {
            long length = new FileInfo(path).Length;
            if (length > Array.MaxLength)
                throw VmRequestException.For(VmSpec.ImageField, $"{path}: the file is {length} bytes, more than hv can load ({Array.MaxLength})");
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw VmRequestException.For(VmSpec.ImageField, $"{path}: no such file");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw VmRequestException.For(VmSpec.ImageField, $"{path}: cannot read: {e.Message}");
        }
    }

    /// <summary>Carries out <paramref name="action"/>; false with the reason when the VM's state
    /// does not allow it (HTTP 409). Pause and stop return once the guest is held or ended.</summary>
    public bool TryAct(VmAction action, out string conflict)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var from = _state;
            bool allowed = action switch
            {
                VmAction.Start => from == VmState.Created,
                VmAction.Pause => from == VmState.Running,
                VmAction.Resume => from == VmState.Paused,
                _ => !VmStates.IsFinal(from),
            };
            if (!allowed)
            {
                conflict = $"cannot {VmStates.Name(action)} VM {Id}: it is {VmStates.Name(from)}" + ActionHint(from);
                return false;
            }
            switch (action)
            {
                case VmAction.Start:
                    _state = VmState.Running;
                    _request = Request.Run;
                    _thread = new Thread(RunThread) { Name = $"vm {Id}", IsBackground = true };
                    _thread.Start();
                    LogStarted(Id);
                    break;
                case VmAction.Resume:
                    _state = VmState.Running;
                    _request = Request.Run;
                    Monitor.PulseAll(_gate);
                    LogResumed(Id);
                    break;
                case VmAction.Pause:
                    _request = Request.Pause;
                    if (!WaitWhile(() => _state == VmState.Running) || _state != VmState.Paused)
                    {
                        conflict = _state == VmState.Running
                            ? $"VM {Id} did not reach a slice boundary within {ActionTimeout.TotalSeconds} s"
                            : $"VM {Id} {VmStates.Name(_state)} before it could be paused ({_end})";
                        return false;
                    }
                    break;
                case VmAction.Stop when from == VmState.Created:
                    _state = VmState.Stopped;
                    _end = new RunResult(RunEnd.Stopped, Message: "stopped by the host before it started");
                    LogStoppedByHost(Id, Instructions);
                    break;
                case VmAction.Stop:
                    _request = Request.Stop;
                    Monitor.PulseAll(_gate);
                    if (!WaitWhile(() => !VmStates.IsFinal(_state)))
                    {
                        conflict = $"VM {Id} did not reach a slice boundary within {ActionTimeout.TotalSeconds} s";
                        return false;
                    }
                    break;
            }
            conflict = "";
            return true;
        }
    }

    /// <summary>Runs <paramref name="read"/> on the machine while the guest is held: paused or
    /// stopped, and kept so until it returns (no action can run meanwhile). False with the reason in
    /// other states.</summary>
    public bool TryInspect<T>(Func<VirtualMachine, T> read, out T result, out string conflict)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_state is not (VmState.Paused or VmState.Stopped))
            {
                result = default!;
                conflict = $"VM {Id} is {VmStates.Name(_state)}: only a paused or stopped VM can be inspected" + ActionHint(_state);
                return false;
            }
            result = read(_machine);
            conflict = "";
            return true;
        }
    }

    private static string ActionHint(VmState state) => state switch
    {
        VmState.Created => " (start it first)",
        VmState.Running => " (pause or stop it)",
        VmState.Paused => " (resume or stop it)",
        _ => " (its run is over; delete it)",
    };

    /// <summary>Waits on the gate (held) while <paramref name="condition"/> holds; false on timeout.</summary>
    private bool WaitWhile(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + ActionTimeout;
        while (condition())
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
                return false;
            Monitor.Wait(_gate, left);
        }
        return true;
    }

    private void RunThread()
    {
        try
        {
            while (true)
            {
                lock (_gate)
                {
                    while (_request == Request.Pause)
                    {
                        if (_state != VmState.Paused)
                        {
                            _state = VmState.Paused;
                            Monitor.PulseAll(_gate);
                            LogPaused(Id, Instructions);
                        }
                        Monitor.Wait(_gate);
                    }
                    if (_request == Request.Stop)
                    {
                        LogStoppedByHost(Id, Instructions);
                        Finish(new RunResult(RunEnd.Stopped, Message: "stopped by the host"), VmState.Stopped);
                        return;
                    }
                }
                var result = _machine.Run(_slice);
                if (result.End == RunEnd.InstructionLimit)
                    continue;
                bool failed = result.End is not (RunEnd.Halted or RunEnd.DebugExit);
                // Logged before the state shows it, so whoever sees the end finds it in the log.
                if (failed)
                    LogFailed(Id, VmEndStatus.Of(result).Reason, result.Message ?? "", Instructions);
                else
                    LogExit(Id, VmEndStatus.Of(result).Reason, ExitCodes.For(result), Instructions);
                lock (_gate)
                    Finish(result, failed ? VmState.Failed : VmState.Stopped);
                return;
            }
        }
        catch (Exception e)
        {
            // A bug in the machine must end this VM only, never the service.
            LogCrashed(e, Id);
            lock (_gate)
                Finish(new RunResult(RunEnd.InternalError, Message: $"internal error: {e.Message}"), VmState.Failed);
        }
    }

    /// <summary>Records the end (gate held) and wakes anyone waiting for it.</summary>
    private void Finish(RunResult end, VmState state)
    {
        _end = end;
        _state = state;
        Monitor.PulseAll(_gate);
    }

    /// <summary>Ends the guest's thread if it still runs, then frees the machine.</summary>
    public void Dispose()
    {
        Thread? thread;
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
            thread = _thread;
            if (thread != null && !VmStates.IsFinal(_state))
            {
                _request = Request.Stop;
                Monitor.PulseAll(_gate);
            }
        }
        // The machine may be freed only once its thread no longer touches it.
        if (thread != null && !thread.Join(ActionTimeout))
        {
            LogLeaked(Id);
            return;
        }
        _machine.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "VM {VmId} created from {Image} ({Vendor}, {Memory} of memory)")]
    private partial void LogCreated(string vmId, string image, string vendor, string memory);

    [LoggerMessage(Level = LogLevel.Information, Message = "VM {VmId} started")]
    private partial void LogStarted(string vmId);

    [LoggerMessage(Level = LogLevel.Information, Message = "VM {VmId} paused after {Instructions} instructions")]
    private partial void LogPaused(string vmId, ulong instructions);

    [LoggerMessage(Level = LogLevel.Information, Message = "VM {VmId} resumed")]
    private partial void LogResumed(string vmId);

    [LoggerMessage(Level = LogLevel.Information, Message = "VM {VmId} stopped by the host after {Instructions} instructions")]
    private partial void LogStoppedByHost(string vmId, ulong instructions);

    [LoggerMessage(Level = LogLevel.Information, Message = "VM {VmId} exit {Reason} (status {Status}) after {Instructions} instructions")]
    private partial void LogExit(string vmId, string reason, int status, ulong instructions);

    [LoggerMessage(Level = LogLevel.Error, Message = "VM {VmId} exit {Reason}: {Detail} after {Instructions} instructions")]
    private partial void LogFailed(string vmId, string reason, string detail, ulong instructions);

    [LoggerMessage(Level = LogLevel.Error, Message = "VM {VmId} failed with an internal error; the other VMs go on")]
    private partial void LogCrashed(Exception e, string vmId);

    [LoggerMessage(Level = LogLevel.Error, Message = "VM {VmId}: its thread did not end; its memory is not freed")]
    private partial void LogLeaked(string vmId);
}
