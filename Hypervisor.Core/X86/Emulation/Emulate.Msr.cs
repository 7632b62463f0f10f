using Hypervisor.Core.Machine.Cpu;

namespace Hypervisor.Core.X86.Emulation;

/// <summary>The MSR framework: MSRs common code owns, then the vendor's, else #GP(0) (KVM's
/// default with ignore_msrs off). Values with reserved bits or non-canonical addresses are refused.</summary>
public static partial class Emulate
{
    public static bool GetMsr(Vcpu v, uint msr, out ulong value)
    {
        switch (msr)
        {
            case MsrIndex.Efer: value = v.Efer; return true;
            case MsrIndex.ApicBase: value = v.Cpu.Msr.ApicBase; return true;
        }
        return v.Ops.GetMsr(v, msr, out value);
    }

    public static bool SetMsr(Vcpu v, uint msr, ulong value)
    {
        switch (msr)
        {
            case MsrIndex.Efer:
                return SetEfer(v, value);
            case MsrIndex.ApicBase:
                // Enable (11), BSP (8) and the base; x2APIC (10) is not offered.
                if ((value & ~(((1UL << ControlRegisters.GuestMaxPhysAddr(v)) - 1) & ~0x2FFUL)) != 0) return false;
                v.Cpu.Msr.ApicBase = value;
                return true;
            case MsrIndex.Lstar or MsrIndex.Cstar or MsrIndex.KernelGsBase or MsrIndex.FsBase or MsrIndex.GsBase
                or MsrIndex.SysenterEsp or MsrIndex.SysenterEip when !X86Cpu.IsCanonical(value):
                return false;
        }
        return v.Ops.SetMsr(v, msr, value);
    }

    public static int Rdmsr(Vcpu v)
    {
        uint msr = (uint)v.ReadGpr(Gpr.Rcx);
        if (!GetMsr(v, msr, out ulong value))
            return InjectGp(v);
        v.WriteGpr(Gpr.Rax, (uint)value);
        v.WriteGpr(Gpr.Rdx, value >> 32);
        return Skip(v);
    }

    public static int Wrmsr(Vcpu v)
    {
        uint msr = (uint)v.ReadGpr(Gpr.Rcx);
        ulong value = ((ulong)(uint)v.ReadGpr(Gpr.Rdx) << 32) | (uint)v.ReadGpr(Gpr.Rax);
        return SetMsr(v, msr, value) ? Skip(v) : InjectGp(v);
    }

    /// <summary>EFER writes: bits the guest's CPUID allows; LME cannot change while paging is on;
    /// LMA is kept as the processor set it.</summary>
    public static bool SetEfer(Vcpu v, ulong efer)
    {
        if (!ControlRegisters.IsValidEfer(v, efer)) return false;
        if (v.IsPaging && ((efer ^ v.Efer) & Efer.Lme) != 0) return false;
        efer = (efer & ~Efer.Lma) | (v.Efer & Efer.Lma);
        v.Efer = efer;
        v.Ops.SetEfer(v, efer);
        return true;
    }
}
