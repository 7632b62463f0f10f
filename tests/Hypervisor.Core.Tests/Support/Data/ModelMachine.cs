using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Memory;
using Hypervisor.Core.Machine.Models;
using Iced.Intel;

namespace Hypervisor.Core.Tests.Support.Data;

/// <summary>
/// A 64-bit <see cref="GuestMachine"/> on a CPU model the test chooses, with the exception trap
/// installed, for instructions whose behaviour depends on a CPUID feature of the hardware (TZCNT
/// without BMI1 is BSF, for instance).
/// </summary>
public sealed class ModelMachine : IDisposable
{
    private readonly GuestMachine _machine;

    /// <summary>A 64-bit <see cref="GuestMachine"/> on <paramref name="model"/>, with the exception trap installed.</summary>
    public ModelMachine(HostCpuModel model)
    {
        _machine = new GuestMachine(GuestMode.Long64, model);
        ExceptionTrap.Install(Memory, Cpu);
    }

    public PhysicalMemory Memory => _machine.Memory;
    public X86Cpu Cpu => _machine.Cpu;

    /// <summary>The default model with one CPUID feature bit forced on or off.</summary>
    public static HostCpuModel DefaultWith(uint leaf, char register, int bit, bool present) =>
        HostCpuModel.Default.WithFeature(leaf, register, bit, present);

    /// <summary>Assembles at <see cref="GuestMachine.CodeBase"/>, appends HLT, runs until an exit.</summary>
    public CpuExit Run(Action<Assembler> build)
    {
        var a = _machine.NewAssembler();
        build(a);
        a.hlt();
        _machine.Load(a);
        return Cpu.Run(1_000_000);
    }

    public CaughtException? Caught => ExceptionTrap.Caught(Memory);

    public void Dispose() => _machine.Dispose();
}
