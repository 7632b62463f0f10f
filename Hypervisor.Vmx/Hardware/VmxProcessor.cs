using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Rap;
using Hypervisor.Core.Machine.Virtualization;

namespace Hypervisor.Vmx.Hardware;

/// <summary>
/// The VMX extension of the software CPU (SDM vol. 3 chapters 24-28): VMXON/VMXOFF, VMPTRLD of the
/// current VMCS, and VMLAUNCH/VMRESUME as world switches between the VMCS and the processor.
/// Entry checks the controls (a failure is VMfailValid with error 7), then the guest state (a
/// failure is a VM exit with basic reason 33 and bit 31 set), loads the guest, injects the event of
/// the VM-entry interruption-information field and runs until a VM exit; the exit writes the exit
/// reason, qualification, guest addresses, instruction length and information, and the guest state
/// back into the VMCS.
/// </summary>
public sealed partial class VmxProcessor
{
    /// <summary>Exit reason this processor writes when the software CPU itself cannot go on (an
    /// unimplemented instruction, an internal error): no SDM reason describes it, so it is outside
    /// the SDM's numbers, and <see cref="LastMachineFailure"/> says what happened.</summary>
    public const uint MachineFailureExitReason = 0xFFFF;

    private readonly X86Cpu _cpu;
    private readonly GuestIntercepts _intercepts = new();
    private readonly IoFilter _io = new();
    private readonly MsrFilter _msr = new();
    private ushort _lastVpid = ushort.MaxValue;

    public VmxProcessor(X86Cpu cpu) => _cpu = cpu;

    public X86Cpu Cpu => _cpu;

    /// <summary>In VMX operation (after VMXON, before VMXOFF).</summary>
    public bool InVmxOperation { get; private set; }
    public ulong VmxonPointer { get; private set; }

    /// <summary>The current VMCS (VMPTRLD), or null.</summary>
    public Vmcs? Current { get; private set; }

    /// <summary>The bitmaps this processor finds at the I/O-bitmap and MSR-bitmap addresses. (The
    /// hypervisor owns them; the processor reads them as the hardware reads the pages.)</summary>
    public VmxIoBitmaps? IoBitmaps { get; set; }
    public VmxMsrBitmap? MsrBitmap { get; set; }

    /// <summary>The CPU's record of the last access to guest-physical space no memory backs (the
    /// MMIO access KVM's emulator would decode; here the CPU replays the instruction).</summary>
    public CpuExit LastMmio { get; private set; }

    /// <summary>The CPU's report when the exit was an unimplemented instruction or internal error.</summary>
    public CpuExit LastMachineFailure { get; private set; }

    /// <summary>Why the last VM entry failed its guest-state checks (exit reason 33), for logs.</summary>
    public string? InvalidReason { get; private set; }

    /// <summary>VMXON (SDM vol. 3 §31.3): the region must be 4-KiB aligned, within the physical-address
    /// width, and start with this processor's revision identifier.</summary>
    public VmxInstructionError Vmxon(ulong region, uint regionRevisionId)
    {
        if (InVmxOperation)
            return VmxInstructionError.VmxonInVmxRootOperation;
        if (!Vmcs.IsValidRegionAddress(region, _cpu.Model.MaxPhysAddrBits) || (regionRevisionId & Vmcs.RevisionIdMask) != VmxProcessorCapabilities.RevisionId)
            throw new InvalidOperationException($"VMXON with an invalid region (0x{region:x}, revision 0x{regionRevisionId:x}): VMfailInvalid");
        InVmxOperation = true;
        VmxonPointer = region;
        return VmxInstructionError.None;
    }

    /// <summary>VMXOFF: leaves VMX operation; the current VMCS pointer becomes invalid.</summary>
    public void Vmxoff()
    {
        InVmxOperation = false;
        Current = null;
    }

    /// <summary>VMPTRLD: <paramref name="vmcs"/> becomes current (its revision must match).</summary>
    public VmxInstructionError Vmptrld(Vmcs vmcs)
    {
        RequireVmxOperation("VMPTRLD");
        if (vmcs.RevisionId != VmxProcessorCapabilities.RevisionId)
            return VmxInstructionError.VmptrldIncorrectRevisionId;
        Current = vmcs;
        return VmxInstructionError.None;
    }

    /// <summary>VMLAUNCH (<paramref name="resume"/> false) or VMRESUME of the current VMCS, running the
    /// guest until a VM exit (or until <paramref name="maxInstructions"/> retired, which exits as an
    /// external interrupt). Returns the VM-instruction error of a VMfailValid (also written to the
    /// VMCS), or <see cref="VmxInstructionError.None"/> when a VM exit (possibly a failed entry with
    /// reason 33) was written into the VMCS.</summary>
    public VmxInstructionError Enter(bool resume, ulong maxInstructions = ulong.MaxValue)
    {
        RequireVmxOperation(resume ? "VMRESUME" : "VMLAUNCH");
        var vmcs = Current ?? throw new InvalidOperationException("VMLAUNCH/VMRESUME without a current VMCS: VMfailInvalid");
        var error = vmcs.CheckEntry(resume);
        if (error == VmxInstructionError.None && CheckControls(vmcs) is { } control)
        {
            InvalidReason = control;
            error = VmxInstructionError.VmEntryInvalidControlFields;
        }
        if (error != VmxInstructionError.None)
        {
            vmcs[VmcsField.VmInstructionError] = (ulong)error;
            return error;
        }
        InvalidReason = CheckGuestState(vmcs);
        if (InvalidReason != null)
        {
            // SDM vol. 3 §27.8: a failure after the control and host checks is a VM exit whose basic
            // reason says why, with bit 31 set; the guest state is not loaded.
            vmcs[VmcsField.ExitReason] = VmxExitReasonField.EntryFailure(VmxExitReason.EntryFailureInvalidGuestState).Raw;
            vmcs[VmcsField.ExitQualification] = 0;
            LastMmio = default;
            LastMachineFailure = default;
            return VmxInstructionError.None;
        }
        LoadGuest(vmcs);
        if (!resume)
            vmcs.MarkLaunched();
        _cpu.Intercepts = BuildIntercepts(vmcs);
        _cpu.CurrentRapDomain = RapDomain.Guest;

        CpuExit exit;
        var inj = new VmxInterruptionInfo((uint)vmcs[VmcsField.VmEntryInterruptionInformation]);
        vmcs[VmcsField.VmEntryInterruptionInformation] = 0; // cleared on every VM exit (SDM §28.2.4)
        if (inj.IsValid && !_cpu.InjectEvent(inj.Vector, inj.HasErrorCode, (uint)vmcs[VmcsField.VmEntryExceptionErrorCode],
                inj.Type is VmxInterruptionType.SoftwareInterrupt))
            exit = _cpu.TakePendingExit();
        else
            exit = _cpu.Run(maxInstructions);
        VmExit(vmcs, exit);
        return VmxInstructionError.None;
    }

    private void RequireVmxOperation(string instruction)
    {
        if (!InVmxOperation)
            throw new InvalidOperationException($"{instruction} outside VMX operation (#UD)");
    }

    /// <summary>INVVPID / INVEPT: this processor's TLB is not tagged by VPID or EPTP, so an
    /// invalidation drops every translation (guest-linear, combined and guest-physical).</summary>
    public void InvalidateAll() => _cpu.Tlb.FlushAll();

    /// <summary>INVVPID individual-address: the translations of one linear address, every PCID.</summary>
    public void InvalidateAddress(ulong linear) => _cpu.InvalidatePageAllContexts(linear);

    private sealed class IoFilter : IIoInterceptFilter
    {
        public VmxIoBitmaps? Bitmaps;
        public VmxPrimaryProcessorControls Controls;
        public bool IsIoIntercepted(ushort port, int size) => VmxIoBitmaps.IsIoExiting(Controls, Bitmaps, port, size);
    }

    private sealed class MsrFilter : IMsrInterceptFilter
    {
        public VmxMsrBitmap? Bitmap;
        public bool IsMsrIntercepted(uint msr, bool write) => Bitmap == null || (write ? Bitmap.IsWriteIntercepted(msr) : Bitmap.IsReadIntercepted(msr));
    }

    /// <summary>The intercept set the controls describe (SDM vol. 3 §26.1): CPUID, XSETBV, INVD,
    /// GETSEC, VMCALL and triple faults always exit.</summary>
    private GuestIntercepts BuildIntercepts(Vmcs vmcs)
    {
        var g = _intercepts;
        var primary = (VmxPrimaryProcessorControls)vmcs[VmcsField.PrimaryProcessorBasedVmExecutionControls];
        var secondary = (primary & VmxPrimaryProcessorControls.ActivateSecondaryControls) != 0
            ? (VmxSecondaryProcessorControls)vmcs[VmcsField.SecondaryProcessorBasedVmExecutionControls]
            : VmxSecondaryProcessorControls.None;
        g.Instructions = 0;
        g.Undefined = 0;
        g.Set(InterceptReason.Cpuid).Set(InterceptReason.Xsetbv).Set(InterceptReason.Invd).Set(InterceptReason.Vmcall);
        void Map(VmxPrimaryProcessorControls bit, InterceptReason reason)
        {
            if ((primary & bit) != 0) g.Set(reason);
        }
        Map(VmxPrimaryProcessorControls.HltExiting, InterceptReason.Hlt);
        Map(VmxPrimaryProcessorControls.InvlpgExiting, InterceptReason.Invlpg);
        Map(VmxPrimaryProcessorControls.RdtscExiting, InterceptReason.Rdtsc);
        Map(VmxPrimaryProcessorControls.RdpmcExiting, InterceptReason.Rdpmc);
        Map(VmxPrimaryProcessorControls.MwaitExiting, InterceptReason.Mwait);
        Map(VmxPrimaryProcessorControls.MonitorExiting, InterceptReason.Monitor);
        Map(VmxPrimaryProcessorControls.PauseExiting, InterceptReason.Pause);
        if ((secondary & VmxSecondaryProcessorControls.WbinvdExiting) != 0)
            g.Set(InterceptReason.Wbinvd);
        // RDTSCP exits with RDTSC exiting when "enable RDTSCP" is set (SDM §26.1.3).
        if ((secondary & VmxSecondaryProcessorControls.EnableRdtscp) != 0 && (primary & VmxPrimaryProcessorControls.RdtscExiting) != 0)
            g.Set(InterceptReason.Rdtscp);
        // INVPCID: #UD with "enable INVPCID" clear; exits when INVLPG exiting is set too.
        if ((secondary & VmxSecondaryProcessorControls.EnableInvpcid) == 0)
            g.Undefined |= 1u << (int)InterceptReason.Invpcid;
        else if ((primary & VmxPrimaryProcessorControls.InvlpgExiting) != 0)
            g.Set(InterceptReason.Invpcid);

        // CR3 loads exit unless the value is one of the CR3-target values.
        g.CrWrites = (ushort)((primary & VmxPrimaryProcessorControls.Cr3LoadExiting) != 0 ? 1 << 3 : 0);
        g.CrReads = (ushort)((primary & VmxPrimaryProcessorControls.Cr3StoreExiting) != 0 ? 1 << 3 : 0);
        if ((primary & VmxPrimaryProcessorControls.Cr8LoadExiting) != 0) g.CrWrites |= 1 << 8;
        if ((primary & VmxPrimaryProcessorControls.Cr8StoreExiting) != 0) g.CrReads |= 1 << 8;
        g.CrShadows = true;
        g.Cr0GuestHostMask = vmcs[VmcsField.Cr0GuestHostMask];
        g.Cr0ReadShadow = vmcs[VmcsField.Cr0ReadShadow];
        g.Cr4GuestHostMask = vmcs[VmcsField.Cr4GuestHostMask];
        g.Cr4ReadShadow = vmcs[VmcsField.Cr4ReadShadow];
        bool movDr = (primary & VmxPrimaryProcessorControls.MovDrExiting) != 0;
        g.DrReads = g.DrWrites = (ushort)(movDr ? 0xFF : 0);
        g.Exceptions = (uint)vmcs[VmcsField.ExceptionBitmap];
        g.Shutdown = true;
        _io.Bitmaps = IoBitmaps;
        _io.Controls = primary;
        g.Io = _io;
        _msr.Bitmap = (primary & VmxPrimaryProcessorControls.UseMsrBitmaps) != 0 ? MsrBitmap : null;
        g.Msr = _msr;
        return g;
    }
}
