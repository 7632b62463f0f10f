using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>Type conversion (SDM vol. 1 §7.3.1.5): CBW/CWDE/CDQE sign-extend the accumulator in
/// place; CWD/CDQ/CQO fill DX/EDX/RDX with its sign. No flags. 32-bit writes zero-extend.</summary>
internal static unsafe partial class Exec
{
    public static void Cbw(X86Cpu c, ref DecodedInsn i) => ExtendAccumulator(c, 2);
    public static void Cwde(X86Cpu c, ref DecodedInsn i) => ExtendAccumulator(c, 4);
    public static void Cdqe(X86Cpu c, ref DecodedInsn i) => ExtendAccumulator(c, 8);

    public static void Cwd(X86Cpu c, ref DecodedInsn i) => SignFillDx(c, 2);
    public static void Cdq(X86Cpu c, ref DecodedInsn i) => SignFillDx(c, 4);
    public static void Cqo(X86Cpu c, ref DecodedInsn i) => SignFillDx(c, 8);

    /// <summary>The accumulator of <paramref name="size"/> bytes from its lower half, sign-extended.</summary>
    private static void ExtendAccumulator(X86Cpu c, int size)
    {
        int half = size / 2;
        c.WriteReg(Gpr.Rax, size, X86Cpu.SignExtend(c.ReadReg(Gpr.Rax, half), half));
    }

    private static void SignFillDx(X86Cpu c, int size)
    {
        bool negative = (c.ReadReg(Gpr.Rax, size) & X86Cpu.SignBit(size)) != 0;
        c.WriteReg(Gpr.Rdx, size, negative ? ulong.MaxValue : 0);
    }
}
