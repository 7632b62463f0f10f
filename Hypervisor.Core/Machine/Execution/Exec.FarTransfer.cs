using Iced.Intel;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>Far JMP/CALL/RET: CS loads with the checks of SDM vol. 2 "JMP", "CALL" and "RET"
/// (Operation) for real and virtual-8086 mode, protected mode at the same privilege, RET to an
/// outer privilege, and IA-32e mode (m16:64 pointers, 64-bit targets). Every check runs before any
/// state changes; call gates and task switches stop the CPU with a report.</summary>
internal static unsafe partial class Exec
{
    private static bool IsFarJmp(Code code) => code is Code.Jmp_ptr1616 or Code.Jmp_ptr1632 or Code.Jmp_m1616 or Code.Jmp_m1632 or Code.Jmp_m1664;
    private static bool IsFarCall(Code code) => code is Code.Call_ptr1616 or Code.Call_ptr1632 or Code.Call_m1616 or Code.Call_m1632 or Code.Call_m1664;

    private static bool IsRealOrV86(X86Cpu c) => !c.IsProtectedMode || c.IsV86Mode;

    /// <summary>Reads the far pointer operand: immediate ptr16:16/32, or m16:16/32/64 (offset first).</summary>
    private static bool ReadFarPointer(X86Cpu c, ref DecodedInsn i, out ushort selector, out ulong offset, out int opSize)
    {
        opSize = i.StackSize;
        if (i.Kind0 == OperandKind.Imm)
        {
            selector = (ushort)i.Imm2;
            offset = i.Imm;
            return true;
        }
        ulong ea = c.EffectiveAddress(ref i);
        offset = c.ReadMem(i.Seg, ea, opSize);
        selector = (ushort)c.ReadMem(i.Seg, (ea + (ulong)opSize) & X86Cpu.SizeMask(i.AddrSize), 2);
        return !c._abort;
    }

    private static ulong MaskIp(ulong offset, int opSize) => opSize switch { 2 => offset & 0xFFFF, 4 => offset & 0xFFFF_FFFF, _ => offset };

    /// <summary>Real and virtual-8086 mode: CS gets selector × 16 as base. The offset must lie
    /// within the CS limit (#GP(0)); virtual-8086 segments are 64 KiB, DPL 3.</summary>
    private static bool CheckRealTarget(X86Cpu c, ulong offset, int opSize, out ulong ip)
    {
        ip = MaskIp(offset, opSize);
        if (ip > c.GetSegment(SegReg.Cs).Limit)
        {
            c.RaiseGp0();
            return false;
        }
        return true;
    }

    private static void LoadRealCs(X86Cpu c, ushort selector, ulong ip)
    {
        var cs = c.GetSegment(SegReg.Cs);
        cs.Selector = selector;
        cs.Base = (ulong)selector << 4;
        if (c.IsV86Mode)
        {
            cs.Limit = 0xFFFF;
            cs.Attributes = 0xF3;
        }
        c.SetCodeSegment(cs, c.Cpl);
        c.Rip = ip;
        c._stop = true;
    }

    /// <summary>Checks the descriptor a far JMP/CALL names (no offset yet): a code segment with
    /// conforming DPL ≤ CPL, or non-conforming RPL ≤ CPL and DPL = CPL; present. In IA-32e mode
    /// L=1 with D=1 is invalid. Gates and TSSs the SDM allows here are reported as unsupported.</summary>
    private static bool CheckFarTarget(X86Cpu c, ushort selector, out Segment cs, out ulong desc)
    {
        cs = default;
        desc = 0;
        if ((selector & ~3) == 0) { c.RaiseGp0(); return false; }
        if (!c.ReadDescriptor(selector, out desc)) return false;
        cs = X86Cpu.SegmentFromDescriptor(selector, desc);
        uint err = (uint)(selector & ~3);
        if (cs.IsSystem)
        {
            // Legacy mode accepts call gates (4, 12), task gates (5) and available TSSs (1, 9);
            // IA-32e mode only 64-bit call gates (12). Anything else is #GP(selector).
            int t = cs.Type;
            bool architectural = c.IsLongMode ? t == 12 : t is 1 or 4 or 5 or 9 or 12;
            if (!architectural) { c.RaiseFault(Vector.GP, err); return false; }
            c.Fail(CpuExitReason.Unimplemented, $"far transfer through a system descriptor (type {t}, selector 0x{selector:x4}): call gates and task switches are not supported");
            return false;
        }
        if (!cs.IsCode) { c.RaiseFault(Vector.GP, err); return false; }
        if (c.IsLongMode && cs.Long && cs.DefaultBig) { c.RaiseFault(Vector.GP, err); return false; }
        bool conforming = (cs.Type & 4) != 0;
        if (conforming ? cs.Dpl > c.Cpl : (selector & 3) > c.Cpl || cs.Dpl != c.Cpl)
        {
            c.RaiseFault(Vector.GP, err);
            return false;
        }
        if (!cs.Present) { c.RaiseFault(Vector.NP, err); return false; }
        return true;
    }

    /// <summary>The offset check of a far transfer into <paramref name="cs"/>: canonical when the
    /// target is 64-bit code, else within the limit (#GP(0)).</summary>
    private static bool CheckFarOffset(X86Cpu c, in Segment cs, ulong offset, int opSize, out ulong ip)
    {
        ip = MaskIp(offset, opSize);
        bool to64 = c.IsLongMode && cs.Long;
        if (to64 ? !X86Cpu.IsCanonical(ip) : ip > cs.Limit)
        {
            c.RaiseGp0();
            return false;
        }
        return true;
    }

    /// <summary>Loads CS (RPL forced to <paramref name="cpl"/>, accessed set) and RIP.</summary>
    private static void CommitCs(X86Cpu c, Segment cs, ulong desc, int cpl, ulong ip)
    {
        ushort sel = cs.Selector;
        c.SetDescriptorAccessed(sel, desc);
        if (c._abort) return;
        cs.Selector = (ushort)((sel & ~3) | cpl);
        cs.Attributes |= 1;
        c.SetCodeSegment(cs, cpl);
        c.Rip = ip;
        c._stop = true;
    }

    private static void JmpFar(X86Cpu c, ref DecodedInsn i)
    {
        if (!ReadFarPointer(c, ref i, out ushort sel, out ulong off, out int size)) return;
        if (IsRealOrV86(c))
        {
            if (CheckRealTarget(c, off, size, out ulong rip))
                LoadRealCs(c, sel, rip);
            return;
        }
        if (!CheckFarTarget(c, sel, out var cs, out ulong desc)) return;
        if (!CheckFarOffset(c, in cs, off, size, out ulong ip)) return;
        CommitCs(c, cs, desc, c.Cpl, ip);
    }

    private static void CallFar(X86Cpu c, ref DecodedInsn i)
    {
        if (!ReadFarPointer(c, ref i, out ushort sel, out ulong off, out int size)) return;
        ulong sp = c.GetGpr(Gpr.Rsp);
        ushort oldCs = c.GetSegment(SegReg.Cs).Selector;
        ulong ret = c.Rip;
        if (IsRealOrV86(c))
        {
            c.Push(oldCs, size);
            c.Push(ret, size);
            if (c._abort || !CheckRealTarget(c, off, size, out ulong rip))
            {
                c.SetGpr(Gpr.Rsp, sp);
                return;
            }
            LoadRealCs(c, sel, rip);
            return;
        }
        // Order of SDM "CALL" for a code segment: descriptor checks, then the stack (#SS), then the offset.
        if (!CheckFarTarget(c, sel, out var cs, out ulong desc)) return;
        c.Push(oldCs, size); // the selector zero-extended to the operand size
        c.Push(ret, size);
        if (c._abort || !CheckFarOffset(c, in cs, off, size, out ulong ip))
        {
            c.SetGpr(Gpr.Rsp, sp);
            return;
        }
        CommitCs(c, cs, desc, c.Cpl, ip);
        if (c._abort) c.SetGpr(Gpr.Rsp, sp);
    }

    public static void Retf(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.StackSize;
        ulong imm = i.Kind0 == OperandKind.Imm ? i.Imm & 0xFFFF : 0;
        ulong offset = c.PeekStack(0, size);
        ushort sel = (ushort)c.PeekStack((ulong)size, 2); // the high bytes of a wider slot are discarded
        if (c._abort) return;
        if (IsRealOrV86(c))
        {
            if (!CheckRealTarget(c, offset, size, out ulong rip)) return;
            c.SetStackPointer(c.StackPointer + (ulong)(2 * size) + imm);
            LoadRealCs(c, sel, rip);
            return;
        }
        if ((sel & ~3) == 0) { c.RaiseGp0(); return; }
        if (!c.ReadDescriptor(sel, out ulong desc)) return;
        var cs = X86Cpu.SegmentFromDescriptor(sel, desc);
        uint err = (uint)(sel & ~3);
        int rpl = sel & 3;
        bool conforming = (cs.Type & 4) != 0;
        if (!cs.IsCode
            || (c.IsLongMode && cs.Long && cs.DefaultBig)
            || rpl < c.Cpl
            || (conforming ? cs.Dpl > rpl : cs.Dpl != rpl))
        {
            c.RaiseFault(Vector.GP, err);
            return;
        }
        if (!cs.Present) { c.RaiseFault(Vector.NP, err); return; }
        if (rpl == c.Cpl)
        {
            if (!CheckFarOffset(c, in cs, offset, size, out ulong ip)) return;
            // The pops use the stack width in force before CS changes (a RET from 64-bit code
            // into compatibility mode still moves all of RSP).
            int width = c.StackAddrSize;
            ulong newSp = c.StackPointer + (ulong)(2 * size) + imm;
            CommitCs(c, cs, desc, rpl, ip);
            if (!c._abort) c.WriteReg(Gpr.Rsp, width, newSp);
            return;
        }
        RetfOuter(c, size, imm, cs, desc, rpl, offset);
    }

    /// <summary>RET to an outer privilege level: SS:RSP follow CS:RIP (and the imm16 parameter
    /// bytes) on the stack; the new SS must be a writable data segment with RPL = DPL = the new
    /// CPL, or in IA-32e mode a null selector when returning to 64-bit code at CPL &lt; 3.</summary>
    private static void RetfOuter(X86Cpu c, int size, ulong imm, Segment cs, ulong desc, int rpl, ulong offset)
    {
        ulong tempSp = c.PeekStack((ulong)(2 * size) + imm, size);
        ushort ssSel = (ushort)c.PeekStack((ulong)(3 * size) + imm, 2);
        if (c._abort) return;
        bool to64 = c.IsLongMode && cs.Long;
        bool nullSs = (ssSel & ~3) == 0;
        Segment ss;
        ulong ssDesc = 0;
        if (nullSs)
        {
            if (!to64 || rpl == 3) { c.RaiseGp0(); return; }
            // An unusable SS, as a null load in 64-bit mode produces (see LoadDataSegment).
            ss = new Segment { Selector = ssSel, Attributes = (ushort)((rpl << 5) | 0x13) };
        }
        else
        {
            if (!c.ReadDescriptor(ssSel, out ssDesc)) return;
            ss = X86Cpu.SegmentFromDescriptor(ssSel, ssDesc);
            uint ssErr = (uint)(ssSel & ~3);
            if ((ssSel & 3) != rpl || ss.IsSystem || ss.IsCode || (ss.Type & 2) == 0 || ss.Dpl != rpl)
            {
                c.RaiseFault(Vector.GP, ssErr);
                return;
            }
            if (!ss.Present) { c.RaiseFault(Vector.SS, ssErr); return; }
        }
        if (!CheckFarOffset(c, in cs, offset, size, out ulong ip)) return;
        if (!nullSs)
        {
            c.SetDescriptorAccessed(ssSel, ssDesc);
            if (c._abort) return;
            ss.Attributes |= 1;
        }
        CommitCs(c, cs, desc, rpl, ip);
        if (c._abort) return;
        c.SetSegment(SegReg.Ss, ss);
        // ESP ← tempESP in the operand size, then the parameter bytes are released again on the
        // new stack, in its address size.
        c.WriteReg(Gpr.Rsp, size, tempSp);
        c.SetStackPointer(c.StackPointer + imm);
        c.NullOuterDataSegments();
    }
}
