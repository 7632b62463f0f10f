using System.Runtime.CompilerServices;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>Stack pushes and pops through SS with the stack address size of the current mode.</summary>
public sealed unsafe partial class X86Cpu
{
    internal ulong StackPointer => StackAddrSize switch { 8 => Regs[Gpr.Rsp], 4 => (uint)Regs[Gpr.Rsp], _ => (ushort)Regs[Gpr.Rsp] };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void SetStackPointer(ulong v) => WriteReg(Gpr.Rsp, StackAddrSize, v);

    /// <summary>Pushes <paramref name="size"/> bytes; RSP changes only when the store succeeds.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Push(ulong value, int size)
    {
        ulong sp = (StackPointer - (ulong)size) & SizeMask(StackAddrSize);
        WriteMem(SegReg.Ss, sp, size, value);
        if (!_abort)
            SetStackPointer(sp);
    }

    /// <summary>Pops <paramref name="size"/> bytes; RSP changes only when the load succeeds.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong Pop(int size)
    {
        ulong sp = StackPointer;
        ulong v = ReadMem(SegReg.Ss, sp, size);
        if (!_abort)
            SetStackPointer(sp + (ulong)size);
        return v;
    }

    /// <summary>Reads the stack at RSP + <paramref name="offset"/> without moving RSP (far RET, IRET
    /// read everything first so a fault leaves no trace).</summary>
    internal ulong PeekStack(ulong offset, int size) =>
        ReadMem(SegReg.Ss, (StackPointer + offset) & SizeMask(StackAddrSize), size);
}
