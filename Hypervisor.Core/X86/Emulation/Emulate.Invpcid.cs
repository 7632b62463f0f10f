using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.X86.Cpuid;

namespace Hypervisor.Core.X86.Emulation;

public static partial class Emulate
{
    /// <summary>
    /// INVPCID emulation (KVM-FACTS §3). #UD without INVPCID in the guest caps, #GP at CPL &gt; 0, a
    /// #PF from reading the descriptor is injected as the hardware would raise it. Type 0 invalidates
    /// one address and leaves the RAP alone; types 1-3 also clear the RAP (ERAPS, an alias of CR3,
    /// marked dirty). Better than upstream: type 1 marks ERAPS dirty itself, so the RAP is cleared
    /// with nested paging off too.
    /// </summary>
    public static int Invpcid(Vcpu v, ulong type, ulong descriptorGva)
    {
        if (!v.GuestCaps.Has(CpuFeatures.Invpcid))
            return InjectUd(v);
        if (v.Ops.GetCpl(v) > 0)
            return InjectGp(v);
        Span<byte> desc = stackalloc byte[16];
        if (!GuestMemory.TryRead(v, descriptorGva, desc, out var pf))
        {
            v.Cr2 = pf.Address;
            v.Ops.InjectException(v, Vector.PF, true, pf.ErrorCode);
            return 1;
        }
        ulong pcidQword = BitConverter.ToUInt64(desc);
        ulong linear = BitConverter.ToUInt64(desc[8..]);
        if ((pcidQword >> 12) != 0)
            return InjectGp(v);
        ushort pcid = (ushort)pcidQword;
        bool pcide = v.IsPcidEnabled;
        switch (type)
        {
            case 0:
                if ((!pcide && pcid != 0) || !X86Cpu.IsCanonical(linear))
                    return InjectGp(v);
                v.Ops.FlushTlbGva(v, linear);
                return Skip(v);
            case 1:
                if (!pcide && pcid != 0)
                    return InjectGp(v);
                v.Regs.MarkDirty(VcpuReg.Eraps);
                ControlRegisters.InvalidatePcid(v, pcid);
                return Skip(v);
            case 2:
            case 3:
                v.MakeRequest(VcpuRequest.TlbFlushGuest);
                return Skip(v);
            default:
                return InjectGp(v);
        }
    }
}
