using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Memory;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Support.Data;

/// <summary>What the trap handler recorded about the exception it caught.</summary>
public readonly record struct CaughtException(int Vector, ulong ErrorCode, ulong Rip, ulong Rflags);

/// <summary>
/// A 64-bit IDT for the first 32 vectors whose handlers store the vector, the error code (all ones
/// when the vector has none), the saved RIP and the saved RFLAGS at <see cref="RecordBase"/>, then
/// halt. It lets a test assert exactly which fault an instruction raised, with which error code,
/// and that RIP was left on the faulting instruction, without touching any general register.
/// Layout (free in both <see cref="GuestMachine"/> and <see cref="ModelMachine"/>): IDT at 0x2000,
/// handlers at 0x3000, record at 0x4000.
/// </summary>
public static class ExceptionTrap
{
    public const ulong IdtBase = 0x2000;
    public const ulong StubBase = 0x3000;
    public const ulong RecordBase = 0x4000;
    private const uint NoVector = 0xFFFF_FFFF;

    private static bool HasErrorCode(int v) => v is 8 or 10 or 11 or 12 or 13 or 14 or 17 or 21;

    /// <summary>Installs the IDT on a CPU in 64-bit mode whose GDT has a 64-bit code segment at 0x08.</summary>
    public static void Install(PhysicalMemory memory, X86Cpu cpu)
    {
        var a = new Assembler(64);
        var labels = new Label[32];
        for (int v = 0; v < 32; v++)
        {
            labels[v] = a.CreateLabel();
            a.Label(ref labels[v]);
            a.mov(__dword_ptr[RecordBase], v);
            if (HasErrorCode(v))
                a.pop(__qword_ptr[RecordBase + 8]);
            else
                a.mov(__qword_ptr[RecordBase + 8], -1);
            a.pop(__qword_ptr[RecordBase + 0x10]); // RIP
            a.add(rsp, 8);                          // CS
            a.pop(__qword_ptr[RecordBase + 0x18]); // RFLAGS
            a.hlt();
        }
        var stream = new MemoryStream();
        var result = a.Assemble(new StreamCodeWriter(stream), StubBase, BlockEncoderOptions.ReturnNewInstructionOffsets);
        memory.Write(StubBase, stream.ToArray());
        for (int v = 0; v < 32; v++)
        {
            ulong handler = result.GetLabelRIP(labels[v]);
            // 64-bit interrupt gate: selector 0x08, present, DPL 0, type 0xE.
            ulong lo = (handler & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | (((handler >> 16) & 0xFFFF) << 48);
            memory.WriteU64(IdtBase + (ulong)v * 16, lo);
            memory.WriteU64(IdtBase + (ulong)v * 16 + 8, handler >> 32);
        }
        memory.WriteU32(RecordBase, NoVector);
        cpu.Idtr = new DescriptorTable { Base = IdtBase, Limit = 32 * 16 - 1 };
    }

    /// <summary>The exception the handlers recorded, or null when none was taken.</summary>
    public static CaughtException? Caught(PhysicalMemory memory)
    {
        uint v = memory.ReadU32(RecordBase);
        if (v == NoVector)
            return null;
        return new CaughtException((int)v, memory.ReadU64(RecordBase + 8), memory.ReadU64(RecordBase + 0x10), memory.ReadU64(RecordBase + 0x18));
    }
}
