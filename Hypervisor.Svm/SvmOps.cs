using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.Machine.Rap;
using Hypervisor.Core.X86;
using Hypervisor.Core.X86.Cpuid;
using Hypervisor.Svm.Hardware;
using Hypervisor.Svm.Nested;

namespace Hypervisor.Svm;

/// <summary>
/// The SVM vendor module (kvm-amd): implements <see cref="IX86Ops"/> on the software CPU's SVM
/// extension. It keeps the guest in a VMCB, enters it with VMRUN, and dispatches #VMEXITs through
/// a table indexed by exit code (SvmOps.Exits.cs) to the common x86 layer's emulation.
/// </summary>
public sealed partial class SvmOps : IX86Ops
{
    private uint _nextAsid = 1;

    public SvmOps(SvmOptions? options = null) => Options = options ?? new SvmOptions();

    public SvmOptions Options { get; }
    public string Name => "svm";
    public CpuFeature HardwareFeature => CpuFeatures.Svm;

    public static VcpuSvm ToSvm(Vcpu vcpu) => (VcpuSvm)vcpu.VendorState!;

    /// <summary>svm_set_cpu_caps: ERAPS when the hardware has it; SVM never offers APX (KVM-FACTS §2).</summary>
    public void HardwareSetup(HostCpuModel model, CpuCaps caps)
    {
        if (CpuCaps.HardwareHas(model, CpuFeatures.Eraps))
            caps.Set(CpuFeatures.Eraps);
        caps.Clear(CpuFeatures.ApxF);
        // Nested SVM: guests may set EFER.SVME and execute VMRUN. NRIP save is offered because
        // nested #VMEXITs write NRIP; nested paging for L2 is not (Nested/NestedSvm.cs).
        if (Options.Nested)
        {
            caps.Set(CpuFeatures.Svm);
            if (CpuCaps.HardwareHas(model, CpuFeatures.NripSave))
                caps.Set(CpuFeatures.NripSave);
        }
    }

    public void VcpuCreate(Vcpu vcpu)
    {
        uint asid = _nextAsid++;
        // L2 gets an ASID of its own: its translations never mix with L1's.
        var svm = new VcpuSvm(vcpu, asid, Options.Nested ? new NestedSvm(_nextAsid++) : null);
        vcpu.VendorState = svm;
        vcpu.Stats.VendorNames = code => SvmExitCodes.Name((SvmExitCode)code);
        InitVmcb(vcpu, svm);
    }

    public void VcpuFree(Vcpu vcpu) => ToSvm(vcpu).Dispose();

    /// <summary>init_vmcb: the intercepts KVM sets for every guest, the permission maps, the ASID.</summary>
    private void InitVmcb(Vcpu vcpu, VcpuSvm svm)
    {
        var vmcb = svm.Vmcb;
        vmcb.Clear();
        bool npt = vcpu.Vm.Options.NestedPaging;
        bool cr3Intercept = !npt || vcpu.Vm.Options.InterceptCr3AndInvpcid;
        vmcb.InterceptCrWrite = (ushort)((1 << 0) | (1 << 4) | (1 << 8) | (cr3Intercept ? 1 << 3 : 0));
        vmcb.InterceptCrRead = (ushort)(cr3Intercept ? 1 << 3 : 0);
        foreach (var i in new[]
        {
            SvmIntercept.Intr, SvmIntercept.Nmi, SvmIntercept.Smi, SvmIntercept.Cpuid, SvmIntercept.Invd, SvmIntercept.Hlt,
            SvmIntercept.IoioProt, SvmIntercept.MsrProt, SvmIntercept.Shutdown, SvmIntercept.Vmrun, SvmIntercept.Vmmcall,
            SvmIntercept.Vmload, SvmIntercept.Vmsave, SvmIntercept.Stgi, SvmIntercept.Clgi, SvmIntercept.Skinit,
            SvmIntercept.Wbinvd, SvmIntercept.Monitor, SvmIntercept.Mwait, SvmIntercept.Xsetbv, SvmIntercept.Rdpru,
        })
            vmcb.SetIntercept(i);
        if (!npt)
            vmcb.SetIntercept(SvmIntercept.Invlpg);
        RecalcInvpcidIntercept(vcpu, svm);
        svm.Iopm.InterceptAll();
        svm.Msrpm.InterceptAll();
        // MSRs the guest reaches directly (KVM's direct_access_msrs): their values travel in the
        // VMCB's VMLOAD/VMSAVE state.
        foreach (uint msr in new[] { MsrIndex.FsBase, MsrIndex.GsBase, MsrIndex.KernelGsBase, MsrIndex.Star, MsrIndex.Lstar,
                                     MsrIndex.Cstar, MsrIndex.Sfmask, MsrIndex.SysenterCs, MsrIndex.SysenterEsp, MsrIndex.SysenterEip })
            svm.Msrpm.SetIntercept(msr, read: false, write: false);
        vmcb.IopmBasePa = 0xFFFF_F000_0000; // where the hardware finds the maps (SvmProcessor holds them)
        vmcb.MsrpmBasePa = 0xFFFF_F000_4000;
        vmcb.GuestAsid = svm.Asid;
        if (npt)
        {
            vmcb.NpEnable = true;
            vmcb.NCr3 = vcpu.Vm.Mmu!.Root;
        }
        vmcb.TlbControl = TlbControl.FlushAll;
        UpdateErapCtl(vcpu, svm);
        vmcb.MarkAllDirty();
    }

    /// <summary>RESET/INIT state of the VMCB save area (APM vol. 2 §15.5 with SDM table 10-1 values).</summary>
    public void VcpuReset(Vcpu vcpu, bool initEvent)
    {
        var svm = ToSvm(vcpu);
        if (svm.IsGuestMode)
            ForceLeaveNested(vcpu, svm);
        var vmcb = svm.Vmcb;
        var data = new Segment { Limit = 0xFFFF, Attributes = 0x93 };
        vmcb.Cs = new Segment { Selector = 0xF000, Base = 0xFFFF_0000, Limit = 0xFFFF, Attributes = 0x9B };
        vmcb.Ds = vmcb.Es = vmcb.Ss = vmcb.Fs = vmcb.Gs = data;
        vmcb.Ldtr = new Segment { Limit = 0xFFFF, Attributes = 0x82 };
        vmcb.Tr = new Segment { Limit = 0xFFFF, Attributes = 0x8B };
        vmcb.Gdtr = new DescriptorTable { Limit = 0xFFFF };
        vmcb.Idtr = new DescriptorTable { Limit = 0xFFFF };
        vmcb.Cpl = 0;
        vmcb.Efer = Efer.Svme;
        vmcb.Cr0 = Cr0.Et | Cr0.Cd | Cr0.Nw;
        vmcb.Cr2 = vmcb.Cr3 = vmcb.Cr4 = 0;
        vmcb.Dr6 = 0xFFFF_0FF0;
        vmcb.Dr7 = 0x400;
        vmcb.Rflags = RFlags.Fixed1;
        vmcb.Rip = 0xFFF0;
        vmcb.Rsp = vmcb.Rax = 0;
        vmcb.GPat = 0x0007_0406_0007_0406;
        vmcb.EventInj = SvmEventInfo.None;
        vmcb.MarkAllDirty();
    }

    /// <summary>SVM keeps every register available after #VMEXIT except the PDPTRs (KVM-FACTS §1).</summary>
    public void CacheReg(Vcpu vcpu, VcpuReg reg)
    {
        if (reg == VcpuReg.Pdptr)
        {
            Span<ulong> pdptrs = stackalloc ulong[4];
            if (!ControlRegisters.ReadPdptrs(vcpu, vcpu.Cr3, pdptrs))
                pdptrs.Clear(); // not in guest RAM: the walker finds them not present
            vcpu.Regs.FillPdptrs(pdptrs);
            return;
        }
        throw new InvalidOperationException($"svm: {VcpuRegs.Name(reg)} is never unavailable under SVM (KVM_BUG_ON in svm_cache_reg)");
    }

    // ---- Run: svm_vcpu_run ---------------------------------------------------------------------

    private static readonly ulong[] HostReturnAddresses = Enumerable.Range(0, 16).Select(k => 0xFFFF_FFFF_8100_0000UL + (ulong)k * 0x40).ToArray();
    private const ulong RsbStuffingTarget = 0xFFFF_FFFF_81F0_0000UL;

    public ExitFastpath Run(Vcpu vcpu)
    {
        var svm = ToSvm(vcpu);
        var vmcb = svm.Current;
        var regs = vcpu.Regs;
        var cpu = vcpu.Cpu;

        // RAX/RSP/RIP travel through the VMCB; the other GPRs the entry code loads itself.
        vmcb.Rax = regs.Read(VcpuReg.Rax);
        vmcb.Rsp = regs.Read(VcpuReg.Rsp);
        vmcb.Rip = regs.Read(VcpuReg.Rip);
        for (int g = 0; g < Gpr.LegacyCount; g++)
            if (g != Gpr.Rax && g != Gpr.Rsp)
                cpu.SetGpr(g, regs.Read((VcpuReg)g));
        if (regs.IsDirty(VcpuReg.Rflags))
            vmcb.Rflags = regs.Read(VcpuReg.Rflags);
        if (regs.IsDirty(VcpuReg.Cr3))
        {
            vmcb.Cr3 = regs.Read(VcpuReg.Cr3);
            vmcb.MarkDirty(VmcbClean.Crx);
        }
        PrepareErapCtl(vcpu, svm);

        // The host's call chain down to VMRUN leaves its return addresses in the RAP.
        var rap = cpu.Rap;
        int depth = Math.Min(Options.HostCallDepth, HostReturnAddresses.Length);
        for (int k = 0; k < depth; k++)
            rap.Call(HostReturnAddresses[k], RapDomain.Host);

        vcpu.LoadGuestXsaveState();
        svm.Processor.Vmrun(vmcb, vcpu.RemainingInstructionBudget, svm.IsGuestMode ? RapDomain.NestedGuest : RapDomain.Guest);
        vcpu.LoadHostXsaveState();

        // Right after #VMEXIT, before any host RET: without ERAPS the RSB may hold guest entries.
        if (!cpu.Model.HasEraps && Options.RsbFillAfterVmExit)
            rap.Fill(SvmOptions.RsbFillEntries, RsbStuffingTarget, RapDomain.Host);
        for (int k = depth - 1; k >= 0; k--)
            rap.Return(HostReturnAddresses[k], RapDomain.Host);

        regs.Fill(VcpuReg.Rax, vmcb.Rax);
        regs.Fill(VcpuReg.Rsp, vmcb.Rsp);
        regs.Fill(VcpuReg.Rip, vmcb.Rip);
        for (int g = 0; g < Gpr.LegacyCount; g++)
            if (g != Gpr.Rax && g != Gpr.Rsp)
                regs.Fill((VcpuReg)g, cpu.GetGpr(g));
        regs.ClearDirty();
        regs.Fill(VcpuReg.Rflags, vmcb.Rflags);
        regs.Fill(VcpuReg.Cr0, vmcb.Cr0);
        regs.Fill(VcpuReg.Cr3, vmcb.Cr3);
        regs.Fill(VcpuReg.Cr4, vmcb.Cr4);
        vcpu.Cr2 = vmcb.Cr2;
        vcpu.Dr6 = vmcb.Dr6;
        vcpu.Dr7 = vmcb.Dr7;
        regs.ClearAvailable(VcpuReg.Pdptr);

        // After VMRUN: nothing left to flush, CLEAR_RAP consumed, every field in sync (KVM-FACTS §4).
        vmcb.TlbControl = TlbControl.DoNothing;
        vmcb.ErapCtl &= ~ErapCtl.ClearRap;
        vmcb.CleanBits = (VmcbClean)0xFFF;
        svm.LastExitCode = vmcb.ExitCode;
        return vmcb.ExitCode == SvmExitCode.Invalid && svm.Processor.InvalidReason != null ? ExitFastpath.EntryFailed : ExitFastpath.None;
    }

    public bool SkipEmulatedInstruction(Vcpu vcpu)
    {
        var vmcb = ToSvm(vcpu).Current;
        if (vmcb.NRip == 0)
        {
            vcpu.Exit = new VcpuExit { Reason = KvmExitReason.InternalError, Suberror = KvmInternalError.Emulation, Message = $"svm: no next RIP for exit {vmcb.ExitCode}: cannot skip the instruction" };
            return false;
        }
        vcpu.Rip = vmcb.NRip;
        return true;
    }
}
