using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86;
using Hypervisor.Vmx.Hardware;
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
        var mem = Vm.Memory;
        mem.WriteU64(GdtBase + 8, 0x00AF9B000000FFFFUL);
        mem.WriteU64(GdtBase + 16, 0x00CF93000000FFFFUL);
        mem.WriteU64(Pml4, (Pml4 + 0x1000) | 3);
        mem.WriteU64(Pml4 + 0x1000, (Pml4 + 0x2000) | 3);
        for (ulong e = 0; e < 8; e++)
            mem.WriteU64(Pml4 + 0x2000 + e * 8, (e << 21) | 0x83);
        var data = new Segment { Selector = 0x10, Limit = 0xFFFFFFFF, Attributes = 0xC093 };
        Vcpu.SetSregs(new KvmSregs
        {
            Cs = new Segment { Selector = 0x08, Limit = 0xFFFFFFFF, Attributes = 0xA09B },
            Ds = data, Es = data, Fs = data, Gs = data, Ss = data,
            Tr = new Segment { Limit = 0xFFFF, Attributes = 0x8B },
            Ldt = new Segment { Limit = 0xFFFF, Attributes = 0x82 },
            Gdt = new DescriptorTable { Base = GdtBase, Limit = 0x17 },
            Idt = new DescriptorTable { Base = 0, Limit = 0 },
            Cr0 = Cr0.Pe | Cr0.Et | Cr0.Pg | Cr0.Wp,
            Cr3 = Pml4,
            Cr4 = Cr4.Pae,
            Efer = Efer.Lme | Efer.Lma | Efer.Nxe | Efer.Sce,
        });
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
