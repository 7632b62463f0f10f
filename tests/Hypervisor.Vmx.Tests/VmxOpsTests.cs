using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.X86;
using Hypervisor.Vmx.Hardware;
using Hypervisor.Vmx.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmx.Tests;

/// <summary>The VMX module end to end: KvmX86 → Vm → Vcpu.Run → VmxOps → VMLAUNCH/VMRESUME on the
/// software CPU, and what the VM exits leave in the VMCS.</summary>
public class VmxOpsTests
{
    [Test]
    public void Cpuid_ExitsAndIsEmulatedFromGuestTable_HltSkippedByInstructionLength()
    {
        using var g = new VmxGuest();
        g.Load(a => { a.xor(eax, eax); a.cpuid(); a.hlt(); });
        var exit = g.Run();
        Assert.That(exit.Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(g.Vcpu.ReadGpr(Gpr.Rbx), Is.EqualTo(0x756E6547), "'Genu' from the guest CPUID table");
        Assert.That(g.Vcpu.Stats.ByVendorExit["EXIT_REASON_CPUID"], Is.EqualTo(1));
        Assert.That(g.Vmcs[VmcsField.ExitReason], Is.EqualTo((ulong)VmxExitReason.Hlt));
        Assert.That(g.Vmcs[VmcsField.VmExitInstructionLength], Is.EqualTo(1UL), "HLT is one byte");
        Assert.That(g.Vcpu.Rip, Is.EqualTo(VmxGuest.CodeBase + 2 + 2 + 1), "RIP past the HLT");
        Assert.That(g.Vmcs.LaunchState, Is.EqualTo(VmcsLaunchState.Launched));
    }

    [Test]
    public void Out_IoQualificationThenKvmExitIo_InCompletes()
    {
        using var g = new VmxGuest();
        g.Load(a => { a.mov(eax, 0x41); a.mov(dx, 0x3F8); a.@out(dx, al); a.@in(ax, 0x60); a.hlt(); });
        var exit = g.Run();
        Assert.That((exit.Reason, exit.IoIn, exit.IoPort, exit.IoSize, exit.IoData), Is.EqualTo((KvmExitReason.Io, false, (ushort)0x3F8, (byte)1, 0x41UL)));
        var q = new VmxIoQualification(g.Vmcs[VmcsField.ExitQualification]);
        Assert.That((g.Vmcs[VmcsField.ExitReason], q.Port, q.Size, q.IsIn, q.IsString), Is.EqualTo(((ulong)VmxExitReason.IoInstruction, (ushort)0x3F8, 1, false, false)));
        Assert.That(g.Vmcs[VmcsField.VmExitInstructionLength], Is.EqualTo(1UL), "OUT DX, AL is one byte");
        exit = g.Run();
        Assert.That((exit.Reason, exit.IoIn, exit.IoPort, exit.IoSize), Is.EqualTo((KvmExitReason.Io, true, (ushort)0x60, (byte)2)));
        g.Vcpu.CompleteIo(0xBEEF);
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(g.Vcpu.ReadGpr(Gpr.Rax), Is.EqualTo(0xBEEFUL));
    }

    [Test]
    public void RepOutsb_StringIoUsesTheInstructionInformation()
    {
        using var g = new VmxGuest();
        g.Vm.Memory.Write(VmxGuest.DataBase, "vmx"u8);
        g.Load(a => { a.mov(esi, (uint)VmxGuest.DataBase); a.mov(ecx, 3); a.mov(dx, 0xE9); a.rep.outsb(); a.hlt(); });
        var text = new System.Text.StringBuilder();
        VcpuExit exit;
        while ((exit = g.Run()).Reason == KvmExitReason.Io)
            text.Append((char)exit.IoData);
        Assert.That((exit.Reason, text.ToString()), Is.EqualTo((KvmExitReason.Hlt, "vmx")));
    }

    [Test]
    public void MovToCr3_WithCr3LoadExiting_CrAccessQualificationAndCommonEmulation()
    {
        using var g = new VmxGuest(vmOptions: new VmOptions { InterceptCr3AndInvpcid = true });
        g.Load(a => { a.mov(rbx, 0x100000); a.mov(cr3, rbx); a.mov(rcx, cr3); a.hlt(); });
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(g.Exits(VmxExitReason.ControlRegisterAccess), Is.EqualTo(2), "CR3 load and CR3 store both exit");
        Assert.That(g.Vcpu.ReadGpr(Gpr.Rcx), Is.EqualTo(0x100000UL));
        Assert.That(g.Vcpu.Cr3, Is.EqualTo(0x100000UL));
    }

    [Test]
    public void CrShadows_GuestReadsItsOwnCr0AndCr4_HostOwnedChangesExit_GuestOwnedDoNot()
    {
        using var g = new VmxGuest();
        g.Load(a =>
        {
            a.mov(rax, cr0); a.mov(r8, rax);        // guest view of CR0 (NE clear, as it set it)
            a.mov(rax, cr4); a.mov(r9, rax);        // guest view of CR4 (no VMXE)
            a.clts();                                // TS is guest-owned: no exit
            a.mov(rax, cr4); a.or(rax, 1 << 7); a.mov(cr4, rax); // PGE is the hypervisor's: exits
            a.hlt();
        });
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.Multiple(() =>
        {
            Assert.That(g.Vcpu.ReadGpr(8), Is.EqualTo(Cr0.Pe | Cr0.Et | Cr0.Pg | Cr0.Wp), "CR0 read shows the read shadow, not NE");
            Assert.That(g.Vmcs[VmcsField.GuestCr0] & Cr0.Ne, Is.EqualTo(Cr0.Ne), "the processor runs with NE (IA32_VMX_CR0_FIXED0)");
            Assert.That(g.Vcpu.ReadGpr(9), Is.EqualTo(Cr4.Pae), "CR4 read hides VMXE");
            Assert.That(g.Vmcs[VmcsField.GuestCr4] & Cr4.Vmxe, Is.EqualTo(Cr4.Vmxe));
            Assert.That(g.Exits(VmxExitReason.ControlRegisterAccess), Is.EqualTo(1), "only the PGE write exited");
            Assert.That(g.Vcpu.Cr4, Is.EqualTo(Cr4.Pae | Cr4.Pge));
            Assert.That(g.Vmcs[VmcsField.Cr4ReadShadow], Is.EqualTo(Cr4.Pae | Cr4.Pge));
        });
    }

    [Test]
    public void RegisterCache_LazySetDroppedAfterExit_DirtyRspWrittenBeforeEntry()
    {
        using var g = new VmxGuest();
        g.Load(a => { a.mov(rax, rsp); a.hlt(); a.mov(rbx, rsp); a.hlt(); });
        g.Run();
        var regs = g.Vcpu.Regs;
        Assert.Multiple(() =>
        {
            foreach (var r in new[] { VcpuReg.Rsp, VcpuReg.Rflags, VcpuReg.Cr0, VcpuReg.Cr3, VcpuReg.Cr4, VcpuReg.Segments, VcpuReg.ExitInfo1, VcpuReg.ExitInfo2, VcpuReg.Pdptr })
                Assert.That(regs.IsAvailable(r), Is.False, $"{r} unavailable after the exit");
            Assert.That(regs.IsAvailable(VcpuReg.Rax) && regs.IsAvailable(VcpuReg.R15), Is.True, "the GPRs the entry code saved");
            Assert.That(regs.Dirty, Is.EqualTo(VcpuRegs.Bit(VcpuReg.Rip)), "only RIP, which skipping the HLT wrote");
        });
        Assert.That(g.Vcpu.ReadGpr(Gpr.Rax), Is.EqualTo(VmxGuest.StackTop));
        Assert.That(g.Vcpu.Cr0 & Cr0.Pg, Is.EqualTo(Cr0.Pg));
        Assert.That((regs.IsAvailable(VcpuReg.Cr0), regs.IsDirty(VcpuReg.Cr0)), Is.EqualTo((true, false)), "reading loads it from the VMCS");
        Assert.That(g.Vcpu.Regs.Read(VcpuReg.ExitInfo1), Is.EqualTo(g.Vmcs[VmcsField.ExitQualification]));
        g.Vcpu.WriteGpr(Gpr.Rsp, 0x7000);
        Assert.That(regs.IsDirty(VcpuReg.Rsp), Is.True);
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(g.Vcpu.ReadGpr(Gpr.Rbx), Is.EqualTo(0x7000UL), "the dirty RSP reached the VMCS before entry");
    }

    [Test]
    public void ExitDispatch_ReasonWithoutHandler_InternalErrorNamingIt()
    {
        using var g = new VmxGuest();
        g.Load(a => { a.rdtsc(); a.hlt(); });
        // RDTSC exiting is not a control this module sets; set it here to reach an empty table slot.
        g.Vmcs[VmcsField.PrimaryProcessorBasedVmExecutionControls] |= (ulong)VmxPrimaryProcessorControls.RdtscExiting;
        var exit = g.Run();
        Assert.That((exit.Reason, exit.Suberror, exit.HardwareReason), Is.EqualTo((KvmExitReason.InternalError, KvmInternalError.UnexpectedExitReason, (ulong)VmxExitReason.Rdtsc)));
        Assert.That(exit.Message, Does.Contain("EXIT_REASON_RDTSC"));
    }

    [Test]
    public void Vmcall_UnknownHypercall_ReturnsMinusEnosys()
    {
        using var g = new VmxGuest();
        g.Load(a => { a.mov(eax, 77); a.vmcall(); a.hlt(); });
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(g.Vcpu.ReadGpr(Gpr.Rax), Is.EqualTo(unchecked((ulong)-1000L)));
        Assert.That(g.Exits(VmxExitReason.Vmcall), Is.EqualTo(1));
    }

    [Test]
    public void Invpcid_WithoutTheGuestCap_IsUdInTheGuest_WithItRunsNatively()
    {
        using (var g = new VmxGuest(editCpuid: c => c.Select(e => e.Function == 7 && e.Index == 0 ? e with { Ebx = e.Ebx & ~(1u << 10) } : e).ToList()))
        {
            g.Vm.Memory.WriteU64(VmxGuest.DataBase, 0);
            g.Load(a => { a.mov(eax, 2); a.mov(rbx, VmxGuest.DataBase); a.invpcid(rax, __[rbx]); a.hlt(); });
            var exit = g.Run();
            Assert.That(exit.Reason, Is.EqualTo(KvmExitReason.Shutdown), "#UD with no IDT ends in a triple fault");
            Assert.That(g.Exits(VmxExitReason.Invpcid), Is.Zero, "enable INVPCID is clear: the processor raises #UD itself");
        }
        using (var g = new VmxGuest())
        {
            g.Vm.Memory.WriteU64(VmxGuest.DataBase, 0);
            g.Load(a => { a.mov(eax, 2); a.mov(rbx, VmxGuest.DataBase); a.invpcid(rax, __[rbx]); a.hlt(); });
            Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
            Assert.That(g.Exits(VmxExitReason.Invpcid), Is.Zero, "with EPT and no CR3 interception INVPCID does not exit");
        }
    }

    [TestCase(0UL, KvmExitReason.Hlt)]
    [TestCase(1UL << 20, KvmExitReason.Shutdown)]
    public void Invpcid_Intercepted_CommonEmulationReadsTheDescriptorTheOperandNames(ulong pcidQword, KvmExitReason expected)
    {
        using var g = new VmxGuest(vmOptions: new VmOptions { InterceptCr3AndInvpcid = true });
        // The descriptor sits at base + index*8 + displacement only: PCID bits 63:12 set there make
        // the common emulation inject #GP (KVM-FACTS §3), so the outcome proves the handler rebuilt
        // the address from the instruction information and the qualification.
        g.Vm.Memory.WriteU64(VmxGuest.DataBase, 1UL << 20);
        g.Vm.Memory.WriteU64(VmxGuest.DataBase + 0x48, pcidQword);
        g.Load(a => { a.mov(eax, 1); a.mov(rbx, VmxGuest.DataBase); a.mov(rcx, 4); a.invpcid(rax, __[rbx + rcx * 8 + 0x28]); a.hlt(); });
        Assert.That(g.Run().Reason, Is.EqualTo(expected));
        Assert.That(g.Exits(VmxExitReason.Invpcid), Is.EqualTo(1));
    }
}
