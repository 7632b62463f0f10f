using Iced.Intel;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>Descriptor-table instructions: LGDT/LIDT/SGDT/SIDT, LLDT/SLDT, LTR/STR, and the
/// selector probes LAR, LSL, VERR, VERW and ARPL (SDM vol. 2, each instruction's "Operation").</summary>
internal static unsafe partial class Exec
{
    /// <summary>Operand size of LGDT/LIDT/SGDT/SIDT: 16 keeps a 24-bit base on loads, 64 in 64-bit mode.</summary>
    private static int TableOperandSize(Code code) => code switch
    {
        Code.Lgdt_m1632_16 or Code.Lidt_m1632_16 or Code.Sgdt_m1632_16 or Code.Sidt_m1632_16 => 2,
        Code.Lgdt_m1664 or Code.Lidt_m1664 or Code.Sgdt_m1664 or Code.Sidt_m1664 => 8,
        _ => 4,
    };

    public static void Lgdt(X86Cpu c, ref DecodedInsn i) => LoadTableRegister(c, ref i, ref c.Gdtr);
    public static void Lidt(X86Cpu c, ref DecodedInsn i) => LoadTableRegister(c, ref i, ref c.Idtr);
    public static void Sgdt(X86Cpu c, ref DecodedInsn i) => StoreTableRegister(c, ref i, c.Gdtr);
    public static void Sidt(X86Cpu c, ref DecodedInsn i) => StoreTableRegister(c, ref i, c.Idtr);

    private static void LoadTableRegister(X86Cpu c, ref DecodedInsn i, ref DescriptorTable table)
    {
        if (!RequireCpl0(c)) return;
        int opSize = TableOperandSize(i.Code);
        ulong ea = c.EffectiveAddress(ref i);
        ulong limit = c.ReadMem(i.Seg, ea, 2);
        ulong baseAddr = c.ReadMem(i.Seg, (ea + 2) & X86Cpu.SizeMask(i.AddrSize), opSize == 8 ? 8 : 4);
        if (c._abort) return;
        if (opSize == 2)
            baseAddr &= 0xFFFFFF;
        if (opSize == 8 && !X86Cpu.IsCanonical(baseAddr))
        {
            c.RaiseGp0();
            return;
        }
        table.Limit = (ushort)limit;
        table.Base = baseAddr;
    }

    /// <summary>SGDT/SIDT store the limit and the base (32 bits, 64 in 64-bit mode); allowed at any
    /// CPL because UMIP is not enumerated. The whole store is proven possible first.</summary>
    private static void StoreTableRegister(X86Cpu c, ref DecodedInsn i, DescriptorTable table)
    {
        int baseSize = TableOperandSize(i.Code) == 8 ? 8 : 4;
        ulong ea = c.EffectiveAddress(ref i);
        if (!ProbeStore(c, ref i, ea, 2 + baseSize)) return;
        c.WriteMem(i.Seg, ea, 2, table.Limit);
        c.WriteMem(i.Seg, (ea + 2) & X86Cpu.SizeMask(i.AddrSize), baseSize, table.Base);
    }

    /// <summary>Segment checks and translation of a multi-part store before any part is written.</summary>
    private static bool ProbeStore(X86Cpu c, ref DecodedInsn i, ulong ea, int bytes)
    {
        ulong linear = c.Linear(i.Seg, ea, bytes, true);
        if (c._abort) return false;
        return c.ProbeWrite(linear, bytes);
    }

    /// <summary>LLDT, SLDT, LTR, STR, LAR, LSL, VERR, VERW and ARPL do not exist in real-address
    /// or virtual-8086 mode (#UD).</summary>
    private static bool RequireProtectedNotV86(X86Cpu c)
    {
        if (c.IsProtectedMode && !c.IsV86Mode) return true;
        c.RaiseUd();
        return false;
    }

    public static void Lldt(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireProtectedNotV86(c) || !RequireCpl0(c)) return;
        ulong sel = c.ReadOperand(ref i, i.Kind0, i.Reg0, 2);
        if (c._abort) return;
        c.LoadLdtr((ushort)sel);
    }

    public static void Ltr(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireProtectedNotV86(c) || !RequireCpl0(c)) return;
        ulong sel = c.ReadOperand(ref i, i.Kind0, i.Reg0, 2);
        if (c._abort) return;
        c.LoadTr((ushort)sel);
    }

    public static void Sldt(X86Cpu c, ref DecodedInsn i) => StoreSelector(c, ref i, SegReg.Ldtr);
    public static void Str(X86Cpu c, ref DecodedInsn i) => StoreSelector(c, ref i, SegReg.Tr);

    /// <summary>SLDT/STR: 16 bits to memory, zero-extended to the operand size in a register.</summary>
    private static void StoreSelector(X86Cpu c, ref DecodedInsn i, int seg)
    {
        if (!RequireProtectedNotV86(c)) return;
        int size = i.Kind0 == OperandKind.Mem ? 2 : i.OpSize;
        c.WriteOperand(ref i, i.Kind0, i.Reg0, size, c.GetSegment(seg).Selector);
    }

    private static void SetZf(X86Cpu c, bool zf) => c.SetFlags(RFlags.Zf, zf ? RFlags.Zf : 0);

    /// <summary>Reads the selector operand of LAR/LSL/VERR/VERW and its descriptor. Returns false
    /// when the instruction is over (a fault is pending, or ZF was cleared for an unusable selector).</summary>
    private static bool ProbeSelector(X86Cpu c, ref DecodedInsn i, OperandKind kind, byte reg, out ushort selector, out ulong descriptor)
    {
        descriptor = 0;
        selector = (ushort)c.ReadOperand(ref i, kind, reg, 2);
        if (c._abort) return false;
        int r = c.ProbeDescriptor(selector, out descriptor);
        if (r < 0) return false;
        if (r == 0) SetZf(c, false);
        return r > 0;
    }

    /// <summary>Data segments, non-conforming code and system descriptors must have DPL ≥ CPL and DPL ≥ RPL.</summary>
    private static bool IsVisible(X86Cpu c, ushort selector, in Segment s)
    {
        bool conformingCode = !s.IsSystem && s.IsCode && (s.Type & 4) != 0;
        return conformingCode || (s.Dpl >= c.Cpl && s.Dpl >= (selector & 3));
    }

    /// <summary>LAR: the access rights (descriptor bits 55:40, bits 23:20 and 15:8 of the high dword).
    /// System types it accepts differ in IA-32e mode: LDT, available/busy TSS and call gate only.</summary>
    public static void Lar(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireProtectedNotV86(c)) return;
        if (!ProbeSelector(c, ref i, i.Kind1, i.Reg1, out ushort sel, out ulong d)) return;
        var s = X86Cpu.SegmentFromDescriptor(sel, d);
        bool typeOk = !s.IsSystem || (c.IsLongMode ? s.Type is 2 or 9 or 0xB or 0xC : s.Type is 1 or 2 or 3 or 4 or 5 or 9 or 0xB or 0xC);
        if (!typeOk || !IsVisible(c, sel, s))
        {
            SetZf(c, false);
            return;
        }
        ulong rights = (d >> 32) & (i.OpSize == 2 ? 0xFF00UL : 0x00F0FF00UL);
        c.WriteReg(i.Reg0, i.OpSize, rights);
        SetZf(c, true);
    }

    /// <summary>LSL: the byte-granular segment limit (scaled when G=1).</summary>
    public static void Lsl(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireProtectedNotV86(c)) return;
        if (!ProbeSelector(c, ref i, i.Kind1, i.Reg1, out ushort sel, out ulong d)) return;
        var s = X86Cpu.SegmentFromDescriptor(sel, d);
        bool typeOk = !s.IsSystem || (c.IsLongMode ? s.Type is 2 or 9 or 0xB : s.Type is 1 or 2 or 3 or 9 or 0xB);
        if (!typeOk || !IsVisible(c, sel, s))
        {
            SetZf(c, false);
            return;
        }
        c.WriteReg(i.Reg0, i.OpSize, s.Limit & X86Cpu.SizeMask(i.OpSize));
        SetZf(c, true);
    }

    /// <summary>VERR: ZF=1 when the segment is readable at CPL and RPL (data, or readable code).</summary>
    public static void Verr(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireProtectedNotV86(c)) return;
        if (!ProbeSelector(c, ref i, i.Kind0, i.Reg0, out ushort sel, out ulong d)) return;
        var s = X86Cpu.SegmentFromDescriptor(sel, d);
        bool readable = !s.IsSystem && (!s.IsCode || (s.Type & 2) != 0);
        SetZf(c, readable && IsVisible(c, sel, s));
    }

    /// <summary>VERW: ZF=1 when the segment is a writable data segment at CPL and RPL.</summary>
    public static void Verw(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireProtectedNotV86(c)) return;
        if (!ProbeSelector(c, ref i, i.Kind0, i.Reg0, out ushort sel, out ulong d)) return;
        var s = X86Cpu.SegmentFromDescriptor(sel, d);
        bool writable = !s.IsSystem && !s.IsCode && (s.Type & 2) != 0;
        SetZf(c, writable && IsVisible(c, sel, s));
    }

    /// <summary>ARPL: raises the destination selector's RPL to the source's (ZF=1), else ZF=0.
    /// Its opcode is MOVSXD in 64-bit mode, so the decoder never produces it there.</summary>
    public static void Arpl(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireProtectedNotV86(c)) return;
        ulong dest = c.ReadOperand(ref i, i.Kind0, i.Reg0, 2);
        if (c._abort) return;
        ulong src = c.ReadReg(i.Reg1, 2);
        if ((dest & 3) < (src & 3))
        {
            c.WriteOperand(ref i, i.Kind0, i.Reg0, 2, (dest & ~3UL) | (src & 3));
            if (c._abort) return;
            SetZf(c, true);
        }
        else
        {
            SetZf(c, false);
        }
    }
}
