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

        // Logical (Exec.Logical.cs)
        t[(int)Mnemonic.And]        = &Exec.And;
        t[(int)Mnemonic.Or]         = &Exec.Or;
        t[(int)Mnemonic.Xor]        = &Exec.Xor;
        t[(int)Mnemonic.Test]       = &Exec.Test;

        // Shifts and rotates (Exec.Shift.cs)

        // Multiply and divide (Exec.MulDiv.cs)

        // Bit operations (Exec.Bit.cs)

        // Data transfer (Exec.DataTransfer.cs)
        t[(int)Mnemonic.Mov]        = &Exec.Mov;
        t[(int)Mnemonic.Nop]        = &Exec.Nop;

        // Stack (Exec.Stack.cs)
        t[(int)Mnemonic.Push]       = &Exec.Push;
        t[(int)Mnemonic.Pop]        = &Exec.Pop;

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

        // String (Exec.String.cs)

        // I/O (Exec.Io.cs)
        t[(int)Mnemonic.Out]        = &Exec.Out;
        t[(int)Mnemonic.In]         = &Exec.In;

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

        return t;
    }
}
