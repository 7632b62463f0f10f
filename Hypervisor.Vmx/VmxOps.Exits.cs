using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Virtualization;
using Hypervisor.Core.X86;
using Hypervisor.Core.X86.Emulation;
using Hypervisor.Vmx.Hardware;

namespace Hypervisor.Vmx;

/// <summary>VM-exit dispatch: one table indexed by basic exit reason, handlers named after KVM's
/// (<c>handle_*</c>, here <c>*Interception</c> as in the SVM module). Architectural work goes to
/// the common emulation.</summary>
public sealed partial class VmxOps
{
    private delegate int ExitHandler(VmxOps ops, Vcpu vcpu, VcpuVmx vmx);

    private static readonly ExitHandler?[] ExitHandlers = BuildExitHandlers();

    private static int Skip(Vcpu v) => v.Ops.SkipEmulatedInstruction(v) ? 1 : 0;

    private static ExitHandler?[] BuildExitHandlers()
    {
        var t = new ExitHandler?[VmxExitReasons.Count];
        t[(int)VmxExitReason.ExceptionOrNmi]        = ExceptionInterception;
        t[(int)VmxExitReason.ExternalInterrupt]     = (_, v, _) => { v.Exit = new VcpuExit { Reason = KvmExitReason.Intr }; return 0; };
        t[(int)VmxExitReason.TripleFault]           = (_, v, _) => { v.Exit = new VcpuExit { Reason = KvmExitReason.Shutdown, Message = v.Cpu.LastShutdownReason ?? "triple fault in the guest" }; return 0; };
        t[(int)VmxExitReason.Cpuid]                 = (_, v, _) => Emulate.Cpuid(v);
        t[(int)VmxExitReason.Hlt]                   = (_, v, _) => Emulate.Hlt(v);
        t[(int)VmxExitReason.Invd]                  = (_, v, _) => Skip(v);
        t[(int)VmxExitReason.Wbinvd]                = (_, v, _) => Skip(v);
        t[(int)VmxExitReason.Invlpg]                = InvlpgInterception;
        t[(int)VmxExitReason.Vmcall]                = VmcallInterception;
        t[(int)VmxExitReason.ControlRegisterAccess] = CrInterception;
        t[(int)VmxExitReason.IoInstruction]         = IoInterception;
        t[(int)VmxExitReason.Rdmsr]                 = (_, v, _) => Emulate.Rdmsr(v);
        t[(int)VmxExitReason.Wrmsr]                 = (_, v, _) => Emulate.Wrmsr(v);
        t[(int)VmxExitReason.Mwait]                 = (_, v, _) => Emulate.InjectUd(v);
        t[(int)VmxExitReason.Monitor]               = (_, v, _) => Emulate.InjectUd(v);
        t[(int)VmxExitReason.EptViolation]          = EptViolationInterception;
        t[(int)VmxExitReason.EptMisconfiguration]   = EptMisconfigInterception;
        t[(int)VmxExitReason.Xsetbv]                = (_, v, _) => Emulate.Xsetbv(v, (uint)v.ReadGpr(Gpr.Rcx), ((ulong)(uint)v.ReadGpr(Gpr.Rdx) << 32) | (uint)v.ReadGpr(Gpr.Rax));
        t[(int)VmxExitReason.Invpcid]               = InvpcidInterception;
        // VMX instructions in a guest that has no nested VMX: #UD (handle_vmx_instruction).
        foreach (var r in new[] { VmxExitReason.Vmclear, VmxExitReason.Vmlaunch, VmxExitReason.Vmptrld, VmxExitReason.Vmptrst,
                                  VmxExitReason.Vmread, VmxExitReason.Vmresume, VmxExitReason.Vmwrite, VmxExitReason.Vmxoff,
                                  VmxExitReason.Vmxon, VmxExitReason.Invept, VmxExitReason.Invvpid })
            t[(int)r] = (_, v, _) => Emulate.InjectUd(v);
        return t;
    }

    public int HandleExit(Vcpu vcpu, ExitFastpath fastpath)
    {
        var vmx = ToVmx(vcpu);
        if (vmx.LastEntryError != VmxInstructionError.None)
        {
            // VMfailValid: KVM reports the VM-instruction error as the hardware reason.
            vcpu.Exit = new VcpuExit { Reason = KvmExitReason.FailEntry, HardwareReason = (ulong)vmx.LastEntryError, Message = $"VMLAUNCH/VMRESUME failed (VM-instruction error {(uint)vmx.LastEntryError} {vmx.LastEntryError}): {vmx.Processor.InvalidReason}" };
            return 0;
        }
        uint raw = vmx.LastExitReason;
        var field = new VmxExitReasonField(raw);
        if (raw == VmxProcessor.MachineFailureExitReason)
        {
            var failure = vmx.Processor.LastMachineFailure;
            vcpu.Exit = new VcpuExit
            {
                Reason = KvmExitReason.InternalError,
                Suberror = KvmInternalError.UnexpectedExitReason,
                HardwareReason = raw,
                Message = failure.Message ?? failure.ToString(),
            };
            return 0;
        }
        vcpu.Stats.CountVendor((long)field.Basic);
        if (field.IsVmEntryFailure)
        {
            vcpu.Exit = new VcpuExit { Reason = KvmExitReason.FailEntry, HardwareReason = raw, Message = $"VM entry failed: {VmxExitReasons.Name(field.Basic)}: {vmx.Processor.InvalidReason}" };
            return 0;
        }
        int index = (int)field.Basic;
        var handler = index < ExitHandlers.Length ? ExitHandlers[index] : null;
        if (handler == null)
        {
            vcpu.Exit = new VcpuExit
            {
                Reason = KvmExitReason.InternalError,
                Suberror = KvmInternalError.UnexpectedExitReason,
                HardwareReason = raw,
                Message = $"vmx: unexpected exit {VmxExitReasons.Name(field.Basic)} ({index})",
            };
            return 0;
        }
        return handler(this, vcpu, vmx);
    }

    /// <summary>handle_cr: the qualification says which CR, which access and which GPR.</summary>
    private static int CrInterception(VmxOps ops, Vcpu vcpu, VcpuVmx vmx)
    {
        var q = new VmxCrAccessQualification(vmx.Vmcs[VmcsField.ExitQualification]);
        int cr = q.ControlRegister;
        switch (q.AccessType)
        {
            case VmxCrAccessType.MovToCr:
                return Emulate.SetCr(vcpu, cr, vcpu.ReadGpr(q.Gpr));
            case VmxCrAccessType.MovFromCr:
                // Only CR3 and CR8 reads can exit (CR0/CR4 reads use the shadows).
                vcpu.WriteGpr(q.Gpr, cr == 3 ? vcpu.Cr3 : vcpu.Cr8);
                return Skip(vcpu);
            case VmxCrAccessType.Clts:
                return Emulate.SetCr(vcpu, 0, vcpu.Cr0 & ~Cr0.Ts);
            default: // LMSW loads CR0[3:0] and cannot clear PE
            {
                ulong cr0 = vcpu.Cr0;
                return Emulate.SetCr(vcpu, 0, (cr0 & ~0xFUL) | (q.LmswSource & 0xFUL) | (cr0 & Cr0.Pe));
            }
        }
    }

    private static int InvlpgInterception(VmxOps ops, Vcpu vcpu, VcpuVmx vmx)
    {
        ops.FlushTlbGva(vcpu, vmx.Vmcs[VmcsField.ExitQualification]);
        return Skip(vcpu);
    }

    /// <summary>handle_io: port, size, direction, string and REP from the qualification; the
    /// address size and segment of INS/OUTS from the instruction information.</summary>
    private static int IoInterception(VmxOps ops, Vcpu vcpu, VcpuVmx vmx)
    {
        var q = new VmxIoQualification(vmx.Vmcs[VmcsField.ExitQualification]);
        if (!q.IsString)
            return Emulate.Pio(vcpu, q.Port, q.Size, q.IsIn, isString: false);
        uint info = (uint)vmx.Vmcs[VmcsField.VmExitInstructionInformation];
        return Emulate.Pio(vcpu, q.Port, q.Size, q.IsIn, isString: true, q.IsRep,
            VmxInstructionInfoFields.AddressSize(info), VmxInstructionInfoFields.Segment(info));
    }

    /// <summary>handle_invpcid: the type from the register the instruction information names, the
    /// descriptor's address from its memory operand and the displacement in the qualification
    /// (get_vmx_mem_address), then the common emulation (KVM-FACTS §3).</summary>
    private static int InvpcidInterception(VmxOps ops, Vcpu vcpu, VcpuVmx vmx)
    {
        var info = new VmxInvalidationInfo((uint)vmx.Vmcs[VmcsField.VmExitInstructionInformation]);
        bool longMode = vcpu.IsLongMode && ops.GetSegment(vcpu, SegReg.Cs).Long;
        ulong type = vcpu.ReadGpr(info.TypeRegister);
        if (!longMode)
            type = (uint)type;
        ulong offset = vmx.Vmcs[VmcsField.ExitQualification];
        if (info.Base >= 0) offset += vcpu.ReadGpr(info.Base);
        if (info.Index >= 0) offset += vcpu.ReadGpr(info.Index) * (ulong)info.Scale;
        offset = info.AddressSize switch { 2 => (ushort)offset, 4 => (uint)offset, _ => offset };
        // In 64-bit mode only FS and GS have a base (SDM vol. 1 §3.4.2.1).
        ulong segBase = !longMode || info.Segment is SegReg.Fs or SegReg.Gs ? ops.GetSegment(vcpu, info.Segment).Base : 0;
        ulong gva = segBase + offset;
        if (!longMode)
            gva = (uint)gva;
        return Emulate.Invpcid(vcpu, type, gva);
    }

    /// <summary>handle_ept_violation: the TDP MMU maps the page on demand (or installs an MMIO
    /// mapping whose retry reaches the CPU's MMIO path) and the guest retries the access.</summary>
    private static int EptViolationInterception(VmxOps ops, Vcpu vcpu, VcpuVmx vmx)
    {
        var vmcs = vmx.Vmcs;
        var q = new VmxEptViolationQualification(vmcs[VmcsField.ExitQualification]);
        ulong gpa = vmcs[VmcsField.GuestPhysicalAddress];
        // The TDP MMU takes the fault in #NPF terms (KVM derives its PFERR_* bits the same way).
        ulong error = NestedFaultCode.U
            | (q.IsWrite ? NestedFaultCode.W : 0)
            | (q.IsFetch ? NestedFaultCode.I : 0)
            | (q.EptPermissions != 0 ? NestedFaultCode.P : 0);
        var mmu = vcpu.Vm.Mmu;
        if (mmu != null && mmu.HandleFault(gpa, error, out _))
            return 1;
        vcpu.Exit = new VcpuExit
        {
            Reason = KvmExitReason.InternalError,
            Suberror = KvmInternalError.UnexpectedExitReason,
            HardwareReason = (ulong)VmxExitReason.EptViolation,
            Message = $"vmx: EPT violation at gpa 0x{gpa:x} (qualification 0x{q.Raw:x}) the MMU cannot resolve (a write to a read-only slot, or the hypervisor's private memory)",
        };
        return 0;
    }

    /// <summary>handle_ept_misconfig: an access to guest-physical space no memory backs (KVM's MMIO
    /// entries are misconfigured on purpose) is MMIO; any other misconfiguration is a bug in the tables.</summary>
    private static int EptMisconfigInterception(VmxOps ops, Vcpu vcpu, VcpuVmx vmx)
    {
        var mmio = vmx.Processor.LastMmio;
        if (mmio.Reason == CpuExitReason.Mmio)
            return Emulate.Mmio(vcpu, mmio.Address, mmio.Size, mmio.IsWrite, mmio.Data);
        vcpu.Exit = new VcpuExit
        {
            Reason = KvmExitReason.InternalError,
            Suberror = KvmInternalError.UnexpectedExitReason,
            HardwareReason = (ulong)VmxExitReason.EptMisconfiguration,
            Message = $"vmx: EPT misconfiguration at gpa 0x{vmx.Vmcs[VmcsField.GuestPhysicalAddress]:x}",
        };
        return 0;
    }

    /// <summary>VMCALL: a hypercall. None is defined for guests here yet, so every number returns
    /// -KVM_ENOSYS in RAX, as KVM does for unknown hypercalls.</summary>
    private static int VmcallInterception(VmxOps ops, Vcpu vcpu, VcpuVmx vmx)
    {
        const long KvmEnosys = 1000;
        vcpu.WriteGpr(Gpr.Rax, unchecked((ulong)-KvmEnosys));
        return Skip(vcpu);
    }

    /// <summary>An exception the exception bitmap intercepted goes back to the guest.</summary>
    private static int ExceptionInterception(VmxOps ops, Vcpu vcpu, VcpuVmx vmx)
    {
        var vmcs = vmx.Vmcs;
        var info = new VmxInterruptionInfo((uint)vmcs[VmcsField.VmExitInterruptionInformation]);
        if (info.Vector == Vector.PF)
            vcpu.Cr2 = vmcs[VmcsField.ExitQualification];
        ops.InjectException(vcpu, info.Vector, info.HasErrorCode, (uint)vmcs[VmcsField.VmExitInterruptionErrorCode]);
        return 1;
    }
}
