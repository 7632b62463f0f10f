using Hypervisor.Host.Guests;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Samples.Guests;

/// <summary>
/// cmdline.bin (a.out kludge): prints what the loader passes a multiboot kernel besides memory:
/// the command line (flags bit 2) and the modules (bit 3): for each, its string, whether it
/// starts on a page boundary (the header asks for it, flags bit 0), its size and its first line.
/// The first word of the command line and of each module string is the file's name, which
/// depends on where the file is, so only what follows it is printed. Run it as
/// <c>hv run cmdline.bin --append "ARGS" --module FILE,ARGS</c> (QEMU: <c>-append "ARGS"
/// -initrd "FILE ARGS"</c>). Exits with 0 (status 1).
/// </summary>
public static class CommandLine
{
    /// <summary>Bytes of a module's first line that are printed at most.</summary>
    public const int LineLimit = 64;

    public static byte[] Build()
    {
        var a = new Assembler(32);
        var lib = new GuestLib(a, MultibootImageWriter.AoutKludgeCodeAddress(Sample.LoadAddress));
        uint cmdline = lib.String("cmdline: [");
        uint noCmdline = lib.String("no command line\n");
        uint modules = lib.String("modules: ");
        uint noModules = lib.String("no module list\n");
        uint module = lib.String("module: [");
        uint aligned = lib.String("] page-aligned, ");
        uint unaligned = lib.String("] NOT page-aligned, ");
        uint bytes = lib.String(" bytes, first line: [");
        uint close = lib.String("]\n");
        uint newline = lib.String("\n");
        var skipWord = a.CreateLabel("skip_word");

        lib.BeginCode();
        a.mov(ebp, ebx);            // multiboot information
        lib.SerialInit();

        var afterCmdline = a.CreateLabel();
        var haveCmdline = a.CreateLabel();
        a.test(__dword_ptr[ebp], 1 << 2);
        a.jne(haveCmdline);
        lib.Print(noCmdline);
        a.jmp(afterCmdline);
        a.Label(ref haveCmdline);
        lib.Print(cmdline);
        a.mov(esi, __dword_ptr[ebp + 16]);
        a.call(skipWord);
        lib.PrintAtEsi();
        lib.Print(close);
        a.Label(ref afterCmdline);

        var haveModules = a.CreateLabel();
        var done = a.CreateLabel();
        a.test(__dword_ptr[ebp], 1 << 3);
        a.jne(haveModules);
        lib.Print(noModules);
        a.jmp(done);
        a.Label(ref haveModules);
        lib.Print(modules);
        a.mov(eax, __dword_ptr[ebp + 20]);   // mods_count
        lib.PutDecimal();
        lib.Print(newline);
        a.mov(ecx, __dword_ptr[ebp + 20]);
        a.mov(ebx, __dword_ptr[ebp + 24]);   // mods_addr: mod_start, mod_end, string, reserved
        var next = a.CreateLabel();
        var isAligned = a.CreateLabel();
        var sized = a.CreateLabel();
        var line = a.CreateLabel();
        var lineEnd = a.CreateLabel();
        a.Label(ref next);
        a.test(ecx, ecx);
        a.je(done);
        lib.Print(module);
        a.mov(esi, __dword_ptr[ebx + 8]);
        a.call(skipWord);
        lib.PrintAtEsi();
        a.test(__dword_ptr[ebx], 0xFFF);
        a.je(isAligned);
        lib.Print(unaligned);
        a.jmp(sized);
        a.Label(ref isAligned);
        lib.Print(aligned);
        a.Label(ref sized);
        a.mov(eax, __dword_ptr[ebx + 4]);
        a.sub(eax, __dword_ptr[ebx]);
        lib.PutDecimal();
        lib.Print(bytes);
        // The first line: bytes up to a newline, the module's end or LineLimit bytes.
        a.mov(esi, __dword_ptr[ebx]);
        a.mov(edx, __dword_ptr[ebx + 4]);
        a.mov(edi, esi);
        a.add(edi, LineLimit);
        a.cmp(edx, edi);
        a.jbe(line);
        a.mov(edx, edi);
        a.Label(ref line);
        a.cmp(esi, edx);
        a.jae(lineEnd);
        a.mov(al, __byte_ptr[esi]);
        a.cmp(al, (byte)'\n');
        a.je(lineEnd);
        lib.PutChar();
        a.inc(esi);
        a.jmp(line);
        a.Label(ref lineEnd);
        lib.Print(close);
        a.add(ebx, 16);
        a.dec(ecx);
        a.jmp(next);

        a.Label(ref done);
        a.xor(eax, eax);
        lib.ExitWithAl();

        // skip_word: ESI = string → ESI past its first word and the space after it (at the NUL if none).
        var atSpace = a.CreateLabel();
        var end = a.CreateLabel();
        a.Label(ref skipWord);
        a.cmp(__byte_ptr[esi], 0);
        a.je(end);
        a.cmp(__byte_ptr[esi], (byte)' ');
        a.je(atSpace);
        a.inc(esi);
        a.jmp(skipWord);
        a.Label(ref atSpace);
        a.inc(esi);
        a.Label(ref end);
        a.ret();

        lib.EmitRoutines();
        return MultibootImageWriter.AoutKludge(a, Sample.LoadAddress, entry: lib.Entry);
    }
}
