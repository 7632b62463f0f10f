using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.InteropServices;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Execution;
using Iced.Intel;
using Label = System.Reflection.Emit.Label;

namespace Hypervisor.Core.Machine.Translation;

/// <summary>A compiled block: runs the block's instructions and returns the index of the
/// instruction that set <c>_abort</c> or <c>_stop</c>, or the block's count when all completed —
/// exactly the protocol of the interpreter loop, which then does the same bookkeeping.</summary>
internal delegate int CompiledBlock(X86Cpu cpu, DecodedInsn[] insns);

/// <summary>
/// Compiles hot blocks to IL (the JIT tier the block cache was designed for). Register-only
/// ALU/MOV/INC/DEC forms are emitted inline, with the flags of an instruction stored only when
/// something may read them (dead-flag elimination within the block); a block-ending JMP/Jcc is
/// inline and, after CMP/SUB/logic/INC/DEC in the same block, tests the operands directly. Every
/// other instruction calls its normal executor, so semantics live in one place.
/// </summary>
internal static unsafe class BlockCompiler
{
    /// <summary>Executions before a block is compiled. 0 compiles on first use (tests use it
    /// to run whole suites through compiled code).</summary>
    internal static int Threshold = 32;
    internal static bool Enabled = true;

    private static readonly FieldInfo RegsField = Field("Regs");
    private static readonly FieldInfo RipField = typeof(X86Cpu).GetField(nameof(X86Cpu.Rip))!;
    private static readonly FieldInfo AbortField = Field("_abort");
    private static readonly FieldInfo StopField = Field("_stop");
    private static readonly FieldInfo FOpField = Field("_fOp");
    private static readonly FieldInfo FSizeField = Field("_fSize");
    private static readonly FieldInfo FResField = Field("_fRes");
    private static readonly FieldInfo FAField = Field("_fA");
    private static readonly FieldInfo FBField = Field("_fB");
    private static readonly MethodInfo ConditionMethod = typeof(X86Cpu).GetMethod("Condition", BindingFlags.Instance | BindingFlags.NonPublic)!;
    private static readonly MethodInfo IncDecMethod = typeof(X86Cpu).GetMethod("SetFlagsIncDec", BindingFlags.Instance | BindingFlags.NonPublic)!;
    private static readonly FieldInfo RetiredField = typeof(X86Cpu).GetField(nameof(X86Cpu.InstructionsRetired))!;
    private static readonly FieldInfo RunEndField = Field("_runEnd");
    private static readonly FieldInfo StopRequestedField = Field("_stopRequested");
    private static readonly Type[] HandlerArgs = { typeof(X86Cpu), typeof(DecodedInsn).MakeByRefType() };

    private static FieldInfo Field(string name) =>
        typeof(X86Cpu).GetField(name, BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public)
        ?? throw new MissingFieldException(nameof(X86Cpu), name);

    private enum Kind { Call, AluInline, MovInline, IncDecInline, Nop, Jmp, Jcc }

    private static FlagOp AluFlagOp(Mnemonic m) => m switch
    {
        Mnemonic.Add => FlagOp.Add,
        Mnemonic.Sub or Mnemonic.Cmp => FlagOp.Sub,
        _ => FlagOp.Logic,
    };

    private static Kind Classify(ref DecodedInsn d, bool last)
    {
        bool regOnly = d.Kind0 == OperandKind.Reg && d.Kind1 is OperandKind.Reg or OperandKind.Imm && d.Kind2 == OperandKind.None
                       && (d.SrcSize == 0 || d.SrcSize == d.OpSize);
        switch (d.Mnemonic)
        {
            case Mnemonic.Add or Mnemonic.Sub or Mnemonic.Cmp or Mnemonic.And or Mnemonic.Or or Mnemonic.Xor or Mnemonic.Test when regOnly:
                return Kind.AluInline;
            case Mnemonic.Mov when regOnly:
                return Kind.MovInline;
            case Mnemonic.Inc or Mnemonic.Dec when d.Kind0 == OperandKind.Reg && d.Kind1 == OperandKind.None:
                return Kind.IncDecInline;
            case Mnemonic.Nop when d.Rep == 0:
                return Kind.Nop;
            case Mnemonic.Jmp when last && d.Kind0 == OperandKind.Imm && d.Imm2 == 0 && (d.Code is Code.Jmp_rel8_16 or Code.Jmp_rel8_32 or Code.Jmp_rel8_64 or Code.Jmp_rel16 or Code.Jmp_rel32_32 or Code.Jmp_rel32_64):
                return Kind.Jmp;
            case var m when last && d.Kind0 == OperandKind.Imm && IsJcc(m):
                return Kind.Jcc;
            default:
                return Kind.Call;
        }
    }

    private static bool IsJcc(Mnemonic m) => m is Mnemonic.Jo or Mnemonic.Jno or Mnemonic.Jb or Mnemonic.Jae or Mnemonic.Je or Mnemonic.Jne
        or Mnemonic.Jbe or Mnemonic.Ja or Mnemonic.Js or Mnemonic.Jns or Mnemonic.Jp or Mnemonic.Jnp or Mnemonic.Jl or Mnemonic.Jge or Mnemonic.Jle or Mnemonic.Jg;

    public static CompiledBlock Compile(Block block)
    {
        var insns = block.Insns;
        int n = block.Count;
        var kinds = new Kind[n];
        for (int k = 0; k < n; k++)
            kinds[k] = Classify(ref insns[k], k == n - 1);

        // Backward pass: an inline ALU op's flags must be stored only if something after it may
        // read them before the next inline ALU op overwrites them. A called executor may read
        // flags or fault (and a fault must see exact flags); the block end makes them live.
        var storeFlags = new bool[n];
        bool live = true;
        for (int k = n - 1; k >= 0; k--)
        {
            switch (kinds[k])
            {
                case Kind.AluInline: storeFlags[k] = live; live = false; break;
                case Kind.MovInline or Kind.Nop: break;
                default: live = true; break; // INC/DEC read CF; Jcc and calls read anything
            }
        }

        var dm = new DynamicMethod($"block_{block.Physical:x}_{block.Ip:x}", typeof(int), new[] { typeof(X86Cpu), typeof(DecodedInsn[]) }, typeof(X86Cpu).Module, skipVisibility: true);
        var il = dm.GetILGenerator();
        var regs = il.DeclareLocal(typeof(ulong*));
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldfld, RegsField);
        il.Emit(OpCodes.Stloc, regs);
        var start = il.DefineLabel();
        il.MarkLabel(start);

        // The last flag setter emitted inline, for a direct condition test by a final Jcc.
        FlagOp lastOp = FlagOp.None;
        int lastSize = 0;
        LocalBuilder? lastA = null, lastB = null, lastRes = null;

        for (int k = 0; k < n; k++)
        {
            ref var d = ref insns[k];
            switch (kinds[k])
            {
                case Kind.Nop:
                    break;
                case Kind.MovInline:
                {
                    EmitLoadSource(il, regs, ref d);
                    EmitStoreReg(il, regs, d.Reg0, d.OpSize);
                    break;
                }
                case Kind.AluInline:
                {
                    var a = il.DeclareLocal(typeof(ulong));
                    var b = il.DeclareLocal(typeof(ulong));
                    var res = il.DeclareLocal(typeof(ulong));
                    EmitLoadReg(il, regs, d.Reg0, d.OpSize);
                    il.Emit(OpCodes.Stloc, a);
                    EmitLoadSource(il, regs, ref d);
                    il.Emit(OpCodes.Stloc, b);
                    il.Emit(OpCodes.Ldloc, a);
                    il.Emit(OpCodes.Ldloc, b);
                    il.Emit(d.Mnemonic switch
                    {
                        Mnemonic.Add => OpCodes.Add,
                        Mnemonic.Sub or Mnemonic.Cmp => OpCodes.Sub,
                        Mnemonic.And or Mnemonic.Test => OpCodes.And,
                        Mnemonic.Or => OpCodes.Or,
                        _ => OpCodes.Xor,
                    });
                    EmitMask(il, d.OpSize);
                    il.Emit(OpCodes.Stloc, res);
                    if (d.Mnemonic is not (Mnemonic.Cmp or Mnemonic.Test))
                    {
                        il.Emit(OpCodes.Ldloc, res);
                        EmitStoreReg(il, regs, d.Reg0, d.OpSize);
                    }
                    var op = AluFlagOp(d.Mnemonic);
                    if (storeFlags[k])
                        EmitStoreFlags(il, op, d.OpSize, res, a, b);
                    (lastOp, lastSize, lastA, lastB, lastRes) = (op, d.OpSize, a, b, res);
                    break;
                }
                case Kind.IncDecInline:
                {
                    var a = il.DeclareLocal(typeof(ulong));
                    var res = il.DeclareLocal(typeof(ulong));
                    EmitLoadReg(il, regs, d.Reg0, d.OpSize);
                    il.Emit(OpCodes.Stloc, a);
                    il.Emit(OpCodes.Ldloc, a);
                    il.Emit(OpCodes.Ldc_I4_1);
                    il.Emit(OpCodes.Conv_U8);
                    il.Emit(d.Mnemonic == Mnemonic.Inc ? OpCodes.Add : OpCodes.Sub);
                    EmitMask(il, d.OpSize);
                    il.Emit(OpCodes.Stloc, res);
                    il.Emit(OpCodes.Ldloc, res);
                    EmitStoreReg(il, regs, d.Reg0, d.OpSize);
                    var op = d.Mnemonic == Mnemonic.Inc ? FlagOp.Inc : FlagOp.Dec;
                    il.Emit(OpCodes.Ldarg_0);
                    il.Emit(OpCodes.Ldc_I4, (int)op);
                    il.Emit(OpCodes.Ldc_I4, (int)d.OpSize);
                    il.Emit(OpCodes.Ldloc, res);
                    il.Emit(OpCodes.Ldloc, a);
                    il.Emit(OpCodes.Call, IncDecMethod);
                    (lastOp, lastSize, lastA, lastB, lastRes) = (op, d.OpSize, a, null, res);
                    break;
                }
                case Kind.Jmp:
                    EmitBranchTo(il, block, d.Imm, d.OpSize, k, start);
                    break;
                case Kind.Jcc:
                {
                    var taken = il.DefineLabel();
                    var done = il.DefineLabel();
                    if (!EmitDirectCondition(il, d.Cond, lastOp, lastSize, lastA, lastB, lastRes, taken))
                    {
                        il.Emit(OpCodes.Ldarg_0);
                        il.Emit(OpCodes.Ldc_I4, (int)d.Cond);
                        il.Emit(OpCodes.Call, ConditionMethod);
                        il.Emit(OpCodes.Brtrue, taken);
                    }
                    EmitSetRip(il, d.NextIp);
                    il.Emit(OpCodes.Br, done);
                    il.MarkLabel(taken);
                    EmitBranchTo(il, block, d.Imm, d.OpSize, k, start);
                    il.MarkLabel(done);
                    break;
                }
                default:
                {
                    // As the interpreter does: RIP = next, call the executor, leave on abort/stop.
                    EmitSetRip(il, d.NextIp);
                    il.Emit(OpCodes.Ldarg_0);
                    il.Emit(OpCodes.Ldarg_1);
                    il.Emit(OpCodes.Ldc_I4, k);
                    il.Emit(OpCodes.Ldelema, typeof(DecodedInsn));
                    il.Emit(OpCodes.Ldc_I8, (long)d.Handler);
                    il.Emit(OpCodes.Conv_I);
                    il.EmitCalli(OpCodes.Calli, CallingConventions.Standard, typeof(void), HandlerArgs, null);
                    var next = il.DefineLabel();
                    il.Emit(OpCodes.Ldarg_0);
                    il.Emit(OpCodes.Ldfld, AbortField);
                    il.Emit(OpCodes.Ldarg_0);
                    il.Emit(OpCodes.Ldfld, StopField);
                    il.Emit(OpCodes.Or);
                    il.Emit(OpCodes.Brfalse, next);
                    il.Emit(OpCodes.Ldc_I4, k);
                    il.Emit(OpCodes.Ret);
                    il.MarkLabel(next);
                    lastOp = FlagOp.None;
                    break;
                }
            }
        }
        if (kinds[n - 1] is Kind.AluInline or Kind.MovInline or Kind.IncDecInline or Kind.Nop)
            EmitSetRip(il, insns[n - 1].NextIp);
        il.Emit(OpCodes.Ldc_I4, n);
        il.Emit(OpCodes.Ret);
        return dm.CreateDelegate<CompiledBlock>();
    }

    private static readonly MethodInfo SetBranchTargetMethod = typeof(X86Cpu).GetMethod("SetBranchTarget", BindingFlags.Instance | BindingFlags.NonPublic)!;

    /// <summary>A taken branch: a 64-bit canonical target is known good at compile time; any other
    /// goes through the same checks as the interpreter (CS limit, canonical form), leaving on #GP.
    /// A branch back to the block's own start loops inside the compiled code while the run's
    /// instruction budget allows another iteration and no stop was requested: the loop's
    /// instructions are register-only or end the block when they change anything that matters.</summary>
    private static void EmitBranchTo(ILGenerator il, Block block, ulong target, int opSize, int index, Label start)
    {
        if (block.CodeBits == 64 && opSize == 8 && X86Cpu.IsCanonical(target))
        {
            EmitSetRip(il, target);
        }
        else
        {
            var ok = il.DefineLabel();
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldc_I8, (long)target);
            il.Emit(OpCodes.Ldc_I4, opSize);
            il.Emit(OpCodes.Call, SetBranchTargetMethod);
            il.Emit(OpCodes.Brtrue, ok);
            il.Emit(OpCodes.Ldc_I4, index);
            il.Emit(OpCodes.Ret);
            il.MarkLabel(ok);
        }
        if (target != block.Ip)
            return;
        // if (Retired + 2n <= runEnd && !stopRequested) { Retired += n; goto start; }
        int n = block.Count;
        var leave = il.DefineLabel();
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldfld, RetiredField);
        il.Emit(OpCodes.Ldc_I8, 2L * n);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldfld, RunEndField);
        il.Emit(OpCodes.Bgt_Un, leave);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Volatile);
        il.Emit(OpCodes.Ldfld, StopRequestedField);
        il.Emit(OpCodes.Brtrue, leave);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldfld, RetiredField);
        il.Emit(OpCodes.Ldc_I8, (long)n);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Stfld, RetiredField);
        il.Emit(OpCodes.Br, start);
        il.MarkLabel(leave);
    }

    private static void EmitSetRip(ILGenerator il, ulong value)
    {
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldc_I8, (long)value);
        il.Emit(OpCodes.Stfld, RipField);
    }

    private static void EmitRegAddress(ILGenerator il, LocalBuilder regs, int reg)
    {
        il.Emit(OpCodes.Ldloc, regs);
        if (reg != 0)
        {
            il.Emit(OpCodes.Ldc_I4, reg * 8);
            il.Emit(OpCodes.Add);
        }
    }

    private static void EmitLoadReg(ILGenerator il, LocalBuilder regs, int reg, int size)
    {
        EmitRegAddress(il, regs, reg);
        il.Emit(OpCodes.Ldind_I8);
        EmitMask(il, size);
    }

    /// <summary>Operand 1: a register or the immediate, masked to the operand size.</summary>
    private static void EmitLoadSource(ILGenerator il, LocalBuilder regs, ref DecodedInsn d)
    {
        if (d.Kind1 == OperandKind.Reg)
            EmitLoadReg(il, regs, d.Reg1, d.OpSize);
        else
            il.Emit(OpCodes.Ldc_I8, (long)(d.Imm & X86Cpu.SizeMask(d.OpSize)));
    }

    /// <summary>Stores the value on the stack into a register with x86 width rules: 32-bit writes
    /// zero-extend, 8/16-bit writes merge (little-endian: a narrow store to the register's start).</summary>
    private static void EmitStoreReg(ILGenerator il, LocalBuilder regs, int reg, int size)
    {
        var tmp = il.DeclareLocal(typeof(ulong));
        il.Emit(OpCodes.Stloc, tmp);
        EmitRegAddress(il, regs, reg);
        il.Emit(OpCodes.Ldloc, tmp);
        switch (size)
        {
            case 8: il.Emit(OpCodes.Stind_I8); break;
            case 4: il.Emit(OpCodes.Conv_U4); il.Emit(OpCodes.Conv_U8); il.Emit(OpCodes.Stind_I8); break;
            case 2: il.Emit(OpCodes.Conv_U2); il.Emit(OpCodes.Stind_I2); break;
            default: il.Emit(OpCodes.Conv_U1); il.Emit(OpCodes.Stind_I1); break;
        }
    }

    private static void EmitMask(ILGenerator il, int size)
    {
        switch (size)
        {
            case 4: il.Emit(OpCodes.Conv_U4); il.Emit(OpCodes.Conv_U8); break;
            case 2: il.Emit(OpCodes.Conv_U2); il.Emit(OpCodes.Conv_U8); break;
            case 1: il.Emit(OpCodes.Conv_U1); il.Emit(OpCodes.Conv_U8); break;
        }
    }

    private static void EmitStoreFlags(ILGenerator il, FlagOp op, int size, LocalBuilder res, LocalBuilder a, LocalBuilder b)
    {
        il.Emit(OpCodes.Ldarg_0); il.Emit(OpCodes.Ldc_I4, (int)op); il.Emit(OpCodes.Stfld, FOpField);
        il.Emit(OpCodes.Ldarg_0); il.Emit(OpCodes.Ldc_I4, size); il.Emit(OpCodes.Stfld, FSizeField);
        il.Emit(OpCodes.Ldarg_0); il.Emit(OpCodes.Ldloc, res); il.Emit(OpCodes.Stfld, FResField);
        il.Emit(OpCodes.Ldarg_0); il.Emit(OpCodes.Ldloc, a); il.Emit(OpCodes.Stfld, FAField);
        il.Emit(OpCodes.Ldarg_0); il.Emit(OpCodes.Ldloc, b); il.Emit(OpCodes.Stfld, FBField);
    }

    /// <summary>Branches to <paramref name="taken"/> by comparing the last inline flag setter's
    /// operands, when the condition is one that comparison decides. Returns false otherwise.</summary>
    private static bool EmitDirectCondition(ILGenerator il, int cc, FlagOp op, int size, LocalBuilder? a, LocalBuilder? b, LocalBuilder? res, Label taken)
    {
        if (op == FlagOp.Sub && a != null && b != null)
        {
            int shift = 64 - size * 8;
            void Signed(LocalBuilder l)
            {
                il.Emit(OpCodes.Ldloc, l);
                il.Emit(OpCodes.Ldc_I4, shift);
                il.Emit(OpCodes.Shl);
            }
            switch (cc)
            {
                case 2: il.Emit(OpCodes.Ldloc, a); il.Emit(OpCodes.Ldloc, b); il.Emit(OpCodes.Blt_Un, taken); return true;
                case 3: il.Emit(OpCodes.Ldloc, a); il.Emit(OpCodes.Ldloc, b); il.Emit(OpCodes.Bge_Un, taken); return true;
                case 4: il.Emit(OpCodes.Ldloc, a); il.Emit(OpCodes.Ldloc, b); il.Emit(OpCodes.Beq, taken); return true;
                case 5: il.Emit(OpCodes.Ldloc, a); il.Emit(OpCodes.Ldloc, b); il.Emit(OpCodes.Bne_Un, taken); return true;
                case 6: il.Emit(OpCodes.Ldloc, a); il.Emit(OpCodes.Ldloc, b); il.Emit(OpCodes.Ble_Un, taken); return true;
                case 7: il.Emit(OpCodes.Ldloc, a); il.Emit(OpCodes.Ldloc, b); il.Emit(OpCodes.Bgt_Un, taken); return true;
                case 12: Signed(a); Signed(b); il.Emit(OpCodes.Blt, taken); return true;
                case 13: Signed(a); Signed(b); il.Emit(OpCodes.Bge, taken); return true;
                case 14: Signed(a); Signed(b); il.Emit(OpCodes.Ble, taken); return true;
                case 15: Signed(a); Signed(b); il.Emit(OpCodes.Bgt, taken); return true;
            }
        }
        if (op is FlagOp.Sub or FlagOp.Add or FlagOp.Logic or FlagOp.Inc or FlagOp.Dec && res != null)
        {
            switch (cc)
            {
                case 4: il.Emit(OpCodes.Ldloc, res); il.Emit(OpCodes.Ldc_I4_0); il.Emit(OpCodes.Conv_U8); il.Emit(OpCodes.Beq, taken); return true;
                case 5: il.Emit(OpCodes.Ldloc, res); il.Emit(OpCodes.Ldc_I4_0); il.Emit(OpCodes.Conv_U8); il.Emit(OpCodes.Bne_Un, taken); return true;
                case 8 or 9:
                    il.Emit(OpCodes.Ldloc, res);
                    il.Emit(OpCodes.Ldc_I8, (long)X86Cpu.SignBit(size));
                    il.Emit(OpCodes.And);
                    il.Emit(cc == 8 ? OpCodes.Brtrue : OpCodes.Brfalse, taken);
                    return true;
            }
        }
        return false;
    }
}
