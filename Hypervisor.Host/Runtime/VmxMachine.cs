using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Vmx;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Runtime;

/// <summary>A VM under the VMX vendor module (kvm-intel on VT-x); everything else is <see cref="KvmMachine"/>.</summary>
public sealed class VmxMachine : KvmMachine
{
    internal VmxMachine(ulong memorySize, Stream serialOutput, MachineOptions options, ILoggerFactory logging)
        : base(new VmxOps(), memorySize, serialOutput, options, logging)
    {
    }

    public VmxOps Ops => (VmxOps)VendorOps;

    private protected override CpuExit LastMachineFailure => VmxOps.ToVmx(Vcpu).Processor.LastMachineFailure;

    private protected override string EntryFailure => "VMLAUNCH/VMRESUME failed";
}
