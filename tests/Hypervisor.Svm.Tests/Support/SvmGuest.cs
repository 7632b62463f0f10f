using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86;
using Hypervisor.Testing;
using Iced.Intel;

namespace Hypervisor.Svm.Tests.Support;

/// <summary>
/// A VM under the SVM module with one vCPU in 64-bit mode: 16 MiB of RAM identity-mapped with
/// 2 MiB pages, a flat GDT (0x08 code64, 0x10 data), code assembled with Iced at <see cref="CodeBase"/>,
/// and the guest CPUID set to what KVM supports (like <c>-cpu host</c>) unless a test edits it.
/// </summary>
public sealed class SvmGuest : IDisposable
{
    public const ulong CodeBase = 0x10000;
    public const ulong StackTop = 0x80000;
    public const ulong DataBase = 0x200000;
    private const ulong GdtBase = 0x1000;
    private const ulong Pml4 = 0x100000;

    public SvmGuest(HostCpuModel? model = null, SvmOptions? options = null, VmOptions? vmOptions = null,
        Func<IReadOnlyList<CpuidEntry>, IReadOnlyList<CpuidEntry>>? editCpuid = null)
    {
        Ops = new SvmOps(options);
        Kvm = KvmX86.Register(Ops, model ?? HostCpuModel.Zen5);
        Vm = Kvm.CreateVm(vmOptions);
        Vm.SetUserMemoryRegion(0, 0, 16 << 20);
        Vcpu = Vm.CreateVcpu(0);
        var cpuid = Kvm.GetSupportedCpuid();
        Vcpu.SetCpuid(editCpuid != null ? editCpuid(cpuid) : cpuid);
        LongModeSetup.Enter(Vcpu, Vm.Memory, GdtBase, Pml4, 8);
    }

    public SvmOps Ops { get; }
    public KvmX86 Kvm { get; }
    public Vm Vm { get; }
    public Vcpu Vcpu { get; }
    public VcpuSvm Svm => SvmOps.ToSvm(Vcpu);

    public void Load(Action<Assembler> build)
    {
        var a = new Assembler(64);
        build(a);
        var ms = new MemoryStream();
        a.Assemble(new StreamCodeWriter(ms), CodeBase);
        Vm.Memory.Write(CodeBase, ms.ToArray());
        var regs = Vcpu.GetRegs();
        regs.Rip = CodeBase;
        regs.Rsp = StackTop;
        regs.Rflags = RFlags.Fixed1;
        Vcpu.SetRegs(regs);
    }

    public VcpuExit Run() => Vcpu.Run();

    public void Dispose() => Vm.Dispose();
}
