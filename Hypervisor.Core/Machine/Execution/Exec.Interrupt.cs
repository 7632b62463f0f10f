using Iced.Intel;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>INT n, INT3, INTO, INT1 and IRET/IRETD/IRETQ (SDM vol. 2 "INT n/INTO/INT3/INT1",
/// "IRET/IRETD/IRETQ"). Delivery itself lives in X86Cpu.Interrupts.cs.</summary>
internal static unsafe partial class Exec
{
    /// <summary>Software interrupts in virtual-8086 mode with IOPL &lt; 3 raise #GP(0) (CR4.VME is not enumerated).</summary>
    private static bool V86AllowsInt(X86Cpu c)
    {
        if (!c.IsV86Mode || (c._rflags & RFlags.Iopl) == RFlags.Iopl) return true;
        c.RaiseGp0();
        return false;
    }

    public static void Int(X86Cpu c, ref DecodedInsn i)
    {
        if (!V86AllowsInt(c)) return;
        c.SoftwareInterrupt((int)(i.Imm & 0xFF), EventKind.Software);
    }

    public static void Int3(X86Cpu c, ref DecodedInsn i) => c.SoftwareInterrupt(Vector.BP, EventKind.Software);

    public static void Into(X86Cpu c, ref DecodedInsn i)
    {
        if (c.CodeBits == 64) { c.RaiseUd(); return; }
        if (c.GetOf())
            c.SoftwareInterrupt(Vector.OF, EventKind.Software);
    }

    /// <summary>INT1 (ICEBP): #DB as a privileged software exception: no gate DPL check, EXT=1.</summary>
    public static void Int1(X86Cpu c, ref DecodedInsn i) => c.SoftwareInterrupt(Vector.DB, EventKind.PrivilegedSoftware);

    public static void Iret(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.Code switch { Code.Iretw => 2, Code.Iretq => 8, _ => 4 };
        if (!c.IsProtectedMode)
        {
            IretReal(c, size);
            return;
        }
        if (c.IsV86Mode)
        {
            c.Fail(CpuExitReason.Unimplemented, "IRET in virtual-8086 mode: virtual-8086 mode is not supported");
            return;
        }
        if ((c._rflags & RFlags.Nt) != 0)
        {
            if (c.IsLongMode) c.RaiseGp0(); // no task switching in IA-32e mode
            else c.Fail(CpuExitReason.Unimplemented, "IRET with EFLAGS.NT=1 (return from a nested task): task switching is not supported");
            return;
        }
        IretProtected(c, size);
    }

    /// <summary>Real-address mode: pop IP, CS, FLAGS. A 32-bit IRETD keeps VM, VIF and VIP.</summary>
    private static void IretReal(X86Cpu c, int size)
    {
        ulong ip = c.PeekStack(0, size);
        ushort sel = (ushort)c.PeekStack((ulong)size, 2);
        ulong flags = c.PeekStack((ulong)(2 * size), size);
        if (c._abort) return;
        if (ip > c.GetSegment(SegReg.Cs).Limit)
        {
            c.RaiseGp0();
            return;
        }
        ulong old = c.GetRFlags();
        ulong next = size == 2
            ? (old & ~0xFFFFUL) | (flags & 0xFFFF)
            : (flags & 0x257FD5) | (old & 0x1A0000);
        c.SetStackPointer(c.StackPointer + (ulong)(3 * size));
        var cs = c.GetSegment(SegReg.Cs);
        cs.Selector = sel;
        cs.Base = (ulong)sel << 4;
        c.SetCodeSegment(cs, 0);
        c.Rip = ip;
        c.SetRFlags(next);
        c._stop = true;
    }

    /// <summary>Protected and IA-32e mode IRET without task switch: return to the same or an outer
    /// privilege level. IRET from 64-bit mode always pops SS:RSP. Everything is read and checked
    /// before any state changes.</summary>
    private static void IretProtected(X86Cpu c, int size)
    {
        bool from64 = c.CodeBits == 64;
        ulong ip = c.PeekStack(0, size);
        ushort sel = (ushort)c.PeekStack((ulong)size, 2);
        ulong flags = c.PeekStack((ulong)(2 * size), size);
        if (c._abort) return;
        if (!c.IsLongMode && size == 4 && (flags & RFlags.Vm) != 0 && c.Cpl == 0)
        {
            c.Fail(CpuExitReason.Unimplemented, "IRET to virtual-8086 mode: virtual-8086 mode is not supported");
            return;
        }
        if ((sel & ~3) == 0) { c.RaiseGp0(); return; }
        if (!c.ReadDescriptor(sel, out ulong csDesc)) return;
        var cs = X86Cpu.SegmentFromDescriptor(sel, csDesc);
        uint csErr = (uint)(sel & ~3);
        int rpl = sel & 3;
        bool conforming = (cs.Type & 4) != 0;
        if (!cs.IsCode || rpl < c.Cpl || (conforming ? cs.Dpl > rpl : cs.Dpl != rpl))
        {
            c.RaiseFault(Vector.GP, csErr);
            return;
        }
        if (!cs.Present) { c.RaiseFault(Vector.NP, csErr); return; }
        bool to64 = c.IsLongMode && cs.Long;
        if (to64 && cs.DefaultBig) { c.RaiseFault(Vector.GP, csErr); return; }

        bool popStack = rpl > c.Cpl || from64;
        ulong newSp = 0, ssDesc = 0;
        Segment ss = default;
        if (popStack)
        {
            newSp = c.PeekStack((ulong)(3 * size), size);
            ushort ssSel = (ushort)c.PeekStack((ulong)(4 * size), 2);
            if (c._abort) return;
            if (!CheckReturnStack(c, ssSel, rpl, to64, out ss, out ssDesc)) return;
        }
        if (size == 2) ip &= 0xFFFF;
        if (to64 ? !X86Cpu.IsCanonical(ip) : ip > cs.Limit)
        {
            c.RaiseGp0();
            return;
        }
        c.SetDescriptorAccessed(sel, csDesc);
        if (popStack && ssDesc != 0) c.SetDescriptorAccessed(ss.Selector, ssDesc);
        if (c._abort) return;

        // From here nothing can fault. Flags use the CPL before the return.
        int oldCpl = c.Cpl;
        ulong next = IretFlags(c, flags, size, oldCpl);
        if (!popStack)
            c.SetStackPointer(c.StackPointer + (ulong)(3 * size));
        cs.Attributes |= 1;
        c.SetCodeSegment(cs, rpl);
        if (popStack)
        {
            ss.Attributes |= ssDesc != 0 ? (ushort)1 : (ushort)0;
            c.SetSegment(SegReg.Ss, ss);
            if (c.CodeBits == 64) c.SetGpr(Gpr.Rsp, newSp);
            else c.WriteReg(Gpr.Rsp, size == 2 ? 2 : 4, newSp);
        }
        c.Rip = c.CodeBits == 64 ? ip : (uint)ip;
        c.SetRFlags(next);
        if (rpl > oldCpl)
            c.NullOuterDataSegments();
        c._stop = true;
    }

    /// <summary>The SS a return to privilege <paramref name="rpl"/> loads: a present writable data
    /// segment with RPL = DPL = new CPL, or a null selector when returning to 64-bit mode below ring 3.</summary>
    private static bool CheckReturnStack(X86Cpu c, ushort ssSel, int rpl, bool to64, out Segment ss, out ulong desc)
    {
        desc = 0;
        ss = default;
        if ((ssSel & ~3) == 0)
        {
            if (!to64 || rpl == 3 || (ssSel & 3) != rpl)
            {
                c.RaiseGp0();
                return false;
            }
            ss = new Segment { Selector = ssSel, Limit = 0xFFFFFFFF, Attributes = (ushort)(0x93 | (rpl << 5)) };
            return true;
        }
        uint err = (uint)(ssSel & ~3);
        if ((ssSel & 3) != rpl) { c.RaiseFault(Vector.GP, err); return false; }
        if (!c.ReadDescriptor(ssSel, out desc)) return false;
        ss = X86Cpu.SegmentFromDescriptor(ssSel, desc);
        if (ss.IsSystem || ss.IsCode || (ss.Type & 2) == 0 || ss.Dpl != rpl)
        {
            c.RaiseFault(Vector.GP, err);
            return false;
        }
        if (!ss.Present) { c.RaiseFault(Vector.SS, err); return false; }
        return true;
    }

    /// <summary>RFLAGS after a protected-mode IRET: IF only when CPL ≤ IOPL, IOPL/VIF/VIP only at
    /// CPL 0, RF/AC/ID only with a 32/64-bit operand, VM never (the V86 return is separate).</summary>
    private static ulong IretFlags(X86Cpu c, ulong image, int size, int cpl)
    {
        ulong old = c.GetRFlags();
        ulong mask = RFlags.Arith | RFlags.Tf | RFlags.Df | RFlags.Nt;
        if (size >= 4) mask |= RFlags.Rf | RFlags.Ac | RFlags.Id;
        int iopl = (int)((old >> 12) & 3);
        if (cpl <= iopl) mask |= RFlags.If;
        if (cpl == 0)
        {
            mask |= RFlags.Iopl;
            if (size >= 4) mask |= RFlags.Vif | RFlags.Vip;
        }
        if (size == 2) mask &= 0xFFFF;
        return (old & ~mask) | (image & mask);
    }
}
