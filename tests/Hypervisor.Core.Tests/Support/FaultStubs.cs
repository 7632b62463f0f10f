using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Iced.Intel;

namespace Hypervisor.Core.Tests.Support;

/// <summary>
/// Helpers for tests that need exceptions, labels or a privilege change on a <see cref="GuestMachine"/>:
/// one handler stub per vector 0..31 that records the vector at <see cref="VectorSlot"/> and halts
/// (so the exception frame stays on the stack for the test to read), a TSS for stack switches,
/// extra GDT entries, and loading code with label addresses.
/// </summary>
public static class FaultStubs
{
    public const ulong StubBase = 0x3000;
    /// <summary>Byte where the stub of the last delivered vector writes its number (0xFF: none).</summary>
    public const ulong VectorSlot = 0x3F00;
    public const ulong TssBase = 0x4000;
    /// <summary>Stack the CPU switches to when an exception raises the privilege level.</summary>
    public const ulong KernelStackTop = 0x70000;
    public const int ExtraGdtEntries = 16;

    /// <summary>Installs the stubs and an IDT (IVT in real mode) pointing at them.</summary>
    public static void Install(GuestMachine m)
    {
        var mem = m.Memory;
        mem.Write(VectorSlot, new byte[] { 0xFF });
        for (int v = 0; v < 32; v++)
        {
            ulong stub = StubBase + (ulong)v * 16;
            byte[] code = m.Mode switch
            {
                // mov byte cs:[0x0F00], v ; hlt (CS = StubBase >> 4, so the slot is 0x3F00)
                GuestMode.Real => new byte[] { 0x2E, 0xC6, 0x06, 0x00, 0x0F, (byte)v, 0xF4 },
                // mov byte ss:[0x3F00], v ; hlt (SS is the ring-0 stack; DS may have been nulled)
                GuestMode.Protected32 => new byte[] { 0x36, 0xC6, 0x05, 0x00, 0x3F, 0x00, 0x00, (byte)v, 0xF4 },
                _ => new byte[] { 0xC6, 0x04, 0x25, 0x00, 0x3F, 0x00, 0x00, (byte)v, 0xF4 },
            };
            mem.Write(stub, code);
            switch (m.Mode)
            {
                case GuestMode.Real:
                    mem.WriteU32((ulong)v * 4, (uint)((StubBase >> 4) << 16 | (ulong)v * 16));
                    break;
                case GuestMode.Protected32:
                    mem.WriteU64(GuestMachine.IdtBase + (ulong)v * 8, (stub & 0xFFFF) | (0x18UL << 16) | (0x8EUL << 40) | ((stub >> 16) << 48));
                    break;
                default:
                    mem.WriteU64(GuestMachine.IdtBase + (ulong)v * 16, (stub & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | (((stub >> 16) & 0xFFFF) << 48));
                    mem.WriteU64(GuestMachine.IdtBase + (ulong)v * 16 + 8, stub >> 32);
                    break;
            }
        }
        if (m.Mode == GuestMode.Protected32)
            m.Cpu.Idtr = new DescriptorTable { Base = GuestMachine.IdtBase, Limit = 32 * 8 - 1 };
        else if (m.Mode == GuestMode.Long64)
            m.Cpu.Idtr = new DescriptorTable { Base = GuestMachine.IdtBase, Limit = 32 * 16 - 1 };
        // A TSS whose ring-0 stack is KernelStackTop (64-bit layout: RSP0 at 4; 32-bit: ESP0 at 4, SS0 at 8).
        mem.WriteU64(TssBase + 4, KernelStackTop);
        if (m.Mode == GuestMode.Protected32)
            mem.WriteU32(TssBase + 8, 0x10);
        mem.Write(TssBase + 0x66, new byte[] { 0x68, 0x00 }); // I/O bitmap offset = limit + 1: no bitmap
        m.Cpu.SetSegment(SegReg.Tr, new Segment { Selector = 0, Base = TssBase, Limit = 0x67, Attributes = 0x8B });
    }

    /// <summary>The vector the last exception delivered, or -1.</summary>
    public static int Vector(GuestMachine m)
    {
        Span<byte> b = stackalloc byte[1];
        m.Memory.Read(VectorSlot, b);
        return b[0] == 0xFF ? -1 : b[0];
    }

    /// <summary>Slot <paramref name="k"/> of the exception frame at RSP (stack width of the handler's mode).</summary>
    public static ulong Frame(GuestMachine m, int k)
    {
        int w = m.Mode switch { GuestMode.Real => 2, GuestMode.Protected32 => 4, _ => 8 };
        ulong sp = m.Cpu.GetGpr(Gpr.Rsp) & (m.Mode == GuestMode.Real ? 0xFFFFUL : ulong.MaxValue);
        ulong lin = m.Cpu.GetSegment(SegReg.Ss).Base + sp + (ulong)(k * w);
        return w switch { 2 => m.Memory.ReadU32(lin) & 0xFFFF, 4 => m.Memory.ReadU32(lin), _ => m.Memory.ReadU64(lin) };
    }

    /// <summary>Writes GDT entry <paramref name="index"/> (9 and up are free) and grows the GDT limit to cover it.</summary>
    public static ushort SetGdtEntry(GuestMachine m, int index, ulong baseAddr, uint limit, byte access, byte flags)
    {
        ulong d = (limit & 0xFFFFUL) | ((baseAddr & 0xFFFFFF) << 16) | ((ulong)access << 40) | (((ulong)(limit >> 16) & 0xF) << 48)
            | ((ulong)(flags & 0xF) << 52) | (((baseAddr >> 24) & 0xFF) << 56);
        m.Memory.WriteU64(GuestMachine.GdtBase + (ulong)index * 8, d);
        var g = m.Cpu.Gdtr;
        g.Limit = (ushort)Math.Max(g.Limit, index * 8 + 7);
        m.Cpu.Gdtr = g;
        return (ushort)(index * 8);
    }

    /// <summary>Assembles at <paramref name="address"/>, writes the code and points RIP at it
    /// (CS = address >> 4 in real mode). Returns the result, which knows where each label went.</summary>
    public static AssemblerResult Load(GuestMachine m, Assembler a, ulong address = GuestMachine.CodeBase)
    {
        var stream = new MemoryStream();
        var result = a.Assemble(new StreamCodeWriter(stream), address, BlockEncoderOptions.ReturnNewInstructionOffsets);
        m.Memory.Write(address, stream.ToArray());
        if (m.Mode == GuestMode.Real)
        {
            m.Cpu.SetSegment(SegReg.Cs, Segment.RealMode((ushort)(address >> 4), 0x9B));
            m.Cpu.Rip = address & 0xF;
        }
        else
        {
            m.Cpu.Rip = address;
        }
        return result;
    }

    /// <summary>Assembles, loads and runs until an exit other than port I/O.</summary>
    public static (CpuExit Exit, AssemblerResult Code) Run(GuestMachine m, Action<Assembler> build, int bitness = 0)
    {
        var a = bitness == 0 ? m.NewAssembler() : new Assembler(bitness);
        build(a);
        var r = Load(m, a);
        return (m.Run(), r);
    }

    /// <summary>Assembles a routine at a fixed address without touching RIP (tests use it as a constant).</summary>
    public static void Place(GuestMachine m, ulong address, Action<Assembler> build, int bitness = 0)
    {
        var a = bitness == 0 ? m.NewAssembler() : new Assembler(bitness);
        build(a);
        var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), address);
        m.Memory.Write(address, stream.ToArray());
    }

    /// <summary>Long mode only: maps the 2 MiB region around <paramref name="page"/> with 4 KiB
    /// identity pages (page table at 0x120000 + region index × 4 KiB) and sets whether
    /// <paramref name="page"/> itself is present. Flushes the TLB.</summary>
    public static void SetPagePresent(GuestMachine m, ulong page, bool present)
    {
        ulong region = page & ~0x1FFFFFUL;
        ulong e = region >> 21;
        ulong pt = 0x120000 + e * 0x1000;
        ulong pde = GuestMachine.Pml4Base + 0x2000 + (region >> 30) * 0x1000 + (e & 511) * 8;
        if ((m.Memory.ReadU64(pde) & 0x80) != 0)
        {
            for (ulong k = 0; k < 512; k++)
                m.Memory.WriteU64(pt + k * 8, (region + k * 0x1000) | 7);
            m.Memory.WriteU64(pde, pt | 7);
        }
        ulong pteAddr = pt + ((page >> 12) & 511) * 8;
        m.Memory.WriteU64(pteAddr, (page & ~0xFFFUL) | (present ? 7UL : 0UL));
        m.Cpu.FlushTlbAll();
    }

    /// <summary>Linear address of a label in assembled code.</summary>
    public static ulong Address(this AssemblerResult r, Label l) => r.GetLabelRIP(l);
}
