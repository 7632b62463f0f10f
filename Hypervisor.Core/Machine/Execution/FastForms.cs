using System.Runtime.CompilerServices;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Iced.Intel;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>Operand size as a type, so a generic executor is compiled once per size with no
/// run-time size switch (the .NET JIT specializes generics over struct type arguments).</summary>
internal interface IOpSize
{
    static abstract int Size { get; }
    static abstract ulong Mask { get; }
}

internal struct S8 : IOpSize { public static int Size => 1; public static ulong Mask => 0xFF; }
internal struct S16 : IOpSize { public static int Size => 2; public static ulong Mask => 0xFFFF; }
internal struct S32 : IOpSize { public static int Size => 4; public static ulong Mask => 0xFFFF_FFFF; }
internal struct S64 : IOpSize { public static int Size => 8; public static ulong Mask => ulong.MaxValue; }

/// <summary>A two-operand ALU operation with lazily computed flags.</summary>
internal interface IAluOp
{
    static abstract ulong Compute(ulong a, ulong b);
    static abstract FlagOp Flags { get; }
    /// <summary>False for CMP and TEST, which only set flags.</summary>
    static abstract bool Writes { get; }
}

internal struct AddOp : IAluOp { public static ulong Compute(ulong a, ulong b) => a + b; public static FlagOp Flags => FlagOp.Add; public static bool Writes => true; }
internal struct SubOp : IAluOp { public static ulong Compute(ulong a, ulong b) => a - b; public static FlagOp Flags => FlagOp.Sub; public static bool Writes => true; }
internal struct CmpOp : IAluOp { public static ulong Compute(ulong a, ulong b) => a - b; public static FlagOp Flags => FlagOp.Sub; public static bool Writes => false; }
internal struct AndOp : IAluOp { public static ulong Compute(ulong a, ulong b) => a & b; public static FlagOp Flags => FlagOp.Logic; public static bool Writes => true; }
internal struct OrOp : IAluOp { public static ulong Compute(ulong a, ulong b) => a | b; public static FlagOp Flags => FlagOp.Logic; public static bool Writes => true; }
internal struct XorOp : IAluOp { public static ulong Compute(ulong a, ulong b) => a ^ b; public static FlagOp Flags => FlagOp.Logic; public static bool Writes => true; }
internal struct TestOp : IAluOp { public static ulong Compute(ulong a, ulong b) => a & b; public static FlagOp Flags => FlagOp.Logic; public static bool Writes => false; }

/// <summary>
/// Specialized executors for the hottest operand forms (register/register, register/immediate,
/// register/memory, memory/register of ADD SUB CMP AND OR XOR TEST MOV INC DEC). They implement
/// exactly what the generic executors do, with the operand kinds and size fixed at decode time.
/// Tests run every form through both paths and compare (FastFormsTests).
/// </summary>
internal static unsafe class FastForms
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<TSize>(ulong* p, ulong v) where TSize : struct, IOpSize
    {
        if (TSize.Size == 8) *p = v;
        else if (TSize.Size == 4) *p = (uint)v;
        else if (TSize.Size == 2) *(ushort*)p = (ushort)v;
        else *(byte*)p = (byte)v;
    }

    public static void AluRR<TOp, TSize>(X86Cpu c, ref DecodedInsn i) where TOp : struct, IAluOp where TSize : struct, IOpSize
    {
        ulong* r = c.Regs;
        ulong a = r[i.Reg0] & TSize.Mask;
        ulong b = r[i.Reg1] & TSize.Mask;
        ulong res = TOp.Compute(a, b) & TSize.Mask;
        if (TOp.Writes) Store<TSize>(r + i.Reg0, res);
        c.SetFlagsLazy(TOp.Flags, TSize.Size, res, a, b);
    }

    public static void AluRI<TOp, TSize>(X86Cpu c, ref DecodedInsn i) where TOp : struct, IAluOp where TSize : struct, IOpSize
    {
        ulong* r = c.Regs;
        ulong a = r[i.Reg0] & TSize.Mask;
        ulong b = i.Imm & TSize.Mask;
        ulong res = TOp.Compute(a, b) & TSize.Mask;
        if (TOp.Writes) Store<TSize>(r + i.Reg0, res);
        c.SetFlagsLazy(TOp.Flags, TSize.Size, res, a, b);
    }

    public static void AluRM<TOp, TSize>(X86Cpu c, ref DecodedInsn i) where TOp : struct, IAluOp where TSize : struct, IOpSize
    {
        ulong b = c.ReadMem(i.Seg, c.EffectiveAddress(ref i), TSize.Size);
        if (c._abort) return;
        ulong* r = c.Regs;
        ulong a = r[i.Reg0] & TSize.Mask;
        ulong res = TOp.Compute(a, b) & TSize.Mask;
        if (TOp.Writes) Store<TSize>(r + i.Reg0, res);
        c.SetFlagsLazy(TOp.Flags, TSize.Size, res, a, b);
    }

    public static void AluMR<TOp, TSize>(X86Cpu c, ref DecodedInsn i) where TOp : struct, IAluOp where TSize : struct, IOpSize
    {
        ulong ea = c.EffectiveAddress(ref i);
        ulong a = c.ReadMem(i.Seg, ea, TSize.Size);
        if (c._abort) return;
        ulong b = c.Regs[i.Reg1] & TSize.Mask;
        ulong res = TOp.Compute(a, b) & TSize.Mask;
        if (TOp.Writes)
        {
            c.WriteMem(i.Seg, ea, TSize.Size, res);
            if (c._abort) return;
        }
        c.SetFlagsLazy(TOp.Flags, TSize.Size, res, a, b);
    }

    public static void AluMI<TOp, TSize>(X86Cpu c, ref DecodedInsn i) where TOp : struct, IAluOp where TSize : struct, IOpSize
    {
        ulong ea = c.EffectiveAddress(ref i);
        ulong a = c.ReadMem(i.Seg, ea, TSize.Size);
        if (c._abort) return;
        ulong b = i.Imm & TSize.Mask;
        ulong res = TOp.Compute(a, b) & TSize.Mask;
        if (TOp.Writes)
        {
            c.WriteMem(i.Seg, ea, TSize.Size, res);
            if (c._abort) return;
        }
        c.SetFlagsLazy(TOp.Flags, TSize.Size, res, a, b);
    }

    public static void MovRR<TSize>(X86Cpu c, ref DecodedInsn i) where TSize : struct, IOpSize
    {
        ulong* r = c.Regs;
        Store<TSize>(r + i.Reg0, r[i.Reg1]);
    }

    public static void MovRI<TSize>(X86Cpu c, ref DecodedInsn i) where TSize : struct, IOpSize =>
        Store<TSize>(c.Regs + i.Reg0, i.Imm);

    public static void MovRM<TSize>(X86Cpu c, ref DecodedInsn i) where TSize : struct, IOpSize
    {
        ulong v = c.ReadMem(i.Seg, c.EffectiveAddress(ref i), TSize.Size);
        if (c._abort) return;
        Store<TSize>(c.Regs + i.Reg0, v);
    }

    public static void MovMR<TSize>(X86Cpu c, ref DecodedInsn i) where TSize : struct, IOpSize =>
        c.WriteMem(i.Seg, c.EffectiveAddress(ref i), TSize.Size, c.Regs[i.Reg1]);

    public static void MovMI<TSize>(X86Cpu c, ref DecodedInsn i) where TSize : struct, IOpSize =>
        c.WriteMem(i.Seg, c.EffectiveAddress(ref i), TSize.Size, i.Imm);

    public static void IncR<TSize>(X86Cpu c, ref DecodedInsn i) where TSize : struct, IOpSize
    {
        ulong* p = c.Regs + i.Reg0;
        ulong a = *p & TSize.Mask;
        ulong res = (a + 1) & TSize.Mask;
        Store<TSize>(p, res);
        c.SetFlagsIncDec(FlagOp.Inc, TSize.Size, res, a);
    }

    public static void DecR<TSize>(X86Cpu c, ref DecodedInsn i) where TSize : struct, IOpSize
    {
        ulong* p = c.Regs + i.Reg0;
        ulong a = *p & TSize.Mask;
        ulong res = (a - 1) & TSize.Mask;
        Store<TSize>(p, res);
        c.SetFlagsIncDec(FlagOp.Dec, TSize.Size, res, a);
    }

    private enum Form { None, RR, RI, RM, MR, MI }

    private static Form FormOf(ref DecodedInsn d) => (d.Kind0, d.Kind1) switch
    {
        (OperandKind.Reg, OperandKind.Reg) => Form.RR,
        (OperandKind.Reg, OperandKind.Imm) => Form.RI,
        (OperandKind.Reg, OperandKind.Mem) => Form.RM,
        (OperandKind.Mem, OperandKind.Reg) => Form.MR,
        (OperandKind.Mem, OperandKind.Imm) => Form.MI,
        _ => Form.None,
    };

    /// <summary>Replaces the generic executor with a specialized one when the form is covered.</summary>
    public static void Specialize(ref DecodedInsn d)
    {
        if (d.Kind2 != OperandKind.None || d.SrcSize != 0 && d.SrcSize != d.OpSize)
            return;
        Form form = FormOf(ref d);
        switch (d.Mnemonic)
        {
            case Mnemonic.Add: Alu<AddOp>(ref d, form); break;
            case Mnemonic.Sub: Alu<SubOp>(ref d, form); break;
            case Mnemonic.Cmp: Alu<CmpOp>(ref d, form); break;
            case Mnemonic.And: Alu<AndOp>(ref d, form); break;
            case Mnemonic.Or: Alu<OrOp>(ref d, form); break;
            case Mnemonic.Xor: Alu<XorOp>(ref d, form); break;
            case Mnemonic.Test: Alu<TestOp>(ref d, form); break;
            case Mnemonic.Mov: Mov(ref d, form); break;
            case Mnemonic.Inc when d.Kind0 == OperandKind.Reg && d.Kind1 == OperandKind.None:
                d.Handler = d.OpSize switch { 1 => &IncR<S8>, 2 => &IncR<S16>, 4 => &IncR<S32>, _ => &IncR<S64> };
                break;
            case Mnemonic.Dec when d.Kind0 == OperandKind.Reg && d.Kind1 == OperandKind.None:
                d.Handler = d.OpSize switch { 1 => &DecR<S8>, 2 => &DecR<S16>, 4 => &DecR<S32>, _ => &DecR<S64> };
                break;
        }
    }

    private static void Alu<TOp>(ref DecodedInsn d, Form form) where TOp : struct, IAluOp
    {
        switch (form)
        {
            case Form.RR: d.Handler = d.OpSize switch { 1 => &AluRR<TOp, S8>, 2 => &AluRR<TOp, S16>, 4 => &AluRR<TOp, S32>, _ => &AluRR<TOp, S64> }; break;
            case Form.RI: d.Handler = d.OpSize switch { 1 => &AluRI<TOp, S8>, 2 => &AluRI<TOp, S16>, 4 => &AluRI<TOp, S32>, _ => &AluRI<TOp, S64> }; break;
            case Form.RM: d.Handler = d.OpSize switch { 1 => &AluRM<TOp, S8>, 2 => &AluRM<TOp, S16>, 4 => &AluRM<TOp, S32>, _ => &AluRM<TOp, S64> }; break;
            case Form.MR: d.Handler = d.OpSize switch { 1 => &AluMR<TOp, S8>, 2 => &AluMR<TOp, S16>, 4 => &AluMR<TOp, S32>, _ => &AluMR<TOp, S64> }; break;
            case Form.MI: d.Handler = d.OpSize switch { 1 => &AluMI<TOp, S8>, 2 => &AluMI<TOp, S16>, 4 => &AluMI<TOp, S32>, _ => &AluMI<TOp, S64> }; break;
        }
    }

    private static void Mov(ref DecodedInsn d, Form form)
    {
        switch (form)
        {
            case Form.RR: d.Handler = d.OpSize switch { 1 => &MovRR<S8>, 2 => &MovRR<S16>, 4 => &MovRR<S32>, _ => &MovRR<S64> }; break;
            case Form.RI: d.Handler = d.OpSize switch { 1 => &MovRI<S8>, 2 => &MovRI<S16>, 4 => &MovRI<S32>, _ => &MovRI<S64> }; break;
            case Form.RM: d.Handler = d.OpSize switch { 1 => &MovRM<S8>, 2 => &MovRM<S16>, 4 => &MovRM<S32>, _ => &MovRM<S64> }; break;
            case Form.MR: d.Handler = d.OpSize switch { 1 => &MovMR<S8>, 2 => &MovMR<S16>, 4 => &MovMR<S32>, _ => &MovMR<S64> }; break;
            case Form.MI: d.Handler = d.OpSize switch { 1 => &MovMI<S8>, 2 => &MovMI<S16>, 4 => &MovMI<S32>, _ => &MovMI<S64> }; break;
        }
    }
}
