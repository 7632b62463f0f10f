using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>What a vendor's VMRUN/VMLAUNCH and #VMEXIT need to load and store the whole
/// architectural state at once, bypassing the per-instruction checks (the vendor's consistency
/// checks have already been made, as the hardware makes them on entry).</summary>
public sealed unsafe partial class X86Cpu
{
    /// <summary>Call after setting CR0/CR3/CR4/EFER, segments or RFLAGS directly: recomputes the
    /// mode, the segment fast paths and drops cached translations of the previous context.</summary>
    public void StateLoaded()
    {
        ModeChanged();
    }

    /// <summary>Sets a segment register's visible and hidden parts as they are, without deriving
    /// the CPL or the mode (call <see cref="StateLoaded"/> once everything is loaded).</summary>
    public void SetSegmentRaw(int seg, Segment value) => Segs[seg] = value;

    /// <summary>Loads the PAE PDPTEs from CR3 as a VM entry does; false when one is invalid.</summary>
    public bool LoadPdptesForEntry() => LoadPdptes(Cr3);

    /// <summary>Sets the current privilege level as the VMCB's CPL field or the VMCS's SS.DPL give it.</summary>
    public void SetCpl(int cpl)
    {
        Cpl = cpl & 3;
        FlushFastTlb();
    }

    /// <summary>Delivers an event through the guest's IDT now, as VM entry does for an injected event
    /// (SVM EVENTINJ, VMX VM-entry interruption information). Returns false when delivery stopped
    /// the CPU (an intercepted fault during delivery, or a shutdown): <see cref="TakePendingExit"/>.</summary>
    public bool InjectEvent(int vector, bool hasErrorCode, uint errorCode, bool isSoftwareInterrupt = false)
    {
        if (isSoftwareInterrupt)
        {
            DeliverEvent(vector, EventKind.Software, false, 0);
            if (_pendingVector >= 0)
                return DeliverPendingException();
            return !_exitPending;
        }
        _pendingVector = vector;
        _pendingError = hasErrorCode ? errorCode : 0;
        _pendingCr2 = Cr2;
        return DeliverPendingException();
    }

    /// <summary>The exit left by a failed <see cref="InjectEvent"/>.</summary>
    public CpuExit TakePendingExit() => TakeExit();
}
