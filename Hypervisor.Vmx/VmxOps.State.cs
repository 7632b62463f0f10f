using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.X86;
using Hypervisor.Vmx.Hardware;

namespace Hypervisor.Vmx;

/// <summary>Guest state that lives in the VMCS guest-state area, and TLB/event controls.</summary>
public sealed partial class VmxOps
{
    public Segment GetSegment(Vcpu vcpu, int seg) => VmxProcessor.ReadSegment(ToVmx(vcpu).Vmcs, seg);

    public void SetSegment(Vcpu vcpu, int seg, Segment value) => VmxProcessor.WriteSegment(ToVmx(vcpu).Vmcs, seg, value);

    /// <summary>VMX's CPL is SS.DPL (0 in real mode).</summary>
    public int GetCpl(Vcpu vcpu) => (vcpu.Cr0 & Cr0.Pe) == 0 ? 0 : GetSegment(vcpu, SegReg.Ss).Dpl;

    public DescriptorTable GetGdt(Vcpu vcpu)
    {
        var vmcs = ToVmx(vcpu).Vmcs;
        return new DescriptorTable { Base = vmcs[VmcsField.GuestGdtrBase], Limit = (ushort)vmcs[VmcsField.GuestGdtrLimit] };
    }

    public DescriptorTable GetIdt(Vcpu vcpu)
    {
        var vmcs = ToVmx(vcpu).Vmcs;
        return new DescriptorTable { Base = vmcs[VmcsField.GuestIdtrBase], Limit = (ushort)vmcs[VmcsField.GuestIdtrLimit] };
    }

    public void SetGdt(Vcpu vcpu, DescriptorTable value)
    {
        var vmcs = ToVmx(vcpu).Vmcs;
        vmcs[VmcsField.GuestGdtrBase] = value.Base;
        vmcs[VmcsField.GuestGdtrLimit] = value.Limit;
    }

    public void SetIdt(Vcpu vcpu, DescriptorTable value)
    {
        var vmcs = ToVmx(vcpu).Vmcs;
        vmcs[VmcsField.GuestIdtrBase] = value.Base;
        vmcs[VmcsField.GuestIdtrLimit] = value.Limit;
    }

    /// <summary>vmx_set_cr0: the guest's value goes to the read shadow; the processor's CR0 keeps
    /// NE set, which VMX operation requires (IA32_VMX_CR0_FIXED0).</summary>
    public void SetCr0(Vcpu vcpu, ulong value)
    {
        var vmcs = ToVmx(vcpu).Vmcs;
        vmcs[VmcsField.Cr0ReadShadow] = value;
        vmcs[VmcsField.GuestCr0] = value | Cr0.Ne;
    }

    /// <summary>vmx_set_cr4: the guest's value to the read shadow; the processor's CR4 has VMXE
    /// (IA32_VMX_CR4_FIXED0), which the shadow hides.</summary>
    public void SetCr4(Vcpu vcpu, ulong value)
    {
        var vmcs = ToVmx(vcpu).Vmcs;
        vmcs[VmcsField.Cr4ReadShadow] = value;
        vmcs[VmcsField.GuestCr4] = value | Cr4.Vmxe;
    }

    /// <summary>Nested VMX is not offered: the guest cannot set CR4.VMXE.</summary>
    public bool IsValidCr4(Vcpu vcpu, ulong value) => (value & Cr4.Vmxe) == 0;

    /// <summary>vmx_set_efer: the guest's EFER in the VMCS (loaded on entry) and the IA-32e mode
    /// guest entry control following EFER.LMA.</summary>
    public void SetEfer(Vcpu vcpu, ulong value)
    {
        var vmcs = ToVmx(vcpu).Vmcs;
        vmcs[VmcsField.GuestIa32Efer] = value;
        var entry = (VmxEntryControls)vmcs[VmcsField.VmEntryControls];
        vmcs[VmcsField.VmEntryControls] = (ulong)((value & Efer.Lma) != 0 ? entry | VmxEntryControls.Ia32eModeGuest : entry & ~VmxEntryControls.Ia32eModeGuest);
    }

    /// <summary>INVEPT / INVVPID of the guest's contexts.</summary>
    public void FlushTlbAll(Vcpu vcpu) => ToVmx(vcpu).Processor.InvalidateAll();
    public void FlushTlbCurrent(Vcpu vcpu) => ToVmx(vcpu).Processor.InvalidateAll();
    /// <summary>vmx_flush_tlb_guest: INVVPID single-context (VMX has no RAP to clear).</summary>
    public void FlushTlbGuest(Vcpu vcpu) => ToVmx(vcpu).Processor.InvalidateAll();
    /// <summary>INVVPID individual-address.</summary>
    public void FlushTlbGva(Vcpu vcpu, ulong gva) => ToVmx(vcpu).Processor.InvalidateAddress(gva);

    /// <summary>The VM-entry interruption-information field: the exception is delivered on the next entry.</summary>
    public void InjectException(Vcpu vcpu, int vector, bool hasErrorCode, uint errorCode)
    {
        var vmcs = ToVmx(vcpu).Vmcs;
        vmcs[VmcsField.VmEntryInterruptionInformation] = VmxInterruptionInfo.Create(vector, VmxInterruptionType.HardwareException, hasErrorCode).Raw;
        vmcs[VmcsField.VmEntryExceptionErrorCode] = hasErrorCode ? errorCode : 0;
        vmcs[VmcsField.VmEntryInstructionLength] = 0;
    }

    /// <summary>MSRs whose guest values the VMCS holds, and the user-return MSRs that stay in the
    /// processor while the guest is loaded.</summary>
    public bool GetMsr(Vcpu vcpu, uint msr, out ulong value)
    {
        var vmcs = ToVmx(vcpu).Vmcs;
        var m = vcpu.Cpu.Msr;
        switch (msr)
        {
            case MsrIndex.Star: value = m.Star; return true;
            case MsrIndex.Lstar: value = m.Lstar; return true;
            case MsrIndex.Cstar: value = m.Cstar; return true;
            case MsrIndex.Sfmask: value = m.Sfmask; return true;
            case MsrIndex.KernelGsBase: value = m.KernelGsBase; return true;
            case MsrIndex.FsBase: value = vmcs[VmcsField.GuestFsBase]; return true;
            case MsrIndex.GsBase: value = vmcs[VmcsField.GuestGsBase]; return true;
            case MsrIndex.SysenterCs: value = vmcs[VmcsField.GuestIa32SysenterCs]; return true;
            case MsrIndex.SysenterEsp: value = vmcs[VmcsField.GuestIa32SysenterEsp]; return true;
            case MsrIndex.SysenterEip: value = vmcs[VmcsField.GuestIa32SysenterEip]; return true;
            case MsrIndex.Pat: value = vmcs[VmcsField.GuestIa32Pat]; return true;
            case MsrIndex.Tsc: value = vcpu.Cpu.Tsc + vmcs[VmcsField.TscOffset]; return true;
            default: value = 0; return false;
        }
    }

    public bool SetMsr(Vcpu vcpu, uint msr, ulong value)
    {
        var vmcs = ToVmx(vcpu).Vmcs;
        var m = vcpu.Cpu.Msr;
        switch (msr)
        {
            case MsrIndex.Star: m.Star = value; return true;
            case MsrIndex.Lstar: m.Lstar = value; return true;
            case MsrIndex.Cstar: m.Cstar = value; return true;
            case MsrIndex.Sfmask: m.Sfmask = value & 0xFFFF_FFFF; return (value >> 32) == 0;
            case MsrIndex.KernelGsBase: m.KernelGsBase = value; return true;
            case MsrIndex.FsBase: vmcs[VmcsField.GuestFsBase] = value; return true;
            case MsrIndex.GsBase: vmcs[VmcsField.GuestGsBase] = value; return true;
            case MsrIndex.SysenterCs: vmcs[VmcsField.GuestIa32SysenterCs] = value & 0xFFFF; return true;
            case MsrIndex.SysenterEsp: vmcs[VmcsField.GuestIa32SysenterEsp] = value; return true;
            case MsrIndex.SysenterEip: vmcs[VmcsField.GuestIa32SysenterEip] = value; return true;
            case MsrIndex.Pat:
                for (int k = 0; k < 8; k++)
                    if (((value >> (8 * k)) & 0xFF) is 2 or 3 or > 7) return false;
                vmcs[VmcsField.GuestIa32Pat] = value;
                return true;
            case MsrIndex.Tsc:
                vmcs[VmcsField.TscOffset] = value - vcpu.Cpu.Tsc;
                return true;
            default: return false;
        }
    }
}
