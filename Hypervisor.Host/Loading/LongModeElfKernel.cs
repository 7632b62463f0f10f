using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Memory;
using Hypervisor.Core.X86;

namespace Hypervisor.Host.Loading;

/// <summary>
/// An ELF64 x86-64 executable without a multiboot header: its PT_LOAD segments are copied to
/// their physical addresses and it starts in 64-bit mode at e_entry, in the state
/// <see cref="LongModeEntryState"/> documents. hv's page tables map the first 4 GiB one to one,
/// so every segment must be linked where it is loaded (p_vaddr = p_paddr), below 4 GiB, clear of
/// hv's boot structures at 0x1000-0x9000.
/// </summary>
public sealed class LongModeElfKernel : BootImage
{
    private readonly byte[] _file;

    private LongModeElfKernel(byte[] file, IReadOnlyList<LoadSegment> segments, ulong entry)
    {
        _file = file;
        Segments = segments;
        Entry = entry;
    }

    public IReadOnlyList<LoadSegment> Segments { get; }
    public ulong Entry { get; }

    public override string Description => "ELF64 kernel (started in 64-bit mode)";

    /// <summary>Parses and checks an ELF64 file for a guest with <paramref name="memorySize"/> bytes of RAM at 0.</summary>
    /// <exception cref="ImageException">with a one-line message saying what is wrong and where.</exception>
    public static LongModeElfKernel Check(byte[] file, ulong memorySize) => Check(file, ElfImage.Parse(file), memorySize);

    public static LongModeElfKernel Check(byte[] file, ElfImage elf, ulong memorySize)
    {
        if (elf.Bits != 64)
            throw new ImageException($"an ELF{elf.Bits} file without a multiboot header: hv starts only ELF64 kernels without one (in 64-bit mode)");
        for (int k = 0; k < elf.Segments.Count; k++)
        {
            var s = elf.Segments[k];
            if (elf.VirtualAddresses[k] != s.Address)
                throw new ImageException($"{Describe(s)}: p_vaddr 0x{elf.VirtualAddresses[k]:x} differs from p_paddr 0x{s.Address:x}, but hv's initial page tables map the first 4 GiB one to one (link the kernel where it loads, or give it a multiboot header)");
        }
        ulong reach = Math.Min(memorySize, LongModeEntryState.MappedLimit);
        SegmentChecks.Check(elf.Segments, Describe, memorySize, reach, elf.Entry,
            (LongModeEntryState.ReservedStart, LongModeEntryState.ReservedEnd, "the 64-bit boot GDT, TSS, page tables and stack"));
        return new LongModeElfKernel(file, elf.Segments, elf.Entry);
    }

    private static string Describe(LoadSegment s) => $"program header {s.Index} (PT_LOAD {s})";

    public override void WriteInto(PhysicalMemory memory)
    {
        SegmentWriter.Write(memory, _file, Segments);
        memory.Write(LongModeEntryState.ReservedStart, LongModeEntryState.BuildStructures());
    }

    public override void SetEntryState(Vcpu vcpu) => new LongModeEntryState(Entry).Apply(vcpu);

    public override void SetEntryState(X86Cpu cpu) => new LongModeEntryState(Entry).Apply(cpu);
}
