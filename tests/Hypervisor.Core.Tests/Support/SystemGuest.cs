using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Iced.Intel;

namespace Hypervisor.Core.Tests.Support;

/// <summary>
/// System structures for tests of interrupts, privilege changes and paging on a
/// <see cref="GuestMachine"/>: an IDT (or IVT) whose vector v enters a one-byte HLT stub at
/// <see cref="HandlerBase"/> + 16·v, so the exit address names the vector taken and the frame
/// sits at RSP; a TSS with RSP0/SS0:ESP0 and IST1; extra GDT entries.
/// </summary>
public static class SystemGuest
{
    public const ulong HandlerBase = 0x30000;
    public const ulong TssBase = 0x4000;
    public const ulong KernelStack = 0x70000;   // RSP0 / ESP0
    public const ulong IstStack = 0x60000;      // IST1
    public const ulong UserStack = 0x78000;
    public const ushort TssSelector = 0x48;
    public const ushort KernelCode64 = 0x08, KernelData = 0x10, KernelCode32 = 0x18, UserCode64 = 0x33, UserData = 0x3B, UserCode32 = 0x43;

    public static ulong Descriptor(ulong baseAddr, uint limit, byte access, byte flags) =>
        (limit & 0xFFFFUL) | ((baseAddr & 0xFFFFFF) << 16) | ((ulong)access << 40) | (((ulong)(limit >> 16) & 0xF) << 48)
        | ((ulong)(flags & 0xF) << 52) | (((baseAddr >> 24) & 0xFF) << 56);

    /// <summary>Writes GDT entry <paramref name="index"/> and grows GDTR's limit to cover it.</summary>
    public static void SetGdtEntry(GuestMachine m, int index, ulong value)
    {
        m.Memory.WriteU64(GuestMachine.GdtBase + (ulong)index * 8, value);
        ushort limit = (ushort)(index * 8 + 7);
        if (m.Cpu.Gdtr.Limit < limit)
            m.Cpu.Gdtr = new DescriptorTable { Base = GuestMachine.GdtBase, Limit = limit };
    }

    /// <summary>An IDT whose every vector enters its HLT stub: 16-byte gates in long mode, 8-byte
    /// 32-bit interrupt gates in protected mode, CS:IP vectors in real mode.</summary>
    public static void InstallIdt(GuestMachine m)
    {
        var stubs = new byte[256 * 16];
        for (int v = 0; v < 256; v++)
            stubs[v * 16] = 0xF4;
        m.Memory.Write(HandlerBase, stubs);
        for (int v = 0; v < 256; v++)
        {
            switch (m.Mode)
            {
                case GuestMode.Long64: SetGate64(m, v, KernelCode64, HandlerBase + (ulong)v * 16); break;
                case GuestMode.Protected32: SetGate32(m, v, KernelCode32, HandlerBase + (ulong)v * 16); break;
                default: m.Memory.WriteU32((ulong)v * 4, (uint)((HandlerBase >> 4) << 16) | (uint)(v * 16)); break;
            }
        }
        m.Cpu.Idtr = m.Mode switch
        {
            GuestMode.Long64 => new DescriptorTable { Base = GuestMachine.IdtBase, Limit = 256 * 16 - 1 },
            GuestMode.Protected32 => new DescriptorTable { Base = GuestMachine.IdtBase, Limit = 256 * 8 - 1 },
            _ => new DescriptorTable { Base = 0, Limit = 0x3FF },
        };
    }

    public static void SetGate64(GuestMachine m, int vector, ushort selector, ulong offset, int type = 0xE, int dpl = 0, int ist = 0, bool present = true)
    {
        ulong lo = (offset & 0xFFFF) | ((ulong)selector << 16) | ((ulong)(ist & 7) << 32) | ((ulong)type << 40)
            | ((ulong)dpl << 45) | (present ? 1UL << 47 : 0) | (((offset >> 16) & 0xFFFF) << 48);
        m.Memory.WriteU64(GuestMachine.IdtBase + (ulong)vector * 16, lo);
        m.Memory.WriteU64(GuestMachine.IdtBase + (ulong)vector * 16 + 8, offset >> 32);
    }

    public static void SetGate32(GuestMachine m, int vector, ushort selector, ulong offset, int type = 0xE, int dpl = 0, bool present = true)
    {
        ulong lo = (offset & 0xFFFF) | ((ulong)selector << 16) | ((ulong)type << 40)
            | ((ulong)dpl << 45) | (present ? 1UL << 47 : 0) | (((offset >> 16) & 0xFFFF) << 48);
        m.Memory.WriteU64(GuestMachine.IdtBase + (ulong)vector * 8, lo);
    }

    /// <summary>A 64-bit TSS with RSP0 and IST1, its 16-byte descriptor at <see cref="TssSelector"/>, loaded in TR.</summary>
    public static void InstallTss64(GuestMachine m, ulong rsp0 = KernelStack, ulong ist1 = IstStack)
    {
        m.Memory.Write(TssBase, new byte[0x68]);
        m.Memory.WriteU64(TssBase + 4, rsp0);
        m.Memory.WriteU64(TssBase + 0x24, ist1);
        SetGdtEntry(m, TssSelector / 8, Descriptor(TssBase, 0x67, 0x89, 0));
        SetGdtEntry(m, TssSelector / 8 + 1, TssBase >> 32);
        m.Cpu.SetSegment(SegReg.Tr, new Segment { Selector = TssSelector, Base = TssBase, Limit = 0x67, Attributes = 0x8B });
    }

    /// <summary>A 32-bit TSS with SS0:ESP0 = data selector : <paramref name="esp0"/>, loaded in TR.</summary>
    public static void InstallTss32(GuestMachine m, ulong esp0 = KernelStack)
    {
        m.Memory.Write(TssBase, new byte[0x68]);
        m.Memory.WriteU32(TssBase + 4, (uint)esp0);
        m.Memory.WriteU32(TssBase + 8, KernelData);
        SetGdtEntry(m, TssSelector / 8, Descriptor(TssBase, 0x67, 0x89, 0));
        m.Cpu.SetSegment(SegReg.Tr, new Segment { Selector = TssSelector, Base = TssBase, Limit = 0x67, Attributes = 0x8B });
    }

    /// <summary>Assembles code at <paramref name="address"/> without touching RIP.</summary>
    public static void Place(GuestMachine m, ulong address, Action<Assembler> build)
    {
        var a = m.NewAssembler();
        build(a);
        var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), address);
        m.Memory.Write(address, stream.ToArray());
    }

    /// <summary>Loads <paramref name="build"/> at the code base and runs it to its first exit.</summary>
    public static CpuExit Run(GuestMachine m, Action<Assembler> build, ulong maxInstructions = 1_000_000)
    {
        var a = m.NewAssembler();
        build(a);
        a.hlt();
        m.Load(a);
        return m.Run(maxInstructions);
    }

    /// <summary>The vector whose HLT stub stopped the CPU, or -1 for any other exit.</summary>
    public static int VectorOf(GuestMachine m, CpuExit exit)
    {
        if (exit.Reason != CpuExitReason.Hlt)
            return -1;
        ulong linear = m.Cpu.GetSegment(SegReg.Cs).Base + exit.Address;
        if (linear < HandlerBase || linear >= HandlerBase + 256 * 16 || (linear & 15) != 0)
            return -1;
        return (int)((linear - HandlerBase) / 16);
    }

    /// <summary>Stack slot <paramref name="index"/> (of <paramref name="size"/> bytes) above the current stack pointer.</summary>
    public static ulong Frame(GuestMachine m, int index, int size = 8)
    {
        ulong sp = m.Cpu.GetSegment(SegReg.Ss).Base + m.Cpu.GetGpr(Gpr.Rsp) + (ulong)(index * size);
        return size switch { 2 => m.Memory.ReadU32(sp) & 0xFFFF, 4 => m.Memory.ReadU32(sp), _ => m.Memory.ReadU64(sp) };
    }
}
