using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.X86;
using Hypervisor.Svm.Hardware;

namespace Hypervisor.Svm;

/// <summary>Guest state that lives in the VMCB save area, and TLB/event controls.</summary>
public sealed partial class SvmOps
{
    private static VmcbSegment ToVmcb(int seg) => VmcbSegmentAttrib.FromSegReg(seg);

    public Segment GetSegment(Vcpu vcpu, int seg) => ToSvm(vcpu).Current.GetSegment(ToVmcb(seg));

    public void SetSegment(Vcpu vcpu, int seg, Segment value)
    {
        var vmcb = ToSvm(vcpu).Current;
        vmcb.SetSegment(ToVmcb(seg), value);
        if (seg == SegReg.Cs)
            vmcb.Cpl = (byte)((vcpu.Cr0 & Cr0.Pe) == 0 ? 0 : value.Selector & 3);
        if (seg == SegReg.Ss && (vcpu.Cr0 & Cr0.Pe) != 0)
            vmcb.Cpl = (byte)value.Dpl; // SVM takes CPL from SS.DPL
        vmcb.MarkDirty(VmcbClean.Seg);
    }

    public int GetCpl(Vcpu vcpu) => ToSvm(vcpu).Current.Cpl;

    public DescriptorTable GetGdt(Vcpu vcpu) => ToSvm(vcpu).Current.Gdtr;
    public DescriptorTable GetIdt(Vcpu vcpu) => ToSvm(vcpu).Current.Idtr;

    public void SetGdt(Vcpu vcpu, DescriptorTable value)
    {
        var vmcb = ToSvm(vcpu).Current;
        vmcb.Gdtr = value;
        vmcb.MarkDirty(VmcbClean.Dt);
    }

    public void SetIdt(Vcpu vcpu, DescriptorTable value)
    {
        var vmcb = ToSvm(vcpu).Current;
        vmcb.Idtr = value;
        vmcb.MarkDirty(VmcbClean.Dt);
    }

    public void SetCr0(Vcpu vcpu, ulong value)
    {
        var vmcb = ToSvm(vcpu).Current;
        vmcb.Cr0 = value;
        vmcb.MarkDirty(VmcbClean.Crx);
    }

    public void SetCr4(Vcpu vcpu, ulong value)
    {
        var vmcb = ToSvm(vcpu).Current;
        vmcb.Cr4 = value;
        vmcb.MarkDirty(VmcbClean.Crx);
    }

    /// <summary>The hardware requires EFER.SVME in the guest's EFER while it runs under SVM.</summary>
    public void SetEfer(Vcpu vcpu, ulong value)
    {
        var vmcb = ToSvm(vcpu).Current;
        vmcb.Efer = value | Efer.Svme;
        vmcb.MarkDirty(VmcbClean.Crx);
    }

    private static void FlushTlbAsid(Vcpu vcpu) => ToSvm(vcpu).Current.TlbControl = TlbControl.FlushGuest;

    public void FlushTlbAll(Vcpu vcpu) => FlushTlbAsid(vcpu);
    public void FlushTlbCurrent(Vcpu vcpu) => FlushTlbAsid(vcpu);

    /// <summary>INVLPGA for the guest's ASID: every PCID's translation of that page goes.</summary>
    public void FlushTlbGva(Vcpu vcpu, ulong gva) => vcpu.Cpu.InvalidatePageAllContexts(gva);

    public void InjectException(Vcpu vcpu, int vector, bool hasErrorCode, uint errorCode)
    {
        var vmcb = ToSvm(vcpu).Current;
        vmcb.EventInj = hasErrorCode
            ? SvmEventInfo.Create((byte)vector, SvmEventType.Exception, errorCode)
            : SvmEventInfo.Create((byte)vector, SvmEventType.Exception);
        if (vector == Vector.PF)
        {
            vmcb.Cr2 = vcpu.Cr2;
            vmcb.MarkDirty(VmcbClean.Cr2);
        }
    }

    /// <summary>MSRs whose guest values the VMCB holds (VMLOAD/VMSAVE state and G_PAT).</summary>
    public bool GetMsr(Vcpu vcpu, uint msr, out ulong value)
    {
        var vmcb = ToSvm(vcpu).Current;
        switch (msr)
        {
            case MsrIndex.Star: value = vmcb.Star; return true;
            case MsrIndex.Lstar: value = vmcb.Lstar; return true;
            case MsrIndex.Cstar: value = vmcb.Cstar; return true;
            case MsrIndex.Sfmask: value = vmcb.Sfmask; return true;
            case MsrIndex.KernelGsBase: value = vmcb.KernelGsBase; return true;
            case MsrIndex.FsBase: value = vmcb.Fs.Base; return true;
            case MsrIndex.GsBase: value = vmcb.Gs.Base; return true;
            case MsrIndex.SysenterCs: value = vmcb.SysenterCs; return true;
            case MsrIndex.SysenterEsp: value = vmcb.SysenterEsp; return true;
            case MsrIndex.SysenterEip: value = vmcb.SysenterEip; return true;
            case MsrIndex.Pat: value = vmcb.GPat; return true;
            case MsrIndex.Tsc: value = vcpu.Cpu.Tsc + vmcb.TscOffset; return true;
            default: value = 0; return false;
        }
    }

    public bool SetMsr(Vcpu vcpu, uint msr, ulong value)
    {
        var vmcb = ToSvm(vcpu).Current;
        switch (msr)
        {
            case MsrIndex.Star: vmcb.Star = value; return true;
            case MsrIndex.Lstar: vmcb.Lstar = value; return true;
            case MsrIndex.Cstar: vmcb.Cstar = value; return true;
            case MsrIndex.Sfmask: vmcb.Sfmask = value & 0xFFFF_FFFF; return (value >> 32) == 0;
            case MsrIndex.KernelGsBase: vmcb.KernelGsBase = value; return true;
            case MsrIndex.FsBase: vmcb.SetSegmentBase(VmcbSegment.Fs, value); return true;
            case MsrIndex.GsBase: vmcb.SetSegmentBase(VmcbSegment.Gs, value); return true;
            case MsrIndex.SysenterCs: vmcb.SysenterCs = value & 0xFFFF; return true;
            case MsrIndex.SysenterEsp: vmcb.SysenterEsp = value; return true;
            case MsrIndex.SysenterEip: vmcb.SysenterEip = value; return true;
            case MsrIndex.Pat:
                for (int k = 0; k < 8; k++)
                    if (((value >> (8 * k)) & 0xFF) is 2 or 3 or > 7) return false;
                vmcb.GPat = value;
                vmcb.MarkDirty(VmcbClean.Np);
                return true;
            case MsrIndex.Tsc:
                vmcb.TscOffset = value - vcpu.Cpu.Tsc;
                vmcb.MarkDirty(VmcbClean.Intercepts);
                return true;
            default: return false;
        }
    }
}
