using Iced.Intel;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>
/// The one table from mnemonic to executor. Operand forms are resolved at decode time into the
/// <see cref="DecodedInsn"/>, so one executor serves every form of a mnemonic. A mnemonic with no
/// entry runs <see cref="Exec.Unimplemented"/>, which stops the CPU with a report.
/// </summary>
internal static unsafe class HandlerTable
{
    private static readonly delegate* managed<X86Cpu, ref DecodedInsn, void>[] Table = Build();

    public static delegate* managed<X86Cpu, ref DecodedInsn, void> InvalidOpcode => &Exec.InvalidOpcode;

    public static delegate* managed<X86Cpu, ref DecodedInsn, void> For(Mnemonic m)
    {
        var h = Table[(int)m];
        return h != null ? h : &Exec.Unimplemented;
    }

    public static bool IsImplemented(Mnemonic m) => Table[(int)m] != null;

    private static delegate* managed<X86Cpu, ref DecodedInsn, void>[] Build()
    {
        var t = new delegate* managed<X86Cpu, ref DecodedInsn, void>[Enum.GetValues<Mnemonic>().Length];

        // Arithmetic (Exec.Arithmetic.cs)
        t[(int)Mnemonic.Add]        = &Exec.Add;
        t[(int)Mnemonic.Sub]        = &Exec.Sub;
        t[(int)Mnemonic.Cmp]        = &Exec.Cmp;
        t[(int)Mnemonic.Inc]        = &Exec.Inc;
        t[(int)Mnemonic.Dec]        = &Exec.Dec;
        t[(int)Mnemonic.Adc]        = &Exec.Adc;
        t[(int)Mnemonic.Sbb]        = &Exec.Sbb;
        t[(int)Mnemonic.Neg]        = &Exec.Neg;
        // decimal adjusts (Exec.Decimal.cs)
        t[(int)Mnemonic.Daa]        = &Exec.Daa;
        t[(int)Mnemonic.Das]        = &Exec.Das;
        t[(int)Mnemonic.Aaa]        = &Exec.Aaa;
        t[(int)Mnemonic.Aas]        = &Exec.Aas;
        t[(int)Mnemonic.Aam]        = &Exec.Aam;
        t[(int)Mnemonic.Aad]        = &Exec.Aad;

        // Logical (Exec.Logical.cs)
        t[(int)Mnemonic.And]        = &Exec.And;
        t[(int)Mnemonic.Or]         = &Exec.Or;
        t[(int)Mnemonic.Xor]        = &Exec.Xor;
        t[(int)Mnemonic.Test]       = &Exec.Test;
        t[(int)Mnemonic.Not]        = &Exec.Not;

        // Shifts and rotates (Exec.Shift.cs)
        t[(int)Mnemonic.Shl]        = &Exec.Shl;
        t[(int)Mnemonic.Sal]        = &Exec.Shl;
        t[(int)Mnemonic.Shr]        = &Exec.Shr;
        t[(int)Mnemonic.Sar]        = &Exec.Sar;
        t[(int)Mnemonic.Rol]        = &Exec.Rol;
        t[(int)Mnemonic.Ror]        = &Exec.Ror;
        t[(int)Mnemonic.Rcl]        = &Exec.Rcl;
        t[(int)Mnemonic.Rcr]        = &Exec.Rcr;
        t[(int)Mnemonic.Shld]       = &Exec.Shld;
        t[(int)Mnemonic.Shrd]       = &Exec.Shrd;

        // Multiply and divide (Exec.MulDiv.cs)
        t[(int)Mnemonic.Mul]        = &Exec.Mul;
        t[(int)Mnemonic.Imul]       = &Exec.Imul;
        t[(int)Mnemonic.Div]        = &Exec.Div;
        t[(int)Mnemonic.Idiv]       = &Exec.Idiv;

        // Bit operations (Exec.Bit.cs)
        t[(int)Mnemonic.Bt]         = &Exec.Bt;
        t[(int)Mnemonic.Bts]        = &Exec.Bts;
        t[(int)Mnemonic.Btr]        = &Exec.Btr;
        t[(int)Mnemonic.Btc]        = &Exec.Btc;
        t[(int)Mnemonic.Bsf]        = &Exec.Bsf;
        t[(int)Mnemonic.Bsr]        = &Exec.Bsr;
        t[(int)Mnemonic.Popcnt]     = &Exec.Popcnt;
        t[(int)Mnemonic.Lzcnt]      = &Exec.Lzcnt;
        t[(int)Mnemonic.Tzcnt]      = &Exec.Tzcnt;

        // Flag control (Exec.FlagOps.cs)
        t[(int)Mnemonic.Clc]        = &Exec.Clc;
        t[(int)Mnemonic.Stc]        = &Exec.Stc;
        t[(int)Mnemonic.Cmc]        = &Exec.Cmc;
        t[(int)Mnemonic.Cld]        = &Exec.Cld;
        t[(int)Mnemonic.Std]        = &Exec.Std;
        t[(int)Mnemonic.Lahf]       = &Exec.Lahf;
        t[(int)Mnemonic.Sahf]       = &Exec.Sahf;

        // Conditional move and set (Exec.Conditional.cs)
        t[(int)Mnemonic.Cmovo]      = &Exec.Cmovcc;
        t[(int)Mnemonic.Cmovno]     = &Exec.Cmovcc;
        t[(int)Mnemonic.Cmovb]      = &Exec.Cmovcc;
        t[(int)Mnemonic.Cmovae]     = &Exec.Cmovcc;
        t[(int)Mnemonic.Cmove]      = &Exec.Cmovcc;
        t[(int)Mnemonic.Cmovne]     = &Exec.Cmovcc;
        t[(int)Mnemonic.Cmovbe]     = &Exec.Cmovcc;
        t[(int)Mnemonic.Cmova]      = &Exec.Cmovcc;
        t[(int)Mnemonic.Cmovs]      = &Exec.Cmovcc;
        t[(int)Mnemonic.Cmovns]     = &Exec.Cmovcc;
        t[(int)Mnemonic.Cmovp]      = &Exec.Cmovcc;
        t[(int)Mnemonic.Cmovnp]     = &Exec.Cmovcc;
        t[(int)Mnemonic.Cmovl]      = &Exec.Cmovcc;
        t[(int)Mnemonic.Cmovge]     = &Exec.Cmovcc;
        t[(int)Mnemonic.Cmovle]     = &Exec.Cmovcc;
        t[(int)Mnemonic.Cmovg]      = &Exec.Cmovcc;
        t[(int)Mnemonic.Seto]       = &Exec.Setcc;
        t[(int)Mnemonic.Setno]      = &Exec.Setcc;
        t[(int)Mnemonic.Setb]       = &Exec.Setcc;
        t[(int)Mnemonic.Setae]      = &Exec.Setcc;
        t[(int)Mnemonic.Sete]       = &Exec.Setcc;
        t[(int)Mnemonic.Setne]      = &Exec.Setcc;
        t[(int)Mnemonic.Setbe]      = &Exec.Setcc;
        t[(int)Mnemonic.Seta]       = &Exec.Setcc;
        t[(int)Mnemonic.Sets]       = &Exec.Setcc;
        t[(int)Mnemonic.Setns]      = &Exec.Setcc;
        t[(int)Mnemonic.Setp]       = &Exec.Setcc;
        t[(int)Mnemonic.Setnp]      = &Exec.Setcc;
        t[(int)Mnemonic.Setl]       = &Exec.Setcc;
        t[(int)Mnemonic.Setge]      = &Exec.Setcc;
        t[(int)Mnemonic.Setle]      = &Exec.Setcc;
        t[(int)Mnemonic.Setg]       = &Exec.Setcc;

        // BMI1 (Exec.Bmi.cs)
        t[(int)Mnemonic.Andn]       = &Exec.Andn;
        t[(int)Mnemonic.Bextr]      = &Exec.Bextr;
        t[(int)Mnemonic.Blsi]       = &Exec.Blsi;
        t[(int)Mnemonic.Blsmsk]     = &Exec.Blsmsk;
        t[(int)Mnemonic.Blsr]       = &Exec.Blsr;

        // Data transfer (Exec.DataTransfer.cs)
        t[(int)Mnemonic.Mov]        = &Exec.Mov;
        t[(int)Mnemonic.Nop]        = &Exec.Nop;
        t[(int)Mnemonic.Pause]      = &Exec.Nop;
        t[(int)Mnemonic.Reservednop] = &Exec.Nop;
        t[(int)Mnemonic.Endbr32]    = &Exec.Nop;
        t[(int)Mnemonic.Endbr64]    = &Exec.Nop;
        t[(int)Mnemonic.Movzx]      = &Exec.Movzx;
        t[(int)Mnemonic.Movsx]      = &Exec.Movsx;
        t[(int)Mnemonic.Movsxd]     = &Exec.Movsxd;
        t[(int)Mnemonic.Lea]        = &Exec.Lea;
        t[(int)Mnemonic.Xchg]       = &Exec.Xchg;
        t[(int)Mnemonic.Bswap]      = &Exec.Bswap;
        t[(int)Mnemonic.Xlatb]      = &Exec.Xlatb;
        t[(int)Mnemonic.Cbw]        = &Exec.Cbw;
        t[(int)Mnemonic.Cwde]       = &Exec.Cwde;
        t[(int)Mnemonic.Cdqe]       = &Exec.Cdqe;
        t[(int)Mnemonic.Cwd]        = &Exec.Cwd;
        t[(int)Mnemonic.Cdq]        = &Exec.Cdq;
        t[(int)Mnemonic.Cqo]        = &Exec.Cqo;
        t[(int)Mnemonic.Xadd]       = &Exec.Xadd;
        t[(int)Mnemonic.Cmpxchg]    = &Exec.Cmpxchg;
        t[(int)Mnemonic.Cmpxchg8b]  = &Exec.Cmpxchg8b;
        t[(int)Mnemonic.Cmpxchg16b] = &Exec.Cmpxchg16b;

        // Stack (Exec.Stack.cs)
        t[(int)Mnemonic.Push]       = &Exec.Push;
        t[(int)Mnemonic.Pop]        = &Exec.Pop;
        t[(int)Mnemonic.Pusha]      = &Exec.Pusha;
        t[(int)Mnemonic.Pushad]     = &Exec.Pushad;
        t[(int)Mnemonic.Popa]       = &Exec.Popa;
        t[(int)Mnemonic.Popad]      = &Exec.Popad;
        t[(int)Mnemonic.Pushf]      = &Exec.Pushf;
        t[(int)Mnemonic.Pushfd]     = &Exec.Pushfd;
        t[(int)Mnemonic.Pushfq]     = &Exec.Pushfq;
        t[(int)Mnemonic.Popf]       = &Exec.Popf;
        t[(int)Mnemonic.Popfd]      = &Exec.Popfd;
        t[(int)Mnemonic.Popfq]      = &Exec.Popfq;
        t[(int)Mnemonic.Enter]      = &Exec.Enter;
        t[(int)Mnemonic.Leave]      = &Exec.Leave;

        // Control transfer (Exec.ControlFlow.cs)
        t[(int)Mnemonic.Jmp]        = &Exec.Jmp;
        t[(int)Mnemonic.Jo]         = &Exec.Jcc;
        t[(int)Mnemonic.Jno]        = &Exec.Jcc;
        t[(int)Mnemonic.Jb]         = &Exec.Jcc;
        t[(int)Mnemonic.Jae]        = &Exec.Jcc;
        t[(int)Mnemonic.Je]         = &Exec.Jcc;
        t[(int)Mnemonic.Jne]        = &Exec.Jcc;
        t[(int)Mnemonic.Jbe]        = &Exec.Jcc;
        t[(int)Mnemonic.Ja]         = &Exec.Jcc;
        t[(int)Mnemonic.Js]         = &Exec.Jcc;
        t[(int)Mnemonic.Jns]        = &Exec.Jcc;
        t[(int)Mnemonic.Jp]         = &Exec.Jcc;
        t[(int)Mnemonic.Jnp]        = &Exec.Jcc;
        t[(int)Mnemonic.Jl]         = &Exec.Jcc;
        t[(int)Mnemonic.Jge]        = &Exec.Jcc;
        t[(int)Mnemonic.Jle]        = &Exec.Jcc;
        t[(int)Mnemonic.Jg]         = &Exec.Jcc;
        t[(int)Mnemonic.Call]       = &Exec.Call;
        t[(int)Mnemonic.Ret]        = &Exec.Ret;
        t[(int)Mnemonic.Retf]       = &Exec.Retf;
        t[(int)Mnemonic.Loop]       = &Exec.Loop;
        t[(int)Mnemonic.Loope]      = &Exec.Loope;
        t[(int)Mnemonic.Loopne]     = &Exec.Loopne;
        t[(int)Mnemonic.Jcxz]       = &Exec.Jrcxz;
        t[(int)Mnemonic.Jecxz]      = &Exec.Jrcxz;
        t[(int)Mnemonic.Jrcxz]      = &Exec.Jrcxz;

        // String (Exec.String.cs)
        t[(int)Mnemonic.Movsb]      = &Exec.Movsb;
        t[(int)Mnemonic.Movsw]      = &Exec.Movsw;
        t[(int)Mnemonic.Movsd]      = &Exec.Movsd;
        t[(int)Mnemonic.Movsq]      = &Exec.Movsq;
        t[(int)Mnemonic.Stosb]      = &Exec.Stosb;
        t[(int)Mnemonic.Stosw]      = &Exec.Stosw;
        t[(int)Mnemonic.Stosd]      = &Exec.Stosd;
        t[(int)Mnemonic.Stosq]      = &Exec.Stosq;
        t[(int)Mnemonic.Lodsb]      = &Exec.Lodsb;
        t[(int)Mnemonic.Lodsw]      = &Exec.Lodsw;
        t[(int)Mnemonic.Lodsd]      = &Exec.Lodsd;
        t[(int)Mnemonic.Lodsq]      = &Exec.Lodsq;
        t[(int)Mnemonic.Cmpsb]      = &Exec.Cmpsb;
        t[(int)Mnemonic.Cmpsw]      = &Exec.Cmpsw;
        t[(int)Mnemonic.Cmpsd]      = &Exec.Cmpsd;
        t[(int)Mnemonic.Cmpsq]      = &Exec.Cmpsq;
        t[(int)Mnemonic.Scasb]      = &Exec.Scasb;
        t[(int)Mnemonic.Scasw]      = &Exec.Scasw;
        t[(int)Mnemonic.Scasd]      = &Exec.Scasd;
        t[(int)Mnemonic.Scasq]      = &Exec.Scasq;

        // I/O (Exec.Io.cs)
        t[(int)Mnemonic.Out]        = &Exec.Out;
        t[(int)Mnemonic.In]         = &Exec.In;
        t[(int)Mnemonic.Insb]       = &Exec.Insb;
        t[(int)Mnemonic.Insw]       = &Exec.Insw;
        t[(int)Mnemonic.Insd]       = &Exec.Insd;
        t[(int)Mnemonic.Outsb]      = &Exec.Outsb;
        t[(int)Mnemonic.Outsw]      = &Exec.Outsw;
        t[(int)Mnemonic.Outsd]      = &Exec.Outsd;

        // System (Exec.System.cs)
        t[(int)Mnemonic.Hlt]        = &Exec.Hlt;
        t[(int)Mnemonic.Cli]        = &Exec.Cli;
        t[(int)Mnemonic.Sti]        = &Exec.Sti;
        t[(int)Mnemonic.Lgdt]       = &Exec.Lgdt;
        t[(int)Mnemonic.Lidt]       = &Exec.Lidt;
        t[(int)Mnemonic.Sgdt]       = &Exec.Sgdt;
        t[(int)Mnemonic.Sidt]       = &Exec.Sidt;
        t[(int)Mnemonic.Lldt]       = &Exec.Lldt;
        t[(int)Mnemonic.Sldt]       = &Exec.Sldt;
        t[(int)Mnemonic.Ltr]        = &Exec.Ltr;
        t[(int)Mnemonic.Str]        = &Exec.Str;
        t[(int)Mnemonic.Lmsw]       = &Exec.Lmsw;
        t[(int)Mnemonic.Smsw]       = &Exec.Smsw;
        t[(int)Mnemonic.Clts]       = &Exec.Clts;
        t[(int)Mnemonic.Lar]        = &Exec.Lar;
        t[(int)Mnemonic.Lsl]        = &Exec.Lsl;
        t[(int)Mnemonic.Verr]       = &Exec.Verr;
        t[(int)Mnemonic.Verw]       = &Exec.Verw;
        t[(int)Mnemonic.Arpl]       = &Exec.Arpl;
        t[(int)Mnemonic.Cpuid]      = &Exec.Cpuid;
        t[(int)Mnemonic.Rdmsr]      = &Exec.Rdmsr;
        t[(int)Mnemonic.Wrmsr]      = &Exec.Wrmsr;
        t[(int)Mnemonic.Rdtsc]      = &Exec.Rdtsc;
        t[(int)Mnemonic.Rdtscp]     = &Exec.Rdtscp;
        t[(int)Mnemonic.Rdpid]      = &Exec.Rdpid;
        t[(int)Mnemonic.Xsetbv]     = &Exec.Xsetbv;
        t[(int)Mnemonic.Xgetbv]     = &Exec.Xgetbv;
        // XSAVE family, standard format (Exec.Xsave.cs)
        t[(int)Mnemonic.Xsave]      = &Exec.Xsave;
        t[(int)Mnemonic.Xsave64]    = &Exec.Xsave64;
        t[(int)Mnemonic.Xrstor]     = &Exec.Xrstor;
        t[(int)Mnemonic.Xrstor64]   = &Exec.Xrstor64;
        t[(int)Mnemonic.Invlpg]     = &Exec.Invlpg;
        t[(int)Mnemonic.Invpcid]    = &Exec.Invpcid;
        t[(int)Mnemonic.Swapgs]     = &Exec.Swapgs;
        t[(int)Mnemonic.Syscall]    = &Exec.Syscall;
        t[(int)Mnemonic.Sysret]     = &Exec.Sysret;
        t[(int)Mnemonic.Sysretq]    = &Exec.Sysret;
        t[(int)Mnemonic.Int]        = &Exec.Int;
        t[(int)Mnemonic.Int3]       = &Exec.Int3;
        t[(int)Mnemonic.Into]       = &Exec.Into;
        t[(int)Mnemonic.Int1]       = &Exec.Int1;
        t[(int)Mnemonic.Iret]       = &Exec.Iret;
        t[(int)Mnemonic.Iretd]      = &Exec.Iret;
        t[(int)Mnemonic.Iretq]      = &Exec.Iret;
        t[(int)Mnemonic.Ud0]        = &Exec.Ud;
        t[(int)Mnemonic.Ud1]        = &Exec.Ud;
        t[(int)Mnemonic.Ud2]        = &Exec.Ud;
        t[(int)Mnemonic.Wbinvd]     = &Exec.Wbinvd;
        t[(int)Mnemonic.Invd]       = &Exec.Wbinvd;
        t[(int)Mnemonic.Clflush]    = &Exec.Clflush;

        // Virtualization (Exec.Virtualization.cs)
        t[(int)Mnemonic.Vmmcall]    = &Exec.Vmmcall;
        t[(int)Mnemonic.Vmcall]     = &Exec.Vmcall;
        t[(int)Mnemonic.Vmrun]      = &Exec.SvmInstruction;
        t[(int)Mnemonic.Vmload]     = &Exec.SvmInstruction;
        t[(int)Mnemonic.Vmsave]     = &Exec.SvmInstruction;
        t[(int)Mnemonic.Stgi]       = &Exec.SvmInstruction;
        t[(int)Mnemonic.Clgi]       = &Exec.SvmInstruction;

        return t;
    }
}
