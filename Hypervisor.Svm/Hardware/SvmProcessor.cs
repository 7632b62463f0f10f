using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Rap;
using Hypervisor.Core.Machine.Virtualization;

namespace Hypervisor.Svm.Hardware;

/// <summary>
/// The SVM extension of the software CPU: VMRUN and #VMEXIT as world switches between the VMCB
/// and the processor (APM vol. 2 §15.5-15.6). VMRUN checks the guest state, applies TLB_CONTROL
/// and erap_ctl, loads the guest (with VMLOAD's state, as KVM runs VMLOAD around every VMRUN),
/// injects EVENTINJ and runs until an intercepted event; #VMEXIT writes EXITCODE, EXITINFO1/2,
/// NRIP and the guest state back. State groups whose VMCB clean bit is set and that this processor
/// loaded from the same VMCB last time are not reloaded, as the hardware is allowed to do.
/// </summary>
public sealed partial class SvmProcessor
{
    /// <summary>Architectural size of the RAP available to a guest unless ALLOW_LARGER_RAP.</summary>
    public const int LegacyRapEntries = 32;

    private readonly X86Cpu _cpu;
    private Vmcb? _lastVmcb;
    private readonly GuestIntercepts _intercepts = new();
    private readonly IoFilter _io = new();
    private readonly MsrFilter _msr = new();

    public SvmProcessor(X86Cpu cpu) => _cpu = cpu;

    public X86Cpu Cpu => _cpu;

    /// <summary>The permission maps this processor finds at IOPM_BASE_PA / MSRPM_BASE_PA. (The
    /// hypervisor owns them; the processor reads them as the hardware reads the pages.)</summary>
    public SvmIoPermissionMap? Iopm { get; set; }
    public SvmMsrPermissionMap? Msrpm { get; set; }

    /// <summary>The CPU's record of the last MMIO access that caused an NPF exit: the size and data
    /// KVM's instruction emulator would decode; here the CPU replays the instruction instead.</summary>
    public CpuExit LastMmio { get; private set; }

    /// <summary>The CPU's report when the exit was an unimplemented instruction or internal error.</summary>
    public CpuExit LastMachineFailure { get; private set; }

    /// <summary>VMRUN: enter the guest the VMCB describes and run until #VMEXIT (or until
    /// <paramref name="maxInstructions"/> retired, which exits as a physical INTR). The RAP tags the
    /// guest's entries with <paramref name="domain"/> (an L2 guest run for a nested hypervisor is
    /// <see cref="RapDomain.NestedGuest"/>).</summary>
    public void Vmrun(Vmcb vmcb, ulong maxInstructions = ulong.MaxValue, RapDomain domain = RapDomain.Guest)
    {
        // State that is clean and was loaded from this VMCB last time passed these checks already.
        bool clean = ReferenceEquals(vmcb, _lastVmcb) && (vmcb.CleanBits & (VmcbClean.Crx | VmcbClean.Seg | VmcbClean.Drx)) == (VmcbClean.Crx | VmcbClean.Seg | VmcbClean.Drx);
        string? invalid = clean ? CheckControlState(vmcb) : CheckGuestState(vmcb);
        if (invalid != null)
        {
            vmcb.ExitCode = SvmExitCode.Invalid;
            vmcb.ExitInfo1 = vmcb.ExitInfo2 = 0;
            InvalidReason = invalid;
            return;
        }
        InvalidReason = null;
        ApplyTlbControl(vmcb);
        ApplyErapCtl(vmcb);
        LoadGuest(vmcb);
        _cpu.Intercepts = BuildIntercepts(vmcb);
        _cpu.CurrentRapDomain = domain;

        CpuExit exit;
        var inj = vmcb.EventInj;
        vmcb.EventInj = SvmEventInfo.None;
        if (inj.IsValid && !_cpu.InjectEvent(inj.Vector, inj.HasErrorCode, inj.ErrorCode, inj.Type == SvmEventType.SoftwareInterrupt))
            exit = _cpu.TakePendingExit();
        else
            exit = _cpu.Run(maxInstructions);
        VmExit(vmcb, exit);
    }

    /// <summary>Forgets which VMCB was loaded last, so the next VMRUN loads every state group
    /// whatever the clean bits say (after a snapshot restore rewrote the VMCB and the processor).</summary>
    public void ForgetLoadedVmcb() => _lastVmcb = null;

    /// <summary>Observability real hardware lacks: whether the last VMRUN cleared the RAP (CLEAR_RAP)
    /// and how many RAP entries the guest could use (32, or all with ALLOW_LARGER_RAP).</summary>
    public bool LastVmrunClearedRap { get; private set; }
    /// <summary>The erap_ctl the last VMRUN found in its VMCB (before the hypervisor masks CLEAR_RAP off).</summary>
    public ErapCtl LastVmrunErapCtl { get; private set; }
    public int LastGuestRapCapacity { get; private set; }

    /// <summary>Why the last VMRUN failed its consistency checks (VMEXIT_INVALID), for logs.</summary>
    public string? InvalidReason { get; private set; }

    private void ApplyTlbControl(Vmcb vmcb)
    {
        // One processor per vCPU: "this guest's ASID" is every translation this CPU caches.
        // TLB_CONTROL flushes translations only: it does not clear the RAP (CLEAR_RAP does).
        switch (vmcb.TlbControl)
        {
            case TlbControl.FlushAll:
            case TlbControl.FlushGuest:
                _cpu.Tlb.FlushAll();
                break;
            case TlbControl.FlushGuestNonGlobal:
                _cpu.Tlb.FlushAllNonGlobal();
                break;
            default:
                return;
        }
        _lastVmcb = null; // the next load recomputes everything derived from the translations
    }

    /// <summary>erap_ctl (KVM-FACTS §4): CLEAR_RAP empties the RAP before the guest runs;
    /// ALLOW_LARGER_RAP lets the guest use every entry, else it gets the legacy 32.</summary>
    private void ApplyErapCtl(Vmcb vmcb)
    {
        var ctl = vmcb.ErapCtl;
        LastVmrunErapCtl = ctl;
        var rap = _cpu.Rap;
        LastVmrunClearedRap = (ctl & ErapCtl.ClearRap) != 0 && _cpu.Model.HasEraps;
        if (LastVmrunClearedRap)
            rap.Clear();
        int capacity = (ctl & ErapCtl.AllowLargerRap) != 0 && _cpu.Model.HasEraps ? rap.PhysicalEntries : Math.Min(LegacyRapEntries, rap.PhysicalEntries);
        rap.SetCapacity(capacity);
        LastGuestRapCapacity = capacity;
    }

    private sealed class IoFilter : IIoInterceptFilter
    {
        public SvmIoPermissionMap? Map;
        public bool IsIoIntercepted(ushort port, int size) => Map == null || Map.IsIntercepted(port, size);
    }

    private sealed class MsrFilter : IMsrInterceptFilter
    {
        public SvmMsrPermissionMap? Map;
        public bool IsMsrIntercepted(uint msr, bool write) => Map == null || (write ? Map.IsWriteIntercepted(msr) : Map.IsReadIntercepted(msr));
    }

    private GuestIntercepts BuildIntercepts(Vmcb vmcb)
    {
        var g = _intercepts;
        g.Instructions = 0;
        void Map(SvmIntercept bit, InterceptReason reason)
        {
            if (vmcb.IsIntercepted(bit)) g.Set(reason);
        }
        Map(SvmIntercept.Cpuid, InterceptReason.Cpuid);
        Map(SvmIntercept.Hlt, InterceptReason.Hlt);
        Map(SvmIntercept.Invlpg, InterceptReason.Invlpg);
        Map(SvmIntercept.Invpcid, InterceptReason.Invpcid);
        Map(SvmIntercept.Xsetbv, InterceptReason.Xsetbv);
        Map(SvmIntercept.Rdtsc, InterceptReason.Rdtsc);
        Map(SvmIntercept.Rdtscp, InterceptReason.Rdtscp);
        Map(SvmIntercept.Pause, InterceptReason.Pause);
        Map(SvmIntercept.Wbinvd, InterceptReason.Wbinvd);
        Map(SvmIntercept.Invd, InterceptReason.Invd);
        Map(SvmIntercept.Vmrun, InterceptReason.Vmrun);
        Map(SvmIntercept.Vmmcall, InterceptReason.Vmmcall);
        Map(SvmIntercept.Vmload, InterceptReason.Vmload);
        Map(SvmIntercept.Vmsave, InterceptReason.Vmsave);
        Map(SvmIntercept.Stgi, InterceptReason.Stgi);
        Map(SvmIntercept.Clgi, InterceptReason.Clgi);
        g.CrReads = vmcb.InterceptCrRead;
        g.CrWrites = vmcb.InterceptCrWrite;
        g.DrReads = vmcb.InterceptDrRead;
        g.DrWrites = vmcb.InterceptDrWrite;
        g.Exceptions = vmcb.InterceptExceptions;
        g.Shutdown = vmcb.IsIntercepted(SvmIntercept.Shutdown);
        // IOIO_PROT / MSR_PROT off: the guest reaches every port / MSR directly.
        _io.Map = Iopm;
        _msr.Map = Msrpm;
        g.Io = vmcb.IsIntercepted(SvmIntercept.IoioProt) ? _io : NeverIo.Instance;
        g.Msr = vmcb.IsIntercepted(SvmIntercept.MsrProt) ? _msr : NeverMsr.Instance;
        return g;
    }

    private sealed class NeverIo : IIoInterceptFilter
    {
        public static readonly NeverIo Instance = new();
        public bool IsIoIntercepted(ushort port, int size) => false;
    }

    private sealed class NeverMsr : IMsrInterceptFilter
    {
        public static readonly NeverMsr Instance = new();
        public bool IsMsrIntercepted(uint msr, bool write) => false;
    }
}
