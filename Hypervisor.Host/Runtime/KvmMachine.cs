using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Memory;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86;
using Hypervisor.Core.X86.Cpuid;
using Hypervisor.Host.Loading;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Runtime;

/// <summary>
/// A VM under a hypervisor vendor module, set up the way a userspace VMM sets up KVM: register
/// the module on the host CPU model, KVM_CREATE_VM, one memory slot for RAM at 0,
/// KVM_CREATE_VCPU, KVM_SET_CPUID2 with the supported CPUID (edited by <c>--cpu</c>), and the
/// entry state through KVM_SET_SREGS / KVM_SET_REGS. <see cref="VirtualMachine.Run"/> is then the
/// KVM_RUN loop: every exit that reaches userspace (KVM_EXIT_*) is serviced as on the bare
/// machine. What differs between vendors (the ops, the processor's own failure report) is
/// left to <see cref="SvmMachine"/> and <see cref="VmxMachine"/>.
/// </summary>
public abstract partial class KvmMachine : VirtualMachine
{
    private protected KvmMachine(IX86Ops ops, ulong memorySize, Stream serialOutput, MachineOptions options, ILoggerFactory logging)
        : base(memorySize, serialOutput, logging)
    {
        VendorOps = ops;
        try
        {
            Kvm = KvmX86.Register(ops, options.HostCpu);
        }
        catch (KvmException e)
        {
            throw new MachineConfigurationException($"--vendor {ops.Name} on host CPU model {options.HostCpu.Name}: {e.Message}");
        }
        // Edit the CPUID before allocating anything: a refused edit is a usage error.
        GuestCpuid = options.ExactCpuid ?? (options.Cpu ?? CpuSpec.Host).Apply(Kvm.GetSupportedCpuid(), options.HostCpu.Name);
        Vm = Kvm.CreateVm(new VmOptions { InterceptCr3AndInvpcid = options.InterceptCr3AndInvpcid });
        try
        {
            Vm.SetUserMemoryRegion(0, 0, memorySize);
            Vcpu = Vm.CreateVcpu(0);
            Vcpu.SetCpuid(GuestCpuid);
            Vcpu.Cpu.Clock = options.Clock;
        }
        catch (CpuidException e)
        {
            Vm.Dispose();
            throw new MachineConfigurationException($"KVM_SET_CPUID2 refused the guest CPUID ({e.Errno}): {e.Message}");
        }
        catch
        {
            Vm.Dispose();
            throw;
        }
    }

    /// <summary>The vendor module, as the common layer sees it.</summary>
    public IX86Ops VendorOps { get; }
    public KvmX86 Kvm { get; }
    public Vm Vm { get; }
    public Vcpu Vcpu { get; }

    /// <summary>The table given to KVM_SET_CPUID2.</summary>
    public IReadOnlyList<CpuidEntry> GuestCpuid { get; }

    public override PhysicalMemory Memory => Vm.Memory;

    /// <summary>Instructions the guest retired on the processor. Instructions the hypervisor
    /// intercepts and emulates (CPUID, port I/O, HLT ...) do not retire in the guest.</summary>
    public override ulong InstructionsRetired => Vcpu.Cpu.InstructionsRetired;

    public override void Load(BootImage image)
    {
        image.WriteInto(Vm.Memory);
        image.SetEntryState(Vcpu);
    }

    /// <summary>The processor's own report of the last machine failure (what KVM_EXIT_INTERNAL_ERROR
    /// stands for): the vendor's Hardware part keeps it.</summary>
    private protected abstract CpuExit LastMachineFailure { get; }

    /// <summary>What failed entry is called in the vendor's terms ("VMRUN failed").</summary>
    private protected abstract string EntryFailure { get; }

    private protected override RunResult RunLoop(ulong start, ulong maxInstructions)
    {
        var vcpu = Vcpu;
        while (true)
        {
            // Here every exit so far has been serviced: the point where a snapshot is taken.
            if (StopAtExit is { } n && vcpu.Stats.TotalExits >= n)
                return new RunResult(RunEnd.SnapshotPoint, Message: $"stopped after exit {vcpu.Stats.TotalExits} to take a snapshot");
            ulong used = vcpu.Cpu.InstructionsRetired - start;
            if (used >= maxInstructions)
                return LimitReached(maxInstructions);
            // Slices end at multiples of SliceInstructions of the guest's own count, so the host's
            // housekeeping exits fall at the same instructions in every run, restored or not.
            ulong slice = SliceInstructions - vcpu.Cpu.InstructionsRetired % SliceInstructions;
            vcpu.InstructionBudget = Math.Min(slice, maxInstructions - used);
            var exit = vcpu.Run();
            switch (exit.Reason)
            {
                case KvmExitReason.Intr:
                    // The budget ran out (the host's timer, in KVM terms a signal): housekeeping, then on.
                    Housekeeping();
                    continue;
                case KvmExitReason.Io:
                    if (!exit.IoIn)
                    {
                        if (ServicePortWrite(exit.IoPort, exit.IoSize, (uint)exit.IoData) is { } end)
                            return end;
                    }
                    else
                    {
                        vcpu.CompleteIo(Io.Read(exit.IoPort, exit.IoSize));
                    }
                    continue;
                case KvmExitReason.Mmio:
                    ulong value = ServiceUnclaimedMmio(exit.MmioAddress, exit.MmioLength, exit.MmioIsWrite, exit.MmioData);
                    if (!exit.MmioIsWrite)
                        vcpu.CompleteMmio(value);
                    continue;
                case KvmExitReason.Hlt:
                    return Halted(vcpu.Rflags);
                case KvmExitReason.Shutdown:
                    return new RunResult(RunEnd.Shutdown, Message: exit.Message ?? "triple fault");
                case KvmExitReason.InternalError:
                {
                    // The processor's own report says what failed; an unimplemented instruction
                    // keeps its own kind (the status is 4 either way).
                    var kind = LastMachineFailure.Reason == CpuExitReason.Unimplemented ? RunEnd.Unimplemented : RunEnd.InternalError;
                    return new RunResult(kind, Message:
                        $"{exit.Message ?? $"internal error at {Where()}"} (KVM_EXIT_INTERNAL_ERROR, suberror {(int)exit.Suberror} {exit.Suberror})");
                }
                case KvmExitReason.FailEntry:
                    return new RunResult(RunEnd.InternalError, Message:
                        $"{exit.Message ?? EntryFailure} (KVM_EXIT_FAIL_ENTRY, hardware_entry_failure_reason 0x{exit.HardwareReason:x})");
                default:
                    return new RunResult(RunEnd.InternalError, Message: $"unexpected exit {exit} at {Where()}");
            }
        }
    }

    private protected override void CollectStatistics() => Statistics.SetVcpuExits(VendorOps.Name, Vcpu.Stats);

    private protected override string Where() => $"cs:rip {VendorOps.GetSegment(Vcpu, SegReg.Cs).Selector:x4}:{Vcpu.Rip:x}";

    public override void Dispose() => Vm.Dispose();
}
