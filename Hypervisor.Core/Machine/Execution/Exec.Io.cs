using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>Port I/O leaves the CPU as an exit: OUT completes first, IN runs again with the value
/// the host supplies (<see cref="X86Cpu.CompleteIoIn"/>). INS and OUTS move one element per exit
/// the same way; a repeated one points RIP back at itself until rCX reaches zero.</summary>
internal static unsafe partial class Exec
{
    public static void Out(X86Cpu c, ref DecodedInsn i)
    {
        ushort port = (ushort)(i.Kind0 == OperandKind.Imm ? i.Imm & 0xFF : c.ReadReg(Gpr.Rdx, 2));
        int size = i.SrcSize != 0 ? i.SrcSize : i.OpSize;
        if (!c.CheckIoPermission(port, size)) return;
        ulong v = c.ReadReg(Gpr.Rax, size);
        c.RequestExit(new CpuExit { Reason = CpuExitReason.Io, Port = port, Size = (byte)size, IsWrite = true, Data = v, Address = i.Ip }, restart: false);
    }

    public static void In(X86Cpu c, ref DecodedInsn i)
    {
        ushort port = (ushort)(i.Kind1 == OperandKind.Imm ? i.Imm & 0xFF : c.ReadReg(Gpr.Rdx, 2));
        int size = i.OpSize;
        if (!c.CheckIoPermission(port, size)) return;
        if (c.TakeIoReplay(out ulong v))
        {
            c.WriteReg(Gpr.Rax, size, v);
            return;
        }
        c.RequestExit(new CpuExit { Reason = CpuExitReason.Io, Port = port, Size = (byte)size, IsWrite = false, Address = i.Ip }, restart: true);
    }

    // ---- OUTS: [seg:rSI] to port DX, one element per exit ----

    public static void Outsb(X86Cpu c, ref DecodedInsn i) => EmitOuts(c, ref i, 1);
    public static void Outsw(X86Cpu c, ref DecodedInsn i) => EmitOuts(c, ref i, 2);
    public static void Outsd(X86Cpu c, ref DecodedInsn i) => EmitOuts(c, ref i, 4);

    private static void EmitOuts(X86Cpu c, ref DecodedInsn i, int size)
    {
        ushort port = (ushort)c.ReadReg(Gpr.Rdx, 2);
        // The I/O permission check comes first, even for a repeat count of zero (as QEMU orders it).
        if (!c.CheckIoPermission(port, size)) return;
        int a = i.AddrSize;
        ulong count = i.Rep != 0 ? c.ReadReg(Gpr.Rcx, a) : 1;
        if (count == 0) return;
        ulong si = c.ReadReg(Gpr.Rsi, a);
        ulong v = c.ReadMem(i.Seg, si, size);
        if (c._abort) return;
        c.WriteReg(Gpr.Rsi, a, si + StringStep(c, size));
        if (i.Rep != 0)
        {
            c.WriteReg(Gpr.Rcx, a, count - 1);
            if (count != 1) c.Rip = i.Ip; // continue with the next element after the exit
        }
        c.RequestExit(new CpuExit { Reason = CpuExitReason.Io, Port = port, Size = (byte)size, IsWrite = true, Data = v, Address = i.Ip }, restart: false);
    }

    // ---- INS: port DX to ES:[rDI]; each element is an IN exit replayed with the host's value ----

    public static void Insb(X86Cpu c, ref DecodedInsn i) => EmitIns(c, ref i, 1);
    public static void Insw(X86Cpu c, ref DecodedInsn i) => EmitIns(c, ref i, 2);
    public static void Insd(X86Cpu c, ref DecodedInsn i) => EmitIns(c, ref i, 4);

    private static void EmitIns(X86Cpu c, ref DecodedInsn i, int size)
    {
        ushort port = (ushort)c.ReadReg(Gpr.Rdx, 2);
        if (!c.CheckIoPermission(port, size)) return;
        int a = i.AddrSize;
        ulong count = i.Rep != 0 ? c.ReadReg(Gpr.Rcx, a) : 1;
        if (count == 0) return;
        ulong di = c.ReadReg(Gpr.Rdi, a);
        // The store must be possible before the port is read: a port read has side effects, so
        // it must not be followed by a fault that makes the guest read the port again.
        ulong lin = c.Linear(SegReg.Es, di, size, write: true);
        if (c._abort || !c.ProbeWrite(lin, size)) return;
        if (!c.TakeIoReplay(out ulong v))
        {
            c.RequestExit(new CpuExit { Reason = CpuExitReason.Io, Port = port, Size = (byte)size, IsWrite = false, Address = i.Ip }, restart: true);
            return;
        }
        c.WriteMem(SegReg.Es, di, size, v & X86Cpu.SizeMask(size));
        if (c._abort) return;
        c.WriteReg(Gpr.Rdi, a, di + StringStep(c, size));
        if (i.Rep != 0)
        {
            c.WriteReg(Gpr.Rcx, a, count - 1);
            if (count != 1)
            {
                c.Rip = i.Ip;
                c._stop = true;
            }
        }
    }
}
