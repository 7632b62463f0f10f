using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Svm;
using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Runtime;

/// <summary>A VM under the SVM vendor module (kvm-amd on AMD-V); everything else is <see cref="KvmMachine"/>.</summary>
public sealed class SvmMachine : KvmMachine
{
    internal SvmMachine(ulong memorySize, Stream serialOutput, MachineOptions options, ILoggerFactory logging)
        : base(new SvmOps(), memorySize, serialOutput, options, logging)
    {
    }

    public SvmOps Ops => (SvmOps)VendorOps;

    private protected override CpuExit LastMachineFailure => SvmOps.ToSvm(Vcpu).Processor.LastMachineFailure;

    private protected override string EntryFailure => "VMRUN failed";
}
