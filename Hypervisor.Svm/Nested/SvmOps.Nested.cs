using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.X86;
using Hypervisor.Core.X86.Emulation;
using Hypervisor.Svm.Hardware;
using Hypervisor.Svm.Nested;

namespace Hypervisor.Svm;

/// <summary>
/// Nested SVM (KVM's svm/nested.c, reduced): L1 executes VMRUN on a vmcb12 in its memory, L0 runs
/// L2 on vmcb02, and every L2 exit vmcb12 intercepts becomes a #VMEXIT L1 sees in vmcb12. L2 has
/// no nested paging of its own: its guest-physical addresses are L1's, translated by L0's tables.
/// ERAPS (KVM-FACTS §4): L2's RAP entries are tagged NestedGuest, but the hardware does not tell
/// guest ASIDs apart, so every nested VMRUN sets CLEAR_RAP in vmcb02 and every nested #VMEXIT sets
/// it in vmcb01.
/// </summary>
public sealed partial class SvmOps : INestedOps
{
    /// <summary>The nested hooks, when the module offers nested SVM.</summary>
    public INestedOps? Nested => Options.Nested ? this : null;

    public bool IsGuestMode(Vcpu vcpu) => ToSvm(vcpu).IsGuestMode;

    /// <summary>svm_leave_nested: back to L1 without a #VMEXIT into vmcb12 (reset, userspace).</summary>
    public void LeaveNested(Vcpu vcpu)
    {
        var svm = ToSvm(vcpu);
        if (svm.IsGuestMode)
            ForceLeaveNested(vcpu, svm);
    }

    // ---- VMRUN from L1 -----------------------------------------------------------------------

    /// <summary>L1's VMRUN (nested_svm_vmrun). The processor has already made the checks that come
    /// before the intercept (#UD outside protected mode, #GP(0) at CPL &gt; 0); the #UD for a clear
    /// EFER.SVME is L1's own view of EFER, which only L0 knows.</summary>
    private static int VmrunInterception(SvmOps ops, Vcpu vcpu, VcpuSvm svm)
    {
        var n = svm.Nested;
        if (n == null || (vcpu.Efer & Efer.Svme) == 0)
            return Emulate.InjectUd(vcpu);
        ulong gpa = vcpu.ReadGpr(Gpr.Rax);
        // APM "VMRUN": #GP(0) when RAX is not page aligned or not a legal physical address.
        if ((gpa & 0xFFF) != 0 || !vcpu.Vm.IsGuestRam(gpa))
            return Emulate.InjectGp(vcpu);
        var vmcb12 = n.Vmcb12;
        vcpu.Vm.Memory.Read(gpa, vmcb12.Bytes);
        n.Vmcb12Gpa = gpa;

        // L1 continues after its VMRUN whether or not L2 runs.
        if (!vcpu.Ops.SkipEmulatedInstruction(vcpu))
            return 0;
        string? invalid = CheckVmcb12(vmcb12);
        if (invalid == null)
        {
            PrepareVmcb02(vcpu, svm, n);
            invalid = svm.Processor.CheckGuestState(n.Vmcb02);
        }
        n.LastInvalidReason = invalid;
        if (invalid != null)
        {
            // The entry fails: L1 sees VMEXIT_INVALID in vmcb12 and goes on after its VMRUN.
            vmcb12.ExitCode = SvmExitCode.Invalid;
            vmcb12.ExitInfo1 = vmcb12.ExitInfo2 = 0;
            WriteVmcb12Control(vcpu, n);
            return 1;
        }
        EnterGuestMode(vcpu, svm, n);
        return 1;
    }

    /// <summary>The control-area checks a nested VMRUN makes on vmcb12 (nested_vmcb_check_controls),
    /// plus this implementation's limit: no nested paging for L2.</summary>
    internal static string? CheckVmcb12(Vmcb vmcb12)
    {
        string? invalid = SvmProcessor.CheckControlState(vmcb12);
        if (invalid != null)
            return "vmcb12: " + invalid;
        if (vmcb12.NpEnable)
            return "vmcb12: NP_ENABLE is set, and nested paging is not offered to L1 (its CPUID has no NPT)";
        return null;
    }

    /// <summary>nested_vmcb02_prepare_control / _save: L2's state from vmcb12, intercepts that are
    /// vmcb12's and L0's, L0's paging (L2 addresses are L1's guest-physical addresses).</summary>
    private static void PrepareVmcb02(Vcpu vcpu, VcpuSvm svm, NestedSvm n)
    {
        var v01 = svm.Vmcb;
        var v12 = n.Vmcb12;
        var v02 = n.Vmcb02;
        v02.Clear();
        v12.Bytes[VmcbOffset.SaveArea..].CopyTo(v02.Bytes[VmcbOffset.SaveArea..]);

        v02.InterceptCrRead = (ushort)(v12.InterceptCrRead | v01.InterceptCrRead);
        v02.InterceptCrWrite = (ushort)(v12.InterceptCrWrite | v01.InterceptCrWrite);
        v02.InterceptDrRead = (ushort)(v12.InterceptDrRead | v01.InterceptDrRead);
        v02.InterceptDrWrite = (ushort)(v12.InterceptDrWrite | v01.InterceptDrWrite);
        v02.InterceptExceptions = v12.InterceptExceptions | v01.InterceptExceptions;
        v02.InterceptMisc1 = v12.InterceptMisc1 | v01.InterceptMisc1;
        v02.InterceptMisc2 = v12.InterceptMisc2 | v01.InterceptMisc2;
        v02.InterceptMisc3 = v12.InterceptMisc3 | v01.InterceptMisc3;
        CombineIopm(vcpu, svm, n);
        CombineMsrpm(vcpu, svm, n);
        v02.IopmBasePa = v01.IopmBasePa;
        v02.MsrpmBasePa = v01.MsrpmBasePa;

        v02.TscOffset = v01.TscOffset + v12.TscOffset;
        v02.GuestAsid = n.Asid;
        // Different vmcb12s share L2's ASID: flush it on every nested entry.
        v02.TlbControl = TlbControl.FlushGuest;
        // KVM-FACTS §4: L1's ALLOW_LARGER_RAP, and always CLEAR_RAP (ASIDs are not told apart).
        v02.ErapCtl = (v12.ErapCtl & ErapCtl.AllowLargerRap) | ErapCtl.ClearRap;
        v02.NpEnable = v01.NpEnable;
        v02.NCr3 = v01.NCr3;
        v02.IntState = v12.IntState & IntState.InterruptShadow;
        v02.EventInj = v12.EventInj;
        v02.MarkAllDirty();
    }

    /// <summary>vmcb02's IOPM: L1's map (when vmcb12 sets IOIO_PROT) OR L0's. A map L1 placed
    /// outside its RAM intercepts everything.</summary>
    private static void CombineIopm(Vcpu vcpu, VcpuSvm svm, NestedSvm n)
    {
        var dst = n.Iopm02.Bytes;
        if (!n.Vmcb12.IsIntercepted(SvmIntercept.IoioProt))
            dst.Clear();
        else if (!ReadL1Map(vcpu, n.Vmcb12.IopmBasePa, dst))
            dst.Fill(0xFF);
        var l0 = svm.Iopm.Bytes;
        for (int k = 0; k < dst.Length; k++)
            dst[k] |= l0[k];
    }

    private static void CombineMsrpm(Vcpu vcpu, VcpuSvm svm, NestedSvm n)
    {
        var dst = n.Msrpm02.Bytes;
        if (!n.Vmcb12.IsIntercepted(SvmIntercept.MsrProt))
            dst.Clear();
        else if (!ReadL1Map(vcpu, n.Vmcb12.MsrpmBasePa, dst))
            dst.Fill(0xFF);
        var l0 = svm.Msrpm.Bytes;
        for (int k = 0; k < dst.Length; k++)
            dst[k] |= l0[k];
    }

    /// <summary>Reads a permission map from L1's memory (bits 11:0 of the base are ignored, APM §15.10/15.11).</summary>
    private static bool ReadL1Map(Vcpu vcpu, ulong basePa, Span<byte> map)
    {
        ulong pa = basePa & ~0xFFFUL;
        for (ulong page = 0; page < (ulong)map.Length; page += 0x1000)
            if (!vcpu.Vm.IsGuestRam(pa + page))
                return false;
        vcpu.Vm.Memory.Read(pa, map);
        return true;
    }

    /// <summary>Switches the vCPU to L2: L1's state stays in vmcb01 (RIP already past its VMRUN).</summary>
    private static void EnterGuestMode(Vcpu vcpu, VcpuSvm svm, NestedSvm n)
    {
        SaveRegsToVmcb(vcpu, svm.Vmcb);
        n.L1Efer = vcpu.Efer;
        svm.Current = n.Vmcb02;
        svm.Processor.Iopm = n.Iopm02;
        svm.Processor.Msrpm = n.Msrpm02;
        LoadRegsFromVmcb(vcpu, n.Vmcb02);
        n.Vmruns++;
    }

    // ---- #VMEXIT to L1 -----------------------------------------------------------------------

    /// <summary>Whether the exit L2 just took is one vmcb12 intercepts (nested_svm_intercept). The
    /// physical INTR/NMI/SMI and nested page faults are always L0's: L1 has no nested paging for L2.</summary>
    private static bool ShouldReflectToL1(Vcpu vcpu, VcpuSvm svm, ExitFastpath fastpath)
    {
        var v12 = svm.Nested!.Vmcb12;
        var v02 = svm.Current;
        long code = (long)v02.ExitCode;
        if (fastpath == ExitFastpath.EntryFailed || code == (long)SvmExitCode.Invalid)
            return fastpath == ExitFastpath.EntryFailed; // vmcb02 failed VMRUN's checks: L1's VMRUN fails
        switch (code)
        {
            case < 0x10: return v12.IsCrReadIntercepted((int)code);
            case < 0x20: return v12.IsCrWriteIntercepted((int)code - 0x10);
            case < 0x30: return v12.IsDrReadIntercepted((int)code - 0x20);
            case < 0x40: return v12.IsDrWriteIntercepted((int)code - 0x30);
            case < 0x60: return v12.IsExceptionIntercepted((int)code - 0x40);
            case (long)SvmExitCode.Intr or (long)SvmExitCode.Nmi or (long)SvmExitCode.Smi: return false;
            case (long)SvmExitCode.Ioio: return v12.IsIntercepted(SvmIntercept.IoioProt) && L1IoIntercepted(vcpu, v12, new SvmIoioInfo(v02.ExitInfo1));
            case (long)SvmExitCode.Msr: return v12.IsIntercepted(SvmIntercept.MsrProt) && L1MsrIntercepted(vcpu, v12, (uint)vcpu.ReadGpr(Gpr.Rcx), SvmExitInfo.IsMsrWrite(v02.ExitInfo1));
            // Exit codes 60h-7Fh, 80h-9Fh and A0h-BFh are the intercept bits of words 3, 4 and 5 in order.
            case < 0x80: return v12.IsIntercepted((SvmIntercept)((int)SvmIntercept.Intr + (int)code - 0x60));
            case < 0xA0: return v12.IsIntercepted((SvmIntercept)((int)SvmIntercept.Vmrun + (int)code - 0x80));
            case < 0xC0: return v12.IsIntercepted((SvmIntercept)((int)SvmIntercept.Invlpgb + (int)code - 0xA0));
            default: return false;
        }
    }

    /// <summary>L1's IOPM bits for the ports the access touches, read from L1's memory now (the map
    /// is L1's to change while L2 runs).</summary>
    private static bool L1IoIntercepted(Vcpu vcpu, Vmcb v12, SvmIoioInfo io)
    {
        ulong at = (v12.IopmBasePa & ~0xFFFUL) + (ulong)(io.Port >> 3);
        if (!vcpu.Vm.IsGuestRam(at) || !vcpu.Vm.IsGuestRam(at + 1))
            return true;
        Span<byte> two = stackalloc byte[2];
        vcpu.Vm.Memory.Read(at, two);
        uint bits = two[0] | ((uint)two[1] << 8);
        uint mask = ((1u << io.Size) - 1) << (io.Port & 7);
        return (bits & mask) != 0;
    }

    private static bool L1MsrIntercepted(Vcpu vcpu, Vmcb v12, uint msr, bool write)
    {
        int bit = SvmMsrPermissionMap.ReadBitIndex(msr);
        if (bit < 0)
            return true; // outside the three ranges: always intercepted
        if (write)
            bit++;
        ulong at = (v12.MsrpmBasePa & ~0xFFFUL) + (ulong)(bit >> 3);
        if (!vcpu.Vm.IsGuestRam(at))
            return true;
        Span<byte> one = stackalloc byte[1];
        vcpu.Vm.Memory.Read(at, one);
        return ((one[0] >> (bit & 7)) & 1) != 0;
    }

    /// <summary>nested_svm_vmexit: the exit and L2's state into vmcb12 in L1's memory, then L1 runs
    /// on from vmcb01 (after its VMRUN, RAX/RSP/RFLAGS as they were) with CLEAR_RAP set.</summary>
    private static int NestedVmexit(Vcpu vcpu, VcpuSvm svm)
    {
        var n = svm.Nested!;
        var v02 = svm.Current;
        var v12 = n.Vmcb12;
        if (v02.ExitCode == SvmExitCode.Invalid)
            n.LastInvalidReason = "vmcb02: " + svm.Processor.InvalidReason;
        SaveRegsToVmcb(vcpu, v02);
        v12.Es = v02.Es;
        v12.Cs = v02.Cs;
        v12.Ss = v02.Ss;
        v12.Ds = v02.Ds;
        v12.Gdtr = v02.Gdtr;
        v12.Idtr = v02.Idtr;
        v12.Efer = vcpu.Efer;
        v12.Cr0 = v02.Cr0;
        v12.Cr2 = v02.Cr2;
        v12.Cr3 = v02.Cr3;
        v12.Cr4 = v02.Cr4;
        v12.Rflags = v02.Rflags;
        v12.Rip = v02.Rip;
        v12.Rsp = v02.Rsp;
        v12.Rax = v02.Rax;
        v12.Dr6 = v02.Dr6;
        v12.Dr7 = v02.Dr7;
        v12.Cpl = v02.Cpl;
        v12.IntState = v02.IntState;
        v12.ExitCode = v02.ExitCode;
        v12.ExitInfo1 = v02.ExitInfo1;
        v12.ExitInfo2 = v02.ExitInfo2;
        v12.ExitIntInfo = v02.ExitIntInfo;
        v12.NRip = v02.NRip;
        vcpu.Vm.Memory.Write(n.Vmcb12Gpa, v12.Bytes);
        LeaveGuestMode(vcpu, svm, n);
        // #VMEXIT resets DR7 (APM §15.6: the host's DR7 is left with its reset value).
        svm.Vmcb.Dr7 = 0x400;
        vcpu.Dr7 = 0x400;
        n.Vmexits++;
        return 1;
    }

    /// <summary>Only the control fields a failed nested VMRUN reports go back to L1's vmcb12.</summary>
    private static void WriteVmcb12Control(Vcpu vcpu, NestedSvm n) =>
        vcpu.Vm.Memory.Write(n.Vmcb12Gpa + VmcbOffset.ExitCode, n.Vmcb12.Bytes.Slice(VmcbOffset.ExitCode, 24));

    /// <summary>svm_leave_nested: drop L2 without telling L1.</summary>
    private static void ForceLeaveNested(Vcpu vcpu, VcpuSvm svm) => LeaveGuestMode(vcpu, svm, svm.Nested!);

    private static void LeaveGuestMode(Vcpu vcpu, VcpuSvm svm, NestedSvm n)
    {
        var v01 = svm.Vmcb;
        svm.Current = v01;
        svm.Processor.Iopm = svm.Iopm;
        svm.Processor.Msrpm = svm.Msrpm;
        vcpu.Efer = n.L1Efer;
        LoadRegsFromVmcb(vcpu, v01);
        // KVM-FACTS §4: L1 must not consume return predictions L2 left (the RAP is not per ASID).
        v01.ErapCtl |= ErapCtl.ClearRap;
        v01.MarkAllDirty();
    }

    /// <summary>The register cache's RAX/RSP/RIP/RFLAGS/CR3 into a VMCB that stops running.</summary>
    private static void SaveRegsToVmcb(Vcpu vcpu, Vmcb vmcb)
    {
        var regs = vcpu.Regs;
        vmcb.Rax = regs.Read(VcpuReg.Rax);
        vmcb.Rsp = regs.Read(VcpuReg.Rsp);
        vmcb.Rip = regs.Read(VcpuReg.Rip);
        vmcb.Rflags = regs.Read(VcpuReg.Rflags);
        vmcb.Cr3 = regs.Read(VcpuReg.Cr3);
    }

    /// <summary>The register cache from the VMCB that runs next. The other GPRs are not switched:
    /// VMRUN and #VMEXIT leave them as they are (APM §15.5, §15.6).</summary>
    private static void LoadRegsFromVmcb(Vcpu vcpu, Vmcb vmcb)
    {
        var regs = vcpu.Regs;
        regs.Fill(VcpuReg.Rax, vmcb.Rax);
        regs.Fill(VcpuReg.Rsp, vmcb.Rsp);
        regs.Fill(VcpuReg.Rip, vmcb.Rip);
        regs.Fill(VcpuReg.Rflags, vmcb.Rflags);
        regs.Fill(VcpuReg.Cr0, vmcb.Cr0);
        regs.Fill(VcpuReg.Cr3, vmcb.Cr3);
        regs.Fill(VcpuReg.Cr4, vmcb.Cr4);
        regs.ClearAvailable(VcpuReg.Pdptr);
        vcpu.Cr2 = vmcb.Cr2;
        vcpu.Dr6 = vmcb.Dr6;
        vcpu.Dr7 = vmcb.Dr7;
    }
}
