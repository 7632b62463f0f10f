using Hypervisor.Core.Machine.Cpu;

namespace Hypervisor.Host.Loading;

/// <summary>
/// The machine state at a multiboot kernel's entry (Multiboot Specification 0.6.96 §3.2):
/// 32-bit protected mode with paging off, flat 4 GiB CS (execute/read) and DS/ES/FS/GS/SS
/// (read/write), EFLAGS.IF = 0 and VM = 0, EAX = 0x2BADB002, EBX = the information structure.
/// What the specification leaves undefined is set to fixed values so every run is the same:
/// GDTR points at the boot page's flat GDT, IDTR is empty (base 0, limit 0: an exception before
/// the kernel loads its own IDT escalates to a triple fault at once), ESP and the other general
/// registers are 0.
/// </summary>
public static class MultibootEntryState
{
    public static void Apply(X86Cpu cpu, uint entry, uint bootInfo, ulong gdtBase)
    {
        for (int r = 0; r < Gpr.LegacyCount; r++)
            cpu.SetGpr(r, 0);
        cpu.SetGpr(Gpr.Rax, MultibootInfo.BootloaderMagic);
        cpu.SetGpr(Gpr.Rbx, bootInfo);
        cpu.Gdtr = new DescriptorTable { Base = gdtBase, Limit = MultibootInfo.GdtEntries * 8 - 1 };
        cpu.Idtr = new DescriptorTable { Base = 0, Limit = 0 };
        if (!cpu.WriteCr0(Cr0.Pe | Cr0.Et))
            throw new InvalidOperationException("the CPU refused CR0 = PE|ET for the multiboot entry state");
        // Attributes in the VMX access-rights layout: G, D/B, P, S, type (accessed).
        cpu.SetSegment(SegReg.Cs, new Segment { Selector = MultibootInfo.CodeSelector, Base = 0, Limit = 0xFFFFFFFF, Attributes = 0xC09B });
        var data = new Segment { Selector = MultibootInfo.DataSelector, Base = 0, Limit = 0xFFFFFFFF, Attributes = 0xC093 };
        cpu.SetSegment(SegReg.Ds, data);
        cpu.SetSegment(SegReg.Es, data);
        cpu.SetSegment(SegReg.Fs, data);
        cpu.SetSegment(SegReg.Gs, data);
        cpu.SetSegment(SegReg.Ss, data);
        cpu.SetRFlags(RFlags.Fixed1);
        cpu.Rip = entry;
    }
}
