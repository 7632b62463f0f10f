using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Memory;
using Hypervisor.Core.X86;

namespace Hypervisor.Host.Loading;

/// <summary>
/// A raw binary (<c>--load flat:ADDR[,entry=ADDR][,mode=32|64]</c>): the whole file at guest
/// physical ADDR, started at the entry. Mode 32 is the multiboot entry state without loader
/// information (EAX = EBX = 0): 32-bit protected mode, paging off, flat segments from a GDT hv
/// puts at 0x1000. Mode 64 is <see cref="LongModeEntryState"/>. Either way the binary must lie
/// below 4 GiB and leave hv's structures (0x1000-0x2000 in mode 32, 0x1000-0x9000 in mode 64) free.
/// </summary>
public sealed class FlatBinary : BootImage
{
    /// <summary>Where mode 32 puts its GDT.</summary>
    public const ulong GdtBase = 0x1000;

    private readonly byte[] _file;

    private FlatBinary(byte[] file, FlatLoadSpec spec)
    {
        _file = file;
        Spec = spec;
    }

    public FlatLoadSpec Spec { get; }

    public override string Description => $"flat binary ({Spec.Mode}-bit)";

    /// <exception cref="ImageException">with a one-line message saying what is wrong and where.</exception>
    public static FlatBinary Check(byte[] file, FlatLoadSpec spec, ulong memorySize)
    {
        if (file.Length == 0)
            throw new ImageException("truncated: the file is empty, so --load flat has nothing to load");
        var segment = new LoadSegment(0, spec.Address, 0, (ulong)file.Length, (ulong)file.Length);
        var reserved = spec.Mode == 64
            ? (LongModeEntryState.ReservedStart, LongModeEntryState.ReservedEnd, "the 64-bit boot GDT, TSS, page tables and stack")
            : (GdtBase, GdtBase + 0x1000, "the boot GDT");
        SegmentChecks.Check([segment], s => $"the flat binary {s}", memorySize, Math.Min(memorySize, 1UL << 32), spec.Entry, reserved);
        return new FlatBinary(file, spec);
    }

    public override void WriteInto(PhysicalMemory memory)
    {
        memory.Write(Spec.Address, _file);
        if (Spec.Mode == 64)
        {
            memory.Write(LongModeEntryState.ReservedStart, LongModeEntryState.BuildStructures());
            return;
        }
        var gdt = new byte[MultibootInfo.GdtEntries * 8];
        MultibootInfo.WriteGdt(gdt);
        memory.Write(GdtBase, gdt);
    }

    public override void SetEntryState(Vcpu vcpu)
    {
        if (Spec.Mode == 64)
            new LongModeEntryState(Spec.Entry).Apply(vcpu);
        else
            ProtectedMode.Apply(vcpu);
    }

    public override void SetEntryState(X86Cpu cpu)
    {
        if (Spec.Mode == 64)
            new LongModeEntryState(Spec.Entry).Apply(cpu);
        else
            ProtectedMode.Apply(cpu);
    }

    private MultibootEntryState ProtectedMode => new((uint)Spec.Entry, BootInfo: 0, GdtBase, Eax: 0);
}
