using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.X86;

namespace Hypervisor.Host.Loading;

/// <summary>
/// The machine state at a multiboot kernel's entry (Multiboot Specification 0.6.96 §3.2):
/// 32-bit protected mode with paging off, flat 4 GiB CS (execute/read) and DS/ES/FS/GS/SS
/// (read/write), EFLAGS.IF = 0 and VM = 0, EAX = 0x2BADB002, EBX = the information structure.
/// What the specification leaves undefined is set to fixed values so every run is the same:
/// GDTR points at the boot page's flat GDT, IDTR is empty (base 0, limit 0: an exception before
/// the kernel loads its own IDT escalates to a triple fault at once), ESP and the other general
/// registers are 0. The same state goes into the bare CPU directly or into a vCPU through
/// KVM_SET_SREGS / KVM_SET_REGS, as a userspace VMM sets it.
/// </summary>
/// <remarks><c>--load flat:...,mode=32</c> starts a raw binary in the same state with
/// <paramref name="Eax"/> and <paramref name="BootInfo"/> 0: no loader information.</remarks>
public readonly record struct MultibootEntryState(uint Entry, uint BootInfo, ulong GdtBase, uint Eax = MultibootInfo.BootloaderMagic)
{
    // Attributes in the VMX access-rights layout: G, D/B, P, S, type (accessed).
    public static Segment Code => new() { Selector = MultibootInfo.CodeSelector, Base = 0, Limit = 0xFFFFFFFF, Attributes = 0xC09B };
    public static Segment Data => new() { Selector = MultibootInfo.DataSelector, Base = 0, Limit = 0xFFFFFFFF, Attributes = 0xC093 };

    public DescriptorTable Gdt => new() { Base = GdtBase, Limit = MultibootInfo.GdtEntries * 8 - 1 };
    public static DescriptorTable Idt => new() { Base = 0, Limit = 0 };

    /// <summary>CR0: protected mode, paging off (ET is hard-wired to 1).</summary>
    public const ulong Cr0Value = Cr0.Pe | Cr0.Et;

    /// <summary>Puts the bare CPU in the entry state.</summary>
    public void Apply(X86Cpu cpu)
    {
        for (int r = 0; r < Gpr.LegacyCount; r++)
            cpu.SetGpr(r, 0);
        cpu.SetGpr(Gpr.Rax, Eax);
        cpu.SetGpr(Gpr.Rbx, BootInfo);
        cpu.Gdtr = Gdt;
        cpu.Idtr = Idt;
        if (!cpu.WriteCr0(Cr0Value))
            throw new InvalidOperationException("the CPU refused CR0 = PE|ET for the multiboot entry state");
        FlatSegments.Load(cpu, Code, Data);
        cpu.SetRFlags(RFlags.Fixed1);
        cpu.Rip = Entry;
    }

    /// <summary>Puts a vCPU in the entry state: KVM_GET_SREGS, change what multiboot defines,
    /// KVM_SET_SREGS (TR and LDTR keep their RESET values, as on the bare CPU), then KVM_SET_REGS.</summary>
    public void Apply(Vcpu vcpu)
    {
        var s = vcpu.GetSregs();
        FlatSegments.Load(ref s, Code, Data);
        s.Gdt = Gdt;
        s.Idt = Idt;
        s.Cr0 = Cr0Value;
        s.Cr2 = s.Cr3 = s.Cr4 = s.Cr8 = 0;
        s.Efer = 0;
        vcpu.SetSregs(s);
        vcpu.SetRegs(new KvmRegs
        {
            Rax = Eax,
            Rbx = BootInfo,
            Rip = Entry,
            Rflags = RFlags.Fixed1,
        });
    }
}
