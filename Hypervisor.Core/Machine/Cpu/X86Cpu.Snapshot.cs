namespace Hypervisor.Core.Machine.Cpu;

/// <summary>The processor state that no vCPU structure holds and that a snapshot must keep: the
/// plain MSRs, DR0-DR3, CR8 and XCR0 as the processor has them, and the clock.</summary>
public sealed record ProcessorState
{
    public ulong Dr0, Dr1, Dr2, Dr3, Cr8, Xcr0;
    public ulong Star, Lstar, Cstar, Sfmask, KernelGsBase, TscAux, Pat, ApicBase, SpecCtrl;
    public ulong SysenterCs, SysenterEsp, SysenterEip;
    public TscClock Clock;
    public ulong InstructionsRetired;
    public long TscOffset;
}

public sealed unsafe partial class X86Cpu
{
    /// <summary>True while an IN or MMIO read waits to be replayed: the processor is mid-instruction,
    /// which a snapshot cannot express (the vCPU keeps its own completion record instead).</summary>
    public bool HasPendingReplay => _ioReplay || _mmioReplay || _exitPending || _pendingVector >= 0;

    public ProcessorState CaptureProcessorState() => new()
    {
        Dr0 = Dr[0], Dr1 = Dr[1], Dr2 = Dr[2], Dr3 = Dr[3], Cr8 = Cr8, Xcr0 = Xcr0,
        Star = Msr.Star, Lstar = Msr.Lstar, Cstar = Msr.Cstar, Sfmask = Msr.Sfmask, KernelGsBase = Msr.KernelGsBase,
        TscAux = Msr.TscAux, Pat = Msr.Pat, ApicBase = Msr.ApicBase, SpecCtrl = Msr.SpecCtrl,
        SysenterCs = Msr.SysenterCs, SysenterEsp = Msr.SysenterEsp, SysenterEip = Msr.SysenterEip,
        Clock = Clock, InstructionsRetired = InstructionsRetired, TscOffset = TscOffset,
    };

    /// <summary>Snapshot restore of <see cref="ProcessorState"/>; cached translations and code are
    /// dropped, as they may describe memory the restore replaces.</summary>
    public void RestoreProcessorState(ProcessorState s)
    {
        (Dr[0], Dr[1], Dr[2], Dr[3], Cr8, Xcr0) = (s.Dr0, s.Dr1, s.Dr2, s.Dr3, s.Cr8, s.Xcr0);
        var m = Msr;
        (m.Star, m.Lstar, m.Cstar, m.Sfmask, m.KernelGsBase) = (s.Star, s.Lstar, s.Cstar, s.Sfmask, s.KernelGsBase);
        (m.TscAux, m.Pat, m.ApicBase, m.SpecCtrl) = (s.TscAux, s.Pat, s.ApicBase, s.SpecCtrl);
        (m.SysenterCs, m.SysenterEsp, m.SysenterEip) = (s.SysenterCs, s.SysenterEsp, s.SysenterEip);
        Clock = s.Clock;
        InstructionsRetired = s.InstructionsRetired;
        TscOffset = s.TscOffset;
        ClearPending();
        Tlb.FlushAll();
        FlushTranslations();
        ModeChanged();
    }
}
