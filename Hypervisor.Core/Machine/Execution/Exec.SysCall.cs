using Iced.Intel;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>SYSCALL, SYSRET and SWAPGS (SDM vol. 2; AMD APM vol. 3 "SYSCALL", "SYSRET"). Intel
/// processors run SYSCALL/SYSRET only in 64-bit mode; AMD ones also in legacy and compatibility
/// mode, which use STAR[31:0] (legacy) and CSTAR (compatibility) as targets.</summary>
internal static unsafe partial class Exec
{
    // Flat code and stack segments SYSCALL and SYSRET load (the descriptors are not read).
    private const ushort AttrCode64 = 0xA09B, AttrCode32 = 0xC09B, AttrData = 0xC093;

    private static Segment FlatSegment(ushort selector, ushort attributes) =>
        new() { Selector = selector, Base = 0, Limit = 0xFFFFFFFF, Attributes = attributes };

    public static void Syscall(X86Cpu c, ref DecodedInsn i)
    {
        if ((c.Efer & Efer.Sce) == 0 || (!c.Model.IsAmd && c.CodeBits != 64))
        {
            c.RaiseUd();
            return;
        }
        ulong star = c.Msr.Star;
        ushort sel = (ushort)(star >> 32);
        ulong flags = c.GetRFlags();
        if (c.IsLongMode)
        {
            ulong target = c.CodeBits == 64 ? c.Msr.Lstar : c.Msr.Cstar;
            c.SetGpr(Gpr.Rcx, c.Rip);
            c.SetGpr(Gpr.R11, flags & ~RFlags.Rf);
            c.SetCodeSegment(FlatSegment((ushort)(sel & ~3), AttrCode64), 0);
            c.SetSegment(SegReg.Ss, FlatSegment((ushort)((sel + 8) & ~3), AttrData));
            c.SetRFlags(flags & ~c.Msr.Sfmask & ~RFlags.Rf);
            c.Rip = target;
        }
        else
        {
            // Legacy mode (AMD): ECX = return EIP, target STAR[31:0]; VM, IF and RF are cleared.
            c.WriteReg(Gpr.Rcx, 4, c.Rip);
            c.SetCodeSegment(FlatSegment((ushort)(sel & ~3), AttrCode32), 0);
            c.SetSegment(SegReg.Ss, FlatSegment((ushort)((sel + 8) & ~3), AttrData));
            c.SetRFlags(flags & ~(RFlags.Vm | RFlags.If | RFlags.Rf));
            c.Rip = (uint)star;
        }
        c._stop = true;
    }

    public static void Sysret(X86Cpu c, ref DecodedInsn i)
    {
        if ((c.Efer & Efer.Sce) == 0 || (!c.Model.IsAmd && c.CodeBits != 64))
        {
            c.RaiseUd();
            return;
        }
        if (!c.IsProtectedMode || c.Cpl != 0)
        {
            c.RaiseGp0();
            return;
        }
        ushort sel = (ushort)(c.Msr.Star >> 48);
        var ss = FlatSegment((ushort)((sel + 8) | 3), AttrData | (3 << 5));
        if (c.IsLongMode)
        {
            bool to64 = i.Code == Code.Sysretq;
            ulong rip = to64 ? c.GetGpr(Gpr.Rcx) : (uint)c.GetGpr(Gpr.Rcx);
            // A non-canonical return address faults here, in ring 0 (SDM "SYSRET", 64-bit mode exceptions).
            if (!X86Cpu.IsCanonical(rip))
            {
                c.RaiseGp0();
                return;
            }
            ulong flags = (c.GetGpr(Gpr.R11) & 0x3C7FD7) | RFlags.Fixed1; // RF and VM are cleared
            var cs = to64 ? FlatSegment((ushort)((sel + 16) | 3), AttrCode64 | (3 << 5)) : FlatSegment((ushort)(sel | 3), AttrCode32 | (3 << 5));
            c.SetCodeSegment(cs, 3);
            c.SetSegment(SegReg.Ss, ss);
            c.SetRFlags(flags);
            c.Rip = rip;
        }
        else
        {
            // Legacy mode (AMD): return to STAR[63:48] | 3 at ECX with interrupts enabled.
            c.SetCodeSegment(FlatSegment((ushort)(sel | 3), AttrCode32 | (3 << 5)), 3);
            c.SetSegment(SegReg.Ss, ss);
            c.SetFlags(RFlags.If, RFlags.If);
            c.Rip = (uint)c.GetGpr(Gpr.Rcx);
        }
        c._stop = true;
    }

    /// <summary>SWAPGS: exchanges GS.base with IA32_KERNEL_GS_BASE; 64-bit mode, ring 0.</summary>
    public static void Swapgs(X86Cpu c, ref DecodedInsn i)
    {
        if (c.CodeBits != 64) { c.RaiseUd(); return; }
        if (!RequireCpl0(c)) return;
        var gs = c.GetSegment(SegReg.Gs);
        (gs.Base, c.Msr.KernelGsBase) = (c.Msr.KernelGsBase, gs.Base);
        c.Segs[SegReg.Gs] = gs;
        c.SegmentChanged(SegReg.Gs);
    }
}
