using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.Machine.Rap;
using Hypervisor.Core.X86;
using Hypervisor.Core.X86.Cpuid;
using Hypervisor.Svm.Hardware;
using Hypervisor.Svm.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using static Hypervisor.Svm.Tests.Support.NestedGuest;

namespace Hypervisor.Svm.Tests;

/// <summary>Nested SVM: an L1 guest runs an L2 guest with VMRUN and sees its intercepted exits in vmcb12.</summary>
public class NestedSvmTests
{
    private static void L2CpuidThenVmmcall(Assembler a)
    {
        a.mov(eax, 0);
        a.cpuid();
        a.vmmcall();
    }

    [Test]
    public void L2Cpuid_L1Intercepts_L1SeesCpuidThenVmmcall()
    {
        using var g = new SvmGuest();
        LoadL1(g, Vmcb12Image(), runs: 2, L2CpuidThenVmmcall);
        Assert.That(RunToReport(g), Is.EqualTo((uint)SvmExitCode.Cpuid));
        Assert.That(g.Vm.Memory.ReadU64(Vmcb12 + VmcbOffset.Rip), Is.EqualTo(L2Code + 5), "L2 stopped at its CPUID (after the 5-byte mov eax,0)");
        Assert.That(RunToReport(g), Is.EqualTo((uint)SvmExitCode.Vmmcall));
        Assert.That(g.Vm.Memory.ReadU64(Vmcb12 + VmcbOffset.Rip), Is.EqualTo(L2Code + 7), "L1 moved L2 past CPUID from NRIP");
        Assert.That(g.Vm.Memory.ReadU64(Vmcb12 + VmcbOffset.NRip), Is.EqualTo(L2Code + 10));
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
        var n = g.Svm.Nested!;
        Assert.That((n.Vmruns, n.Vmexits), Is.EqualTo((2L, 2L)));
        Assert.That(g.Vcpu.Stats.ByVendorExit["VMEXIT_VMRUN"], Is.EqualTo(2));
    }

    [Test]
    public void NestedVmexit_L1ResumesAfterVmrunWithItsRaxRspRflags()
    {
        using var g = new SvmGuest();
        LoadL1(g, Vmcb12Image(v => v.Rax = 0x1234), runs: 1, a => { a.mov(rsp, 0x44000); a.mov(eax, 0xBEEF); a.cpuid(); });
        RunToReport(g);
        var regs = g.Vcpu.GetRegs();
        Assert.That(regs.Rsp, Is.EqualTo(SvmGuest.StackTop), "L1's RSP");
        Assert.That(g.Vm.Memory.ReadU64(Vmcb12 + VmcbOffset.Rax), Is.EqualTo(0xBEEFUL), "L2's RAX saved in vmcb12");
        Assert.That(g.Vm.Memory.ReadU64(Vmcb12 + VmcbOffset.Rsp), Is.EqualTo(0x44000UL), "L2's RSP saved in vmcb12");
        Assert.That(g.Vcpu.Efer & Efer.Svme, Is.EqualTo(Efer.Svme), "L1's EFER back");
    }

    [Test]
    public void L2MsrAndIo_NotInL1Maps_L0HandlesAndL2Continues()
    {
        using var g = new SvmGuest();
        LoadL1(g, Vmcb12Image(), runs: 1, a =>
        {
            a.@out(0x80, al);
            a.mov(ecx, (uint)MsrIndex.Lstar);
            a.rdmsr();      // L1's MSRPM is empty: L0 emulates it for L2
            a.vmmcall();
        });
        RunToL2Marker(g);
        Assert.That(RunToReport(g), Is.EqualTo((uint)SvmExitCode.Vmmcall));
    }

    [Test]
    public void L2Io_PortInL1Iopm_ReflectedAsIoio()
    {
        using var g = new SvmGuest();
        g.Vm.Memory.Write(L1Iopm + (0x80 >> 3), new byte[] { 1 }); // port 0x80
        LoadL1(g, Vmcb12Image(), runs: 1, a => a.@out(0x80, al));
        Assert.That(RunToReport(g), Is.EqualTo((uint)SvmExitCode.Ioio));
        var io = new SvmIoioInfo(g.Vm.Memory.ReadU64(Vmcb12 + VmcbOffset.ExitInfo1));
        Assert.That((io.Port, io.IsIn), Is.EqualTo(((ushort)0x80, false)));
        Assert.That(g.Vm.Memory.ReadU64(Vmcb12 + VmcbOffset.ExitInfo2), Is.EqualTo(L2Code + 2), "EXITINFO2: next RIP");
    }

    [Test]
    public void L2Msr_InL1Msrpm_ReflectedAsMsr()
    {
        using var g = new SvmGuest();
        g.Vm.Memory.Write(L1Msrpm + 0x800 + (0x82 * 2 / 8), new byte[] { 1 << (0x82 * 2 % 8) }); // LSTAR read
        LoadL1(g, Vmcb12Image(), runs: 1, a => { a.mov(ecx, (uint)MsrIndex.Lstar); a.rdmsr(); });
        Assert.That(RunToReport(g), Is.EqualTo((uint)SvmExitCode.Msr));
        Assert.That(g.Vm.Memory.ReadU64(Vmcb12 + VmcbOffset.ExitInfo1), Is.Zero, "a read");
    }

    [Test]
    public void L2Ud2_L1InterceptsUd_ReflectedAsException6()
    {
        using var g = new SvmGuest();
        LoadL1(g, Vmcb12Image(v => v.InterceptExceptions = 1u << Vector.UD), runs: 1, a => a.ud2());
        Assert.That(RunToReport(g), Is.EqualTo((uint)SvmExitCodes.ForException(Vector.UD)));
        Assert.That(g.Vm.Memory.ReadU64(Vmcb12 + VmcbOffset.Rip), Is.EqualTo(L2Code), "a fault: RIP at the UD2");
    }

    [Test]
    public void L2Cr4Write_L1InterceptsCr4_ReflectedWithDecodeAssist()
    {
        using var g = new SvmGuest();
        LoadL1(g, Vmcb12Image(v => v.InterceptCrWrite = 1 << 4), runs: 1, a => { a.mov(rcx, cr4); a.mov(cr4, rcx); });
        Assert.That(RunToReport(g), Is.EqualTo((uint)SvmExitCode.Cr4Write));
        Assert.That(g.Vm.Memory.ReadU64(Vmcb12 + VmcbOffset.ExitInfo1), Is.EqualTo((1UL << 63) | 1), "MOV from RCX");
    }

    [Test]
    public void Vmcb12WithNpEnable_VmexitInvalidWithReason()
    {
        using var g = new SvmGuest();
        LoadL1(g, Vmcb12Image(v => v.NpEnable = true), runs: 1, L2CpuidThenVmmcall);
        Assert.That(RunToReport(g), Is.EqualTo(unchecked((uint)(long)SvmExitCode.Invalid)));
        Assert.That(g.Svm.Nested!.LastInvalidReason, Does.Contain("NP_ENABLE"));
        Assert.That(g.Svm.Nested!.Vmruns, Is.Zero);
    }

    [TestCase("asid")]
    [TestCase("vmrun")]
    [TestCase("svme")]
    public void Vmcb12FailsChecks_VmexitInvalid(string what)
    {
        using var g = new SvmGuest();
        LoadL1(g, Vmcb12Image(v =>
        {
            if (what == "asid") v.GuestAsid = 0;
            if (what == "vmrun") v.ClearIntercept(SvmIntercept.Vmrun);
            if (what == "svme") v.Efer &= ~Efer.Svme;
        }), runs: 1, L2CpuidThenVmmcall);
        Assert.That(RunToReport(g), Is.EqualTo(unchecked((uint)(long)SvmExitCode.Invalid)));
        Assert.That(g.Svm.Nested!.LastInvalidReason, Is.Not.Null);
    }

    /// <summary>L1 with a #GP and a #UD handler that report their vector on port 0x82.</summary>
    private static void InstallFaultHandlers(SvmGuest g)
    {
        ulong idt = 0x3000;
        foreach (int vector in new[] { Vector.UD, Vector.GP })
        {
            ulong handler = 0x4000 + (ulong)vector * 0x10;
            g.Vm.Memory.Write(handler, new byte[] { 0xB0, (byte)vector, 0xE6, 0x82, 0xF4 }); // mov al,v; out 0x82,al; hlt
            ulong lo = (handler & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | ((handler >> 16 & 0xFFFF) << 48);
            g.Vm.Memory.WriteU64(idt + (ulong)vector * 16, lo);
            g.Vm.Memory.WriteU64(idt + (ulong)vector * 16 + 8, handler >> 32);
        }
        var sregs = g.Vcpu.GetSregs();
        sregs.Idt = new DescriptorTable { Base = idt, Limit = 0xFFF };
        g.Vcpu.SetSregs(sregs);
    }

    [TestCase(0x300800UL)]
    [TestCase(0x8000_0000UL)]
    public void VmrunRaxMisalignedOrNotRam_Gp(ulong gpa)
    {
        using var g = new SvmGuest();
        g.Load(a => { a.mov(ecx, 0xC0000080); a.rdmsr(); a.bts(eax, 12); a.wrmsr(); a.mov(rax, gpa); a.vmrun(); a.hlt(); });
        InstallFaultHandlers(g);
        var exit = g.Run();
        Assert.That((exit.Reason, exit.IoPort, exit.IoData), Is.EqualTo((KvmExitReason.Io, (ushort)0x82, (ulong)Vector.GP)));
    }

    [Test]
    public void VmrunWithoutEferSvme_Ud()
    {
        using var g = new SvmGuest();
        g.Load(a => { a.mov(rax, Vmcb12); a.vmrun(); a.hlt(); });
        InstallFaultHandlers(g);
        var exit = g.Run();
        Assert.That((exit.Reason, exit.IoPort, exit.IoData), Is.EqualTo((KvmExitReason.Io, (ushort)0x82, (ulong)Vector.UD)));
    }

    [Test]
    public void NestedOff_NoSvmInSupportedCpuid_NoNestedOps()
    {
        using var off = new SvmGuest(options: new SvmOptions { Nested = false });
        Assert.That(off.Kvm.SupportedCaps.Has(CpuFeatures.Svm), Is.False);
        Assert.That(off.Ops.Nested, Is.Null);
        Assert.That(off.Vcpu.TrySetMsr(MsrIndex.Efer, off.Vcpu.Efer | Efer.Svme), Is.False);
        using var on = new SvmGuest();
        Assert.That(on.Kvm.SupportedCaps.Has(CpuFeatures.Svm), Is.True);
        Assert.That(on.Vcpu.TrySetMsr(MsrIndex.Efer, on.Vcpu.Efer | Efer.Svme), Is.True);
    }

    [Test]
    public void LeaveNested_BackToL1WithoutVmexitInVmcb12()
    {
        using var g = new SvmGuest();
        LoadL1(g, Vmcb12Image(), runs: 1, a => { a.@out(0x80, al); a.vmmcall(); });
        RunToL2Marker(g);
        var nested = g.Ops.Nested!;
        Assert.That(nested.IsGuestMode(g.Vcpu), Is.True);
        nested.LeaveNested(g.Vcpu);
        Assert.That(nested.IsGuestMode(g.Vcpu), Is.False);
        Assert.That(g.Vcpu.GetRegs().Rip, Is.Not.EqualTo(L2Code + 2), "L1's RIP, not L2's");
        Assert.That(g.Vm.Memory.ReadU64(Vmcb12 + VmcbOffset.ExitCode), Is.Zero, "no #VMEXIT written");
    }
}
