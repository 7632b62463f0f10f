using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Memory;
using Hypervisor.Core.X86;
using Hypervisor.Core.X86.Cpuid;
using Hypervisor.Host.Loading;
using Hypervisor.Svm;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Runtime;

/// <summary>
/// A VM under the SVM vendor module, set up the way a userspace VMM sets up KVM: register the
/// module on the host CPU model, KVM_CREATE_VM, one memory slot for RAM at 0, KVM_CREATE_VCPU,
/// KVM_SET_CPUID2 with the supported CPUID (edited by <c>--cpu</c>), and the entry state through
/// KVM_SET_SREGS / KVM_SET_REGS. <see cref="VirtualMachine.Run"/> is then the KVM_RUN loop: every
/// exit that reaches userspace (KVM_EXIT_*) is serviced as on the bare machine.
/// </summary>
public sealed class SvmMachine : VirtualMachine
{
    internal SvmMachine(ulong memorySize, Stream serialOutput, MachineOptions options, ILoggerFactory logging)
        : base(memorySize, serialOutput, logging)
    {
        Ops = new SvmOps();
        try
        {
            Kvm = KvmX86.Register(Ops, options.HostCpu);
        }
        catch (KvmException e)
        {
            throw new MachineConfigurationException($"--vendor svm on host CPU model {options.HostCpu.Name}: {e.Message}");
        }
        // Edit the CPUID before allocating anything: a refused edit is a usage error.
        GuestCpuid = (options.Cpu ?? CpuSpec.Host).Apply(Kvm.GetSupportedCpuid(), options.HostCpu.Name);
        Vm = Kvm.CreateVm(new VmOptions { InterceptCr3AndInvpcid = options.InterceptCr3AndInvpcid });
        try
        {
            Vm.SetUserMemoryRegion(0, 0, memorySize);
            Vcpu = Vm.CreateVcpu(0);
            Vcpu.SetCpuid(GuestCpuid);
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

    public SvmOps Ops { get; }
    public KvmX86 Kvm { get; }
    public Vm Vm { get; }
    public Vcpu Vcpu { get; }

    /// <summary>The table given to KVM_SET_CPUID2.</summary>
    public IReadOnlyList<Core.Machine.Models.CpuidEntry> GuestCpuid { get; }

    public override PhysicalMemory Memory => Vm.Memory;

    /// <summary>Instructions the guest retired on the processor. Instructions the hypervisor
    /// intercepts and emulates (CPUID, port I/O, HLT ...) do not retire in the guest.</summary>
    public override ulong InstructionsRetired => Vcpu.Cpu.InstructionsRetired;

    public override void Load(BootImage image)
    {
        image.WriteInto(Vm.Memory);
        image.SetEntryState(Vcpu);
    }

    private protected override RunResult RunLoop(ulong start, ulong maxInstructions)
    {
        var vcpu = Vcpu;
        while (true)
        {
            ulong used = vcpu.Cpu.InstructionsRetired - start;
            if (used >= maxInstructions)
                return LimitReached(maxInstructions);
            vcpu.InstructionBudget = Math.Min(SliceInstructions, maxInstructions - used);
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
                    var failure = SvmOps.ToSvm(vcpu).Processor.LastMachineFailure;
                    var kind = failure.Reason == CpuExitReason.Unimplemented ? RunEnd.Unimplemented : RunEnd.InternalError;
                    return new RunResult(kind, Message:
                        $"{exit.Message ?? $"internal error at {Where()}"} (KVM_EXIT_INTERNAL_ERROR, suberror {(int)exit.Suberror} {exit.Suberror})");
                }
                case KvmExitReason.FailEntry:
                    return new RunResult(RunEnd.InternalError, Message:
                        $"{exit.Message ?? "VMRUN failed"} (KVM_EXIT_FAIL_ENTRY, hardware_entry_failure_reason 0x{exit.HardwareReason:x})");
                default:
                    return new RunResult(RunEnd.InternalError, Message: $"unexpected exit {exit} at {Where()}");
            }
        }
    }

    private protected override void CollectStatistics() => Statistics.SetVcpuExits(Ops.Name, Vcpu.Stats);

    private protected override string Where() => $"cs:rip {Ops.GetSegment(Vcpu, SegReg.Cs).Selector:x4}:{Vcpu.Rip:x}";

    public override void Dispose() => Vm.Dispose();
}
