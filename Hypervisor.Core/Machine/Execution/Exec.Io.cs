using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>Port I/O leaves the CPU as an exit: OUT completes first, IN runs again with the value
/// the host supplies (<see cref="X86Cpu.CompleteIoIn"/>).</summary>
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
}
