using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Memory;
using Hypervisor.Host.Devices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypervisor.Host.Runtime;

/// <summary>
/// One guest: RAM at guest physical 0, a CPU, and the userspace devices on the I/O bus (COM1 and
/// isa-debug-exit). <see cref="Run"/> is the VMM's run loop (the KVM_RUN loop of a userspace VMM):
/// run the CPU, service the exit it returns, run again. Until the vendor modules land the CPU
/// runs the guest on the bare machine.
/// </summary>
public sealed partial class VirtualMachine : IDisposable
{
    /// <summary>Instructions per CPU run between host housekeeping (serial flush; later progress).</summary>
    public ulong SliceInstructions { get; init; } = 1UL << 24;

    private readonly ILogger _log;

    public VirtualMachine(ulong memorySize, Stream serialOutput, ILoggerFactory? logging = null)
    {
        logging ??= NullLoggerFactory.Instance;
        _log = logging.CreateLogger<VirtualMachine>();
        MemorySize = memorySize;
        Memory = new PhysicalMemory();
        try
        {
            Memory.AddSlot(0, 0, memorySize);
            Cpu = new X86Cpu(Memory);
        }
        catch
        {
            Memory.Dispose();
            throw;
        }
        Io = new IoBus(logging.CreateLogger<IoBus>());
        Com1 = new Uart16550(serialOutput);
        DebugExit = new DebugExit();
        Io.Register(Uart16550.Com1Base, Uart16550.PortCount, Com1);
        Io.Register(DebugExit.BasePort, DebugExit.PortCount, DebugExit);
    }

    public ulong MemorySize { get; }
    public PhysicalMemory Memory { get; }
    public X86Cpu Cpu { get; }
    public IoBus Io { get; }
    public Uart16550 Com1 { get; }
    public DebugExit DebugExit { get; }
    public RunStatistics Statistics { get; } = new();

    /// <summary>Runs until the guest stops, something fails, or <paramref name="maxInstructions"/> more have retired.</summary>
    public RunResult Run(ulong maxInstructions = ulong.MaxValue)
    {
        ulong start = Cpu.InstructionsRetired;
        Statistics.StartClock();
        try
        {
            return RunLoop(start, maxInstructions);
        }
        finally
        {
            Statistics.StopClock();
            Statistics.InstructionsRetired = Cpu.InstructionsRetired;
            Com1.Flush();
        }
    }

    private RunResult RunLoop(ulong start, ulong maxInstructions)
    {
        while (true)
        {
            ulong used = Cpu.InstructionsRetired - start;
            if (used >= maxInstructions)
                return new RunResult(RunEnd.InstructionLimit, Message: $"instruction limit of {maxInstructions} reached at {Where()}");
            var exit = Cpu.Run(Math.Min(SliceInstructions, maxInstructions - used));
            switch (exit.Reason)
            {
                case CpuExitReason.InstructionLimit:
                    Com1.Flush();
                    continue;
                case CpuExitReason.Io:
                    Statistics.CountExit(exit.Reason);
                    if (exit.IsWrite)
                    {
                        Io.Write(exit.Port, exit.Size, (uint)exit.Data);
                        if (DebugExit.Value is { } v)
                            return new RunResult(RunEnd.DebugExit, v);
                    }
                    else
                    {
                        Cpu.CompleteIoIn(Io.Read(exit.Port, exit.Size));
                    }
                    continue;
                case CpuExitReason.Mmio:
                    Statistics.CountExit(exit.Reason);
                    ServiceUnclaimedMmio(in exit);
                    continue;
                case CpuExitReason.Hlt:
                    Statistics.CountExit(exit.Reason);
                    if ((Cpu.GetRFlags() & RFlags.If) == 0)
                        return new RunResult(RunEnd.Halted);
                    return new RunResult(RunEnd.InternalError, Message:
                        $"the guest halted with interrupts enabled at {Where()}, but this machine has no interrupt source yet, so it could never resume");
                case CpuExitReason.Shutdown:
                    Statistics.CountExit(exit.Reason);
                    return new RunResult(RunEnd.Shutdown, Message: exit.Message ?? "triple fault");
                case CpuExitReason.Unimplemented:
                    Statistics.CountExit(exit.Reason);
                    return new RunResult(RunEnd.Unimplemented, Message: exit.Message ?? $"unimplemented instruction at {Where()}");
                case CpuExitReason.InternalError:
                    Statistics.CountExit(exit.Reason);
                    return new RunResult(RunEnd.InternalError, Message: exit.Message ?? $"internal error at {Where()}");
                case CpuExitReason.StopRequested:
                    return new RunResult(RunEnd.Stopped, Message: $"stopped at {Where()}");
                default:
                    return new RunResult(RunEnd.InternalError, Message: $"unexpected CPU exit {exit} at {Where()}");
            }
        }
    }

    /// <summary>No MMIO device exists yet: guest physical space beyond RAM reads as all ones and
    /// ignores writes, like an unclaimed bus cycle on a PC.</summary>
    private void ServiceUnclaimedMmio(in CpuExit exit)
    {
        if (exit.IsWrite)
        {
            LogUnclaimedMmioWrite(exit.Address, exit.Size, exit.Data);
            return;
        }
        LogUnclaimedMmioRead(exit.Address, exit.Size);
        Cpu.CompleteMmioRead(exit.Address, exit.Size >= 8 ? ulong.MaxValue : (1UL << (exit.Size * 8)) - 1);
    }

    private string Where() => $"cs:rip {Cpu.GetSegment(SegReg.Cs).Selector:x4}:{Cpu.Rip:x}";

    [LoggerMessage(Level = LogLevel.Debug, Message = "Unclaimed MMIO read at 0x{Address:x}, size {Size}: returns all ones")]
    private partial void LogUnclaimedMmioRead(ulong address, int size);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Unclaimed MMIO write at 0x{Address:x}, size {Size}, value 0x{Value:x}: ignored")]
    private partial void LogUnclaimedMmioWrite(ulong address, int size, ulong value);

    public void Dispose()
    {
        Cpu.Dispose();
        Memory.Dispose();
    }
}
