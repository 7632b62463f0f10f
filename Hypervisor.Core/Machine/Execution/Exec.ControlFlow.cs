using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>Near JMP/Jcc/CALL/RET, LOOP/LOOPE/LOOPNE and JCXZ/JECXZ/JRCXZ (SDM vol. 2 "Operation"
/// of each). A target is masked to the operand size and checked (CS limit, or canonical form in
/// 64-bit mode) before anything changes, so a faulting branch leaves RIP, RSP and RCX as they were.
/// CALL and RET also drive the return address predictor.</summary>
internal static unsafe partial class Exec
{
    public static void Jmp(X86Cpu c, ref DecodedInsn i)
    {
        if (IsFarJmp(i.Code))
        {
            JmpFar(c, ref i);
            return;
        }
        ulong target = i.Kind0 == OperandKind.Imm ? i.Imm : c.ReadOp0(ref i);
        if (c._abort) return;
        c.SetBranchTarget(target, i.OpSize);
    }

    public static void Jcc(X86Cpu c, ref DecodedInsn i)
    {
        if (c.Condition(i.Cond))
            c.SetBranchTarget(i.Imm, i.OpSize);
    }

    public static void Call(X86Cpu c, ref DecodedInsn i)
    {
        if (IsFarCall(i.Code))
        {
            CallFar(c, ref i);
            return;
        }
        // CALL r/m reads its operand before RSP moves (CALL [RSP] uses the old RSP).
        ulong target = i.Kind0 == OperandKind.Imm ? i.Imm : c.ReadOp0(ref i);
        if (c._abort) return;
        int size = i.StackSize;
        ulong ret = c.Rip;
        if (!c.SetBranchTarget(target, size)) return;
        c.Push(ret, size);
        if (c._abort)
        {
            c.Rip = ret;
            return;
        }
        c.Rap.Call(ret, c.CurrentRapDomain);
    }

    public static void Ret(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.StackSize;
        ulong target = c.PeekStack(0, size);
        if (c._abort) return;
        if (!c.SetBranchTarget(target, size)) return;
        // RET imm16 releases imm16 more bytes, in the stack address size.
        c.SetStackPointer(c.StackPointer + (ulong)size + (i.Kind0 == OperandKind.Imm ? i.Imm & 0xFFFF : 0));
        c.Rap.Return(c.Rip, c.CurrentRapDomain);
    }

    // ---- LOOPcc and JrCXZ: the counter is CX, ECX or RCX by address size (DecodedInsn.AddrSize) ----

    public static void Loop(X86Cpu c, ref DecodedInsn i) => EmitLoop(c, ref i, LoopKind.Always);
    public static void Loope(X86Cpu c, ref DecodedInsn i) => EmitLoop(c, ref i, LoopKind.WhileZero);
    public static void Loopne(X86Cpu c, ref DecodedInsn i) => EmitLoop(c, ref i, LoopKind.WhileNotZero);

    private enum LoopKind : byte { Always, WhileZero, WhileNotZero }

    private static void EmitLoop(X86Cpu c, ref DecodedInsn i, LoopKind kind)
    {
        int a = i.AddrSize;
        ulong count = (c.ReadReg(Gpr.Rcx, a) - 1) & X86Cpu.SizeMask(a);
        bool branch = count != 0 && kind switch
        {
            LoopKind.WhileZero => c.GetZf(),
            LoopKind.WhileNotZero => !c.GetZf(),
            _ => true,
        };
        // The target is checked before the count is written: a #GP leaves RCX unchanged.
        if (branch && !c.SetBranchTarget(i.Imm, i.OpSize)) return;
        c.WriteReg(Gpr.Rcx, a, count);
    }

    /// <summary>JCXZ, JECXZ and JRCXZ: one executor, the register width is the address size.</summary>
    public static void Jrcxz(X86Cpu c, ref DecodedInsn i)
    {
        if (c.ReadReg(Gpr.Rcx, i.AddrSize) == 0)
            c.SetBranchTarget(i.Imm, i.OpSize);
    }
}
