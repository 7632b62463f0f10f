using System.Text;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Memory;
using Iced.Intel;

namespace Hypervisor.Core.Tests.Support;

/// <summary>CPU modes a test guest can start in.</summary>
public enum GuestMode { Real, Protected32, Long64 }

/// <summary>
/// A bare machine for executor tests: 16 MiB of RAM, a GDT, identity paging in long mode, code
/// assembled with Iced at <see cref="CodeBase"/>. <see cref="Run"/> services port output (bytes to
/// <see cref="Output"/>), IN from <see cref="InputValue"/>, and stops at HLT.
/// GDT: 0x08 code64, 0x10 data (flat, writable), 0x18 code32, 0x20 code16, 0x28 data16,
/// 0x33 user code64 (DPL3), 0x3B user data (DPL3), 0x43 user code32 (DPL3).
/// </summary>
public sealed class GuestMachine : IDisposable
{
    public const ulong CodeBase = 0x10000;
    public const ulong StackTop = 0x80000;
    public const ulong DataBase = 0x200000;
    public const ulong GdtBase = 0x1000;
    public const ulong IdtBase = 0x2000;
    public const ulong Pml4Base = 0x100000;
    public const ulong RamSize = 16 << 20;

    public PhysicalMemory Memory { get; } = new();
    public X86Cpu Cpu { get; }
    public GuestMode Mode { get; }
    public StringBuilder Output { get; } = new();
    public List<(ushort Port, ulong Value, int Size)> Outs { get; } = new();
    public ulong InputValue { get; set; }

    /// <param name="model">The CPU model; the default model when null.</param>
    public GuestMachine(GuestMode mode, Hypervisor.Core.Machine.Models.HostCpuModel? model = null)
    {
        Mode = mode;
        Memory.AddSlot(0, 0, RamSize);
        Cpu = new X86Cpu(Memory, model);
        WriteGdt();
        switch (mode)
        {
            case GuestMode.Real: EnterReal(); break;
            case GuestMode.Protected32: EnterProtected32(); break;
            case GuestMode.Long64: EnterLong64(); break;
        }
    }

    public int Bitness => Mode switch { GuestMode.Real => 16, GuestMode.Protected32 => 32, _ => 64 };

    /// <summary>An assembler for this machine's mode.</summary>
    public Assembler NewAssembler() => new(Bitness);

    private static ulong Descriptor(ulong baseAddr, uint limit, byte access, byte flags) =>
        (limit & 0xFFFFUL) | ((baseAddr & 0xFFFFFF) << 16) | ((ulong)access << 40) | (((ulong)(limit >> 16) & 0xF) << 48)
        | ((ulong)(flags & 0xF) << 52) | (((baseAddr >> 24) & 0xFF) << 56);

    private void WriteGdt()
    {
        ulong[] gdt =
        {
            0,
            Descriptor(0, 0xFFFFF, 0x9B, 0xA), // 0x08 code64: G, L
            Descriptor(0, 0xFFFFF, 0x93, 0xC), // 0x10 data: G, B
            Descriptor(0, 0xFFFFF, 0x9B, 0xC), // 0x18 code32: G, D
            Descriptor(0, 0xFFFF, 0x9B, 0x0),  // 0x20 code16
            Descriptor(0, 0xFFFF, 0x93, 0x0),  // 0x28 data16
            Descriptor(0, 0xFFFFF, 0xFB, 0xA), // 0x30 user code64
            Descriptor(0, 0xFFFFF, 0xF3, 0xC), // 0x38 user data
            Descriptor(0, 0xFFFFF, 0xFB, 0xC), // 0x40 user code32
        };
        for (int k = 0; k < gdt.Length; k++)
            Memory.WriteU64(GdtBase + (ulong)k * 8, gdt[k]);
        Cpu.Gdtr = new DescriptorTable { Base = GdtBase, Limit = (ushort)(gdt.Length * 8 - 1) };
    }

    private static Segment Seg(ushort sel, ushort attr, uint limit = 0xFFFFFFFF) => new() { Selector = sel, Base = 0, Limit = limit, Attributes = attr };

    private void EnterReal()
    {
        Cpu.SetSegment(SegReg.Cs, Segment.RealMode(0, 0x9B));
        foreach (int s in new[] { SegReg.Ds, SegReg.Es, SegReg.Ss, SegReg.Fs, SegReg.Gs })
            Cpu.SetSegment(s, Segment.RealMode(0));
        Cpu.Idtr = new DescriptorTable { Base = 0, Limit = 0x3FF };
        Cpu.SetGpr(Gpr.Rsp, 0x7000);
    }

    private void EnterProtected32()
    {
        Cpu.WriteCr0(Cr0.Pe | Cr0.Et);
        Cpu.SetSegment(SegReg.Cs, Seg(0x18, 0xC09B));
        foreach (int s in new[] { SegReg.Ds, SegReg.Es, SegReg.Ss, SegReg.Fs, SegReg.Gs })
            Cpu.SetSegment(s, Seg(0x10, 0xC093));
        Cpu.SetGpr(Gpr.Rsp, StackTop);
    }

    private void EnterLong64()
    {
        // Identity-map the first 4 GiB with 2 MiB pages.
        Memory.WriteU64(Pml4Base, (Pml4Base + 0x1000) | 7);
        for (ulong g = 0; g < 4; g++)
        {
            ulong pd = Pml4Base + 0x2000 + g * 0x1000;
            Memory.WriteU64(Pml4Base + 0x1000 + g * 8, pd | 7);
            for (ulong e = 0; e < 512; e++)
                Memory.WriteU64(pd + e * 8, ((g << 30) + (e << 21)) | 0x87);
        }
        Cpu.WriteCr4(Cr4.Pae);
        Cpu.WriteCr3(Pml4Base);
        Cpu.WriteEfer(Efer.Lme | Efer.Nxe | Efer.Sce);
        Cpu.WriteCr0(Cr0.Pe | Cr0.Et);
        Cpu.SetSegment(SegReg.Cs, Seg(0x18, 0xC09B));
        Cpu.WriteCr0(Cr0.Pe | Cr0.Et | Cr0.Pg | Cr0.Wp);
        Cpu.SetSegment(SegReg.Cs, Seg(0x08, 0xA09B));
        foreach (int s in new[] { SegReg.Ds, SegReg.Es, SegReg.Ss, SegReg.Fs, SegReg.Gs })
            Cpu.SetSegment(s, Seg(0x10, 0xC093));
        Cpu.SetGpr(Gpr.Rsp, StackTop);
    }

    /// <summary>Assembles at <see cref="CodeBase"/>, loads, and points RIP at it.</summary>
    public void Load(Assembler asm, ulong address = CodeBase)
    {
        var stream = new MemoryStream();
        asm.Assemble(new StreamCodeWriter(stream), address);
        Memory.Write(address, stream.ToArray());
        if (Mode == GuestMode.Real)
        {
            Cpu.SetSegment(SegReg.Cs, Segment.RealMode((ushort)(address >> 4), 0x9B));
            Cpu.Rip = address & 0xF;
        }
        else
        {
            Cpu.Rip = address;
        }
    }

    /// <summary>Runs until HLT (or another exit that is not I/O), servicing port I/O. Returns the final exit.</summary>
    public CpuExit Run(ulong maxInstructions = 10_000_000)
    {
        ulong end = Cpu.InstructionsRetired + maxInstructions;
        while (true)
        {
            var exit = Cpu.Run(end - Cpu.InstructionsRetired);
            if (exit.Reason != CpuExitReason.Io)
                return exit;
            if (exit.IsWrite)
            {
                Outs.Add((exit.Port, exit.Data, exit.Size));
                if (exit.Port == 0xE9 || exit.Port == 0x3F8)
                    Output.Append((char)(byte)exit.Data);
            }
            else
            {
                Cpu.CompleteIoIn(InputValue);
            }
        }
    }

    /// <summary>Assembles, loads and runs to HLT; fails the test on any other exit.</summary>
    public X86Cpu RunToHlt(Action<Assembler> build, ulong maxInstructions = 10_000_000)
    {
        var asm = NewAssembler();
        build(asm);
        asm.hlt();
        Load(asm);
        var exit = Run(maxInstructions);
        if (exit.Reason != CpuExitReason.Hlt)
            throw new InvalidOperationException($"guest did not reach HLT: {exit}");
        return Cpu;
    }

    public ulong Rax => Cpu.GetGpr(Gpr.Rax);
    public ulong Flags => Cpu.GetRFlags();

    public void Dispose()
    {
        Cpu.Dispose();
        Memory.Dispose();
    }
}
