using System.Buffers.Binary;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.X86;

namespace Hypervisor.Host.Loading;

/// <summary>
/// The state hv starts a 64-bit kernel in (an ELF64 kernel without a multiboot header, or
/// <c>--load flat:...,mode=64</c>): 64-bit mode, paging on with the first 4 GiB identity-mapped
/// by 2 MiB pages, flat segments, a TSS, interrupts off and no IDT. The structures sit in low
/// memory, in <see cref="ReservedStart"/> to <see cref="ReservedEnd"/>, which the image must leave free:
/// <code>
///   0x1000  GDT: null, 0x08 64-bit code, 0x10 data, 0x18 64-bit TSS (16 bytes); limit 0x27
///   0x1080  TSS (104 bytes, no I/O bitmap; RSP0 and the ISTs 0)
///   0x2000  PML4: entry 0 → PDPT
///   0x3000  PDPT: entries 0-3 → the four page directories
///   0x4000  4 page directories (0x4000-0x7fff): 2048 2 MiB pages, 0 - 4 GiB, present, writable, supervisor
///   0x8000  stack page; RSP = 0x9000
/// </code>
/// CR0 = PE | ET | NE | WP | PG, CR4 = PAE, CR3 = 0x2000, EFER = LME | LMA; CS = 0x08 (L = 1),
/// DS = ES = FS = GS = SS = 0x10 (base 0), TR = 0x18; IDTR base 0 limit 0 (an exception before the
/// kernel loads its own IDT is a triple fault); RFLAGS = 0x2; RIP = the entry; every other general
/// register 0. Addresses above the guest's RAM are mapped too and read as unclaimed space.
/// </summary>
public readonly record struct LongModeEntryState(ulong Entry)
{
    public const ulong GdtBase = 0x1000, TssBase = 0x1080, Pml4 = 0x2000, Pdpt = 0x3000, PageDirectories = 0x4000;
    public const ulong StackTop = 0x9000;
    public const ulong ReservedStart = 0x1000, ReservedEnd = 0x9000;

    public const ushort CodeSelector = 0x08, DataSelector = 0x10, TssSelector = 0x18;
    private const int GdtBytes = 5 * 8;
    private const uint TssLimit = 0x67;

    /// <summary>The first 4 GiB, the reach of the identity map.</summary>
    public const ulong MappedLimit = 1UL << 32;

    // Attributes in the VMX access-rights layout: G, L, P, S, type (accessed); TSS: P, type 0xB (busy 64-bit TSS).
    public static Segment Code => new() { Selector = CodeSelector, Base = 0, Limit = 0xFFFFFFFF, Attributes = 0xA09B };
    public static Segment Data => new() { Selector = DataSelector, Base = 0, Limit = 0xFFFFFFFF, Attributes = 0xC093 };
    public static Segment Tss => new() { Selector = TssSelector, Base = TssBase, Limit = TssLimit, Attributes = 0x008B };

    public static DescriptorTable Gdt => new() { Base = GdtBase, Limit = GdtBytes - 1 };
    public static DescriptorTable Idt => new() { Base = 0, Limit = 0 };

    public const ulong Cr0Value = Cr0.Pe | Cr0.Et | Cr0.Ne | Cr0.Wp | Cr0.Pg;
    public const ulong Cr4Value = Cr4.Pae;
    public const ulong EferValue = Efer.Lme | Efer.Lma;

    /// <summary>What goes at <see cref="ReservedStart"/>: GDT, TSS and page tables (the stack page is zero).</summary>
    public static byte[] BuildStructures()
    {
        var area = new byte[ReservedEnd - ReservedStart];
        var s = area.AsSpan();
        Span<byte> gdt = s[(int)(GdtBase - ReservedStart)..];
        W64(gdt, 0x08, 0x00AF9B000000FFFFUL); // 64-bit code: G, L, P, S, execute/read, accessed
        W64(gdt, 0x10, 0x00CF93000000FFFFUL); // data: G, D/B, P, S, read/write, accessed
        // 64-bit TSS descriptor (16 bytes): limit, base 0-23, type 0xB busy (TR is loaded), P; base 24-63.
        ulong low = TssLimit | ((TssBase & 0xFFFFFF) << 16) | (0x8BUL << 40) | (((TssBase >> 24) & 0xFF) << 56);
        W64(gdt, 0x18, low);
        W64(gdt, 0x20, TssBase >> 32);
        // TSS: I/O map base at +0x66 past the limit, so there is no I/O permission bitmap.
        BinaryPrimitives.WriteUInt16LittleEndian(s[(int)(TssBase - ReservedStart + 0x66)..], (ushort)(TssLimit + 1));

        const ulong PresentWritable = 0x3, LargePage = 0x80;
        W64(s, (int)(Pml4 - ReservedStart), Pdpt | PresentWritable);
        for (int i = 0; i < 4; i++)
        {
            ulong pd = PageDirectories + (ulong)i * 0x1000;
            W64(s, (int)(Pdpt - ReservedStart) + i * 8, pd | PresentWritable);
            for (int j = 0; j < 512; j++)
            {
                ulong page = ((ulong)i * 512 + (ulong)j) << 21;
                W64(s, (int)(pd - ReservedStart) + j * 8, page | PresentWritable | LargePage);
            }
        }
        return area;
    }

    /// <summary>Puts the bare CPU in the entry state, through the same checked writes software
    /// would use to enter long mode (PAE, CR3, EFER.LME, then CR0.PG), then the 64-bit segments.</summary>
    public void Apply(X86Cpu cpu)
    {
        for (int r = 0; r < Gpr.LegacyCount; r++)
            cpu.SetGpr(r, 0);
        cpu.SetGpr(Gpr.Rsp, StackTop);
        cpu.Gdtr = Gdt;
        cpu.Idtr = Idt;
        if (!cpu.WriteCr4(Cr4Value) || !cpu.WriteCr3(Pml4) || !cpu.WriteEfer(Efer.Lme) || !cpu.WriteCr0(Cr0Value))
            throw new InvalidOperationException("the CPU refused the long-mode entry state (CR4.PAE, CR3, EFER.LME, CR0.PG)");
        FlatSegments.Load(cpu, Code, Data);
        cpu.SetSegment(SegReg.Tr, Tss);
        cpu.SetRFlags(RFlags.Fixed1);
        cpu.Rip = Entry;
    }

    /// <summary>Puts a vCPU in the entry state: KVM_GET_SREGS, the long-mode control registers and
    /// segments, KVM_SET_SREGS (LDTR keeps its RESET value), then KVM_SET_REGS.</summary>
    public void Apply(Vcpu vcpu)
    {
        var s = vcpu.GetSregs();
        FlatSegments.Load(ref s, Code, Data);
        s.Tr = Tss;
        s.Gdt = Gdt;
        s.Idt = Idt;
        s.Cr0 = Cr0Value;
        s.Cr4 = Cr4Value;
        s.Cr3 = Pml4;
        s.Cr2 = s.Cr8 = 0;
        s.Efer = EferValue;
        vcpu.SetSregs(s);
        vcpu.SetRegs(new KvmRegs { Rip = Entry, Rsp = StackTop, Rflags = RFlags.Fixed1 });
    }

    private static void W64(Span<byte> b, int off, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(b[off..], v);
}
