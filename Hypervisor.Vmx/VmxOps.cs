using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86;
using Hypervisor.Core.X86.Cpuid;
using Hypervisor.Core.X86.Mmu;
using Hypervisor.Vmx.Hardware;

namespace Hypervisor.Vmx;

/// <summary>
/// The VMX vendor module (kvm-intel): implements <see cref="IX86Ops"/> on the software CPU's VMX
/// extension. It keeps the guest in a VMCS, enters it with VMLAUNCH/VMRESUME, and dispatches VM
/// exits through a table indexed by basic exit reason (VmxOps.Exits.cs) to the common x86
/// layer's emulation. Second-stage translation is EPT, built by the common TDP MMU in EPT format.
/// </summary>
public sealed partial class VmxOps : IX86Ops
{
    private ushort _nextVpid = 1;

    public VmxOps(VmxOptions? options = null) => Options = options ?? new VmxOptions();

    public VmxOptions Options { get; }
    public string Name => "vmx";
    public CpuFeature HardwareFeature => CpuFeatures.Vmx;
    public TdpFormat TdpFormat => TdpFormat.Ept;

    public static VcpuVmx ToVmx(Vcpu vcpu) => (VcpuVmx)vcpu.VendorState!;

    /// <summary>vmx_set_cpu_caps: APX when the hardware has it (its state is switched on entry and
    /// exit, KVM-FACTS §5); no ERAPS on Intel; nested VMX is not offered.</summary>
    public void HardwareSetup(HostCpuModel model, CpuCaps caps)
    {
        if (CpuCaps.HardwareHas(model, CpuFeatures.ApxF))
            caps.Set(CpuFeatures.ApxF);
        caps.Clear(CpuFeatures.Eraps);
        caps.Clear(CpuFeatures.Vmx);
    }

    public void VcpuCreate(Vcpu vcpu)
    {
        var vmx = new VcpuVmx(vcpu, _nextVpid++);
        vcpu.VendorState = vmx;
        vcpu.Stats.VendorNames = code => VmxExitReasons.Name((VmxExitReason)code);
        // hardware_enable: VMXON with a region carrying the revision identifier; then VMCLEAR and
        // VMPTRLD of the vCPU's VMCS (vmx_vcpu_load).
        vmx.Processor.Vmxon(VcpuVmx.VmxonRegionAddress, VmxProcessorCapabilities.RevisionId);
        vmx.Vmcs.Clear();
        vmx.Processor.Vmptrld(vmx.Vmcs);
        InitVmcs(vcpu, vmx);
    }

    public void VcpuFree(Vcpu vcpu)
    {
        var vmx = ToVmx(vcpu);
        vmx.Processor.Vmxoff();
        vmx.Dispose();
    }

    /// <summary>init_vmcs: the controls KVM sets for every guest, the bitmaps, the VPID and EPTP.</summary>
    private void InitVmcs(Vcpu vcpu, VcpuVmx vmx)
    {
        var vmcs = vmx.Vmcs;
        bool ept = vcpu.Vm.Options.NestedPaging;
        bool interceptCr3 = !ept || vcpu.Vm.Options.InterceptCr3AndInvpcid;
        vmcs[VmcsField.PinBasedVmExecutionControls] = VmxProcessorCapabilities.PinBased.Adjust(
            (uint)(VmxPinBasedControls.ExternalInterruptExiting | VmxPinBasedControls.NmiExiting));
        var primary = VmxPrimaryProcessorControls.HltExiting | VmxPrimaryProcessorControls.UseIoBitmaps
            | VmxPrimaryProcessorControls.UseMsrBitmaps | VmxPrimaryProcessorControls.MwaitExiting
            | VmxPrimaryProcessorControls.MonitorExiting | VmxPrimaryProcessorControls.ActivateSecondaryControls;
        if (interceptCr3)
            primary |= VmxPrimaryProcessorControls.Cr3LoadExiting | VmxPrimaryProcessorControls.Cr3StoreExiting;
        vmcs[VmcsField.PrimaryProcessorBasedVmExecutionControls] = VmxProcessorCapabilities.PrimaryProcessorBased.Adjust((uint)primary);
        vmcs[VmcsField.PrimaryVmExitControls] = VmxProcessorCapabilities.Exit.Adjust((uint)(VmxExitControls.HostAddressSpaceSize
            | VmxExitControls.AcknowledgeInterruptOnExit | VmxExitControls.SaveIa32Pat | VmxExitControls.LoadIa32Pat
            | VmxExitControls.SaveIa32Efer | VmxExitControls.LoadIa32Efer));
        vmcs[VmcsField.VmEntryControls] = VmxProcessorCapabilities.Entry.Adjust((uint)(VmxEntryControls.LoadIa32Pat | VmxEntryControls.LoadIa32Efer));
        vmcs[VmcsField.ExceptionBitmap] = 0;
        vmcs[VmcsField.Cr3TargetCount] = 0;
        vmcs[VmcsField.VmcsLinkPointer] = ulong.MaxValue;
        vmcs[VmcsField.VirtualProcessorId] = vmx.Vpid;
        if (ept)
            vmcs[VmcsField.EptPointer] = vcpu.Vm.Mmu!.Root | 6 /*write-back*/ | (3 << 3) /*4-level walk*/;
        // KVM lets the guest own CR0.TS (and CR0.WP with EPT) and the CR4 bits whose changes need no
        // hypervisor work; every other bit is the hypervisor's, read through the shadows.
        vmx.Cr0GuestOwnedBits = Cr0.Ts | (ept ? Cr0.Wp : 0);
        vmx.Cr4GuestOwnedBits = Cr4.Pvi | Cr4.De | Cr4.Pce | Cr4.Osfxsr | Cr4.Osxmmexcpt;
        vmcs[VmcsField.Cr0GuestHostMask] = ~vmx.Cr0GuestOwnedBits;
        vmcs[VmcsField.Cr4GuestHostMask] = ~vmx.Cr4GuestOwnedBits;
        vmx.IoBitmaps.InterceptAll();
        vmx.MsrBitmap.InterceptAll();
        // MSRs the guest reaches directly: FS/GS base and SYSENTER travel in the VMCS; the SYSCALL
        // MSRs and KERNEL_GS_BASE stay in the processor while the guest is loaded (KVM's user-return MSRs).
        foreach (uint msr in new[] { MsrIndex.FsBase, MsrIndex.GsBase, MsrIndex.KernelGsBase, MsrIndex.Star, MsrIndex.Lstar,
                                     MsrIndex.Cstar, MsrIndex.Sfmask, MsrIndex.SysenterCs, MsrIndex.SysenterEsp, MsrIndex.SysenterEip })
            vmx.MsrBitmap.SetIntercept(msr, read: false, write: false);
        RecalcSecondaryControls(vcpu, vmx);
    }

    /// <summary>The secondary controls: EPT (with unrestricted guest), VPID, RDTSCP, WBINVD exiting,
    /// and "enable INVPCID" only when the guest's caps have INVPCID (else INVPCID is #UD in the
    /// guest, as the common emulation would answer). INVPCID exits to the common emulation when
    /// INVLPG exiting is set: without EPT, or when the VM asks for CR3/INVPCID interception.</summary>
    private void RecalcSecondaryControls(Vcpu vcpu, VcpuVmx vmx)
    {
        var vmcs = vmx.Vmcs;
        bool ept = vcpu.Vm.Options.NestedPaging;
        var secondary = VmxSecondaryProcessorControls.EnableRdtscp | VmxSecondaryProcessorControls.WbinvdExiting;
        if (ept)
            secondary |= VmxSecondaryProcessorControls.EnableEpt | (Options.UnrestrictedGuest ? VmxSecondaryProcessorControls.UnrestrictedGuest : 0);
        if (Options.Vpid)
            secondary |= VmxSecondaryProcessorControls.EnableVpid;
        if (vcpu.GuestCaps.Has(CpuFeatures.Invpcid))
            secondary |= VmxSecondaryProcessorControls.EnableInvpcid;
        vmcs[VmcsField.SecondaryProcessorBasedVmExecutionControls] = VmxProcessorCapabilities.SecondaryProcessorBased.Adjust((uint)secondary);
        var primary = (VmxPrimaryProcessorControls)vmcs[VmcsField.PrimaryProcessorBasedVmExecutionControls];
        if (!ept || vcpu.Vm.Options.InterceptCr3AndInvpcid)
            primary |= VmxPrimaryProcessorControls.InvlpgExiting;
        else
            primary &= ~VmxPrimaryProcessorControls.InvlpgExiting;
        vmcs[VmcsField.PrimaryProcessorBasedVmExecutionControls] = (uint)primary;
    }

    /// <summary>vmx_vcpu_after_set_cpuid: guest caps are known now.</summary>
    public void AfterSetCpuid(Vcpu vcpu) => RecalcSecondaryControls(vcpu, ToVmx(vcpu));

    /// <summary>RESET/INIT state of the guest-state area (SDM vol. 3 table 10-1), with CR0/CR4/EFER
    /// from the vCPU's architectural values.</summary>
    public void VcpuReset(Vcpu vcpu, bool initEvent)
    {
        var vmx = ToVmx(vcpu);
        var vmcs = vmx.Vmcs;
        var data = new Segment { Limit = 0xFFFF, Attributes = 0x93 };
        VmxProcessor.WriteSegment(vmcs, SegReg.Cs, new Segment { Selector = 0xF000, Base = 0xFFFF_0000, Limit = 0xFFFF, Attributes = 0x9B });
        foreach (int seg in new[] { SegReg.Ds, SegReg.Es, SegReg.Ss, SegReg.Fs, SegReg.Gs })
            VmxProcessor.WriteSegment(vmcs, seg, data);
        VmxProcessor.WriteSegment(vmcs, SegReg.Ldtr, new Segment { Limit = 0xFFFF, Attributes = 0x82 });
        VmxProcessor.WriteSegment(vmcs, SegReg.Tr, new Segment { Limit = 0xFFFF, Attributes = 0x8B });
        SetGdt(vcpu, new DescriptorTable { Limit = 0xFFFF });
        SetIdt(vcpu, new DescriptorTable { Limit = 0xFFFF });
        SetEfer(vcpu, 0);
        SetCr0(vcpu, vcpu.Regs.Peek(VcpuReg.Cr0));
        SetCr4(vcpu, 0);
        vmcs[VmcsField.GuestCr3] = 0;
        vmcs[VmcsField.GuestDr7] = 0x400;
        vmcs[VmcsField.GuestRflags] = RFlags.Fixed1;
        vmcs[VmcsField.GuestRip] = 0xFFF0;
        vmcs[VmcsField.GuestRsp] = 0;
        vmcs[VmcsField.GuestIa32Pat] = 0x0007_0406_0007_0406;
        vmcs[VmcsField.GuestActivityState] = 0;
        vmcs[VmcsField.GuestInterruptibilityState] = 0;
        vmcs[VmcsField.GuestPendingDebugExceptions] = 0;
        vmcs[VmcsField.VmEntryInterruptionInformation] = 0;
    }

    /// <summary>The set VMX drops from the cache after every exit and reloads from the VMCS on
    /// demand (KVM-FACTS §1).</summary>
    public const ulong LazilyLoaded =
        (1UL << (int)VcpuReg.Rip) | (1UL << (int)VcpuReg.Rsp) | (1UL << (int)VcpuReg.Rflags) | (1UL << (int)VcpuReg.Pdptr)
        | (1UL << (int)VcpuReg.Segments) | (1UL << (int)VcpuReg.Cr0) | (1UL << (int)VcpuReg.Cr3) | (1UL << (int)VcpuReg.Cr4)
        | (1UL << (int)VcpuReg.ExitInfo1) | (1UL << (int)VcpuReg.ExitInfo2);

    /// <summary>vmx_cache_reg: loads one register of the lazily loaded set from the VMCS.</summary>
    public void CacheReg(Vcpu vcpu, VcpuReg reg)
    {
        var vmx = ToVmx(vcpu);
        var vmcs = vmx.Vmcs;
        var regs = vcpu.Regs;
        switch (reg)
        {
            case VcpuReg.Rip: regs.Fill(reg, vmcs[VmcsField.GuestRip]); break;
            case VcpuReg.Rsp: regs.Fill(reg, vmcs[VmcsField.GuestRsp]); break;
            case VcpuReg.Rflags: regs.Fill(reg, vmcs[VmcsField.GuestRflags]); break;
            case VcpuReg.Cr3: regs.Fill(reg, vmcs[VmcsField.GuestCr3]); break;
            // Only the guest-owned bits can have changed behind the hypervisor's back.
            case VcpuReg.Cr0:
                regs.Fill(reg, (regs.Peek(reg) & ~vmx.Cr0GuestOwnedBits) | (vmcs[VmcsField.GuestCr0] & vmx.Cr0GuestOwnedBits));
                break;
            case VcpuReg.Cr4:
                regs.Fill(reg, (regs.Peek(reg) & ~vmx.Cr4GuestOwnedBits) | (vmcs[VmcsField.GuestCr4] & vmx.Cr4GuestOwnedBits));
                break;
            case VcpuReg.ExitInfo1: regs.Fill(reg, vmcs[VmcsField.ExitQualification]); break;
            case VcpuReg.ExitInfo2: regs.Fill(reg, vmcs[VmcsField.VmExitInterruptionInformation]); break;
            case VcpuReg.Segments: regs.MarkAvailable(reg); break; // GetSegment reads the VMCS itself
            case VcpuReg.Pdptr:
            {
                Span<ulong> pdptrs = stackalloc ulong[4];
                if (!ControlRegisters.ReadPdptrs(vcpu, vcpu.Cr3, pdptrs))
                    pdptrs.Clear();
                regs.FillPdptrs(pdptrs);
                break;
            }
            default:
                throw new InvalidOperationException($"vmx: {VcpuRegs.Name(reg)} is never unavailable under VMX (KVM_BUG_ON in vmx_cache_reg)");
        }
    }

    public bool SkipEmulatedInstruction(Vcpu vcpu)
    {
        var vmcs = ToVmx(vcpu).Vmcs;
        ulong length = vmcs[VmcsField.VmExitInstructionLength];
        if (length == 0)
        {
            vcpu.Exit = new VcpuExit { Reason = KvmExitReason.InternalError, Suberror = KvmInternalError.Emulation, Message = $"vmx: no instruction length for exit {VmxExitReasons.Name((VmxExitReason)(ushort)vmcs[VmcsField.ExitReason])}: cannot skip the instruction" };
            return false;
        }
        ulong rip = vcpu.Rip + length;
        if (!vcpu.IsLongMode || !GetSegment(vcpu, SegReg.Cs).Long)
            rip = (uint)rip;
        vcpu.Rip = rip;
        // Skipping an instruction ends the STI / MOV SS blocking it may have set.
        vmcs[VmcsField.GuestInterruptibilityState] = vmcs[VmcsField.GuestInterruptibilityState] & ~3UL;
        return true;
    }
}
