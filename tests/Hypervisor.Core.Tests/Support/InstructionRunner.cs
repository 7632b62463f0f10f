using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Iced.Intel;

namespace Hypervisor.Core.Tests.Support;

/// <summary>What the guest state was after <see cref="InstructionRunner.Run"/>.</summary>
public readonly record struct RunResult(ulong Rax, ulong Rbx, ulong Rcx, ulong Rdx, ulong Flags, int Vector, ulong ErrorCode, ulong FaultRip)
{
    /// <summary>The six status flags (CF PF AF ZF SF OF) only.</summary>
    public ulong Arith => Flags & RFlags.Arith;
    public bool Faulted => Vector >= 0;
}

/// <summary>
/// Runs short instruction sequences on one reused <see cref="GuestMachine"/> with registers and
/// RFLAGS preset from C# (so a test needs no flag-setting instructions), and catches exceptions:
/// every vector 0..31 has an IDT gate to its own HLT stub at <see cref="HandlerBase"/> + 16 * vector,
/// so a fault shows up as the vector, its error code and the RIP it saved.
/// </summary>
public sealed class InstructionRunner : IDisposable
{
    public const ulong HandlerBase = 0x30000;
    /// <summary>Scratch data for memory operands (identity mapped, writable).</summary>
    public const ulong Data = GuestMachine.DataBase;

    public GuestMachine Machine { get; }
    public X86Cpu Cpu => Machine.Cpu;

    public InstructionRunner(GuestMode mode = GuestMode.Long64)
    {
        Machine = new GuestMachine(mode);
        InstallIdt();
    }

    private void InstallIdt()
    {
        var mem = Machine.Memory;
        for (int v = 0; v < 32; v++)
        {
            ulong handler = HandlerBase + (ulong)v * 16;
            mem.Write(handler, new byte[] { 0xF4 }); // HLT
            switch (Machine.Mode)
            {
                case GuestMode.Long64:
                    // 64-bit interrupt gate: selector 0x08 (code64), P=1 DPL=0 type 0xE.
                    mem.WriteU64(GuestMachine.IdtBase + (ulong)v * 16, (handler & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | ((handler >> 16 & 0xFFFF) << 48));
                    mem.WriteU64(GuestMachine.IdtBase + (ulong)v * 16 + 8, handler >> 32);
                    break;
                case GuestMode.Protected32:
                    // 32-bit interrupt gate: selector 0x18 (code32).
                    mem.WriteU64(GuestMachine.IdtBase + (ulong)v * 8, (handler & 0xFFFF) | (0x18UL << 16) | (0x8EUL << 40) | ((handler >> 16 & 0xFFFF) << 48));
                    break;
                default:
                    // Real-mode IVT entry: offset, segment.
                    mem.WriteU32((ulong)v * 4, (uint)((ulong)v * 16 | (HandlerBase >> 4 << 16)));
                    break;
            }
        }
        if (Machine.Mode != GuestMode.Real)
            Cpu.Idtr = new DescriptorTable { Base = GuestMachine.IdtBase, Limit = (ushort)(32 * (Machine.Mode == GuestMode.Long64 ? 16 : 8) - 1) };
    }

    /// <summary>Assembles <paramref name="emit"/> + HLT, presets RAX..RDX and the status flags, and runs it.</summary>
    public RunResult Run(Action<Assembler> emit, ulong rax = 0, ulong rbx = 0, ulong rcx = 0, ulong rdx = 0, ulong flags = 0)
    {
        var asm = Machine.NewAssembler();
        emit(asm);
        asm.hlt();
        Machine.Load(asm);
        ulong stack = Machine.Mode == GuestMode.Real ? 0x7000UL : GuestMachine.StackTop;
        Cpu.SetGpr(Gpr.Rax, rax);
        Cpu.SetGpr(Gpr.Rbx, rbx);
        Cpu.SetGpr(Gpr.Rcx, rcx);
        Cpu.SetGpr(Gpr.Rdx, rdx);
        Cpu.SetGpr(Gpr.Rsp, stack);
        Cpu.SetRFlags(RFlags.Fixed1 | (flags & RFlags.Arith));
        var exit = Machine.Run(100_000);
        if (exit.Reason != CpuExitReason.Hlt)
            throw new InvalidOperationException($"guest did not reach HLT: {exit}");
        ulong rip = Cpu.GetSegment(SegReg.Cs).Base + Cpu.Rip - 1;
        int vector = -1;
        ulong error = 0, faultRip = 0;
        if (rip >= HandlerBase && rip < HandlerBase + 32 * 16)
        {
            vector = (int)(rip - HandlerBase) / 16;
            // The frame the CPU pushed: [error code,] IP, CS, FLAGS ...
            ulong sp = Cpu.GetSegment(SegReg.Ss).Base + Cpu.GetGpr(Gpr.Rsp);
            int slot = Machine.Mode switch { GuestMode.Long64 => 8, GuestMode.Protected32 => 4, _ => 2 };
            bool hasError = vector is 8 or 10 or 11 or 12 or 13 or 14 or 17;
            if (hasError)
            {
                error = ReadSlot(sp, slot);
                sp += (ulong)slot;
            }
            faultRip = ReadSlot(sp, slot);
        }
        return new RunResult(Cpu.GetGpr(Gpr.Rax), Cpu.GetGpr(Gpr.Rbx), Cpu.GetGpr(Gpr.Rcx), Cpu.GetGpr(Gpr.Rdx),
            Cpu.GetRFlags(), vector, error, faultRip);
    }

    private ulong ReadSlot(ulong address, int size) => size switch
    {
        8 => Machine.Memory.ReadU64(address),
        4 => Machine.Memory.ReadU32(address),
        _ => Machine.Memory.ReadU32(address) & 0xFFFF,
    };

    /// <summary>Address of the first instruction (the one a fault test expects as the saved RIP).</summary>
    public ulong CodeStart => Machine.Mode == GuestMode.Real ? 0 : GuestMachine.CodeBase;

    public ulong ReadData(ulong offset, int size) => size switch
    {
        8 => Machine.Memory.ReadU64(Data + offset),
        4 => Machine.Memory.ReadU32(Data + offset),
        2 => Machine.Memory.ReadU32(Data + offset) & 0xFFFF,
        _ => Machine.Memory.ReadU32(Data + offset) & 0xFF,
    };

    public void WriteData(ulong offset, ulong value) => Machine.Memory.WriteU64(Data + offset, value);

    /// <summary>Makes the 2 MiB page at <paramref name="address"/> (below 1 GiB) read-only in long mode.</summary>
    public void MakeReadOnly2M(ulong address)
    {
        ulong pde = GuestMachine.Pml4Base + 0x2000 + (address >> 21) * 8;
        Machine.Memory.WriteU64(pde, (address & ~0x1FFFFFUL) | 0x85); // P, U/S, PS; no R/W
        Cpu.WriteCr3(GuestMachine.Pml4Base); // drops cached translations
    }

    public void Dispose() => Machine.Dispose();
}
