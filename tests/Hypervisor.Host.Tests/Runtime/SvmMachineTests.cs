using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Tests.Support;
using Hypervisor.Svm;
using Hypervisor.Svm.Hardware;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Host.Tests.Runtime;

/// <summary>What is particular to a VM under SVM: the entry state goes in through KVM_SET_SREGS and
/// KVM_SET_REGS, the guest CPUID is the supported one with the --cpu edits, the VM options reach
/// the VMCB, and the exits are counted by KVM reason and SVM exit name.</summary>
public class SvmMachineTests
{
    private const ulong Mem = 16 << 20;

    private static (RunResult Result, SvmMachine Vm) Run(Action<Assembler> code, MachineOptions? options = null, ulong slice = 1UL << 24, ulong max = 100_000)
    {
        var vm = TestMachines.Svm(options);
        vm.SliceInstructions = slice;
        vm.Load(MultibootKernel.Check(TestImages.Aout(code), Mem));
        return (vm.Run(max), vm);
    }

    /// <summary>CPUID leaf <paramref name="leaf"/> in the guest; register <paramref name="reg"/> goes to isa-debug-exit.</summary>
    private static uint GuestCpuid(uint leaf, AssemblerRegister32 reg, MachineOptions? options = null)
    {
        var (r, vm) = Run(a => { a.mov(eax, leaf); a.xor(ecx, ecx); a.cpuid(); a.mov(eax, reg); a.@out(0xF4, eax); }, options);
        vm.Dispose();
        Assert.That(r.End, Is.EqualTo(RunEnd.DebugExit), r.ToString());
        return r.DebugExitValue;
    }

    [Test]
    public void Load_EntryStateThroughSetSregsAndSetRegs()
    {
        var k = MultibootKernel.Check(TestImages.Aout(a => a.hlt()), Mem);
        using var vm = TestMachines.Svm();
        vm.Load(k);
        var s = vm.Vcpu.GetSregs();
        var r = vm.Vcpu.GetRegs();
        Assert.Multiple(() =>
        {
            Assert.That((r.Rax, r.Rbx, r.Rip, r.Rflags), Is.EqualTo((0x2BADB002UL, k.BootInfoAddress, 0x100020UL, RFlags.Fixed1)));
            Assert.That((r.Rcx, r.Rdx, r.Rsp, r.Rbp, r.Rsi, r.Rdi), Is.EqualTo((0UL, 0UL, 0UL, 0UL, 0UL, 0UL)));
            Assert.That(s.Cr0, Is.EqualTo(Cr0.Pe | Cr0.Et), "protected mode, paging off");
            Assert.That((s.Cr3, s.Cr4, s.Efer), Is.EqualTo((0UL, 0UL, 0UL)));
            Assert.That((s.Cs.Selector, s.Cs.Base, s.Cs.Limit, s.Cs.Attributes), Is.EqualTo(((ushort)0x08, 0UL, 0xFFFFFFFFu, (ushort)0xC09B)));
            foreach (var seg in new[] { s.Ds, s.Es, s.Fs, s.Gs, s.Ss })
                Assert.That((seg.Selector, seg.Base, seg.Limit, seg.Attributes), Is.EqualTo(((ushort)0x10, 0UL, 0xFFFFFFFFu, (ushort)0xC093)));
            Assert.That((s.Gdt.Base, s.Gdt.Limit), Is.EqualTo((k.BootInfoArea, (ushort)0x17)));
            Assert.That((s.Idt.Base, s.Idt.Limit), Is.EqualTo((0UL, (ushort)0)));
            Assert.That(vm.Memory.ReadU64(s.Gdt.Base + 8), Is.EqualTo(0x00CF9B000000FFFFUL), "the GDT the selectors name is in guest memory");
        });
    }

    [Test]
    public void Statistics_Report_ExitsByKvmReasonAndSvmExitName()
    {
        var (_, vm) = Run(a => { a.mov(dx, 0x3F8); a.@out(dx, al); a.cpuid(); a.cpuid(); a.hlt(); });
        var w = new StringWriter();
        vm.Statistics.WriteTo(w);
        vm.Dispose();
        Assert.That(w.ToString(), Does.Match(
            "^instructions retired: 1\nwall time: \\d+\\.\\d{3} s\nMIPS: \\d+\\.\\d\n"
            + "exit reason   count  kind\n"
            + "KVM_EXIT_IO       1  to userspace\n"
            + "KVM_EXIT_HLT      1  to userspace\n"
            + "VMEXIT_CPUID      2  svm exit\n"
            + "VMEXIT_HLT        1  svm exit\n"
            + "VMEXIT_IOIO       1  svm exit\n"
            + "VMEXIT_NPF        1  svm exit\n$"));
    }

    [Test]
    public void Slices_AreIntrExitsUnderAHypervisor()
    {
        var (r, vm) = Run(a =>
        {
            var l = a.CreateLabel();
            a.mov(ecx, 500);
            a.Label(ref l);
            a.dec(ecx);
            a.jne(l);
            a.@out(0xF4, al);
        }, slice: 7);
        using (vm)
        {
            Assert.That(r.End, Is.EqualTo(RunEnd.DebugExit));
            // 1001 instructions retire in slices of 7: 143 budget exits, then the OUT.
            Assert.That(vm.Statistics.UserspaceExits, Is.EqualTo(new[] { (KvmExitReason.Io, 1L), (KvmExitReason.Intr, 143L) }));
            Assert.That(vm.Statistics.VendorExits, Does.Contain(("VMEXIT_INTR", 143L)));
        }
    }

    [Test]
    public void TripleFault_IsKvmExitShutdown()
    {
        var (r, vm) = Run(a => { a.mov(ax, 0x40); a.mov(ds, ax); });
        using (vm)
        {
            Assert.That(r.End, Is.EqualTo(RunEnd.Shutdown));
            Assert.That(r.Message, Does.StartWith("triple fault"));
            Assert.That(vm.Statistics.VendorExits, Does.Contain(("VMEXIT_SHUTDOWN", 1L)));
        }
    }

    [Test]
    public void FailedEntry_IsInternalErrorWithVmrunsReason()
    {
        using var vm = TestMachines.Svm();
        vm.Load(MultibootKernel.Check(TestImages.Aout(a => a.hlt()), Mem));
        // VMRUN refuses a VMCB without the VMRUN intercept (APM vol. 2 §15.5.1).
        SvmOps.ToSvm(vm.Vcpu).Vmcb.ClearIntercept(SvmIntercept.Vmrun);
        var r = vm.Run(1000);
        Assert.That(r.End, Is.EqualTo(RunEnd.InternalError));
        Assert.That(r.Message, Does.Contain("the VMRUN intercept bit is clear").And.Contain("KVM_EXIT_FAIL_ENTRY"));
    }

    [Test]
    public void RepOutsb_EachElementIsAPortWrite_AsOnTheBareMachine()
    {
        // OUTS is emulated one element per KVM_EXIT_IO; the last element's write is the debug exit.
        var (r, vm) = Run(a =>
        {
            a.mov(edi, 0x200000);
            a.mov(__dword_ptr[edi], 0x2A2A2A2A);
            a.mov(esi, edi);
            a.mov(ecx, 4);
            a.mov(dx, 0xF4);
            a.rep.outsb();
            a.hlt();
        });
        vm.Dispose();
        Assert.That((r.End, r.DebugExitValue), Is.EqualTo((RunEnd.DebugExit, 0x2Au)));
    }

    [Test]
    public void GuestCpuid_IsTheSupportedTable()
    {
        Assert.That(GuestCpuid(0x80000021, eax), Is.EqualTo(1u << 24), "ERAPS");
        Assert.That(GuestCpuid(0x80000021, ebx), Is.EqualTo(64u << 16), "RAP size");
        Assert.That(GuestCpuid(0x80000001, ecx) & (1u << 2), Is.EqualTo(1u << 2), "nested SVM: the guest may run guests of its own");
    }

    [Test]
    public void CpuEdits_ReachTheGuest()
    {
        CpuSpec.TryParse("host,-eraps,-pcid,-invpcid", out var spec, out _);
        var options = new MachineOptions { Cpu = spec };
        Assert.That(GuestCpuid(0x80000021, eax, options), Is.EqualTo(0));
        Assert.That(GuestCpuid(0x80000021, ebx, options), Is.EqualTo(0));
        Assert.That(GuestCpuid(1, ecx, options) & (1u << 17), Is.EqualTo(0), "pcid");
        Assert.That(GuestCpuid(7, ebx, options) & (1u << 10), Is.EqualTo(0), "invpcid");
    }

    [TestCase("zen5", "host", 64)]
    [TestCase("zen5", "host,-eraps", 32)]
    [TestCase("zen4", "host", 32)]
    public void GuestRapCapacity_FollowsHostModelAndGuestEraps(string model, string cpu, int capacity)
    {
        CpuSpec.TryParse(cpu, out var spec, out _);
        var (r, vm) = Run(a => a.hlt(), new MachineOptions { HostCpu = HostCpuModel.Find(model)!, Cpu = spec });
        using (vm)
        {
            Assert.That(r.End, Is.EqualTo(RunEnd.Halted));
            var svm = SvmOps.ToSvm(vm.Vcpu);
            Assert.That(svm.Processor.LastGuestRapCapacity, Is.EqualTo(capacity));
            Assert.That((svm.Vmcb.ErapCtl & ErapCtl.AllowLargerRap) != 0, Is.EqualTo(capacity == 64), "ALLOW_LARGER_RAP");
        }
    }

    [TestCase(false, 0)]
    [TestCase(true, 1)]
    public void InterceptCr3AndInvpcid_MovToCr3Exits(bool intercept, long exits)
    {
        var (r, vm) = Run(a => { a.mov(eax, cr3); a.mov(cr3, eax); a.hlt(); }, new MachineOptions { InterceptCr3AndInvpcid = intercept });
        using (vm)
        {
            Assert.That(r.End, Is.EqualTo(RunEnd.Halted));
            Assert.That(vm.Vm.Options.InterceptCr3AndInvpcid, Is.EqualTo(intercept));
            Assert.That(vm.Statistics.VendorExits.Where(e => e.Name == "VMEXIT_CR3_WRITE").Sum(e => e.Count), Is.EqualTo(exits));
        }
    }

    [Test]
    public void Create_EditTheHostModelCannotHonour_IsAConfigurationError()
    {
        CpuSpec.TryParse("host,+eraps", out var spec, out _);
        var e = Assert.Throws<MachineConfigurationException>(() => TestMachines.Svm(new MachineOptions { HostCpu = HostCpuModel.Zen4, Cpu = spec }));
        Assert.That(e!.Message, Does.Contain("zen4 does not support eraps"));
    }

    [Test]
    public void Create_VmxOnAnAmdModel_IsAConfigurationError()
    {
        var e = Assert.Throws<MachineConfigurationException>(() => VirtualMachine.Create(Mem, Stream.Null, new MachineOptions { Vendor = VendorKind.Vmx }));
        Assert.That(e!.Message, Does.Contain("--vendor vmx on host CPU model zen5: host CPU model zen5 has no VMX"));
    }

    [Test]
    public void Create_VmxForVendor_IsAVmxMachineOnTheIntelDefault()
    {
        using var vm = VirtualMachine.Create(Mem, Stream.Null, MachineOptions.ForVendor(VendorKind.Vmx));
        Assert.That(vm, Is.InstanceOf<VmxMachine>());
        Assert.That(((VmxMachine)vm).Vcpu.Cpu.Model, Is.SameAs(HostCpuModel.DefaultIntel));
    }
}
