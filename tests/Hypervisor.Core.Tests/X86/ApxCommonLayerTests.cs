using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86;
using Hypervisor.Core.X86.Cpuid;
using Hypervisor.Core.X86.Emulation;
using Hypervisor.Core.Tests.Support;

namespace Hypervisor.Core.Tests.X86;

/// <summary>The common layer's APX rules (KVM-FACTS §2, §5): supported CPUID leaf 0xD, XCR0
/// validation for XSETBV and KVM_SET_XCRS, and R16..R31 in KVM_GET/SET_REGS. A minimal vendor that
/// offers APX when the hardware has it stands in for VMX.</summary>
public class ApxCommonLayerTests
{
    private sealed class ApxOps(bool offerApx) : StubOps
    {
        public readonly List<int> Injected = new();
        public int Skipped;
        public override void HardwareSetup(HostCpuModel model, CpuCaps caps)
        {
            if (offerApx && CpuCaps.HardwareHas(model, CpuFeatures.ApxF))
                caps.Set(CpuFeatures.ApxF);
        }
        public override bool SkipEmulatedInstruction(Vcpu vcpu) { Skipped++; return true; }
        public override void InjectException(Vcpu vcpu, int vector, bool hasErrorCode, uint errorCode) => Injected.Add(vector);
    }

    private sealed class Guest : IDisposable
    {
        public Guest(HostCpuModel model, bool offerApx, Func<IReadOnlyList<CpuidEntry>, IReadOnlyList<CpuidEntry>>? edit = null)
        {
            Ops = new ApxOps(offerApx);
            Kvm = KvmX86.Register(Ops, model);
            Vm = Kvm.CreateVm();
            Vcpu = Vm.CreateVcpu(0);
            var cpuid = Kvm.GetSupportedCpuid();
            Vcpu.SetCpuid(edit != null ? edit(cpuid) : cpuid);
        }
        public ApxOps Ops { get; }
        public KvmX86 Kvm { get; }
        public Vm Vm { get; }
        public Vcpu Vcpu { get; }
        public void Dispose() => Vm.Dispose();
    }

    private static CpuidEntry Leaf(IReadOnlyList<CpuidEntry> t, uint f, uint i) => t.Single(e => e.Function == f && e.Index == i);

    [Test]
    public void SupportedCpuid_ApxSupported_Leaf0DListsComponent19()
    {
        using var g = new Guest(HostCpuModel.DiamondRapids, offerApx: true);
        var t = g.Kvm.GetSupportedCpuid();
        Assert.That(Leaf(t, 7, 1).Edx & (1u << 21), Is.Not.Zero, "APX_F");
        Assert.That(Leaf(t, 0xD, 0).Eax & (1u << 19), Is.Not.Zero);
        Assert.That(Leaf(t, 0xD, 0).Ecx, Is.EqualTo(1088u));
        Assert.That((Leaf(t, 0xD, 19).Eax, Leaf(t, 0xD, 19).Ebx), Is.EqualTo((128u, 960u)));
    }

    [Test]
    public void SupportedCpuid_ApxNotSupported_Leaf0DHidesComponent19()
    {
        using var g = new Guest(HostCpuModel.DiamondRapids, offerApx: false);
        var t = g.Kvm.GetSupportedCpuid();
        Assert.That(Leaf(t, 7, 1).Edx & (1u << 21), Is.Zero, "APX_F");
        Assert.That(Leaf(t, 0xD, 0).Eax, Is.EqualTo(1u), "x87 only");
        Assert.That(Leaf(t, 0xD, 0).Ecx, Is.EqualTo(576u), "largest area without component 19");
        Assert.That(Leaf(t, 0xD, 19).Eax | Leaf(t, 0xD, 19).Ebx, Is.Zero);
    }

    [Test]
    public void Xsetbv_ApxWithApxF_AcceptedAndSkipped()
    {
        using var g = new Guest(HostCpuModel.DiamondRapids, offerApx: true);
        Assert.That(g.Vcpu.HasApx, Is.True);
        Assert.That(Emulate.Xsetbv(g.Vcpu, 0, Xcr0Bits.X87 | Xcr0Bits.Apx), Is.EqualTo(1));
        Assert.That(g.Vcpu.Xcr0, Is.EqualTo(Xcr0Bits.X87 | Xcr0Bits.Apx));
        Assert.That(g.Ops.Skipped, Is.EqualTo(1));
        Assert.That(g.Ops.Injected, Is.Empty);
    }

    [Test]
    public void Cpuid0D_Ebx_FollowsGuestXcr0()
    {
        using var g = new Guest(HostCpuModel.DiamondRapids, offerApx: true);
        var v = g.Vcpu;
        uint Ebx()
        {
            v.WriteGpr(Gpr.Rax, 0xD);
            v.WriteGpr(Gpr.Rcx, 0);
            Emulate.Cpuid(v);
            return (uint)v.ReadGpr(Gpr.Rbx);
        }
        Assert.That(Ebx(), Is.EqualTo(576u), "x87 only: legacy region and header");
        Emulate.Xsetbv(v, 0, Xcr0Bits.X87 | Xcr0Bits.Apx);
        Assert.That(Ebx(), Is.EqualTo(1088u), "component 19 ends at 960 + 128");
    }

    [Test]
    public void Xsetbv_ApxWithoutApxFInGuestCpuid_Gp()
    {
        // Leaf 0xD still lists bit 19, but the guest's (7,1) has no APX_F: the guest caps decide.
        using var g = new Guest(HostCpuModel.DiamondRapids, offerApx: true,
            t => t.Select(e => e.Function == 7 && e.Index == 1 ? e with { Edx = 0 } : e).ToList());
        Assert.That(g.Vcpu.HasApx, Is.False);
        Assert.That(Emulate.Xsetbv(g.Vcpu, 0, Xcr0Bits.X87 | Xcr0Bits.Apx), Is.EqualTo(1));
        Assert.That(g.Ops.Injected, Is.EqualTo(new[] { Vector.GP }));
        Assert.That(g.Vcpu.Xcr0, Is.EqualTo(Xcr0Bits.X87), "unchanged");
        Assert.That(() => g.Vcpu.SetXcr0(Xcr0Bits.X87 | Xcr0Bits.Apx), Throws.TypeOf<KvmException>().With.Message.Contains("APX"));
    }

    [Test]
    public void Xsetbv_MpxWithApx_Gp()
    {
        // A table that enumerates MPX state as well: each alone is valid, both together are not.
        using var g = new Guest(HostCpuModel.DiamondRapids, offerApx: true,
            t => t.Select(e => e.Function == 0xD && e.Index == 0 ? e with { Eax = e.Eax | (uint)Xcr0Bits.Mpx } : e).ToList());
        Assert.That(Emulate.IsValidXcr0(g.Vcpu, Xcr0Bits.X87 | Xcr0Bits.Mpx), Is.True);
        Assert.That(Emulate.IsValidXcr0(g.Vcpu, Xcr0Bits.X87 | Xcr0Bits.Apx), Is.True);
        Emulate.Xsetbv(g.Vcpu, 0, Xcr0Bits.X87 | Xcr0Bits.Mpx | Xcr0Bits.Apx);
        Assert.That(g.Ops.Injected, Is.EqualTo(new[] { Vector.GP }));
        Assert.That(g.Vcpu.Xcr0, Is.EqualTo(Xcr0Bits.X87));
    }

    [Test]
    public void Xsetbv_ModelWithoutApx_Bit19Gp()
    {
        using var g = new Guest(HostCpuModel.GraniteRapids, offerApx: true);
        Assert.That(g.Vcpu.HasApx, Is.False);
        Emulate.Xsetbv(g.Vcpu, 0, Xcr0Bits.X87 | Xcr0Bits.Apx);
        Assert.That(g.Ops.Injected, Is.EqualTo(new[] { Vector.GP }));
    }

    [Test]
    public void KvmRegs_Egprs_RoundTripAndSurviveXcr0ApxOffOn()
    {
        using var g = new Guest(HostCpuModel.DiamondRapids, offerApx: true);
        var regs = g.Vcpu.GetRegs();
        Assert.That(regs.Egprs, Has.Length.EqualTo(16));
        regs.Egprs = Enumerable.Range(0, 16).Select(i => 0x1600UL + (ulong)i).ToArray();
        regs.R15 = 0xF;
        g.Vcpu.SetRegs(regs);
        Assert.That(g.Vcpu.Regs.IsDirty(VcpuReg.R16), Is.True, "written through the register cache");
        g.Vcpu.SetXcr0(Xcr0Bits.X87 | Xcr0Bits.Apx);
        g.Vcpu.SetXcr0(Xcr0Bits.X87);
        g.Vcpu.SetXcr0(Xcr0Bits.X87 | Xcr0Bits.Apx);
        var back = g.Vcpu.GetRegs();
        Assert.That(back.Egprs, Is.EqualTo(regs.Egprs));
        Assert.That(back.R15, Is.EqualTo(0xF));
        Assert.That(g.Vcpu.ReadGpr(31), Is.EqualTo(0x160FUL), "GPR 31 is R31 in the cache");
    }

    [Test]
    public void XsaveState_GuestXcr0OnTheProcessorOnlyBetweenEntryAndExit()
    {
        using var g = new Guest(HostCpuModel.DiamondRapids, offerApx: true);
        var v = g.Vcpu;
        v.Regs.Write(VcpuReg.Cr4, v.Cr4 | Cr4.Osxsave);
        v.SetXcr0(Xcr0Bits.X87 | Xcr0Bits.Apx);
        Assert.That(v.Cpu.Xcr0, Is.EqualTo(Xcr0Bits.X87), "KVM_SET_XCRS changes the vCPU, not the processor");
        v.LoadGuestXsaveState();
        Assert.That(v.Cpu.Xcr0, Is.EqualTo(Xcr0Bits.X87 | Xcr0Bits.Apx), "guest XCR0 while the guest runs");
        Assert.That(v.Cpu.IsApxEnabled, Is.True);
        v.LoadHostXsaveState();
        Assert.That(v.Cpu.Xcr0, Is.EqualTo(Xcr0Bits.X87), "host XCR0 after exit");
    }

    [Test]
    public void KvmRegs_GuestWithoutApx_NoEgprsAndSettingThemRefused()
    {
        using var g = new Guest(HostCpuModel.GraniteRapids, offerApx: true);
        var regs = g.Vcpu.GetRegs();
        Assert.That(regs.Egprs, Is.Null);
        regs.Egprs = new ulong[16];
        Assert.That(() => g.Vcpu.SetRegs(regs), Throws.TypeOf<KvmException>().With.Message.Contains("APX_F"));
    }

    [Test]
    public void KvmRegs_WrongEgprCount_Refused()
    {
        using var g = new Guest(HostCpuModel.DiamondRapids, offerApx: true);
        var regs = g.Vcpu.GetRegs();
        regs.Egprs = new ulong[15];
        Assert.That(() => g.Vcpu.SetRegs(regs), Throws.TypeOf<KvmException>().With.Message.Contains("16"));
    }
}
