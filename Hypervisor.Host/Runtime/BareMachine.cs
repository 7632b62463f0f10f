using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Memory;
using Hypervisor.Host.Loading;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Runtime;

/// <summary>
/// The bare machine (<c>--vendor bare</c>): the software CPU runs the guest itself, with no
/// hypervisor between them, and its exits (port I/O, MMIO, HLT, shutdown) come straight to the
/// host. Kept to compare against a VM and to debug the CPU without the vendor module in the way.
/// The guest sees the host model's own CPUID.
/// </summary>
public sealed class BareMachine : VirtualMachine
{
    private readonly PhysicalMemory _memory;

    internal BareMachine(ulong memorySize, Stream serialOutput, MachineOptions options, ILoggerFactory logging)
        : base(memorySize, serialOutput, logging)
    {
        if (options.Cpu != null || options.InterceptCr3AndInvpcid)
            throw new MachineConfigurationException(
                "--cpu and --intercept configure the hypervisor's guest; --vendor bare runs the image on the software CPU itself, with the host model's own CPUID");
        _memory = new PhysicalMemory();
        try
        {
            _memory.AddSlot(0, 0, memorySize);
            Cpu = new X86Cpu(_memory, options.HostCpu);
        }
        catch
        {
            _memory.Dispose();
            throw;
        }
    }

    public override PhysicalMemory Memory => _memory;
    public X86Cpu Cpu { get; }
    public override ulong InstructionsRetired => Cpu.InstructionsRetired;

    public override void Load(BootImage image)
    {
        image.WriteInto(_memory);
        image.SetEntryState(Cpu);
    }

    private protected override RunResult RunLoop(ulong start, ulong maxInstructions)
    {
        while (true)
        {
            ulong used = Cpu.InstructionsRetired - start;
            if (used >= maxInstructions)
                return LimitReached(maxInstructions);
            var exit = Cpu.Run(Math.Min(SliceInstructions, maxInstructions - used));
            switch (exit.Reason)
            {
                case CpuExitReason.InstructionLimit:
                    Housekeeping();
                    // The processor clears its own stop flag when a run starts: a request made
                    // just then is caught here, one slice later.
                    if (TakeStopRequest())
                        return StoppedByHost();
                    continue;
                case CpuExitReason.Io:
                    Statistics.CountExit(exit.Reason);
                    if (exit.IsWrite)
                    {
                        if (ServicePortWrite(exit.Port, exit.Size, (uint)exit.Data) is { } end)
                            return end;
                    }
                    else
                    {
                        Cpu.CompleteIoIn(Io.Read(exit.Port, exit.Size));
                    }
                    continue;
                case CpuExitReason.Mmio:
                    Statistics.CountExit(exit.Reason);
                    ulong value = ServiceUnclaimedMmio(exit.Address, exit.Size, exit.IsWrite, exit.Data);
                    if (!exit.IsWrite)
                        Cpu.CompleteMmioRead(exit.Address, value);
                    continue;
                case CpuExitReason.Hlt:
                    Statistics.CountExit(exit.Reason);
                    return Halted(Cpu.GetRFlags());
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
                    TakeStopRequest();
                    return StoppedByHost();
                default:
                    return new RunResult(RunEnd.InternalError, Message: $"unexpected CPU exit {exit} at {Where()}");
            }
        }
    }

    private protected override void RequestProcessorStop() => Cpu.RequestStop();

    private protected override string Where() => $"cs:rip {Cpu.GetSegment(SegReg.Cs).Selector:x4}:{Cpu.Rip:x}";

    public override void Dispose()
    {
        Cpu.Dispose();
        _memory.Dispose();
    }
}
