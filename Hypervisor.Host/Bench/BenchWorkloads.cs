using Hypervisor.Host.Guests;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Host.Bench;

/// <summary>A guest workload whose length scales with <c>n</c> (its outer loop count); it ends by
/// writing 0 to isa-debug-exit. Its instruction count is exactly <c>a + b·n</c>.</summary>
public sealed record BenchWorkload(string Name, string Description, Func<uint, byte[]> Build);

/// <summary>
/// The three <c>hv bench</c> workloads, built in-process as 32-bit multiboot images (a.out
/// kludge, loaded at 1 MiB) from instructions every CPU family here implements: an ALU loop,
/// recursive calls and returns, and a loop touching 64 MiB of memory.
/// </summary>
public static class BenchWorkloads
{
    public const uint LoadAddress = 0x100000;
    public const uint StackTop = 0x90000;
    /// <summary>The memory workload walks [16 MiB, 80 MiB), one access per 64-byte line.</summary>
    public const uint MemoryStart = 16u << 20, MemoryBytes = 64u << 20, MemoryStride = 64;
    /// <summary>Depth of the recursive workload: fib(20) makes 21,891 calls.</summary>
    public const int FibArgument = 20;

    public static IReadOnlyList<BenchWorkload> All { get; } =
    [
        new("alu-loop", "add/xor/sub/and/or/inc/cmp/dec/jne on registers", AluLoop),
        new("call-ret", "recursive fib(20): call, ret, push, pop", CallRet),
        new("memory-64m", "load/add/store every 64-byte line of 64 MiB", Memory64M),
    ];

    /// <summary>An image that exits at once: QEMU's start-up and shut-down time.</summary>
    public static byte[] Empty()
    {
        var a = new Assembler(32);
        ExitSuccess(a);
        return MultibootImageWriter.AoutKludge(a, LoadAddress);
    }

    private static byte[] AluLoop(uint n)
    {
        var a = new Assembler(32);
        var loop = a.CreateLabel();
        a.mov(ecx, n);
        a.mov(eax, 1);
        a.mov(edx, 0x12345678);
        a.xor(ebx, ebx);
        a.xor(esi, esi);
        a.xor(edi, edi);
        a.Label(ref loop);
        a.add(eax, edx);
        a.xor(ebx, eax);
        a.sub(edx, ecx);
        a.and(eax, 0x7FFFFFFF);
        a.or(ebx, 3);
        a.inc(edi);
        a.cmp(esi, ebx);
        a.dec(ecx);
        a.jne(loop);
        ExitSuccess(a);
        return MultibootImageWriter.AoutKludge(a, LoadAddress);
    }

    private static byte[] CallRet(uint n)
    {
        var a = new Assembler(32);
        var outer = a.CreateLabel();
        var fib = a.CreateLabel();
        var done = a.CreateLabel();
        a.mov(esp, StackTop);
        a.mov(ebp, n);
        a.Label(ref outer);
        a.mov(eax, FibArgument);
        a.call(fib);
        a.dec(ebp);
        a.jne(outer);
        ExitSuccess(a);

        // fib: EAX = n → EAX = fib(n), the naive doubly recursive way.
        a.Label(ref fib);
        a.cmp(eax, 2);
        a.jb(done);
        a.push(eax);
        a.dec(eax);
        a.call(fib);
        a.pop(edx);      // n
        a.push(eax);     // fib(n - 1)
        a.mov(eax, edx);
        a.sub(eax, 2);
        a.call(fib);
        a.pop(edx);
        a.add(eax, edx);
        a.Label(ref done);
        a.ret();
        return MultibootImageWriter.AoutKludge(a, LoadAddress);
    }

    private static byte[] Memory64M(uint n)
    {
        var a = new Assembler(32);
        var outer = a.CreateLabel();
        var inner = a.CreateLabel();
        a.mov(ebp, n);
        a.Label(ref outer);
        a.mov(esi, MemoryStart);
        a.Label(ref inner);
        a.mov(eax, __dword_ptr[esi]);
        a.add(eax, ebp);
        a.mov(__dword_ptr[esi], eax);
        a.add(esi, MemoryStride);
        a.cmp(esi, MemoryStart + MemoryBytes);
        a.jb(inner);
        a.dec(ebp);
        a.jne(outer);
        ExitSuccess(a);
        return MultibootImageWriter.AoutKludge(a, LoadAddress);
    }

    /// <summary>The exit workload (<c>hv bench --exits</c>): CPUID leaf 0 in a loop of n. A
    /// hypervisor intercepts every CPUID (SVM has no way not to, for CPUID must report the guest's
    /// table), so each iteration is one full exit round trip: #VMEXIT, emulation, VMRUN.</summary>
    public static byte[] CpuidLoop(uint n) => ExitLoop(n, a => a.cpuid());

    /// <summary>The same loop with NOP in CPUID's place: the guest's own share of each iteration.</summary>
    public static byte[] NopLoop(uint n) => ExitLoop(n, a => a.nop());

    /// <summary>Guest instructions one iteration of <see cref="CpuidLoop"/> and <see cref="NopLoop"/> executes
    /// (XOR EAX, the instruction, DEC, JNE).</summary>
    public const int ExitLoopInstructions = 4;

    private static byte[] ExitLoop(uint n, Action<Assembler> body)
    {
        var a = new Assembler(32);
        var loop = a.CreateLabel();
        a.mov(ebp, n);
        a.Label(ref loop);
        a.xor(eax, eax);
        body(a);
        a.dec(ebp);
        a.jne(loop);
        ExitSuccess(a);
        return MultibootImageWriter.AoutKludge(a, LoadAddress);
    }

    /// <summary>Writes 0 to isa-debug-exit (status 1 under both hv and QEMU); HLT if that returns.</summary>
    private static void ExitSuccess(Assembler a)
    {
        a.xor(eax, eax);
        a.@out(0xF4, al);
        a.hlt();
    }
}
