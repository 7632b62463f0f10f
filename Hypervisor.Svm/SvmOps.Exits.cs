using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.X86;
using Hypervisor.Core.X86.Emulation;
using Hypervisor.Svm.Hardware;

namespace Hypervisor.Svm;

/// <summary>#VMEXIT dispatch: one table indexed by exit code, handlers named after KVM's
/// (<c>*_interception</c>). Architectural work goes to the common emulation.</summary>
public sealed partial class SvmOps
{
    private delegate int ExitHandler(SvmOps ops, Vcpu vcpu, VcpuSvm svm);

    /// <summary>Exit codes 0x000-0x0FF; NPF (0x400) and the negative codes are handled before the table.</summary>
    private static readonly ExitHandler?[] ExitHandlers = BuildExitHandlers();

    private static ExitHandler?[] BuildExitHandlers()
    {
        var t = new ExitHandler?[0x100];
        for (int cr = 0; cr < 16; cr++)
        {
            t[(int)SvmExitCode.Cr0Read + cr]  = CrInterception;
            t[(int)SvmExitCode.Cr0Write + cr] = CrInterception;
        }
        for (int v = 0; v < 32; v++)
            t[0x40 + v] = ExceptionInterception;
        t[(int)SvmExitCode.Intr]    = IntrInterception;
        t[(int)SvmExitCode.Nmi]     = IntrInterception;
        t[(int)SvmExitCode.Smi]     = IntrInterception;
        t[(int)SvmExitCode.Cpuid]   = (_, v, _) => Emulate.Cpuid(v);
        t[(int)SvmExitCode.Hlt]     = (_, v, _) => Emulate.Hlt(v);
        t[(int)SvmExitCode.Invlpg]  = InvlpgInterception;
        t[(int)SvmExitCode.Ioio]    = IoInterception;
        t[(int)SvmExitCode.Msr]     = (_, v, s) => SvmExitInfo.IsMsrWrite(s.Current.ExitInfo1) ? Emulate.Wrmsr(v) : Emulate.Rdmsr(v);
        t[(int)SvmExitCode.Shutdown] = ShutdownInterception;
        t[(int)SvmExitCode.Vmrun]   = VmrunInterception;
        t[(int)SvmExitCode.Vmmcall] = VmmcallInterception;
        t[(int)SvmExitCode.Vmload]  = (_, v, _) => Emulate.InjectUd(v);
        t[(int)SvmExitCode.Vmsave]  = (_, v, _) => Emulate.InjectUd(v);
        t[(int)SvmExitCode.Stgi]    = (_, v, _) => Emulate.InjectUd(v);
        t[(int)SvmExitCode.Clgi]    = (_, v, _) => Emulate.InjectUd(v);
        t[(int)SvmExitCode.Skinit]  = (_, v, _) => Emulate.InjectUd(v);
        t[(int)SvmExitCode.Rdpru]   = (_, v, _) => Emulate.InjectUd(v);
        t[(int)SvmExitCode.Monitor] = (_, v, _) => Emulate.InjectUd(v);
        t[(int)SvmExitCode.Mwait]   = (_, v, _) => Emulate.InjectUd(v);
        t[(int)SvmExitCode.Wbinvd]  = (_, v, _) => v.Ops.SkipEmulatedInstruction(v) ? 1 : 0;
        t[(int)SvmExitCode.Invd]    = (_, v, _) => v.Ops.SkipEmulatedInstruction(v) ? 1 : 0;
        t[(int)SvmExitCode.Xsetbv]  = (_, v, _) => Emulate.Xsetbv(v, (uint)v.ReadGpr(Gpr.Rcx), ((ulong)(uint)v.ReadGpr(Gpr.Rdx) << 32) | (uint)v.ReadGpr(Gpr.Rax));
        t[(int)SvmExitCode.Invpcid] = (_, v, s) => Emulate.Invpcid(v, s.Current.ExitInfo2, s.Current.ExitInfo1);
        return t;
    }

    public int HandleExit(Vcpu vcpu, ExitFastpath fastpath)
    {
        var svm = ToSvm(vcpu);
        var vmcb = svm.Current;
        var code = vmcb.ExitCode;
        vcpu.Stats.CountVendor((long)code);
        // In guest mode an exit vmcb12 intercepts belongs to L1 (a nested #VMEXIT); the rest are L0's.
        if (svm.IsGuestMode && ShouldReflectToL1(vcpu, svm, fastpath))
            return NestedVmexit(vcpu, svm);
        if (fastpath == ExitFastpath.EntryFailed)
        {
            vcpu.Exit = new VcpuExit { Reason = KvmExitReason.FailEntry, HardwareReason = unchecked((ulong)(long)code), Message = $"VMRUN failed its consistency checks: {svm.Processor.InvalidReason}" };
            return 0;
        }
        if (code == SvmExitCode.Invalid)
        {
            var failure = svm.Processor.LastMachineFailure;
            vcpu.Exit = new VcpuExit
            {
                Reason = KvmExitReason.InternalError,
                Suberror = KvmInternalError.UnexpectedExitReason,
                HardwareReason = unchecked((ulong)(long)code),
                Message = failure.Message ?? failure.ToString(),
            };
            return 0;
        }
        if (code == SvmExitCode.Npf)
            return NpfInterception(this, vcpu, svm);
        long index = (long)code;
        var handler = index is >= 0 and < 0x100 ? ExitHandlers[index] : null;
        if (handler == null)
        {
            vcpu.Exit = new VcpuExit
            {
                Reason = KvmExitReason.InternalError,
                Suberror = KvmInternalError.UnexpectedExitReason,
                HardwareReason = (ulong)index,
                Message = $"svm: unexpected exit {SvmExitCodes.Name(code)} (0x{index:x})",
            };
            return 0;
        }
        return handler(this, vcpu, svm);
    }

    /// <summary>MOV to/from CRn (decode assist in EXITINFO1: bit 63 MOV, bits 3:0 the GPR). LMSW
    /// and CLTS arrive as CR0 writes without a GPR.</summary>
    private static int CrInterception(SvmOps ops, Vcpu vcpu, VcpuSvm svm)
    {
        var vmcb = svm.Current;
        long code = (long)vmcb.ExitCode;
        bool write = code >= (long)SvmExitCode.Cr0Write;
        int cr = (int)(code & 0xF);
        var info = new SvmCrAccessInfo(vmcb.ExitInfo1);
        if (!write)
        {
            ulong value = cr switch { 0 => vcpu.Cr0, 2 => vcpu.Cr2, 3 => vcpu.Cr3, 4 => vcpu.Cr4, 8 => vcpu.Cr8, _ => 0 };
            vcpu.WriteGpr(info.Gpr, value);
            return vcpu.Ops.SkipEmulatedInstruction(vcpu) ? 1 : 0;
        }
        ulong newValue;
        if (info.IsMov)
        {
            newValue = vcpu.ReadGpr(info.Gpr);
        }
        else
        {
            // LMSW loads CR0[3:0] and cannot clear PE; CLTS clears TS. The processor's decode of the
            // source operand stands in for KVM's instruction emulator here.
            ref readonly var record = ref svm.Processor.Cpu.LastIntercept;
            ulong cr0 = vcpu.Cr0;
            newValue = record.Gpr == 0xFF && record.Value == (cr0 & ~Cr0.Ts)
                ? cr0 & ~Cr0.Ts
                : (cr0 & ~0xEUL) | (record.Value & 0xF) | (cr0 & Cr0.Pe);
        }
        return Emulate.SetCr(vcpu, cr, newValue);
    }

    private static int InvlpgInterception(SvmOps ops, Vcpu vcpu, VcpuSvm svm)
    {
        ops.FlushTlbGva(vcpu, svm.Current.ExitInfo1);
        return vcpu.Ops.SkipEmulatedInstruction(vcpu) ? 1 : 0;
    }

    /// <summary>IOIO: EXITINFO1 says port, size, direction, string, rep; EXITINFO2 the next RIP.</summary>
    private static int IoInterception(SvmOps ops, Vcpu vcpu, VcpuSvm svm)
    {
        var io = new SvmIoioInfo(svm.Current.ExitInfo1);
        return Emulate.Pio(vcpu, io.Port, io.Size, io.IsIn, io.IsString, io.IsRep, io.AddressSize, io.Segment);
    }

    /// <summary>A nested page fault the CPU reports for guest-physical space no memory slot backs:
    /// KVM_EXIT_MMIO. A write has completed in the CPU (RIP is past it); a read runs again with
    /// the data userspace returns.</summary>
    private static int NpfInterception(SvmOps ops, Vcpu vcpu, VcpuSvm svm)
    {
        var mmio = svm.Processor.LastMmio;
        if (mmio.Reason == CpuExitReason.Mmio)
            return Emulate.Mmio(vcpu, mmio.Address, mmio.Size, mmio.IsWrite, mmio.Data);
        // A real #NPF: the TDP MMU maps the page on demand (or an MMIO page whose retry reaches the
        // CPU's MMIO path with size and data), and the guest retries the access.
        var mmu = vcpu.Vm.Mmu;
        if (mmu != null && mmu.HandleFault(svm.Current.ExitInfo2, svm.Current.ExitInfo1, out _))
            return 1;
        vcpu.Exit = new VcpuExit
        {
            Reason = KvmExitReason.InternalError,
            Suberror = KvmInternalError.UnexpectedExitReason,
            HardwareReason = (ulong)SvmExitCode.Npf,
            Message = $"svm: nested page fault at gpa 0x{svm.Current.ExitInfo2:x} (error 0x{svm.Current.ExitInfo1:x}) the MMU cannot resolve (a write to a read-only slot, or the hypervisor's private memory)",
        };
        return 0;
    }

    /// <summary>The host interrupted the guest: back to userspace when its budget or a stop asks
    /// for it (KVM_EXIT_INTR, as for a signal), else straight back into the guest.</summary>
    private static int IntrInterception(SvmOps ops, Vcpu vcpu, VcpuSvm svm)
    {
        vcpu.Exit = new VcpuExit { Reason = KvmExitReason.Intr };
        return 0;
    }

    private static int ShutdownInterception(SvmOps ops, Vcpu vcpu, VcpuSvm svm)
    {
        if (svm.IsGuestMode)
            ForceLeaveNested(vcpu, svm); // the whole vCPU shuts down, L1 included

        // The VMCB is undefined after a shutdown intercept; KVM re-initialises it.
        ops.InitVmcb(vcpu, svm);
        vcpu.Exit = new VcpuExit { Reason = KvmExitReason.Shutdown, Message = vcpu.Cpu.LastShutdownReason ?? "shutdown in the guest" };
        return 0;
    }

    /// <summary>VMMCALL: a hypercall. None is defined for guests here yet, so every number returns
    /// -KVM_ENOSYS in RAX, as KVM does for unknown hypercalls.</summary>
    private static int VmmcallInterception(SvmOps ops, Vcpu vcpu, VcpuSvm svm)
    {
        const long KvmEnosys = 1000;
        vcpu.WriteGpr(Gpr.Rax, unchecked((ulong)-KvmEnosys));
        return vcpu.Ops.SkipEmulatedInstruction(vcpu) ? 1 : 0;
    }

    /// <summary>An intercepted exception the hypervisor does not handle itself goes back to the guest.</summary>
    private static int ExceptionInterception(SvmOps ops, Vcpu vcpu, VcpuSvm svm)
    {
        int vector = (int)((long)svm.Current.ExitCode - 0x40);
        bool hasError = SvmExitInfo.ExceptionHasErrorCode(vector);
        if (vector == Vector.PF)
            vcpu.Cr2 = svm.Current.ExitInfo2;
        ops.InjectException(vcpu, vector, hasError, (uint)svm.Current.ExitInfo1);
        return 1;
    }
}
