using System.Runtime.InteropServices;
using Iced.Intel;
using Hypervisor.Core.Machine.Cpu;

namespace Hypervisor.Core.Machine.Decoding;

/// <summary>How an operand of a decoded instruction is reached.</summary>
public enum OperandKind : byte
{
    None,
    /// <summary>A general register, low part of the operand size.</summary>
    Reg,
    /// <summary>AH, CH, DH or BH: bits 15:8 of register 0..3.</summary>
    RegHigh8,
    Mem,
    Imm,
    /// <summary>A segment register (number in <see cref="SegReg"/>).</summary>
    Seg,
    Cr,
    Dr,
}

/// <summary>
/// One instruction decoded once by Iced and reduced to what the executors need, so executing it
/// never touches the decoder again. Blocks hold arrays of these; executors get them by reference.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct DecodedInsn
{
    public delegate* managed<X86Cpu, ref DecodedInsn, void> Handler;
    /// <summary>Offset of the instruction in CS (RIP/EIP/IP).</summary>
    public ulong Ip;
    public ulong NextIp;
    /// <summary>First immediate, near branch target or far branch offset.</summary>
    public ulong Imm;
    /// <summary>Second immediate (ENTER's nesting level, far branch selector).</summary>
    public ulong Imm2;
    /// <summary>Displacement; for RIP-relative operands the absolute offset already resolved.</summary>
    public ulong Disp;
    public Code Code;
    public Mnemonic Mnemonic;
    public byte Length;
    /// <summary>Operand size in bytes (1, 2, 4, 8).</summary>
    public byte OpSize;
    /// <summary>Size in bytes of the source operand where it differs (MOVZX/MOVSX, shifts by CL...).</summary>
    public byte SrcSize;
    /// <summary>Address size in bytes (2, 4, 8).</summary>
    public byte AddrSize;
    public OperandKind Kind0, Kind1, Kind2;
    public byte Reg0, Reg1, Reg2;
    /// <summary>Memory operand base and index register numbers, or <see cref="NoReg"/>.</summary>
    public byte Base, Index;
    public byte Scale;
    /// <summary>Effective segment of the memory operand (after overrides).</summary>
    public byte Seg;
    /// <summary>0 none, 1 REP/REPE, 2 REPNE.</summary>
    public byte Rep;
    /// <summary>Condition code (SDM tttn encoding) for Jcc/SETcc/CMOVcc/LOOPcc.</summary>
    public byte Cond;
    public byte Lock;
    /// <summary>Stack operand size in bytes for instructions that push or pop.</summary>
    public byte StackSize;
    /// <summary>Position in its block: instructions before it in the block retired before it.</summary>
    public ushort BlockIndex;

    public const byte NoReg = 0xFF;
}

/// <summary>Why the CPU stopped running guest code.</summary>
public enum CpuExitReason
{
    None,
    /// <summary>HLT executed.</summary>
    Hlt,
    /// <summary>Port I/O: OUT already done (RIP advanced); IN waits for <see cref="X86Cpu.CompleteIoIn"/>.</summary>
    Io,
    /// <summary>An access to guest physical space no slot covers.</summary>
    Mmio,
    /// <summary>Triple fault.</summary>
    Shutdown,
    /// <summary>The instruction is not implemented by this CPU.</summary>
    Unimplemented,
    /// <summary>The CPU met a state it cannot handle (unsupported feature).</summary>
    InternalError,
    /// <summary>The instruction budget given to <see cref="X86Cpu.Run"/> is used up.</summary>
    InstructionLimit,
    /// <summary>The host asked the CPU to stop (<see cref="X86Cpu.RequestStop"/>).</summary>
    StopRequested,
    /// <summary>Guest mode: an intercepted event; details in <see cref="X86Cpu.LastIntercept"/>.</summary>
    Intercept,
}

/// <summary>The record the CPU leaves when it stops.</summary>
public struct CpuExit
{
    public CpuExitReason Reason;
    public ushort Port;
    /// <summary>Access size in bytes.</summary>
    public byte Size;
    public bool IsWrite;
    /// <summary>OUT / MMIO write data.</summary>
    public ulong Data;
    /// <summary>MMIO guest physical address, or the address of the instruction for reports.</summary>
    public ulong Address;
    /// <summary>A one-line human-readable explanation (shutdown reason, unimplemented instruction).</summary>
    public string? Message;

    public override readonly string ToString() => Reason switch
    {
        CpuExitReason.Io => $"io {(IsWrite ? "out" : "in")} port=0x{Port:x} size={Size} data=0x{Data:x}",
        CpuExitReason.Mmio => $"mmio {(IsWrite ? "write" : "read")} gpa=0x{Address:x} size={Size} data=0x{Data:x}",
        _ => Message is null ? Reason.ToString() : $"{Reason}: {Message}",
    };
}
