using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>PUSH/POP, PUSHA/POPA, ENTER/LEAVE (SDM vol. 2). Pushes and pops move by the operand
/// size (DecodedInsn.StackSize) through SS in the stack address size; every memory access comes
/// before any register changes, so a fault leaves the instruction undone.</summary>
internal static unsafe partial class Exec
{
    public static void Push(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.StackSize;
        // The operand is read first: PUSH RSP pushes the old value, PUSH [RSP] addresses with it.
        // A segment register is pushed zero-extended to the operand size (as QEMU stores it).
        ulong v = i.Kind0 == OperandKind.Imm ? i.Imm : c.ReadOperand(ref i, i.Kind0, i.Reg0, i.Kind0 == OperandKind.Seg ? 2 : size);
        if (c._abort) return;
        c.Push(v, size);
    }

    public static void Pop(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.StackSize;
        int width = c.StackAddrSize;
        ulong sp = c.StackPointer;
        ulong v = c.PeekStack(0, size);
        if (c._abort) return;
        if (i.Kind0 == OperandKind.Seg)
        {
            if (!c.LoadDataSegment(i.Reg0, (ushort)v)) return;
            // POP SS may change the stack width: the increment uses the width it popped with.
            c.WriteReg(Gpr.Rsp, width, sp + (ulong)size);
            c._stop |= i.Reg0 == SegReg.Ss;
            return;
        }
        // A memory destination is addressed with the incremented RSP; POP RSP leaves the popped value.
        c.SetStackPointer(sp + (ulong)size);
        c.WriteOperand(ref i, i.Kind0, i.Reg0, size, v);
        if (c._abort)
            c.SetStackPointer(sp);
    }

    // ---- PUSHA/PUSHAD, POPA/POPAD (invalid in 64-bit mode: the decoder never produces them there) ----

    public static void Pusha(X86Cpu c, ref DecodedInsn i) => EmitPusha(c, 2);
    public static void Pushad(X86Cpu c, ref DecodedInsn i) => EmitPusha(c, 4);

    private static void EmitPusha(X86Cpu c, int size)
    {
        ulong rsp = c.GetGpr(Gpr.Rsp);
        // AX CX DX BX, the SP value before the first push, BP SI DI.
        for (int r = Gpr.Rax; r <= Gpr.Rdi; r++)
        {
            c.Push(X86Cpu.SizeMask(size) & (r == Gpr.Rsp ? rsp : c.GetGpr(r)), size);
            if (c._abort)
            {
                c.SetGpr(Gpr.Rsp, rsp);
                return;
            }
        }
    }

    public static void Popa(X86Cpu c, ref DecodedInsn i) => EmitPopa(c, 2);
    public static void Popad(X86Cpu c, ref DecodedInsn i) => EmitPopa(c, 4);

    private static void EmitPopa(X86Cpu c, int size)
    {
        ulong s = (ulong)size;
        ulong di = c.PeekStack(0, size), si = c.PeekStack(s, size), bp = c.PeekStack(2 * s, size);
        // The SP slot (3) is skipped, not loaded.
        ulong bx = c.PeekStack(4 * s, size), dx = c.PeekStack(5 * s, size), cx = c.PeekStack(6 * s, size), ax = c.PeekStack(7 * s, size);
        if (c._abort) return;
        c.WriteReg(Gpr.Rdi, size, di);
        c.WriteReg(Gpr.Rsi, size, si);
        c.WriteReg(Gpr.Rbp, size, bp);
        c.WriteReg(Gpr.Rbx, size, bx);
        c.WriteReg(Gpr.Rdx, size, dx);
        c.WriteReg(Gpr.Rcx, size, cx);
        c.WriteReg(Gpr.Rax, size, ax);
        c.SetStackPointer(c.StackPointer + 8 * s);
    }

    // ---- ENTER / LEAVE ----

    /// <summary>ENTER imm16, imm8 (SDM "ENTER"): push BP, copy nesting level − 1 frame pointers
    /// from the caller's display, push the new frame pointer, then allocate imm16 bytes.</summary>
    public static void Enter(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.StackSize;
        ulong s = (ulong)size;
        int level = (int)(i.Imm2 & 31);
        ulong alloc = i.Imm & 0xFFFF;
        int width = c.StackAddrSize;
        ulong smask = X86Cpu.SizeMask(width);
        ulong frame = (c.StackPointer - s) & smask;
        c.WriteMem(SegReg.Ss, frame, size, c.GetGpr(Gpr.Rbp));
        if (c._abort) return;
        ulong top = frame;
        if (level > 0)
        {
            // The display is read through BP in the stack address size.
            ulong bp = c.ReadReg(Gpr.Rbp, width);
            for (int k = 1; k < level; k++)
            {
                bp = (bp - s) & smask;
                ulong v = c.ReadMem(SegReg.Ss, bp, size);
                if (c._abort) return;
                top = (top - s) & smask;
                c.WriteMem(SegReg.Ss, top, size, v);
                if (c._abort) return;
            }
            top = (top - s) & smask;
            c.WriteMem(SegReg.Ss, top, size, frame);
            if (c._abort) return;
        }
        ulong newSp = (top - alloc) & smask;
        // The new stack top must be writable (#SS or #PF otherwise) although nothing is stored
        // there: the processor probes it, and Bochs models the same check.
        ulong lin = c.Linear(SegReg.Ss, newSp, size, write: true);
        if (c._abort || !c.ProbeWrite(lin, size)) return;
        // FrameTemp is RSP after the first push: with a 16-bit stack only SP moved.
        ulong frameTemp = (c.GetGpr(Gpr.Rsp) & ~smask) | frame;
        c.WriteReg(Gpr.Rbp, size, frameTemp);
        c.SetStackPointer(newSp);
    }

    /// <summary>LEAVE: SP ← BP in the stack address size, then BP ← Pop() in the operand size.</summary>
    public static void Leave(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.StackSize;
        int width = c.StackAddrSize;
        ulong bp = c.ReadReg(Gpr.Rbp, width);
        ulong v = c.ReadMem(SegReg.Ss, bp, size);
        if (c._abort) return;
        c.WriteReg(Gpr.Rsp, width, bp + (ulong)size);
        c.WriteReg(Gpr.Rbp, size, v);
    }

    // ---- PUSHF/PUSHFD/PUSHFQ, POPF/POPFD/POPFQ (SDM "PUSHF", "POPF" Operation) ----

    public static void Pushf(X86Cpu c, ref DecodedInsn i) => EmitPushf(c, 2);
    public static void Pushfd(X86Cpu c, ref DecodedInsn i) => EmitPushf(c, 4);
    public static void Pushfq(X86Cpu c, ref DecodedInsn i) => EmitPushf(c, 8);

    private static void EmitPushf(X86Cpu c, int size)
    {
        ulong f = c.GetRFlags();
        if (c.IsV86Mode && (f & RFlags.Iopl) != RFlags.Iopl)
        {
            // Virtual-8086 mode with IOPL < 3 traps to the monitor, except a 16-bit PUSHF under
            // CR4.VME, which shows VIF in place of IF and IOPL as 3.
            if ((c.Cr4 & Cpu.Cr4.Vme) == 0 || size != 2)
            {
                c.RaiseGp0();
                return;
            }
            f = (f & ~RFlags.If) | ((f & RFlags.Vif) != 0 ? RFlags.If : 0) | RFlags.Iopl;
        }
        // The image never shows VM or RF.
        c.Push(f & ~(RFlags.Vm | RFlags.Rf), size);
    }

    public static void Popf(X86Cpu c, ref DecodedInsn i) => EmitPopf(c, 2);
    public static void Popfd(X86Cpu c, ref DecodedInsn i) => EmitPopf(c, 4);
    public static void Popfq(X86Cpu c, ref DecodedInsn i) => EmitPopf(c, 8);

    /// <summary>Flags any POPF may change. IF and IOPL depend on privilege; VM, VIP and VIF are
    /// never loaded from the image (they stay as they are), RF is cleared by the 32/64-bit forms.</summary>
    private const ulong PopfAlways = RFlags.Arith | RFlags.Tf | RFlags.Df | RFlags.Nt | RFlags.Ac | RFlags.Id;

    private static void EmitPopf(X86Cpu c, int size)
    {
        ulong v = c.PeekStack(0, size);
        if (c._abort) return;
        ulong old = c.GetRFlags();
        int iopl = (int)((old >> 12) & 3);
        ulong change = PopfAlways;
        bool vme = false;
        if (!c.IsProtectedMode)
        {
            change |= RFlags.If | RFlags.Iopl;
        }
        else if (!c.IsV86Mode)
        {
            if (c.Cpl == 0) change |= RFlags.Iopl;
            if (c.Cpl <= iopl) change |= RFlags.If;
        }
        else if (iopl == 3)
        {
            change |= RFlags.If;
        }
        else if ((c.Cr4 & Cpu.Cr4.Vme) != 0 && size == 2)
        {
            // VME: the image's IF goes to VIF; setting TF, or IF while VIP is pending, traps.
            if ((v & RFlags.Tf) != 0 || ((v & RFlags.If) != 0 && (old & RFlags.Vip) != 0))
            {
                c.RaiseGp0();
                return;
            }
            vme = true;
            v = (v & ~RFlags.Vif) | ((v & RFlags.If) != 0 ? RFlags.Vif : 0);
        }
        else
        {
            c.RaiseGp0();
            return;
        }
        if (size == 2)
            change &= 0xFFFF; // the 16-bit form loads bits 15:0 only
        if (vme)
            change = (change & ~RFlags.If) | RFlags.Vif;
        ulong nf = (old & ~change) | (v & change);
        if (size != 2)
            nf &= ~RFlags.Rf;
        c.SetRFlags(nf);
        c.SetStackPointer(c.StackPointer + (ulong)size);
        // Single-step is checked where a block starts: a change of TF must end this one.
        if (((old ^ nf) & RFlags.Tf) != 0)
            c._stop = true;
    }
}
