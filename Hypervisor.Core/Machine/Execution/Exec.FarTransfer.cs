using Iced.Intel;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>Far JMP/CALL/RET: CS loads with the privilege checks of SDM vol. 2 (JMP, CALL, RET "Operation").</summary>
internal static unsafe partial class Exec
{
    private static bool IsFarJmp(Code code) => code is Code.Jmp_ptr1616 or Code.Jmp_ptr1632 or Code.Jmp_m1616 or Code.Jmp_m1632 or Code.Jmp_m1664;
    private static bool IsFarCall(Code code) => code is Code.Call_ptr1616 or Code.Call_ptr1632 or Code.Call_m1616 or Code.Call_m1632 or Code.Call_m1664;
    private static bool IsFarRet(Code code) => code is Code.Retfw or Code.Retfd or Code.Retfq or Code.Retfw_imm16 or Code.Retfd_imm16 or Code.Retfq_imm16;

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

    /// <summary>Checks a code segment as the target of a far JMP/CALL (no gates): conforming needs
    /// DPL ≤ CPL, non-conforming RPL ≤ CPL and DPL = CPL; present; offset within the limit.</summary>
    private static bool CheckFarTarget(X86Cpu c, ushort selector, ulong offset, out Segment cs, out ulong desc)
    {
        cs = default;
        desc = 0;
        if ((selector & ~3) == 0) { c.RaiseGp0(); return false; }
        if (!c.ReadDescriptor(selector, out desc)) return false;
        cs = X86Cpu.SegmentFromDescriptor(selector, desc);
        uint err = (uint)(selector & ~3);
        if (cs.IsSystem)
        {
            c.Fail(CpuExitReason.Unimplemented, $"far transfer through a system descriptor (type {cs.Type}, selector 0x{selector:x4}): call gates and task switches are not supported");
            return false;
        }
        if (!cs.IsCode) { c.RaiseFault(Vector.GP, err); return false; }
        bool conforming = (cs.Type & 4) != 0;
        if (conforming ? cs.Dpl > c.Cpl : (selector & 3) > c.Cpl || cs.Dpl != c.Cpl)
        {
            c.RaiseFault(Vector.GP, err);
            return false;
        }
        if (!cs.Present) { c.RaiseFault(Vector.NP, err); return false; }
        bool to64 = c.IsLongMode && cs.Long;
        if (to64 ? !X86Cpu.IsCanonical(offset) : offset > cs.Limit) { c.RaiseGp0(); return false; }
        cs.Selector = (ushort)((selector & ~3) | c.Cpl);
        cs.Attributes |= 1;
        return true;
    }

    private static void FarJumpTo(X86Cpu c, ushort selector, ulong offset, int opSize)
    {
        if (!c.IsProtectedMode || c.IsV86Mode)
        {
            var cs = c.GetSegment(SegReg.Cs);
            cs.Selector = selector;
            cs.Base = (ulong)selector << 4;
            c.SetCodeSegment(cs, c.Cpl);
            c.Rip = offset & (opSize == 2 ? 0xFFFFUL : 0xFFFFFFFFUL);
            c._stop = true;
            return;
        }
        if (!CheckFarTarget(c, selector, offset, out var seg, out ulong desc)) return;
        c.SetDescriptorAccessed(selector, desc);
        if (c._abort) return;
        c.SetCodeSegment(seg, c.Cpl);
        c.Rip = c.CodeBits == 64 ? offset : offset & (opSize == 2 ? 0xFFFFUL : 0xFFFFFFFFUL);
        c._stop = true;
    }

    private static void JmpFar(X86Cpu c, ref DecodedInsn i)
    {
        if (!ReadFarPointer(c, ref i, out ushort sel, out ulong off, out int size)) return;
        FarJumpTo(c, sel, off, size);
    }

    private static void CallFar(X86Cpu c, ref DecodedInsn i)
    {
        if (!ReadFarPointer(c, ref i, out ushort sel, out ulong off, out int size)) return;
        ulong sp = c.GetGpr(Gpr.Rsp);
        ushort oldCs = c.GetSegment(SegReg.Cs).Selector;
        ulong ret = c.Rip;
        // Both pushes must fit before CS changes.
        c.Push(oldCs, size);
        c.Push(ret, size);
        if (c._abort) { c.SetGpr(Gpr.Rsp, sp); return; }
        FarJumpTo(c, sel, off, size);
        if (c._abort) c.SetGpr(Gpr.Rsp, sp);
    }

    private static void RetFar(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.StackSize;
        ulong offset = c.PeekStack(0, size);
        ushort sel = (ushort)c.PeekStack((ulong)size, 2);
        if (c._abort) return;
        ulong imm = i.Kind0 == OperandKind.Imm ? i.Imm & 0xFFFF : 0;
        if (!c.IsProtectedMode || c.IsV86Mode)
        {
            c.SetStackPointer(c.StackPointer + (ulong)(2 * size) + imm);
            FarJumpTo(c, sel, offset, size);
            return;
        }
        int rpl = sel & 3;
        if (rpl < c.Cpl) { c.RaiseFault(Vector.GP, (uint)(sel & ~3)); return; }
        if (rpl == c.Cpl)
        {
            ulong sp = c.GetGpr(Gpr.Rsp);
            c.SetStackPointer(c.StackPointer + (ulong)(2 * size) + imm);
            FarJumpTo(c, sel, offset, size);
            if (c._abort) c.SetGpr(Gpr.Rsp, sp);
            return;
        }
        // Return to an outer privilege level: SS:RSP follow CS:RIP on the stack.
        ulong newSp = c.PeekStack((ulong)(2 * size) + imm, size);
        ushort newSs = (ushort)c.PeekStack((ulong)(3 * size) + imm, 2);
        if (c._abort) return;
        if ((sel & ~3) == 0) { c.RaiseGp0(); return; }
        if (!c.ReadDescriptor(sel, out ulong desc)) return;
        var cs = X86Cpu.SegmentFromDescriptor(sel, desc);
        uint err = (uint)(sel & ~3);
        bool conforming = (cs.Type & 4) != 0;
        if (!cs.IsCode || (conforming ? cs.Dpl > rpl : cs.Dpl != rpl)) { c.RaiseFault(Vector.GP, err); return; }
        if (!cs.Present) { c.RaiseFault(Vector.NP, err); return; }
        var savedCs = c.GetSegment(SegReg.Cs);
        var savedSs = c.GetSegment(SegReg.Ss);
        int savedCpl = c.Cpl;
        ulong savedRsp = c.GetGpr(Gpr.Rsp);
        cs.Selector = sel;
        cs.Attributes |= 1;
        c.SetCodeSegment(cs, rpl);
        if (!c.LoadDataSegment(SegReg.Ss, newSs))
        {
            c.SetCodeSegment(savedCs, savedCpl);
            c.SetSegment(SegReg.Ss, savedSs);
            c.SetGpr(Gpr.Rsp, savedRsp);
            return;
        }
        c.SetStackPointer(newSp + imm);
        c.Rip = c.CodeBits == 64 ? offset : offset & (size == 2 ? 0xFFFFUL : 0xFFFFFFFFUL);
        c.NullOuterDataSegments();
        c._stop = true;
    }
}
