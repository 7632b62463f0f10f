using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Rap;
using Hypervisor.Core.Machine.Virtualization;

namespace Hypervisor.Svm.Hardware;

public sealed partial class SvmProcessor
{
    /// <summary>VMRUN's consistency checks on the guest state (APM vol. 2 §15.5.1 "Canonicalization
    /// and Consistency Checks"). Returns why the state is illegal, or null.</summary>
    public string? CheckGuestState(Vmcb vmcb)
    {
        ulong efer = vmcb.Efer, cr0 = vmcb.Cr0, cr3 = vmcb.Cr3, cr4 = vmcb.Cr4;
        int maxPhys = _cpu.Model.MaxPhysAddrBits;
        if ((efer & Efer.Svme) == 0) return "EFER.SVME is zero";
        if ((cr0 & Cr0.Cd) == 0 && (cr0 & Cr0.Nw) != 0) return "CR0.CD is zero and CR0.NW is set";
        if ((cr0 >> 32) != 0) return "CR0[63:32] are not zero";
        if ((cr3 & ~((1UL << maxPhys) - 1)) != 0) return "CR3 has bits set beyond MAXPHYADDR";
        if ((cr4 & ~_cpu.Cr4Supported) != 0) return $"CR4 has reserved bits set (0x{cr4 & ~_cpu.Cr4Supported:x})";
        if ((vmcb.Dr6 >> 32) != 0 || (vmcb.Dr7 >> 32) != 0) return "DR6[63:32] or DR7[63:32] are not zero";
        if ((efer & ~(_cpu.EferSupported | Efer.Svme)) != 0) return $"EFER has reserved bits set (0x{efer:x})";
        bool lme = (efer & Efer.Lme) != 0, pg = (cr0 & Cr0.Pg) != 0;
        if (lme && pg && (cr4 & Cr4.Pae) == 0) return "EFER.LME and CR0.PG are set and CR4.PAE is zero";
        if (lme && pg && (cr0 & Cr0.Pe) == 0) return "EFER.LME and CR0.PG are set and CR0.PE is zero";
        var cs = vmcb.Cs;
        if (lme && pg && (cr4 & Cr4.Pae) != 0 && cs.Long && cs.DefaultBig) return "EFER.LME, CR0.PG, CR4.PAE, CS.L and CS.D are all set";
        return CheckControlState(vmcb);
    }

    /// <summary>The checks on the control area, made on every VMRUN.</summary>
    public static string? CheckControlState(Vmcb vmcb)
    {
        if (!vmcb.IsIntercepted(SvmIntercept.Vmrun)) return "the VMRUN intercept bit is clear";
        if (vmcb.GuestAsid == 0) return "ASID is zero";
        return null;
    }

    /// <summary>Loads the guest from the VMCB (VMRUN's state plus VMLOAD's).</summary>
    private void LoadGuest(Vmcb vmcb)
    {
        var clean = ReferenceEquals(vmcb, _lastVmcb) ? vmcb.CleanBits : VmcbClean.None;
        var c = _cpu;
        bool modeDirty = false;
        if ((clean & VmcbClean.Crx) == 0)
        {
            modeDirty = true;
            c.Cr0 = vmcb.Cr0;
            c.Cr3 = vmcb.Cr3;
            c.Cr4 = vmcb.Cr4;
            // EFER.SVME is set in every VMCB that runs (VMRUN checks it), so the processor has it set
            // in guest mode: the guest's SVM instructions get past the SVME #UD check to their
            // intercepts, and the hypervisor decides from the guest's own view of EFER.
            c.Efer = vmcb.Efer;
            if (c.IsPaePaging)
                c.LoadPdptesForEntry();
        }
        if ((clean & VmcbClean.Seg) == 0)
        {
            modeDirty = true;
            c.SetSegmentRaw(SegReg.Es, vmcb.Es);
            c.SetSegmentRaw(SegReg.Cs, vmcb.Cs);
            c.SetSegmentRaw(SegReg.Ss, vmcb.Ss);
            c.SetSegmentRaw(SegReg.Ds, vmcb.Ds);
            c.SetSegmentRaw(SegReg.Fs, vmcb.Fs);
            c.SetSegmentRaw(SegReg.Gs, vmcb.Gs);
            c.SetSegmentRaw(SegReg.Tr, vmcb.Tr);
            c.SetSegmentRaw(SegReg.Ldtr, vmcb.Ldtr);
        }
        if ((clean & VmcbClean.Np) == 0)
        {
            // NP_ENABLE and N_CR3: the second-stage walk (host NX is on: the hypervisor runs with EFER.NXE).
            c.NestedPaging = vmcb.NpEnable ? new NestedPaging(vmcb.NCr3 & ~0xFFFUL, NoExecute: true) : null;
        }
        if ((clean & VmcbClean.Dt) == 0)
        {
            c.Gdtr = vmcb.Gdtr;
            c.Idtr = vmcb.Idtr;
        }
        if ((clean & VmcbClean.Drx) == 0)
        {
            c.Dr[6] = vmcb.Dr6;
            c.Dr[7] = vmcb.Dr7;
        }
        if ((clean & VmcbClean.Cr2) == 0)
            c.Cr2 = vmcb.Cr2;
        c.SetRFlags(vmcb.Rflags);
        c.Rip = vmcb.Rip;
        c.SetGpr(Gpr.Rsp, vmcb.Rsp);
        c.SetGpr(Gpr.Rax, vmcb.Rax);
        var m = c.Msr;
        m.Star = vmcb.Star;
        m.Lstar = vmcb.Lstar;
        m.Cstar = vmcb.Cstar;
        m.Sfmask = vmcb.Sfmask;
        m.KernelGsBase = vmcb.KernelGsBase;
        m.SysenterCs = vmcb.SysenterCs;
        m.SysenterEsp = vmcb.SysenterEsp;
        m.SysenterEip = vmcb.SysenterEip;
        // Mode, segment fast paths and cached translations are recomputed only when their inputs were
        // reloaded: a VMRUN that changes nothing but RIP/RSP/RAX stays cheap.
        if (modeDirty)
            c.StateLoaded();
        if (c.Cpl != vmcb.Cpl)
            c.SetCpl(vmcb.Cpl);
        _lastVmcb = vmcb;
    }

    /// <summary>#VMEXIT: the exit code and information, then the guest state, back into the VMCB;
    /// the processor leaves guest mode.</summary>
    private void VmExit(Vmcb vmcb, CpuExit exit)
    {
        var c = _cpu;
        WriteExitInfo(vmcb, exit);
        vmcb.Es = c.GetSegment(SegReg.Es);
        vmcb.Cs = c.GetSegment(SegReg.Cs);
        vmcb.Ss = c.GetSegment(SegReg.Ss);
        vmcb.Ds = c.GetSegment(SegReg.Ds);
        vmcb.Fs = c.GetSegment(SegReg.Fs);
        vmcb.Gs = c.GetSegment(SegReg.Gs);
        vmcb.Tr = c.GetSegment(SegReg.Tr);
        vmcb.Ldtr = c.GetSegment(SegReg.Ldtr);
        vmcb.Gdtr = c.Gdtr;
        vmcb.Idtr = c.Idtr;
        vmcb.Cpl = (byte)c.Cpl;
        vmcb.Efer = c.Efer | Efer.Svme;
        vmcb.Cr0 = c.Cr0;
        vmcb.Cr2 = c.Cr2;
        vmcb.Cr3 = c.Cr3;
        vmcb.Cr4 = c.Cr4;
        vmcb.Dr6 = c.Dr[6];
        vmcb.Dr7 = c.Dr[7];
        vmcb.Rflags = c.GetRFlags();
        vmcb.Rip = c.Rip;
        vmcb.Rsp = c.GetGpr(Gpr.Rsp);
        vmcb.Rax = c.GetGpr(Gpr.Rax);
        var m = c.Msr;
        vmcb.Star = m.Star;
        vmcb.Lstar = m.Lstar;
        vmcb.Cstar = m.Cstar;
        vmcb.Sfmask = m.Sfmask;
        vmcb.KernelGsBase = m.KernelGsBase;
        vmcb.SysenterCs = m.SysenterCs;
        vmcb.SysenterEsp = m.SysenterEsp;
        vmcb.SysenterEip = m.SysenterEip;
        c.Intercepts = null;
        c.CurrentRapDomain = RapDomain.Host;
        c.Rap.SetCapacity(c.Rap.PhysicalEntries);
    }
}
