using Hypervisor.Core.Machine.Memory;

namespace Hypervisor.Core.X86;

/// <summary>
/// A virtual machine (KVM's <c>struct kvm</c>): guest physical memory as slots, the vCPUs, the
/// vendor ops and the options it was created with.
/// </summary>
public sealed class Vm : IDisposable
{
    private readonly List<Vcpu> _vcpus = new();

    internal Vm(KvmX86 kvm, VmOptions options)
    {
        Kvm = kvm;
        Options = options;
    }

    public KvmX86 Kvm { get; }
    public IX86Ops Ops => Kvm.Ops;
    public VmOptions Options { get; }
    public PhysicalMemory Memory { get; } = new();
    public IReadOnlyList<Vcpu> Vcpus => _vcpus;

    /// <summary>The TDP MMU building the nested tables (NPT/EPT), when the VM uses nested paging.
    /// Created with the first vCPU, after userspace has set up its memory slots.</summary>
    public Mmu.TdpMmu? Mmu { get; private set; }

    /// <summary>Guest RAM: a user memory slot backs <paramref name="gpa"/> (never the MMU's private tables).</summary>
    public bool IsGuestRam(ulong gpa) => !Hypervisor.Core.X86.Mmu.TdpMmu.IsPrivate(gpa) && Memory.IsRam(gpa);

    /// <summary>KVM_SET_USER_MEMORY_REGION: adds guest RAM at <paramref name="guestPhysical"/>.</summary>
    public MemorySlot SetUserMemoryRegion(int slot, ulong guestPhysical, ulong size, bool readOnly = false)
    {
        if (_vcpus.Any(v => v.HasRun))
            throw new KvmException("EBUSY", "memory slots cannot be added after a vCPU has run (this project does not move slots under a running guest)");
        return Memory.AddSlot(slot, guestPhysical, size, readOnly);
    }

    /// <summary>KVM_CREATE_VCPU.</summary>
    public Vcpu CreateVcpu(int id)
    {
        if (_vcpus.Any(v => v.Id == id))
            throw new KvmException("EEXIST", $"vCPU {id} already exists");
        if (Options.NestedPaging && Mmu == null)
            Mmu = new Mmu.TdpMmu(this);
        var vcpu = new Vcpu(this, id);
        _vcpus.Add(vcpu);
        return vcpu;
    }

    public void Dispose()
    {
        foreach (var v in _vcpus)
            v.Dispose();
        Memory.Dispose();
    }
}
