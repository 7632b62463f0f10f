using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Virtualization;

namespace Hypervisor.Vmx.Hardware;

public sealed partial class VmxProcessor
{
    /// <summary>Turns how the CPU stopped into the exit-information fields (SDM vol. 3 §28.2): exit
    /// reason, qualification, guest-linear and guest-physical address, VM-exit interruption
    /// information, instruction length and instruction information.</summary>
    private void WriteExitInfo(Vmcs vmcs, CpuExit exit)
    {
        VmxExitReason reason;
        uint raw = 0;
        ulong qualification = 0, linear = 0, physical = 0;
        uint length = 0, info = 0, intInfo = 0, intError = 0;
        LastMmio = default;
        LastMachineFailure = default;
        bool failure = false;
        switch (exit.Reason)
        {
            case CpuExitReason.Intercept:
            {
                ref readonly var i = ref _cpu.LastIntercept;
                length = i.InstructionLength;
                switch (i.Reason)
                {
                    case InterceptReason.Cpuid: reason = VmxExitReason.Cpuid; break;
                    case InterceptReason.Hlt: reason = VmxExitReason.Hlt; break;
                    case InterceptReason.Invd: reason = VmxExitReason.Invd; break;
                    case InterceptReason.Wbinvd: reason = VmxExitReason.Wbinvd; break;
                    case InterceptReason.Rdtsc: reason = VmxExitReason.Rdtsc; break;
                    case InterceptReason.Rdtscp: reason = VmxExitReason.Rdtscp; break;
                    case InterceptReason.Rdpmc: reason = VmxExitReason.Rdpmc; break;
                    case InterceptReason.Pause: reason = VmxExitReason.Pause; break;
                    case InterceptReason.Monitor: reason = VmxExitReason.Monitor; break;
                    case InterceptReason.Mwait: reason = VmxExitReason.Mwait; break;
                    case InterceptReason.Vmcall: reason = VmxExitReason.Vmcall; break;
                    case InterceptReason.Xsetbv: reason = VmxExitReason.Xsetbv; break;
                    case InterceptReason.Invlpg:
                        reason = VmxExitReason.Invlpg;
                        qualification = i.Address; // the linear address of the operand
                        break;
                    case InterceptReason.Invpcid:
                        reason = VmxExitReason.Invpcid;
                        // SDM §28.2.1: the qualification is the displacement; the instruction
                        // information names the type register and the memory operand's parts.
                        qualification = i.Displacement;
                        info = VmxInvalidationInfo.Create(i.Gpr, 1 << i.MemScale, i.AddressSize, i.Segment,
                            i.MemIndex == DecodedInsn.NoReg ? -1 : i.MemIndex, i.MemBase == DecodedInsn.NoReg ? -1 : i.MemBase).Raw;
                        break;
                    case InterceptReason.CrRead:
                        reason = VmxExitReason.ControlRegisterAccess;
                        qualification = VmxCrAccessQualification.MovFromCr(i.Number, i.Gpr).Raw;
                        break;
                    case InterceptReason.CrWrite:
                        reason = VmxExitReason.ControlRegisterAccess;
                        qualification = i.IsClts ? VmxCrAccessQualification.Clts.Raw
                            : i.IsLmsw ? VmxCrAccessQualification.Lmsw((ushort)i.Value, memoryOperand: i.Gpr == 0xFF).Raw
                            : VmxCrAccessQualification.MovToCr(i.Number, i.Gpr).Raw;
                        break;
                    case InterceptReason.DrRead:
                    case InterceptReason.DrWrite:
                        reason = VmxExitReason.MovDr;
                        qualification = VmxMovDrQualification.Create(i.Number, i.Gpr, fromDr: i.Reason == InterceptReason.DrRead).Raw;
                        break;
                    case InterceptReason.Io:
                        reason = VmxExitReason.IoInstruction;
                        qualification = VmxIoQualification.Create(i.Port, i.Size, i.IsIn, i.IsString, i.IsRep).Raw;
                        if (i.IsString) // INS/OUTS information (IA32_VMX_BASIC[54]): address size and segment
                            info = (VmxInstructionInfoFields.AddressSizeCode(i.AddressSize) << VmxInstructionInfoFields.AddressSizeShift)
                                | ((uint)i.Segment << VmxInstructionInfoFields.SegmentShift);
                        break;
                    case InterceptReason.MsrRead: reason = VmxExitReason.Rdmsr; break;
                    case InterceptReason.MsrWrite: reason = VmxExitReason.Wrmsr; break;
                    case InterceptReason.Exception:
                        reason = VmxExitReason.ExceptionOrNmi;
                        intInfo = VmxInterruptionInfo.Create(i.Number, VmxInterruptionType.HardwareException, i.HasErrorCode).Raw;
                        intError = i.HasErrorCode ? i.ErrorCode : 0;
                        qualification = i.Number == Vector.PF ? i.Address : 0; // #PF: the faulting linear address
                        length = 0;
                        break;
                    case InterceptReason.Shutdown:
                        reason = VmxExitReason.TripleFault;
                        length = 0;
                        break;
                    case InterceptReason.NestedPageFault:
                        length = 0;
                        physical = i.Address;
                        linear = i.HasLinearAddress ? i.LinearAddress : 0;
                        if (i.IsEptMisconfiguration)
                        {
                            reason = VmxExitReason.EptMisconfiguration;
                            break;
                        }
                        reason = VmxExitReason.EptViolation;
                        qualification = i.ErrorCode
                            | (i.HasLinearAddress ? VmxEptViolationQualification.GuestLinearAddressValid : 0)
                            | (i.HasLinearAddress && !i.DuringGuestWalk ? VmxEptViolationQualification.TranslatedAccess : 0);
                        break;
                    default:
                        reason = 0;
                        failure = true;
                        LastMachineFailure = new CpuExit { Reason = CpuExitReason.InternalError, Message = $"intercept {i.Reason} has no VMX exit reason" };
                        break;
                }
                break;
            }
            case CpuExitReason.Mmio:
                // Guest-physical space no memory backs. KVM maps such pages with misconfigured EPT
                // entries, so the access arrives as an EPT misconfiguration with its address; the CPU
                // keeps the access (size, data) for the hypervisor.
                reason = VmxExitReason.EptMisconfiguration;
                physical = exit.Address;
                LastMmio = exit;
                break;
            case CpuExitReason.InstructionLimit:
            case CpuExitReason.StopRequested:
                // The host interrupted the guest (its timer, a signal): an external interrupt.
                reason = VmxExitReason.ExternalInterrupt;
                break;
            case CpuExitReason.Shutdown:
                reason = VmxExitReason.TripleFault;
                break;
            default:
                // HLT or port I/O that did not exit, an unimplemented instruction, an internal
                // error: the emulated hardware cannot go on with this guest.
                reason = 0;
                failure = true;
                LastMachineFailure = exit;
                break;
        }
        raw = failure ? MachineFailureExitReason : VmxExitReasonField.Exit(reason).Raw;
        vmcs[VmcsField.ExitReason] = raw;
        vmcs[VmcsField.ExitQualification] = qualification;
        vmcs[VmcsField.GuestLinearAddress] = linear;
        vmcs[VmcsField.GuestPhysicalAddress] = physical;
        vmcs[VmcsField.VmExitInstructionLength] = length;
        vmcs[VmcsField.VmExitInstructionInformation] = info;
        vmcs[VmcsField.VmExitInterruptionInformation] = intInfo;
        vmcs[VmcsField.VmExitInterruptionErrorCode] = intError;
        vmcs[VmcsField.IdtVectoringInformation] = 0;
    }
}
