using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>PUSH/POP and the other stack instructions.</summary>
internal static unsafe partial class Exec
{
    public static void Push(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.StackSize;
        ulong v = i.Kind0 == OperandKind.Imm ? i.Imm : c.ReadOperand(ref i, i.Kind0, i.Reg0, i.Kind0 == OperandKind.Seg ? 2 : size);
        if (c._abort) return;
        c.Push(v, size);
    }

    public static void Pop(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.StackSize;
        ulong sp = c.StackPointer;
        ulong v = c.PeekStack(0, size);
        if (c._abort) return;
        if (i.Kind0 == OperandKind.Seg)
        {
            if (!c.LoadDataSegment(i.Reg0, (ushort)v)) return;
            c.SetStackPointer(sp + (ulong)size);
            c._stop = i.Reg0 == SegReg.Ss; // SS changes the stack size
            return;
        }
        // POP computes a memory destination with the incremented RSP (SDM "POP").
        c.SetStackPointer(sp + (ulong)size);
        c.WriteOperand(ref i, i.Kind0, i.Reg0, size, v);
        if (c._abort)
            c.SetStackPointer(sp);
    }
}
