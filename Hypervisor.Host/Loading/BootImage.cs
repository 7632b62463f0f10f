using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Memory;
using Hypervisor.Core.X86;

namespace Hypervisor.Host.Loading;

/// <summary>
/// An image checked against the guest memory it will go into, ready to load: a multiboot kernel
/// (<see cref="MultibootKernel"/>), a 64-bit ELF kernel started in long mode or a raw binary. Every problem
/// was found when the image was built (an <see cref="ImageException"/>), so loading cannot fail:
/// each machine kind loads any image the same way, <see cref="WriteInto"/> then
/// <see cref="SetEntryState(Vcpu)"/> (a VMM's KVM_SET_SREGS / KVM_SET_REGS) or
/// <see cref="SetEntryState(X86Cpu)"/> (the bare CPU).
/// </summary>
public abstract class BootImage
{
    /// <summary>What the image is, for messages: "multiboot ELF32 kernel".</summary>
    public abstract string Description { get; }

    /// <summary>Copies the image and the loader's structures into <paramref name="memory"/>.</summary>
    public abstract void WriteInto(PhysicalMemory memory);

    /// <summary>Puts a vCPU in the entry state: KVM_GET_SREGS, change what the boot protocol
    /// defines, KVM_SET_SREGS, then KVM_SET_REGS.</summary>
    public abstract void SetEntryState(Vcpu vcpu);

    /// <summary>Puts the bare CPU in the entry state.</summary>
    public abstract void SetEntryState(X86Cpu cpu);

    /// <summary>Writes the image into <paramref name="memory"/> and sets the bare CPU's entry state.</summary>
    public void LoadInto(PhysicalMemory memory, X86Cpu cpu)
    {
        WriteInto(memory);
        SetEntryState(cpu);
    }
}
