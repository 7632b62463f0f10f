using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86;
using Hypervisor.Core.X86.Cpuid;
using Hypervisor.Svm.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Svm.Tests;

/// <summary>The common x86 layer's policies, exercised through the SVM vendor (the layer must
/// behave the same under any vendor; the VMX issue reruns the vendor-neutral ones).</summary>
public class CommonLayerTests
{
    private sealed class BadNameOps : IX86Ops
    {
        private readonly SvmOps _inner = new();
        public string Name => "SVM";
        public CpuFeature HardwareFeature => CpuFeatures.Svm;
        public void HardwareSetup(HostCpuModel model, CpuCaps caps) { }
        public void VcpuCreate(Vcpu vcpu) => _inner.VcpuCreate(vcpu);
        public void VcpuReset(Vcpu vcpu, bool initEvent) => _inner.VcpuReset(vcpu, initEvent);
        public void CacheReg(Vcpu vcpu, VcpuReg reg) => _inner.CacheReg(vcpu, reg);
        public ExitFastpath Run(Vcpu vcpu) => _inner.Run(vcpu);
        public int HandleExit(Vcpu vcpu, ExitFastpath fastpath) => _inner.HandleExit(vcpu, fastpath);
        public bool SkipEmulatedInstruction(Vcpu vcpu) => _inner.SkipEmulatedInstruction(vcpu);
        public Segment GetSegment(Vcpu vcpu, int seg) => _inner.GetSegment(vcpu, seg);
        public void SetSegment(Vcpu vcpu, int seg, Segment value) => _inner.SetSegment(vcpu, seg, value);
        public int GetCpl(Vcpu vcpu) => _inner.GetCpl(vcpu);
        public DescriptorTable GetGdt(Vcpu vcpu) => _inner.GetGdt(vcpu);
        public void SetGdt(Vcpu vcpu, DescriptorTable value) => _inner.SetGdt(vcpu, value);
        public DescriptorTable GetIdt(Vcpu vcpu) => _inner.GetIdt(vcpu);
        public void SetIdt(Vcpu vcpu, DescriptorTable value) => _inner.SetIdt(vcpu, value);
        public void SetCr0(Vcpu vcpu, ulong value) => _inner.SetCr0(vcpu, value);
        public void SetCr4(Vcpu vcpu, ulong value) => _inner.SetCr4(vcpu, value);
        public void SetEfer(Vcpu vcpu, ulong value) => _inner.SetEfer(vcpu, value);
        public void FlushTlbAll(Vcpu vcpu) => _inner.FlushTlbAll(vcpu);
        public void FlushTlbCurrent(Vcpu vcpu) => _inner.FlushTlbCurrent(vcpu);
        public void FlushTlbGva(Vcpu vcpu, ulong gva) => _inner.FlushTlbGva(vcpu, gva);
        public void FlushTlbGuest(Vcpu vcpu) => _inner.FlushTlbGuest(vcpu);
        public void InjectException(Vcpu vcpu, int vector, bool hasErrorCode, uint errorCode) => _inner.InjectException(vcpu, vector, hasErrorCode, errorCode);
    }

    [Test]
    public void Register_VendorNameNotLowerCase_Refused() =>
        Assert.That(() => KvmX86.Register(new BadNameOps(), HostCpuModel.Zen5), Throws.TypeOf<KvmException>().With.Message.Contains("lower-case"));

    [Test]
    public void SetCpuid_AfterRun_OnlyIdenticalTableAccepted()
    {
        using var g = new SvmGuest();
        g.Load(a => a.hlt());
        g.Run();
        var same = g.Kvm.GetSupportedCpuid();
        Assert.That(() => g.Vcpu.SetCpuid(same), Throws.Nothing);
        var different = same.Select(e => e.Function == 1 ? e with { Ecx = e.Ecx ^ 1 } : e).ToList();
        Assert.That(() => g.Vcpu.SetCpuid(different), Throws.TypeOf<CpuidException>().With.Property("Errno").EqualTo("EBUSY"));
    }

    [Test]
    public void Xcr0_MpxWithApx_Refused_X87Accepted()
    {
        // The guest table claims MPX and APX state in leaf 0xD and APX_F in leaf (7,1); SVM never
        // supports APX, so the guest caps lack APX_F and bit 19 is refused whatever the table says.
        using var g = new SvmGuest(editCpuid: c => c.Select(e =>
            e.Function == 0xD && e.Index == 0 ? e with { Eax = 1 | 0x18 | (1u << 19) }
            : e.Function == 7 && e.Index == 1 ? e with { Edx = e.Edx | (1u << 21) } : e).ToList());
        Assert.That(g.Vcpu.HasApx, Is.False);
        Assert.That(() => g.Vcpu.SetXcr0(1), Throws.Nothing);
        Assert.That(() => g.Vcpu.SetXcr0(1 | 0x18), Throws.Nothing, "MPX alone, as the table enumerates it");
        Assert.That(() => g.Vcpu.SetXcr0(1 | 0x18 | (1UL << 19)), Throws.TypeOf<KvmException>().With.Message.Contains("XCR0"));
        Assert.That(() => g.Vcpu.SetXcr0(1 | (1UL << 19)), Throws.TypeOf<KvmException>(), "APX without APX_F in the guest caps");
        Assert.That(() => g.Vcpu.SetXcr0(0), Throws.TypeOf<KvmException>(), "bit 0 must be set");
        Assert.That(() => g.Vcpu.SetXcr0(1 | 0x8), Throws.TypeOf<KvmException>(), "half of MPX");
    }

    [Test]
    public void Msrs_CommonAndVendorHandled_UnknownAndReservedRefused()
    {
        using var g = new SvmGuest();
        var v = g.Vcpu;
        Assert.That(v.TrySetMsr(MsrIndex.Lstar, 0xFFFF_FFFF_8100_0000), Is.True);
        Assert.That(v.TryGetMsr(MsrIndex.Lstar, out ulong lstar) && lstar == 0xFFFF_FFFF_8100_0000, Is.True, "kept in the VMCB");
        Assert.That(g.Svm.Vmcb.Lstar, Is.EqualTo(0xFFFF_FFFF_8100_0000UL));
        Assert.That(v.TrySetMsr(MsrIndex.Lstar, 0x8000_0000_0000_0000), Is.False, "non-canonical");
        Assert.That(v.TrySetMsr(MsrIndex.Pat, 0x0202020202020202), Is.False, "PAT type 2 is reserved");
        Assert.That(v.TrySetMsr(MsrIndex.Efer, v.Efer | (1UL << 13)), Is.False, "EFER.LMSLE: no CPUID bit allows it");
        Assert.That(v.TryGetMsr(0xDEAD_BEEF, out _), Is.False);
    }

    [Test]
    public void GuestRdmsrOfUnknownMsr_GetsGp()
    {
        // The guest's #GP handler is a HLT; no IDT entry means a triple fault, so install one.
        using var g = new SvmGuest();
        ulong idt = 0x3000, handler = 0x4000;
        g.Vm.Memory.Write(handler, new byte[] { 0xF4 });
        ulong lo = (handler & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | ((handler >> 16 & 0xFFFF) << 48);
        g.Vm.Memory.WriteU64(idt + 13 * 16, lo);
        g.Vm.Memory.WriteU64(idt + 13 * 16 + 8, handler >> 32);
        var sregs = g.Vcpu.GetSregs();
        sregs.Idt = new DescriptorTable { Base = idt, Limit = 0xFFF };
        g.Vcpu.SetSregs(sregs);
        g.Load(a => { a.mov(ecx, 0xDEADBEEF); a.rdmsr(); a.hlt(); });
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(g.Vcpu.Rip, Is.EqualTo(handler + 1), "halted in the #GP handler");
        Assert.That(g.Vcpu.Stats.ByVendorExit["VMEXIT_MSR"], Is.EqualTo(1));
    }

    [Test]
    public void SetSregs_InconsistentState_RefusedAndNothingApplied()
    {
        using var g = new SvmGuest();
        var before = g.Vcpu.GetSregs();
        var bad = before;
        bad.Cr4 = 0; // long mode with CR4.PAE clear
        Assert.That(() => g.Vcpu.SetSregs(bad), Throws.TypeOf<KvmException>().With.Message.Contains("PAE"));
        Assert.That(g.Vcpu.GetSregs().Cr4, Is.EqualTo(before.Cr4));
    }
}
