using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86;
using Hypervisor.Vmx.Hardware;
using Hypervisor.Testing;
using Iced.Intel;

namespace Hypervisor.Vmx.Tests.Support;

/// <summary>
/// A VM under the VMX module with one vCPU in 64-bit mode: 16 MiB of RAM identity-mapped with
/// 2 MiB pages, a flat GDT (0x08 code64, 0x10 data), code assembled with Iced at <see cref="CodeBase"/>
/// (raw bytes can follow, for REX2 forms Iced cannot encode), and the guest CPUID set to what KVM
/// supports unless a test edits it.
/// </summary>
public sealed class VmxGuest : IDisposable
{
    public const ulong CodeBase = 0x10000;
    public const ulong StackTop = 0x80000;
    public const ulong DataBase = 0x200000;
    private const ulong GdtBase = 0x1000;
    private const ulong Pml4 = 0x100000;

    public VmxGuest(HostCpuModel? model = null, VmxOptions? options = null, VmOptions? vmOptions = null,
        Func<IReadOnlyList<CpuidEntry>, IReadOnlyList<CpuidEntry>>? editCpuid = null)
    {
        Ops = new VmxOps(options);
        Kvm = KvmX86.Register(Ops, model ?? HostCpuModel.DiamondRapids);
        Vm = Kvm.CreateVm(vmOptions);
        Vm.SetUserMemoryRegion(0, 0, 16 << 20);
        Vcpu = Vm.CreateVcpu(0);
        var cpuid = Kvm.GetSupportedCpuid();
        Vcpu.SetCpuid(editCpuid != null ? editCpuid(cpuid) : cpuid);
        LongModeSetup.Enter(Vcpu, Vm.Memory, GdtBase, Pml4, 8);
    }

    public VmxOps Ops { get; }
    public KvmX86 Kvm { get; }
    public Vm Vm { get; }
    public Vcpu Vcpu { get; }
    public VcpuVmx Vmx => VmxOps.ToVmx(Vcpu);
    public Vmcs Vmcs => Vmx.Vmcs;

    public void Load(Action<Assembler> build, params byte[][] tail)
    {
        var a = new Assembler(64);
        build(a);
        var ms = new MemoryStream();
        a.Assemble(new StreamCodeWriter(ms), CodeBase);
        foreach (var bytes in tail)
            ms.Write(bytes);
        Vm.Memory.Write(CodeBase, ms.ToArray());
        var regs = Vcpu.GetRegs();
        regs.Rip = CodeBase;
        regs.Rsp = StackTop;
        regs.Rflags = RFlags.Fixed1;
        Vcpu.SetRegs(regs);
    }

    /// <summary>Assembles a sequence of pieces: Iced code, then raw bytes, then Iced code ...</summary>
    public void LoadPieces(params object[] pieces)
    {
        var ms = new MemoryStream();
        foreach (var p in pieces)
        {
            if (p is byte[] raw)
            {
                ms.Write(raw);
                continue;
            }
            var a = new Assembler(64);
            ((Action<Assembler>)p)(a);
            var part = new MemoryStream();
            a.Assemble(new StreamCodeWriter(part), CodeBase + (ulong)ms.Length);
            ms.Write(part.ToArray());
        }
        Vm.Memory.Write(CodeBase, ms.ToArray());
        var regs = Vcpu.GetRegs();
        regs.Rip = CodeBase;
        regs.Rsp = StackTop;
        regs.Rflags = RFlags.Fixed1;
        Vcpu.SetRegs(regs);
    }

    public VcpuExit Run() => Vcpu.Run();

    public long Exits(VmxExitReason reason) => Vcpu.Stats.VendorCount((long)reason);

    public void Dispose() => Vm.Dispose();
}
