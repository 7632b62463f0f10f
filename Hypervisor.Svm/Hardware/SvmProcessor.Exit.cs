using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Virtualization;

namespace Hypervisor.Svm.Hardware;

public sealed partial class SvmProcessor
{
    /// <summary>Turns how the CPU stopped into EXITCODE, EXITINFO1, EXITINFO2 and NRIP (APM vol. 2
    /// §15.6-15.20 and appendix C). NRIP is the next instruction for instruction intercepts (the
    /// model has NRIP save) and 0 for exceptions and events.</summary>
    private void WriteExitInfo(Vmcb vmcb, CpuExit exit)
    {
        ulong info1 = 0, info2 = 0, nrip = 0;
        SvmExitCode code;
        LastMmio = default;
        LastMachineFailure = default;
        switch (exit.Reason)
        {
            case CpuExitReason.Intercept:
            {
                ref readonly var i = ref _cpu.LastIntercept;
                nrip = i.NextRip;
                switch (i.Reason)
                {
                    case InterceptReason.Cpuid: code = SvmExitCode.Cpuid; break;
                    case InterceptReason.Hlt: code = SvmExitCode.Hlt; break;
                    case InterceptReason.Rdtsc: code = SvmExitCode.Rdtsc; break;
                    case InterceptReason.Rdtscp: code = SvmExitCode.Rdtscp; break;
                    case InterceptReason.Pause: code = SvmExitCode.Pause; break;
                    case InterceptReason.Wbinvd: code = SvmExitCode.Wbinvd; break;
                    case InterceptReason.Invd: code = SvmExitCode.Invd; break;
                    case InterceptReason.Vmrun: code = SvmExitCode.Vmrun; break;
                    case InterceptReason.Vmmcall: code = SvmExitCode.Vmmcall; break;
                    case InterceptReason.Vmload: code = SvmExitCode.Vmload; break;
                    case InterceptReason.Vmsave: code = SvmExitCode.Vmsave; break;
                    case InterceptReason.Stgi: code = SvmExitCode.Stgi; break;
                    case InterceptReason.Clgi: code = SvmExitCode.Clgi; break;
                    case InterceptReason.Xsetbv: code = SvmExitCode.Xsetbv; break;
                    case InterceptReason.Invlpg:
                        code = SvmExitCode.Invlpg;
                        info1 = SvmExitInfo.Invlpg(i.Address); // decode assist
                        break;
                    case InterceptReason.Invpcid:
                        code = SvmExitCode.Invpcid;
                        (info1, info2) = SvmExitInfo.Invpcid(i.Address, i.Value);
                        break;
                    case InterceptReason.CrRead:
                        code = (SvmExitCode)((long)SvmExitCode.Cr0Read + i.Number);
                        info1 = SvmCrAccessInfo.MovCr(i.Gpr).Raw;
                        break;
                    case InterceptReason.CrWrite:
                        code = (SvmExitCode)((long)SvmExitCode.Cr0Write + i.Number);
                        // LMSW and CLTS are CR0 writes without a MOV: bit 63 clear.
                        info1 = i.Gpr == 0xFF ? SvmCrAccessInfo.NotMov.Raw : SvmCrAccessInfo.MovCr(i.Gpr).Raw;
                        break;
                    case InterceptReason.DrRead:
                        code = (SvmExitCode)((long)SvmExitCode.Dr0Read + i.Number);
                        info1 = SvmCrAccessInfo.MovDr(i.Gpr).Raw;
                        break;
                    case InterceptReason.DrWrite:
                        code = (SvmExitCode)((long)SvmExitCode.Dr0Write + i.Number);
                        info1 = SvmCrAccessInfo.MovDr(i.Gpr).Raw;
                        break;
                    case InterceptReason.Io:
                        code = SvmExitCode.Ioio;
                        (info1, info2) = SvmExitInfo.Ioio(SvmIoioInfo.Create(i.Port, i.Size, i.AddressSize, i.IsIn, i.IsString, i.IsRep, i.Segment), i.NextRip);
                        break;
                    case InterceptReason.MsrRead:
                    case InterceptReason.MsrWrite:
                        code = SvmExitCode.Msr;
                        info1 = SvmExitInfo.Msr(i.Reason == InterceptReason.MsrWrite);
                        break;
                    case InterceptReason.Exception:
                        code = (SvmExitCode)(0x40 + i.Number);
                        info1 = i.HasErrorCode ? i.ErrorCode : 0;
                        info2 = i.Number == Vector.PF ? i.Address : 0;
                        nrip = 0;
                        break;
                    case InterceptReason.Shutdown:
                        code = SvmExitCode.Shutdown;
                        nrip = 0;
                        break;
                    case InterceptReason.NestedPageFault:
                        code = SvmExitCode.Npf;
                        info1 = i.ErrorCode | (i.DuringGuestWalk ? (ulong)SvmNpfErrorCode.PageTableWalk : (ulong)SvmNpfErrorCode.FinalTranslation);
                        info2 = i.Address;
                        nrip = 0;
                        break;
                    default:
                        code = SvmExitCode.Invalid;
                        LastMachineFailure = new CpuExit { Reason = CpuExitReason.InternalError, Message = $"intercept {i.Reason} has no SVM exit code" };
                        break;
                }
                break;
            }
            case CpuExitReason.Mmio:
                // The guest reached guest-physical space no memory backs: a nested page fault on a
                // not-present translation. The CPU keeps the access (size, data) for the hypervisor.
                code = SvmExitCode.Npf;
                info1 = (ulong)SvmNpfErrorCode.User | (exit.IsWrite ? (ulong)SvmNpfErrorCode.Write : 0) | (ulong)SvmNpfErrorCode.FinalTranslation;
                info2 = exit.Address;
                LastMmio = exit;
                break;
            case CpuExitReason.InstructionLimit:
            case CpuExitReason.StopRequested:
                // The host interrupted the guest (its timer, a signal): a physical INTR.
                code = SvmExitCode.Intr;
                break;
            case CpuExitReason.Shutdown:
                code = SvmExitCode.Shutdown;
                break;
            default:
                // HLT or port I/O that was not intercepted, an unimplemented instruction, an
                // internal error: the emulated hardware cannot go on with this guest.
                code = SvmExitCode.Invalid;
                LastMachineFailure = exit;
                break;
        }
        vmcb.ExitCode = code;
        vmcb.ExitInfo1 = info1;
        vmcb.ExitInfo2 = info2;
        vmcb.NRip = nrip;
        vmcb.ExitIntInfo = SvmEventInfo.None;
    }
}
