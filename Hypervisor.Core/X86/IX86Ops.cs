using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86.Cpuid;

namespace Hypervisor.Core.X86;

/// <summary>What a vendor's <see cref="IX86Ops.Run"/> tells common code about the exit it just took.</summary>
public enum ExitFastpath
{
    /// <summary>Handle the exit through <see cref="IX86Ops.HandleExit"/>.</summary>
    None,
    /// <summary>The vendor handled it already; enter the guest again.</summary>
    ReenterGuest,
    /// <summary>The entry itself failed (invalid guest state): KVM_EXIT_FAIL_ENTRY is filled.</summary>
    EntryFailed,
}

/// <summary>
/// This project's <c>kvm_x86_ops</c>: how a vendor module (SVM, VMX) plugs into the common x86
/// layer. Interface members are required; default interface methods are optional hooks with the
/// behaviour common code gets when a vendor does not provide them. Call sites never check whether
/// a vendor implements something: <see cref="KvmX86.Register"/> validates a vendor once.
/// </summary>
public interface IX86Ops
{
    /// <summary>"svm" or "vmx": the vendor prefix of its functions and its name on the command line.</summary>
    string Name { get; }

    /// <summary>The CPUID feature that says the hardware has this vendor's virtualization
    /// extension (SVM: 0x80000001 ECX[2]; VMX: leaf 1 ECX[5]).</summary>
    CpuFeature HardwareFeature { get; }

    /// <summary>Vendor setup of the supported caps (kvm_cpu_cap_set/clear): called once at registration,
    /// after common code has set the caps it can virtualize.</summary>
    void HardwareSetup(HostCpuModel model, CpuCaps caps);

    void VcpuCreate(Vcpu vcpu);

    /// <summary>RESET (or INIT when <paramref name="initEvent"/>): the vendor's control structure
    /// back to its architectural initial state.</summary>
    void VcpuReset(Vcpu vcpu, bool initEvent);

    /// <summary>Loads a register that is not available from the control structure into the cache.</summary>
    void CacheReg(Vcpu vcpu, VcpuReg reg);

    /// <summary>Enters the guest and runs it until an exit; the exit is left in the control structure.</summary>
    ExitFastpath Run(Vcpu vcpu);

    /// <summary>Dispatches the last exit through the vendor's exit table. Returns &gt; 0 to enter the
    /// guest again, 0 to return to userspace with <see cref="Vcpu.Exit"/> filled.</summary>
    int HandleExit(Vcpu vcpu, ExitFastpath fastpath);

    /// <summary>Advances RIP past the instruction that caused the current exit.</summary>
    bool SkipEmulatedInstruction(Vcpu vcpu);

    Segment GetSegment(Vcpu vcpu, int seg);
    void SetSegment(Vcpu vcpu, int seg, Segment value);
    int GetCpl(Vcpu vcpu);
    DescriptorTable GetGdt(Vcpu vcpu);
    void SetGdt(Vcpu vcpu, DescriptorTable value);
    DescriptorTable GetIdt(Vcpu vcpu);
    void SetIdt(Vcpu vcpu, DescriptorTable value);

    /// <summary>The vendor's part of a CR0/CR4/EFER change common code has already validated.</summary>
    void SetCr0(Vcpu vcpu, ulong value);
    void SetCr4(Vcpu vcpu, ulong value);
    void SetEfer(Vcpu vcpu, ulong value);

    /// <summary>Whether a CR4 value is acceptable to the vendor (e.g. VMXE under VMX).</summary>
    bool IsValidCr4(Vcpu vcpu, ulong value) => true;

    /// <summary>Flush every TLB entry of the guest (KVM_REQ_TLB_FLUSH).</summary>
    void FlushTlbAll(Vcpu vcpu);
    /// <summary>Flush the current context's entries (KVM_REQ_TLB_FLUSH_CURRENT).</summary>
    void FlushTlbCurrent(Vcpu vcpu);
    /// <summary>Flush one guest virtual address.</summary>
    void FlushTlbGva(Vcpu vcpu, ulong gva);
    /// <summary>Flush what the guest itself could have cached (KVM_REQ_TLB_FLUSH_GUEST, PV flushes, INVPCID emulation).</summary>
    void FlushTlbGuest(Vcpu vcpu);

    /// <summary>Queues an exception for the next entry.</summary>
    void InjectException(Vcpu vcpu, int vector, bool hasErrorCode, uint errorCode);

    /// <summary>Vendor-specific MSRs; return false to let common code handle (or refuse) it.</summary>
    bool GetMsr(Vcpu vcpu, uint msr, out ulong value)
    {
        value = 0;
        return false;
    }

    bool SetMsr(Vcpu vcpu, uint msr, ulong value) => false;

    /// <summary>After KVM_SET_CPUID2: guest caps are known; the vendor adjusts its controls.</summary>
    void AfterSetCpuid(Vcpu vcpu)
    {
    }

    void VcpuFree(Vcpu vcpu)
    {
    }

    /// <summary>The entry format of the second-stage tables the vendor's hardware walks (the TDP MMU builds them).</summary>
    Mmu.TdpFormat TdpFormat => Mmu.TdpFormat.Npt;

    /// <summary>The vendor's part of vCPU snapshots; null when the vendor cannot be snapshotted
    /// (capture and restore then say so).</summary>
    Snapshots.ISnapshotVendorState? Snapshots => null;

    /// <summary>Nested virtualization, when the vendor offers it (a later issue).</summary>
    INestedOps? Nested => null;
}

/// <summary>Hooks for running an L2 guest inside an L1 guest (KVM's <c>kvm_x86_nested_ops</c>).</summary>
public interface INestedOps
{
    /// <summary>True while the vCPU runs its L2 guest.</summary>
    bool IsGuestMode(Vcpu vcpu);

    /// <summary>Leaves L2 for L1 (a nested VM exit), e.g. on reset or when userspace asks.</summary>
    void LeaveNested(Vcpu vcpu);
}
