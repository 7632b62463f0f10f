using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.Snapshots;
using Hypervisor.Core.X86;
using Hypervisor.Svm;
using Iced.Intel;

namespace Hypervisor.Testing;

/// <summary>The vendor module a <see cref="TestVm"/> runs under.</summary>
public enum TestVendor
{
    Svm,
    Vmx,
}

/// <summary>
/// One VM with one vCPU for integration tests, set up as a userspace VMM sets up KVM, already in
/// 64-bit mode: RAM at 0 (16 MiB unless asked), the first 1 GiB identity-mapped with 2 MiB pages,
/// a flat GDT (0x08 64-bit code, 0x10 data), guest CPUID as KVM supports it (<c>-cpu host</c>).
/// Code goes to <see cref="CodeBase"/> with <see cref="Assemble"/> or <see cref="LoadFlat"/>;
/// <see cref="RunToExit"/> is one KVM_RUN. No userspace device is attached: every exit to
/// userspace comes back to the test, which asserts it (<see cref="IsExit"/>) and answers it.
/// </summary>
/// <remarks>Layout: GDT at 0x500, page tables at 0x1000-0x3FFF, code at 0x10000, stack below
/// 0x80000, free data from 0x200000.</remarks>
public sealed class TestVm : IDisposable
{
    public const ulong CodeBase = 0x10000;
    public const ulong StackTop = 0x80000;
    public const ulong DataBase = 0x200000;
    public const ulong DefaultMemory = 16UL << 20;
    private const ulong GdtBase = 0x500, Pml4 = 0x1000; // the PDPT and page directory follow at 0x2000 and 0x3000

    /// <summary>Instructions one <see cref="RunToExit"/> may retire before it returns KVM_EXIT_INTR,
    /// so a guest that never exits fails the test instead of hanging it.</summary>
    public ulong InstructionLimit { get; set; } = 50_000_000;

    private TestVm(TestVendor vendor, HostCpuModel model, ulong memory, IReadOnlyList<CpuidEntry>? cpuid)
    {
        Vendor = vendor;
        IX86Ops ops = vendor switch
        {
            TestVendor.Svm => new SvmOps(),
            _ => new Hypervisor.Vmx.VmxOps(),
        };
        Kvm = KvmX86.Register(ops, model);
        Vm = Kvm.CreateVm();
        try
        {
            Vm.SetUserMemoryRegion(0, 0, memory);
            Vcpu = Vm.CreateVcpu(0);
            Vcpu.SetCpuid(cpuid ?? Kvm.GetSupportedCpuid());
            EnterLongMode();
        }
        catch
        {
            Vm.Dispose();
            throw;
        }
    }

    /// <summary>A VM under <paramref name="vendor"/> on its default host CPU model (or <paramref name="model"/>).</summary>
    public static TestVm Create(TestVendor vendor = TestVendor.Svm, ulong memory = DefaultMemory, HostCpuModel? model = null) =>
        new(vendor, model ?? (vendor == TestVendor.Svm ? HostCpuModel.Default : HostCpuModel.DefaultIntel), memory, null);

    /// <summary>A new VM built as <paramref name="snapshot"/> describes (vendor, host CPU model,
    /// memory, CPUID) and restored from it.</summary>
    public static TestVm FromSnapshot(MachineSnapshot snapshot)
    {
        var vendor = snapshot.Vendor switch
        {
            "svm" => TestVendor.Svm,
            "vmx" => TestVendor.Vmx,
            var v => throw new SnapshotException($"vendor \"{v}\" is not one a TestVm runs under"),
        };
        var model = HostCpuModel.Find(snapshot.HostCpu) ?? throw new SnapshotException($"no host CPU model \"{snapshot.HostCpu}\"");
        ulong memory = snapshot.Memory?.Slots.Sum(s => (long)s.Size) is { } total and > 0 ? (ulong)total : DefaultMemory;
        var vm = new TestVm(vendor, model, memory, null);
        try
        {
            snapshot.Restore(vm.Vcpu, [], memoryIsZero: false);
            return vm;
        }
        catch
        {
            vm.Dispose();
            throw;
        }
    }

    public TestVendor Vendor { get; }
    public KvmX86 Kvm { get; }
    public Vm Vm { get; }
    public Vcpu Vcpu { get; }

    /// <summary>The exit the last <see cref="RunToExit"/> returned.</summary>
    public VcpuExit LastExit => Vcpu.Exit;

    private void EnterLongMode() => LongModeSetup.Enter(Vcpu, Vm.Memory, GdtBase, Pml4, 512);

    /// <summary>Assembles 64-bit code with Iced at <see cref="CodeBase"/> and points RIP at it
    /// (RSP at <see cref="StackTop"/>, RFLAGS clear).</summary>
    public TestVm Assemble(Action<Assembler> build)
    {
        var a = new Assembler(64);
        build(a);
        var ms = new MemoryStream();
        a.Assemble(new StreamCodeWriter(ms), CodeBase);
        return LoadFlat(ms.ToArray(), CodeBase);
    }

    /// <summary>Copies a flat image to <paramref name="address"/> and starts it at
    /// <paramref name="entry"/> (default: its first byte) in 64-bit mode.</summary>
    public TestVm LoadFlat(ReadOnlySpan<byte> image, ulong address, ulong? entry = null)
    {
        Vm.Memory.Write(address, image);
        var regs = Vcpu.GetRegs();
        regs.Rip = entry ?? address;
        regs.Rsp = StackTop;
        regs.Rflags = RFlags.Fixed1;
        Vcpu.SetRegs(regs);
        return this;
    }

    /// <summary>KVM_RUN once: runs the guest until an exit needs userspace, and returns it.</summary>
    public VcpuExit RunToExit()
    {
        Vcpu.InstructionBudget = InstructionLimit;
        return Vcpu.Run();
    }

    /// <summary>Answers a port-input exit: the guest's IN receives <paramref name="value"/> on the next run.</summary>
    public void CompleteIo(ulong value) => Vcpu.CompleteIo(value);

    public ulong Gpr(int index) => Vcpu.ReadGpr(index);
    public ulong Rip => Vcpu.Rip;
    public ulong ReadU64(ulong gpa) => Vm.Memory.ReadU64(gpa);

    /// <summary>A snapshot of the vCPU and (unless <paramref name="includeMemory"/> is false) guest
    /// memory. Taking it changes nothing.</summary>
    public MachineSnapshot Snapshot(bool includeMemory = true) => MachineSnapshot.Capture(Vcpu, [], includeMemory);

    /// <summary>Puts this VM back to <paramref name="snapshot"/> (taken from a VM like this one).</summary>
    public void Restore(MachineSnapshot snapshot) => snapshot.Restore(Vcpu, [], memoryIsZero: false);

    public void Dispose() => Vm.Dispose();
}
