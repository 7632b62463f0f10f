using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.X86;

namespace Hypervisor.Host.Loading;

/// <summary>
/// The segment part every entry state hv builds shares: one code segment in CS and one data
/// segment in DS, ES, FS, GS and SS, written either to the bare CPU or into KVM_SET_SREGS's struct.
/// </summary>
internal static class FlatSegments
{
    public static void Load(X86Cpu cpu, Segment code, Segment data)
    {
        cpu.SetSegment(SegReg.Cs, code);
        cpu.SetSegment(SegReg.Ds, data);
        cpu.SetSegment(SegReg.Es, data);
        cpu.SetSegment(SegReg.Fs, data);
        cpu.SetSegment(SegReg.Gs, data);
        cpu.SetSegment(SegReg.Ss, data);
    }

    public static void Load(ref KvmSregs s, Segment code, Segment data)
    {
        s.Cs = code;
        s.Ds = s.Es = s.Fs = s.Gs = s.Ss = data;
    }
}
