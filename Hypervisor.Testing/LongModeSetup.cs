using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Memory;
using Hypervisor.Core.X86;

namespace Hypervisor.Testing;

/// <summary>
/// Puts a fresh vCPU straight into 64-bit mode, as a test guest wants it: a flat GDT (0x08 a 64-bit
/// code segment, 0x10 data) at <c>gdtBase</c>, page tables at <c>pml4</c> (PDPT and one page
/// directory in the next two pages) identity-mapping the first <c>twoMiBPages</c> × 2 MiB, then
/// KVM_SET_SREGS with paging, PAE, LME/LMA, NXE and SCE on. RIP, RSP and the GPRs are left to the test.
/// </summary>
public static class LongModeSetup
{
    public const ushort CodeSelector = 0x08;
    public const ushort DataSelector = 0x10;

    public static void Enter(Vcpu vcpu, PhysicalMemory memory, ulong gdtBase, ulong pml4, int twoMiBPages)
    {
        memory.WriteU64(gdtBase + CodeSelector, 0x00AF9B000000FFFFUL);
        memory.WriteU64(gdtBase + DataSelector, 0x00CF93000000FFFFUL);
        memory.WriteU64(pml4, (pml4 + 0x1000) | 3);
        memory.WriteU64(pml4 + 0x1000, (pml4 + 0x2000) | 3);
        for (ulong e = 0; e < (ulong)twoMiBPages; e++)
            memory.WriteU64(pml4 + 0x2000 + e * 8, (e << 21) | 0x83);
        var data = new Segment { Selector = DataSelector, Limit = 0xFFFFFFFF, Attributes = 0xC093 };
        vcpu.SetSregs(new KvmSregs
        {
            Cs = new Segment { Selector = CodeSelector, Limit = 0xFFFFFFFF, Attributes = 0xA09B },
            Ds = data, Es = data, Fs = data, Gs = data, Ss = data,
            Tr = new Segment { Limit = 0xFFFF, Attributes = 0x8B },
            Ldt = new Segment { Limit = 0xFFFF, Attributes = 0x82 },
            Gdt = new DescriptorTable { Base = gdtBase, Limit = 0x17 },
            Idt = new DescriptorTable { Base = 0, Limit = 0 },
            Cr0 = Cr0.Pe | Cr0.Et | Cr0.Pg | Cr0.Wp,
            Cr3 = pml4,
            Cr4 = Cr4.Pae,
            Efer = Efer.Lme | Efer.Lma | Efer.Nxe | Efer.Sce,
        });
    }
}
