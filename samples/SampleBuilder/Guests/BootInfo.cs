using Hypervisor.Host.Guests;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Samples.Guests;

/// <summary>
/// mbinfo.bin (a.out kludge): checks what the loader hands a multiboot kernel: the magic in EAX,
/// the flags for the memory fields (bit 0) and memory map (bit 6), and that mem_lower and
/// mem_upper agree with the map (mem_lower KiB available from 0, mem_upper KiB available from
/// 1 MiB). It prints each verdict rather than the sizes, which depend on the firmware: QEMU's
/// SeaBIOS reserves the EBDA and its own tables, hv has no firmware. Exits with 0 (status 1) when
/// everything holds, 0x0F (status 31) otherwise: not 1, whose status 3 reads like a triple fault.
/// </summary>
public static class BootInfo
{
    public const uint Magic = 0x2BADB002;
    private const uint NotFound = 0xFFFFFFFF;
    public const byte FailValue = 0x0F;

    public static byte[] Build()
    {
        var a = new Assembler(32);
        var lib = new GuestLib(a, MultibootImageWriter.AoutKludgeCodeAddress(Sample.LoadAddress));
        uint magicOk = lib.String("multiboot magic ok\n");
        uint magicBad = lib.String("multiboot magic wrong\n");
        uint flagsOk = lib.String("flags: memory fields and memory map present\n");
        uint flagsBad = lib.String("flags: memory fields or memory map missing\n");
        uint lowerOk = lib.String("mem_lower matches the available region at 0\n");
        uint lowerBad = lib.String("mem_lower does not match the memory map\n");
        uint upperOk = lib.String("mem_upper matches the available region at 1 MiB\n");
        uint upperBad = lib.String("mem_upper does not match the memory map\n");
        var fail = a.CreateLabel();
        var findRegion = a.CreateLabel();

        lib.BeginCode();
        a.mov(edi, eax);            // magic
        a.mov(ebp, ebx);            // multiboot information
        lib.SerialInit();
        Check(lib, () => a.cmp(edi, Magic), magicOk, magicBad, fail);

        a.mov(eax, __dword_ptr[ebp]);
        a.and(eax, 0x41);
        Check(lib, () => a.cmp(eax, 0x41), flagsOk, flagsBad, fail);

        // The available region at 0 is mem_lower KiB long, the one at 1 MiB mem_upper KiB.
        CheckField(lib, findRegion, regionBase: 0, fieldOffset: 4, lowerOk, lowerBad, fail);
        CheckField(lib, findRegion, regionBase: 0x100000, fieldOffset: 8, upperOk, upperBad, fail);

        a.xor(eax, eax);
        lib.ExitWithAl();
        a.Label(ref fail);
        a.mov(eax, FailValue);
        lib.ExitWithAl();

        // find_region: EDX = base → EAX = length of the available entry starting exactly there
        // (both below 4 GiB), or 0xFFFFFFFF. Entries: size, base_addr, length, type; size excludes itself.
        var walk = a.CreateLabel();
        var next = a.CreateLabel();
        var none = a.CreateLabel();
        var found = a.CreateLabel();
        var done = a.CreateLabel();
        a.Label(ref findRegion);
        a.push(ecx);
        a.push(esi);
        a.mov(esi, __dword_ptr[ebp + 48]);   // mmap_addr
        a.mov(ecx, esi);
        a.add(ecx, __dword_ptr[ebp + 44]);   // + mmap_length
        a.Label(ref walk);
        a.cmp(esi, ecx);
        a.jae(none);
        a.cmp(__dword_ptr[esi + 20], 1);     // type 1: available
        a.jne(next);
        a.cmp(__dword_ptr[esi + 8], 0);      // base_addr high
        a.jne(next);
        a.cmp(__dword_ptr[esi + 16], 0);     // length high
        a.jne(next);
        a.cmp(__dword_ptr[esi + 4], edx);    // base_addr low
        a.je(found);
        a.Label(ref next);
        a.add(esi, __dword_ptr[esi]);
        a.add(esi, 4);
        a.jmp(walk);
        a.Label(ref none);
        a.mov(eax, NotFound);
        a.jmp(done);
        a.Label(ref found);
        a.mov(eax, __dword_ptr[esi + 12]);
        a.Label(ref done);
        a.pop(esi);
        a.pop(ecx);
        a.ret();

        lib.EmitRoutines();
        return MultibootImageWriter.AoutKludge(a, Sample.LoadAddress, entry: lib.Entry);
    }

    /// <summary>Emits the comparison, then prints the verdict; a failed check jumps to <paramref name="fail"/>.</summary>
    private static void Check(GuestLib lib, Action compare, uint ok, uint bad, Label fail)
    {
        var good = lib.A.CreateLabel();
        compare();
        lib.A.je(good);
        lib.Print(bad);
        lib.A.jmp(fail);
        lib.A.Label(ref good);
        lib.Print(ok);
    }

    /// <summary>Compares the KiB field at <paramref name="fieldOffset"/> × 1024 with the length of
    /// the available region at <paramref name="regionBase"/>.</summary>
    private static void CheckField(GuestLib lib, Label findRegion, uint regionBase, int fieldOffset, uint ok, uint bad, Label fail)
    {
        var a = lib.A;
        a.mov(edx, regionBase);
        a.call(findRegion);
        a.mov(ebx, __dword_ptr[ebp + fieldOffset]);
        for (int k = 0; k < 10; k++)
            a.add(ebx, ebx);                 // KiB to bytes without a shift instruction
        Check(lib, () => a.cmp(eax, ebx), ok, bad, fail);
    }
}
