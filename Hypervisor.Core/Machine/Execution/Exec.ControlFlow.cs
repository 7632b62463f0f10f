using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>Near JMP/Jcc/CALL/RET. CALL and RET also drive the return address predictor.</summary>
internal static unsafe partial class Exec
{
    public static void Jmp(X86Cpu c, ref DecodedInsn i)
    {
        if (i.Kind0 == OperandKind.Imm && i.Imm2 != 0 || IsFarJmp(i.Code))
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
            c.Rip = i.Imm;
    }

    public static void Call(X86Cpu c, ref DecodedInsn i)
    {
        if (IsFarCall(i.Code))
        {
            CallFar(c, ref i);
            return;
        }
        ulong target = i.Kind0 == OperandKind.Imm ? i.Imm : c.ReadOp0(ref i);
        if (c._abort) return;
        int size = i.StackSize;
        ulong ret = c.Rip;
        ulong rip = c.Rip;
        if (!c.SetBranchTarget(target, size)) return;
        c.Push(ret, size);
        if (c._abort)
        {
            c.Rip = rip;
            return;
        }
        c.Rap.Call(ret, c.CurrentRapDomain);
    }

    public static void Ret(X86Cpu c, ref DecodedInsn i)
    {
        if (IsFarRet(i.Code))
        {
            RetFar(c, ref i);
            return;
        }
        int size = i.StackSize;
        ulong target = c.PeekStack(0, size);
        if (c._abort) return;
        if (!c.SetBranchTarget(target, size)) return;
        c.SetStackPointer(c.StackPointer + (ulong)size + (i.Kind0 == OperandKind.Imm ? i.Imm & 0xFFFF : 0));
        c.Rap.Return(target, c.CurrentRapDomain);
    }
}
