using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>System instructions: HLT, CLI/STI, MOV to and from segment, control and debug registers.</summary>
internal static unsafe partial class Exec
{
    /// <summary>Privileged instructions raise #GP(0) outside ring 0 (real mode is ring 0).</summary>
    internal static bool RequireCpl0(X86Cpu c)
    {
        if (c.Cpl == 0) return true;
        c.RaiseGp0();
        return false;
    }

    public static void Hlt(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireCpl0(c)) return;
        c.RequestExit(new CpuExit { Reason = CpuExitReason.Hlt, Address = i.Ip }, restart: false);
    }

    /// <summary>CLI/STI: allowed when CPL ≤ IOPL (IOPL-sensitive), else #GP(0). VME/PVI are not modelled.</summary>
    private static bool IoplAllows(X86Cpu c)
    {
        if (!c.IsProtectedMode) return true;
        int iopl = (int)((c._rflags >> 12) & 3);
        if (c.Cpl <= iopl && !c.IsV86Mode) return true;
        if (c.IsV86Mode && iopl == 3) return true;
        c.RaiseGp0();
        return false;
    }

    public static void Cli(X86Cpu c, ref DecodedInsn i)
    {
        if (IoplAllows(c)) c._rflags &= ~RFlags.If;
    }

    public static void Sti(X86Cpu c, ref DecodedInsn i)
    {
        if (IoplAllows(c)) c._rflags |= RFlags.If;
    }

    private static void MovSeg(X86Cpu c, ref DecodedInsn i)
    {
        if (i.Kind1 == OperandKind.Seg)
        {
            // MOV r/m, Sreg: a register destination gets the zero-extended selector; memory gets 16 bits.
            ulong sel = c.GetSegment(i.Reg1).Selector;
            int size = i.Kind0 == OperandKind.Mem ? 2 : i.OpSize;
            c.WriteOperand(ref i, i.Kind0, i.Reg0, size, sel);
            return;
        }
        if (i.Reg0 == SegReg.Cs)
        {
            c.RaiseUd();
            return;
        }
        ulong v = c.ReadOperand(ref i, i.Kind1, i.Reg1, 2);
        if (c._abort) return;
        if (c.LoadDataSegment(i.Reg0, (ushort)v) && i.Reg0 == SegReg.Ss)
            c._stop = true;
    }

    private static void MovControl(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireCpl0(c)) return;
        int size = c.CodeBits == 64 ? 8 : 4;
        if (i.Kind0 == OperandKind.Dr || i.Kind1 == OperandKind.Dr)
        {
            MovDebug(c, ref i, size);
            return;
        }
        if (i.Kind1 == OperandKind.Cr)
        {
            ulong v = i.Reg1 switch
            {
                0 => c.Cr0,
                2 => c.Cr2,
                3 => c.Cr3,
                4 => c.Cr4,
                8 => c.Cr8,
                _ => ulong.MaxValue,
            };
            if (v == ulong.MaxValue && i.Reg1 != 2) { c.RaiseUd(); return; }
            c.WriteReg(i.Reg0, size, v);
            return;
        }
        ulong value = c.ReadReg(i.Reg1, size);
        bool ok = i.Reg0 switch
        {
            0 => c.WriteCr0(value),
            2 => SetCr2(c, value),
            3 => c.WriteCr3(value),
            4 => c.WriteCr4(value),
            8 => SetCr8(c, value),
            _ => Ud(c),
        };
        if (!ok && !c._abort) c.RaiseGp0();
        if (!c._abort) c._stop = true; // paging or mode may have changed
    }

    private static bool SetCr2(X86Cpu c, ulong v)
    {
        c.Cr2 = v;
        return true;
    }

    private static bool SetCr8(X86Cpu c, ulong v)
    {
        if ((v & ~0xFUL) != 0) return false;
        c.Cr8 = v;
        return true;
    }

    private static bool Ud(X86Cpu c)
    {
        c.RaiseUd();
        return false;
    }

    private static void MovDebug(X86Cpu c, ref DecodedInsn i, int size)
    {
        int dr = i.Kind0 == OperandKind.Dr ? i.Reg0 : i.Reg1;
        if (dr is 4 or 5)
        {
            if ((c.Cr4 & Cpu.Cr4.De) != 0) { c.RaiseUd(); return; }
            dr += 2; // DR4/DR5 alias DR6/DR7 when CR4.DE = 0
        }
        if (dr > 7) { c.RaiseUd(); return; }
        if (i.Kind1 == OperandKind.Dr)
        {
            c.WriteReg(i.Reg0, size, c.Dr[dr]);
            return;
        }
        ulong v = c.ReadReg(i.Reg1, size);
        if (dr >= 6 && (v >> 32) != 0) { c.RaiseGp0(); return; }
        c.Dr[dr] = dr switch
        {
            6 => (v | 0xFFFF0FF0) & 0xFFFFFFFF,
            7 => (v | 0x400) & ~0xD000UL & 0xFFFFFFFF,
            _ => v,
        };
    }
}
