using Hypervisor.Core.Machine.Models;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;

namespace Hypervisor.Host.Tests.Support;

/// <summary>Machines for tests: either kind, loaded with an image, run to the end.</summary>
internal static class TestMachines
{
    public static VirtualMachine Create(VendorKind vendor, ulong memory, Stream serial, ulong slice = 1UL << 24, HostCpuModel? model = null) =>
        Create(new MachineOptions { Vendor = vendor, HostCpu = model ?? HostCpuModel.Default }, memory, serial, slice);

    public static VirtualMachine Create(MachineOptions options, ulong memory, Stream serial, ulong slice = 1UL << 24)
    {
        var vm = VirtualMachine.Create(memory, serial, options);
        vm.SliceInstructions = slice;
        return vm;
    }

    /// <summary>Runs <paramref name="image"/> to its end on a fresh machine: how it ended, the serial bytes, the statistics.</summary>
    public static (RunResult Result, byte[] Serial, RunStatistics Stats) RunImage(MachineOptions options, byte[] image, ulong memory = 256UL << 20, ulong maxInstructions = 1_000_000_000)
    {
        var kernel = MultibootKernel.Check(image, memory);
        var serial = new MemoryStream();
        using var vm = VirtualMachine.Create(memory, serial, options);
        vm.Load(kernel);
        var result = vm.Run(maxInstructions);
        return (result, serial.ToArray(), vm.Statistics);
    }

    /// <summary>A VM under SVM, for tests that look inside the vCPU.</summary>
    public static SvmMachine Svm(MachineOptions? options = null, ulong memory = 16 << 20, Stream? serial = null) =>
        (SvmMachine)VirtualMachine.Create(memory, serial ?? Stream.Null, options ?? new MachineOptions());
}
