using Hypervisor.Core.Machine.Models;

namespace Hypervisor.Core.Tests;

/// <summary>Copies of a host CPU model with one CPUID bit changed.</summary>
public static class ModelEdit
{
    public static HostCpuModel Without(HostCpuModel m, uint leaf, char register, int bit) => With(m, leaf, register, bit, false);

    public static HostCpuModel With(HostCpuModel m, uint leaf, char register, int bit, bool present)
    {
        var table = m.Cpuid.Clone();
        var e = table.Lookup(leaf, 0);
        uint mask = 1u << bit;
        uint Apply(uint r) => present ? r | mask : r & ~mask;
        table.Set(e with
        {
            Eax = register == 'a' ? Apply(e.Eax) : e.Eax,
            Ebx = register == 'b' ? Apply(e.Ebx) : e.Ebx,
            Ecx = register == 'c' ? Apply(e.Ecx) : e.Ecx,
            Edx = register == 'd' ? Apply(e.Edx) : e.Edx,
        });
        return new HostCpuModel(m.Name + "-edited", m.Description, m.Vendor, table, m.MaxPhysAddrBits, m.RapEntries, m.ResetEdx);
    }
}
