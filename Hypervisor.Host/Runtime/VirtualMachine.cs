using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Memory;
using Hypervisor.Host.Devices;
using Hypervisor.Host.Loading;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Host.Runtime;

/// <summary>
/// One guest: RAM at guest physical 0, one processor, and the userspace devices on the I/O bus
/// (COM1 and isa-debug-exit). <see cref="Run"/> is the VMM's run loop (the KVM_RUN loop of a
/// userspace VMM): run the guest, service the exit it returns, run again. Two kinds exist:
/// <see cref="KvmMachine"/>, a VM under a vendor module (<see cref="SvmMachine"/>, what <c>hv run</c> uses by default, or
/// <see cref="VmxMachine"/>), and
/// <see cref="BareMachine"/>, the software CPU without a hypervisor. Both service exits the same
/// way, so a guest sees the same devices on either.
/// </summary>
public abstract partial class VirtualMachine : IDisposable
{
    /// <summary>Instructions per run of the processor between host housekeeping (serial flush, progress).</summary>
    public ulong SliceInstructions { get; set; } = 1UL << 24;

    /// <summary>Called on the run loop's thread at the end of every slice, after the serial flush
    /// (the progress display reads <see cref="InstructionsRetired"/> here).</summary>
    public Action<VirtualMachine>? SliceEnded { get; set; }

    private protected readonly ILogger _log;

    private protected VirtualMachine(ulong memorySize, Stream serialOutput, ILoggerFactory logging)
    {
        _log = logging.CreateLogger<VirtualMachine>();
        MemorySize = memorySize;
        Io = new IoBus(logging.CreateLogger<IoBus>());
        Com1 = new Uart16550(serialOutput);
        DebugExit = new DebugExit();
        Io.Register(Uart16550.Com1Base, Uart16550.PortCount, Com1);
        Io.Register(DebugExit.BasePort, DebugExit.PortCount, DebugExit);
    }

    /// <summary>Builds the machine <paramref name="options"/> describe (default: a VM under SVM on
    /// the default host CPU model; <see cref="MachineOptions.ForVendor"/> gives a vendor its default model).</summary>
    /// <exception cref="MachineConfigurationException">the options ask for something that cannot be built.</exception>
    /// <exception cref="OutOfMemoryException">guest memory cannot be allocated.</exception>
    public static VirtualMachine Create(ulong memorySize, Stream serialOutput, MachineOptions? options = null, ILoggerFactory? logging = null)
    {
        options ??= new MachineOptions();
        logging ??= NullLoggerFactory.Instance;
        return options.Vendor switch
        {
            VendorKind.Svm => new SvmMachine(memorySize, serialOutput, options, logging),
            VendorKind.Vmx => new VmxMachine(memorySize, serialOutput, options, logging),
            _ => new BareMachine(memorySize, serialOutput, options, logging),
        };
    }

    public ulong MemorySize { get; }
    public abstract PhysicalMemory Memory { get; }
    public IoBus Io { get; }
    public Uart16550 Com1 { get; }
    public DebugExit DebugExit { get; }
    public RunStatistics Statistics { get; } = new();

    /// <summary>Guest instructions the processor has retired so far.</summary>
    public abstract ulong InstructionsRetired { get; }

    /// <summary>Writes <paramref name="image"/> into guest memory and sets the processor's entry state.</summary>
    public abstract void Load(BootImage image);

    /// <summary>Runs until the guest stops, something fails, or <paramref name="maxInstructions"/> more have retired.</summary>
    public RunResult Run(ulong maxInstructions = ulong.MaxValue)
    {
        ulong start = InstructionsRetired;
        Statistics.StartClock();
        try
        {
            return RunLoop(start, maxInstructions);
        }
        finally
        {
            Statistics.StopClock();
            Statistics.InstructionsRetired = InstructionsRetired;
            CollectStatistics();
            Com1.Flush();
        }
    }

    private protected abstract RunResult RunLoop(ulong start, ulong maxInstructions);

    /// <summary>Copies exit counters kept elsewhere (the vCPU's) into <see cref="Statistics"/>.</summary>
    private protected virtual void CollectStatistics()
    {
    }

    /// <summary>Where the guest is, for messages: "cs:rip 0008:100020".</summary>
    private protected abstract string Where();

    /// <summary>The host's work between slices: flush the serial output, report progress.</summary>
    private protected void Housekeeping()
    {
        Com1.Flush();
        SliceEnded?.Invoke(this);
    }

    private protected RunResult LimitReached(ulong maxInstructions) =>
        new(RunEnd.InstructionLimit, Message: $"instruction limit of {maxInstructions} reached at {Where()}");

    /// <summary>A port write to the I/O bus; the debug-exit result when it ended the run.</summary>
    private protected RunResult? ServicePortWrite(ushort port, int size, uint data)
    {
        Io.Write(port, size, data);
        return DebugExit.Value is { } v ? new RunResult(RunEnd.DebugExit, v) : null;
    }

    /// <summary>HLT: the end of the run when interrupts are off; with IF = 1 nothing could ever wake
    /// the guest (no interrupt source exists yet), which is reported rather than waited for.</summary>
    private protected RunResult Halted(ulong rflags) =>
        (rflags & RFlags.If) == 0
            ? new RunResult(RunEnd.Halted)
            : new RunResult(RunEnd.InternalError, Message:
                $"the guest halted with interrupts enabled at {Where()}, but this machine has no interrupt source yet, so it could never resume");

    /// <summary>No MMIO device exists yet: guest physical space beyond RAM reads as all ones and
    /// ignores writes, like an unclaimed bus cycle on a PC. Returns the value a read completes with.</summary>
    private protected ulong ServiceUnclaimedMmio(ulong address, int size, bool isWrite, ulong data)
    {
        if (isWrite)
        {
            LogUnclaimedMmioWrite(address, size, data);
            return 0;
        }
        LogUnclaimedMmioRead(address, size);
        return size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Unclaimed MMIO read at 0x{Address:x}, size {Size}: returns all ones")]
    private partial void LogUnclaimedMmioRead(ulong address, int size);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Unclaimed MMIO write at 0x{Address:x}, size {Size}, value 0x{Value:x}: ignored")]
    private partial void LogUnclaimedMmioWrite(ulong address, int size, ulong value);

    public abstract void Dispose();
}
