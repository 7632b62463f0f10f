namespace Hypervisor.Core.Machine.Virtualization;

/// <summary>
/// What made the CPU leave guest mode, in vendor-neutral terms. The vendor's Hardware part turns
/// it into its own exit format (an SVM exit code and EXITINFO, or a VMX exit reason and
/// qualification). Instruction intercepts are numbered so a set of them fits one bitmap.
/// </summary>
public enum InterceptReason : byte
{
    None = 0,
    // Instructions (bit = 1 << value in GuestIntercepts.Instructions)
    Cpuid = 1,
    Hlt = 2,
    Invlpg = 3,
    Invpcid = 4,
    Xsetbv = 5,
    Rdtsc = 6,
    Rdtscp = 7,
    Pause = 8,
    Wbinvd = 9,
    Invd = 10,
    Vmrun = 11,
    Vmmcall = 12,
    Vmcall = 13,
    Vmload = 14,
    Vmsave = 15,
    Stgi = 16,
    Clgi = 17,
    Rdpmc = 18,
    Iret = 19,
    Monitor = 20,
    Mwait = 21,
    // Events with their own masks or filters
    CrRead = 32,
    CrWrite = 33,
    DrRead = 34,
    DrWrite = 35,
    Exception = 36,
    Io = 37,
    MsrRead = 38,
    MsrWrite = 39,
    /// <summary>A triple fault in guest mode (SVM SHUTDOWN, VMX triple-fault exit).</summary>
    Shutdown = 40,
    /// <summary>The second-stage walk (NPT/EPT) failed.</summary>
    NestedPageFault = 41,
    /// <summary>An external interrupt arrived while the guest ran.</summary>
    ExternalInterrupt = 42,
}
