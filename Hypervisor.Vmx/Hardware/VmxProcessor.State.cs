using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Rap;
using Hypervisor.Core.Machine.Virtualization;

namespace Hypervisor.Vmx.Hardware;

public sealed partial class VmxProcessor
{
    /// <summary>The VMCS fields of segment <paramref name="seg"/> (SDM encoding order ES..TR): the
    /// selector, limit, access-rights and base encodings step by 2.</summary>
    public static VmcsField SelectorField(int seg) => VmcsField.GuestEsSelector + (uint)(2 * seg);
    public static VmcsField LimitField(int seg) => VmcsField.GuestEsLimit + (uint)(2 * seg);
    public static VmcsField AccessRightsField(int seg) => VmcsField.GuestEsAccessRights + (uint)(2 * seg);
    public static VmcsField BaseField(int seg) => VmcsField.GuestEsBase + (uint)(2 * seg);

    public static Segment ReadSegment(Vmcs vmcs, int seg) => new()
    {
        Selector = (ushort)vmcs[SelectorField(seg)],
        Base = vmcs[BaseField(seg)],
        Limit = (uint)vmcs[LimitField(seg)],
        Attributes = VmxSegmentAr.ToAttributes(vmcs[AccessRightsField(seg)]),
    };

    public static void WriteSegment(Vmcs vmcs, int seg, in Segment s)
    {
        vmcs[SelectorField(seg)] = s.Selector;
        vmcs[BaseField(seg)] = s.Base;
        vmcs[LimitField(seg)] = s.Limit;
        vmcs[AccessRightsField(seg)] = VmxSegmentAr.FromSegment(s);
    }

    /// <summary>Loads the guest-state area into the processor (SDM vol. 3 §27.3.2), the second-stage
    /// translation, and applies the VPID rule: without VPID (or with a VPID other than the last one,
    /// since this TLB is not tagged) entry invalidates the guest's translations.</summary>
    private void LoadGuest(Vmcs vmcs)
    {
        var c = _cpu;
        var primary = (VmxPrimaryProcessorControls)vmcs[VmcsField.PrimaryProcessorBasedVmExecutionControls];
        var secondary = (primary & VmxPrimaryProcessorControls.ActivateSecondaryControls) != 0
            ? (VmxSecondaryProcessorControls)vmcs[VmcsField.SecondaryProcessorBasedVmExecutionControls] : VmxSecondaryProcessorControls.None;
        ushort vpid = (secondary & VmxSecondaryProcessorControls.EnableVpid) != 0 ? (ushort)vmcs[VmcsField.VirtualProcessorId] : (ushort)0;
        if (vpid == 0 || vpid != _lastVpid)
            c.Tlb.FlushAll();
        _lastVpid = vpid;

        c.Cr0 = vmcs[VmcsField.GuestCr0];
        c.Cr3 = vmcs[VmcsField.GuestCr3];
        c.Cr4 = vmcs[VmcsField.GuestCr4];
        var entry = (VmxEntryControls)vmcs[VmcsField.VmEntryControls];
        if ((entry & VmxEntryControls.LoadIa32Efer) != 0)
            c.Efer = vmcs[VmcsField.GuestIa32Efer];
        else // SDM §27.3.2.1: LMA and LME from the IA-32e mode guest control
            c.Efer = (entry & VmxEntryControls.Ia32eModeGuest) != 0 ? c.Efer | Efer.Lma | Efer.Lme : c.Efer & ~(Efer.Lma | Efer.Lme);
        bool ept = (secondary & VmxSecondaryProcessorControls.EnableEpt) != 0;
        c.NestedPaging = ept ? new NestedPaging(vmcs[VmcsField.EptPointer] & ~0xFFFUL, NoExecute: true, Ept: true) : null;
        if (c.IsPaePaging)
            c.LoadPdptesForEntry();
        for (int seg = 0; seg < SegReg.Count; seg++)
            c.SetSegmentRaw(seg, ReadSegment(vmcs, seg));
        c.Gdtr = new DescriptorTable { Base = vmcs[VmcsField.GuestGdtrBase], Limit = (ushort)vmcs[VmcsField.GuestGdtrLimit] };
        c.Idtr = new DescriptorTable { Base = vmcs[VmcsField.GuestIdtrBase], Limit = (ushort)vmcs[VmcsField.GuestIdtrLimit] };
        c.Dr[7] = vmcs[VmcsField.GuestDr7];
        c.SetRFlags(vmcs[VmcsField.GuestRflags]);
        c.Rip = vmcs[VmcsField.GuestRip];
        c.SetGpr(Gpr.Rsp, vmcs[VmcsField.GuestRsp]);
        var m = c.Msr;
        m.SysenterCs = vmcs[VmcsField.GuestIa32SysenterCs];
        m.SysenterEsp = vmcs[VmcsField.GuestIa32SysenterEsp];
        m.SysenterEip = vmcs[VmcsField.GuestIa32SysenterEip];
        c.StateLoaded();
        // VMX takes the CPL from SS.DPL (SDM §27.3.2.2).
        int cpl = (c.Cr0 & Cr0.Pe) == 0 ? 0 : c.GetSegment(SegReg.Ss).Dpl;
        if (c.Cpl != cpl)
            c.SetCpl(cpl);
    }

    /// <summary>VM exit (SDM vol. 3 §28): the exit information, then the guest state, into the
    /// VMCS; the processor leaves guest mode.</summary>
    private void VmExit(Vmcs vmcs, Core.Machine.Decoding.CpuExit exit)
    {
        var c = _cpu;
        WriteExitInfo(vmcs, exit);
        vmcs[VmcsField.GuestCr0] = c.Cr0;
        vmcs[VmcsField.GuestCr3] = c.Cr3;
        vmcs[VmcsField.GuestCr4] = c.Cr4;
        for (int seg = 0; seg < SegReg.Count; seg++)
            WriteSegment(vmcs, seg, c.GetSegment(seg));
        vmcs[VmcsField.GuestGdtrBase] = c.Gdtr.Base;
        vmcs[VmcsField.GuestGdtrLimit] = c.Gdtr.Limit;
        vmcs[VmcsField.GuestIdtrBase] = c.Idtr.Base;
        vmcs[VmcsField.GuestIdtrLimit] = c.Idtr.Limit;
        vmcs[VmcsField.GuestDr7] = c.Dr[7];
        vmcs[VmcsField.GuestRflags] = c.GetRFlags();
        vmcs[VmcsField.GuestRip] = c.Rip;
        vmcs[VmcsField.GuestRsp] = c.GetGpr(Gpr.Rsp);
        var m = c.Msr;
        vmcs[VmcsField.GuestIa32SysenterCs] = m.SysenterCs;
        vmcs[VmcsField.GuestIa32SysenterEsp] = m.SysenterEsp;
        vmcs[VmcsField.GuestIa32SysenterEip] = m.SysenterEip;
        if ((((VmxExitControls)vmcs[VmcsField.PrimaryVmExitControls]) & VmxExitControls.SaveIa32Efer) != 0)
            vmcs[VmcsField.GuestIa32Efer] = c.Efer;
        // IA-32e mode guest follows EFER.LMA at every exit (SDM §28.2).
        var entry = (VmxEntryControls)vmcs[VmcsField.VmEntryControls];
        vmcs[VmcsField.VmEntryControls] = (ulong)((c.Efer & Efer.Lma) != 0 ? entry | VmxEntryControls.Ia32eModeGuest : entry & ~VmxEntryControls.Ia32eModeGuest);
        c.Intercepts = null;
        c.CurrentRapDomain = RapDomain.Host;
    }
}
