namespace Hypervisor.Svm.Hardware;

/// <summary>A named VMCB field: where it is and how many bytes it has (snapshots, dumps, diffs).</summary>
public readonly record struct VmcbField(string Name, int Offset, int Width);

/// <summary>
/// Every VMCB field this project names, by area, in offset order (APM vol. 2 appendix B tables
/// B-1 and B-2). Segment registers are listed as four fields each (selector, attrib, limit, base).
/// Fields wider than 8 bytes (the guest instruction bytes) are listed as byte strings.
/// </summary>
public static class VmcbFields
{
    public static IReadOnlyList<VmcbField> Control { get; } =
    [
        new("interceptCrRead", VmcbOffset.InterceptCrRead, 2),
        new("interceptCrWrite", VmcbOffset.InterceptCrWrite, 2),
        new("interceptDrRead", VmcbOffset.InterceptDrRead, 2),
        new("interceptDrWrite", VmcbOffset.InterceptDrWrite, 2),
        new("interceptExceptions", VmcbOffset.InterceptExceptions, 4),
        new("interceptMisc1", VmcbOffset.InterceptMisc1, 4),
        new("interceptMisc2", VmcbOffset.InterceptMisc2, 4),
        new("interceptMisc3", VmcbOffset.InterceptMisc3, 4),
        new("pauseFilterThreshold", VmcbOffset.PauseFilterThreshold, 2),
        new("pauseFilterCount", VmcbOffset.PauseFilterCount, 2),
        new("iopmBasePa", VmcbOffset.IopmBasePa, 8),
        new("msrpmBasePa", VmcbOffset.MsrpmBasePa, 8),
        new("tscOffset", VmcbOffset.TscOffset, 8),
        new("guestAsid", VmcbOffset.GuestAsid, 4),
        new("tlbControl", VmcbOffset.TlbControl, 1),
        new("erapCtl", VmcbOffset.ErapCtl, 1),
        new("intCtl", VmcbOffset.IntCtl, 8),
        new("intState", VmcbOffset.IntState, 8),
        new("exitCode", VmcbOffset.ExitCode, 8),
        new("exitInfo1", VmcbOffset.ExitInfo1, 8),
        new("exitInfo2", VmcbOffset.ExitInfo2, 8),
        new("exitIntInfo", VmcbOffset.ExitIntInfo, 8),
        new("miscCtl", VmcbOffset.MiscCtl, 8),
        new("avicApicBar", VmcbOffset.AvicApicBar, 8),
        new("ghcbGpa", VmcbOffset.GhcbGpa, 8),
        new("eventInj", VmcbOffset.EventInj, 8),
        new("nCr3", VmcbOffset.NCr3, 8),
        new("miscCtl2", VmcbOffset.MiscCtl2, 8),
        new("vmcbCleanBits", VmcbOffset.VmcbCleanBits, 4),
        new("nRip", VmcbOffset.NRip, 8),
        new("guestInstructionBytesCount", VmcbOffset.GuestInstructionBytesCount, 1),
        new("guestInstructionBytes", VmcbOffset.GuestInstructionBytes, VmcbOffset.GuestInstructionBytesLength),
        new("avicBackingPage", VmcbOffset.AvicBackingPage, 8),
        new("avicLogicalTable", VmcbOffset.AvicLogicalTable, 8),
        new("avicPhysicalTable", VmcbOffset.AvicPhysicalTable, 8),
        new("vmsaPa", VmcbOffset.VmsaPa, 8),
        new("vmgexitRax", VmcbOffset.VmgexitRax, 8),
        new("vmgexitCpl", VmcbOffset.VmgexitCpl, 1),
        new("busLockThresholdCounter", VmcbOffset.BusLockThresholdCounter, 2),
        new("allowedSevFeatures", VmcbOffset.AllowedSevFeatures, 8),
        new("guestSevFeatures", VmcbOffset.GuestSevFeatures, 8),
    ];

    public static IReadOnlyList<VmcbField> Save { get; } = BuildSave();

    private static VmcbField[] BuildSave()
    {
        var list = new List<VmcbField>();
        foreach (var (name, at) in new[]
        {
            ("es", VmcbOffset.Es), ("cs", VmcbOffset.Cs), ("ss", VmcbOffset.Ss), ("ds", VmcbOffset.Ds), ("fs", VmcbOffset.Fs),
            ("gs", VmcbOffset.Gs), ("gdtr", VmcbOffset.Gdtr), ("ldtr", VmcbOffset.Ldtr), ("idtr", VmcbOffset.Idtr), ("tr", VmcbOffset.Tr),
        })
        {
            list.Add(new($"{name}.selector", at + VmcbOffset.SegmentSelector, 2));
            list.Add(new($"{name}.attrib", at + VmcbOffset.SegmentAttrib, 2));
            list.Add(new($"{name}.limit", at + VmcbOffset.SegmentLimit, 4));
            list.Add(new($"{name}.base", at + VmcbOffset.SegmentBase, 8));
        }
        list.AddRange(
        [
            new("vmpl", VmcbOffset.Vmpl, 1), new("cpl", VmcbOffset.Cpl, 1), new("efer", VmcbOffset.Efer, 8),
            new("cr4", VmcbOffset.Cr4, 8), new("cr3", VmcbOffset.Cr3, 8), new("cr0", VmcbOffset.Cr0, 8),
            new("dr7", VmcbOffset.Dr7, 8), new("dr6", VmcbOffset.Dr6, 8), new("rflags", VmcbOffset.Rflags, 8),
            new("rip", VmcbOffset.Rip, 8), new("rsp", VmcbOffset.Rsp, 8), new("sCet", VmcbOffset.SCet, 8),
            new("ssp", VmcbOffset.Ssp, 8), new("isstAddr", VmcbOffset.IsstAddr, 8), new("rax", VmcbOffset.Rax, 8),
            new("star", VmcbOffset.Star, 8), new("lstar", VmcbOffset.Lstar, 8), new("cstar", VmcbOffset.Cstar, 8),
            new("sfmask", VmcbOffset.Sfmask, 8), new("kernelGsBase", VmcbOffset.KernelGsBase, 8),
            new("sysenterCs", VmcbOffset.SysenterCs, 8), new("sysenterEsp", VmcbOffset.SysenterEsp, 8),
            new("sysenterEip", VmcbOffset.SysenterEip, 8), new("cr2", VmcbOffset.Cr2, 8), new("gPat", VmcbOffset.GPat, 8),
            new("dbgCtl", VmcbOffset.DbgCtl, 8), new("brFrom", VmcbOffset.BrFrom, 8), new("brTo", VmcbOffset.BrTo, 8),
            new("lastExcpFrom", VmcbOffset.LastExcpFrom, 8), new("lastExcpTo", VmcbOffset.LastExcpTo, 8),
            new("specCtrl", VmcbOffset.SpecCtrl, 8),
        ]);
        return list.ToArray();
    }
}
