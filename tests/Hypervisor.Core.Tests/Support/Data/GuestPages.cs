using Hypervisor.Core.Machine.Memory;
using Iced.Intel;

namespace Hypervisor.Core.Tests.Support.Data;

/// <summary>Edits the identity map that <see cref="GuestMachine"/> and <see cref="ModelMachine"/>
/// build (2 MiB pages, first GiB at PD 0) before the guest runs, to make faulting pages.</summary>
public static class GuestPages
{
    /// <summary>2 MiB region 0x400000: mapped present but read-only (CR0.WP makes supervisor writes fault).</summary>
    public const ulong ReadOnly = 0x400000;
    /// <summary>2 MiB region 0x600000: not present.</summary>
    public const ulong NotPresent = 0x600000;

    private static ulong PdeAddress(ulong linear) => GuestMachine.Pml4Base + 0x2000 + (linear >> 21) * 8;

    /// <summary>Marks <see cref="ReadOnly"/> read-only and <see cref="NotPresent"/> not present.</summary>
    public static void MakeFaultingRegions(PhysicalMemory memory)
    {
        memory.WriteU64(PdeAddress(ReadOnly), ReadOnly | 0x85);   // P, U/S, PS; no R/W
        memory.WriteU64(PdeAddress(NotPresent), NotPresent | 0x86); // R/W, U/S, PS; no P
    }

    /// <summary>Decodes the instruction at <paramref name="rip"/> (identity-mapped) to check where a fault left RIP.</summary>
    public static Instruction InstructionAt(PhysicalMemory memory, ulong rip, int bitness = 64)
    {
        var bytes = new byte[15];
        memory.Read(rip, bytes);
        var decoder = Decoder.Create(bitness, new ByteArrayCodeReader(bytes), rip);
        decoder.Decode(out var ins);
        return ins;
    }
}
