using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86;
using Hypervisor.Core.X86.Cpuid;

namespace Hypervisor.Core.Tests.Support;

/// <summary>Just enough of a vendor to register on a host model and create a VM and vCPUs for
/// tests of the common layer; nothing here runs a guest. Tests override what they observe.</summary>
public class StubOps : IX86Ops
{
    public string Name => "test";
    public CpuFeature HardwareFeature => CpuFeatures.Lm; // any feature the model has
    public virtual void HardwareSetup(HostCpuModel model, CpuCaps caps) { }
    public void VcpuCreate(Vcpu vcpu) { }
    public void VcpuReset(Vcpu vcpu, bool initEvent) { }
    public void CacheReg(Vcpu vcpu, VcpuReg reg) => throw new NotSupportedException();
    public ExitFastpath Run(Vcpu vcpu) => throw new NotSupportedException();
    public int HandleExit(Vcpu vcpu, ExitFastpath fastpath) => throw new NotSupportedException();
    public virtual bool SkipEmulatedInstruction(Vcpu vcpu) => throw new NotSupportedException();
    public Segment GetSegment(Vcpu vcpu, int seg) => default;
    public void SetSegment(Vcpu vcpu, int seg, Segment value) { }
    public int GetCpl(Vcpu vcpu) => 0;
    public DescriptorTable GetGdt(Vcpu vcpu) => default;
    public void SetGdt(Vcpu vcpu, DescriptorTable value) { }
    public DescriptorTable GetIdt(Vcpu vcpu) => default;
    public void SetIdt(Vcpu vcpu, DescriptorTable value) { }
    public void SetCr0(Vcpu vcpu, ulong value) { }
    public void SetCr4(Vcpu vcpu, ulong value) { }
    public void SetEfer(Vcpu vcpu, ulong value) { }
    public void FlushTlbAll(Vcpu vcpu) { }
    public void FlushTlbCurrent(Vcpu vcpu) { }
    public void FlushTlbGva(Vcpu vcpu, ulong gva) { }
    public void FlushTlbGuest(Vcpu vcpu) { }
    public virtual void InjectException(Vcpu vcpu, int vector, bool hasErrorCode, uint errorCode) { }
}
