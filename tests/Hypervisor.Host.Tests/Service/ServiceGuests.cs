using Hypervisor.Host.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Host.Tests.Service;

/// <summary>Guest images for the service tests, written to a temporary directory.</summary>
internal sealed class ServiceGuests : IDisposable
{
    public ServiceGuests()
    {
        Directory = Path.Combine(Path.GetTempPath(), $"hv-serve-{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(Directory);
        Forever = Write("forever.bin", TestImages.Aout(PrintDotsForever));
        CommandLine = Write("cmdline.bin", TestImages.Aout(PrintCommandLine));
    }

    public string Directory { get; }

    /// <summary>Prints "." on COM1 every 50,000 loop iterations, forever.</summary>
    public string Forever { get; }

    /// <summary>Prints its multiboot command line on COM1, then writes 0 to isa-debug-exit.</summary>
    public string CommandLine { get; }

    /// <summary>The committed sample that prints a line, then triple-faults.</summary>
    public static string Triple => Path.Combine(RepositoryPaths.SampleImages, "triple.bin");

    /// <summary>The committed sample that prints "Hello from hv!" and writes 0 to isa-debug-exit.</summary>
    public static string Hello => Path.Combine(RepositoryPaths.SampleImages, "hello.elf");

    public string Write(string name, byte[] image)
    {
        string path = Path.Combine(Directory, name);
        File.WriteAllBytes(path, image);
        return path;
    }

    private static void PrintDotsForever(Assembler a)
    {
        var top = a.CreateLabel();
        var inner = a.CreateLabel();
        a.Label(ref top);
        a.mov(ecx, 50_000);
        a.Label(ref inner);
        a.dec(ecx);
        a.jnz(inner);
        a.mov(dx, 0x3F8);
        a.mov(al, (byte)'.');
        a.@out(dx, al);
        a.jmp(top);
    }

    private static void PrintCommandLine(Assembler a)
    {
        var next = a.CreateLabel();
        var done = a.CreateLabel();
        a.mov(esi, __dword_ptr[ebx + 16]); // multiboot_info.cmdline (flags bit 2 is set by hv's loader)
        a.mov(dx, 0x3F8);
        a.Label(ref next);
        a.mov(al, __byte_ptr[esi]);
        a.test(al, al);
        a.jz(done);
        a.@out(dx, al);
        a.inc(esi);
        a.jmp(next);
        a.Label(ref done);
        a.mov(dx, 0xF4);
        a.mov(al, 0);
        a.@out(dx, al);
    }

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);
}
