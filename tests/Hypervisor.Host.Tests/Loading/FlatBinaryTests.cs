using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Host.Cli;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Host.Tests.Loading;

public class FlatBinaryTests
{
    [TestCase("flat:0x100000", 0x100000UL, 0x100000UL, 32)]
    [TestCase("flat:1048576,entry=0x100010", 0x100000UL, 0x100010UL, 32)]
    [TestCase("FLAT:0x200000,mode=64,entry=0x200100", 0x200000UL, 0x200100UL, 64)]
    public void Parse_Valid(string text, ulong address, ulong entry, int mode)
    {
        Assert.That(FlatLoadSpec.TryParse(text, out var spec, out string error), Is.True, error);
        Assert.That(spec, Is.EqualTo(new FlatLoadSpec(address, entry, mode)));
    }

    [TestCase("elf:0x100000", "'elf:0x100000' is not flat:ADDR[,entry=ADDR][,mode=32|64]")]
    [TestCase("flat:", "'' is not an address")]
    [TestCase("flat:0xzz", "'0xzz' is not an address")]
    [TestCase("flat:0x1000,mode=16", "mode '16' is not 32 or 64")]
    [TestCase("flat:0x1000,entry=", "entry '' is not an address")]
    [TestCase("flat:0x1000,speed=fast", "unknown setting 'speed=fast'")]
    public void Parse_Invalid_SaysWhy(string text, string error)
    {
        Assert.That(FlatLoadSpec.TryParse(text, out _, out string why), Is.False);
        Assert.That(why, Does.StartWith(error));
    }

    /// <summary>Prints the mode it runs in ("32" or "64"), then "!" if EAX was not 0 at entry, a
    /// newline, and exits with 0x21.</summary>
    private static byte[] Probe(int bits, ulong address) => LongModeImages.Flat(a =>
    {
        var zero = a.CreateLabel();
        a.mov(ebx, eax);
        a.mov(dx, 0x3F8);
        foreach (char c in bits == 64 ? "64" : "32")
        {
            a.mov(al, (byte)c);
            a.@out(dx, al);
        }
        a.test(ebx, ebx);
        a.je(zero);
        a.mov(al, (byte)'!');
        a.@out(dx, al);
        a.Label(ref zero);
        a.mov(al, (byte)'\n');
        a.@out(dx, al);
        a.mov(al, 0x21);
        a.@out(0xF4, al);
    }, address, bits);

    [TestCase(32, "svm")]
    [TestCase(32, "bare")]
    [TestCase(64, "svm")]
    [TestCase(64, "bare")]
    [TestCase(32, "vmx")]
    [TestCase(64, "vmx")]
    public void Run_Flat_StartsAtTheEntryInTheMode(int bits, string vendor)
    {
        // 16 bytes of padding before the code: the entry is not the load address.
        byte[] code = Probe(bits, 0x300010);
        byte[] file = new byte[16 + code.Length];
        code.CopyTo(file, 16);
        var o = InProcessHv.RunImage(file, "--load", $"flat:0x300000,entry=0x300010,mode={bits}", "--vendor", vendor);
        Assert.That((o.Status, o.SerialText, o.Error), Is.EqualTo((0x43, $"{bits}\n", "")));
    }

    private static string ErrorOf(byte[] file, string spec, ulong memory = 16 << 20)
    {
        Assert.That(FlatLoadSpec.TryParse(spec, out var s, out _), Is.True);
        return Assert.Throws<ImageException>(() => BootImageLoader.Load(file, memory, new LoadOptions { Flat = s }))!.Message;
    }

    [TestCase("flat:0x1800", "the flat binary [0x1800, 0x1810) overlaps [0x1000, 0x2000), where hv puts the boot GDT; load the image elsewhere")]
    [TestCase("flat:0x8000,mode=64", "the flat binary [0x8000, 0x8010) overlaps [0x1000, 0x9000), where hv puts the 64-bit boot GDT, TSS, page tables and stack; load the image elsewhere")]
    [TestCase("flat:0x100000,entry=0x100010", "entry point 0x100010 is outside the loaded code [0x100000, 0x100010)")]
    [TestCase("flat:0xfffff8", "the flat binary [0xfffff8, 0x1000008) is outside guest memory [0x0, 0x1000000)")]
    public void Check_BadPlacement_IsRefused(string spec, string message)
    {
        Assert.That(ErrorOf(new byte[16], spec), Is.EqualTo(message));
    }

    [Test]
    public void Check_EmptyFile_IsRefused()
    {
        Assert.That(ErrorOf([], "flat:0x100000"), Does.StartWith("truncated: the file is empty"));
    }

    [Test]
    public void Run_FlatLargerThanMemory_Status2()
    {
        var o = InProcessHv.RunImage(new byte[2 << 20], "--load", "flat:0x100000", "--memory", "1M");
        Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(o.Error, Does.EndWith(": image larger than memory: its segments need 2097152 bytes (0x200000), guest memory is 1048576 bytes (0x100000); try --memory\n"));
    }

    [Test]
    public void Run_FlatWithModule_Status2Usage()
    {
        var o = InProcessHv.RunImage(new byte[16], "--load", "flat:0x100000", "--module", "x.bin");
        Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(o.Error, Is.EqualTo("hv: --append, --initrd and --module pass information to a multiboot kernel; --load flat loads a raw binary, which gets none\n"));
    }

    [Test]
    public void Load_Mode32_ProtectedModeWithoutLoaderInformation()
    {
        Assert.That(FlatLoadSpec.TryParse("flat:0x100000", out var spec, out _), Is.True);
        var image = FlatBinary.Check(new byte[] { 0xF4 }, spec!, 16 << 20);
        using var vm = (BareMachine)VirtualMachine.Create(16 << 20, Stream.Null, new MachineOptions { Vendor = VendorKind.Bare });
        vm.Load(image);
        Assert.That((vm.Cpu.CodeBits, vm.Cpu.GetGpr(Gpr.Rax), vm.Cpu.GetGpr(Gpr.Rbx), vm.Cpu.Rip, vm.Cpu.Gdtr.Base), Is.EqualTo((32, 0UL, 0UL, 0x100000UL, 0x1000UL)));
    }
}
