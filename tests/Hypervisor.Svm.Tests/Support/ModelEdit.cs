using Hypervisor.Core.Machine.Models;

namespace Hypervisor.Core.Tests;

/// <summary>Copies of a host CPU model with one CPUID bit changed.</summary>
public static class ModelEdit
{
    public static HostCpuModel Without(HostCpuModel m, uint leaf, char register, int bit) => With(m, leaf, register, bit, false);

    public static HostCpuModel With(HostCpuModel m, uint leaf, char register, int bit, bool present) =>
        m.WithFeature(leaf, register, bit, present);
}
