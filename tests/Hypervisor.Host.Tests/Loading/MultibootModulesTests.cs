using System.Text;
using Hypervisor.Host.Cli;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Tests.Support;

namespace Hypervisor.Host.Tests.Loading;

public class MultibootModulesTests
{
    private const ulong Mem = 16 << 20;

    private static MultibootModule Module(string name, int size, string? args = null) =>
        new(name, Enumerable.Range(0, size).Select(k => (byte)k).ToArray(), args is null ? name : $"{name} {args}");

    private static string CString(VirtualMachine vm, ulong address)
    {
        var bytes = new byte[256];
        vm.Memory.Read(address, bytes);
        return Encoding.ASCII.GetString(bytes, 0, Array.IndexOf(bytes, (byte)0));
    }

    [Test]
    public void Load_CommandLineAndModules_AreInTheInformationStructure()
    {
        byte[] image = TestImages.Aout(a => a.hlt());
        var boot = new MultibootBootOptions("kernel.bin console=ttyS0", [Module("a.img", 5000), Module("b.txt", 10, "x=1 y")]);
        var k = MultibootKernel.Check(image, Mem, boot);
        using var vm = VirtualMachine.Create(Mem, Stream.Null, new MachineOptions { Vendor = VendorKind.Bare });
        vm.Load(k);

        ulong info = k.BootInfoAddress;
        Assert.That(vm.Memory.ReadU32(info) & (MultibootInfo.FlagCommandLine | MultibootInfo.FlagModules), Is.EqualTo(MultibootInfo.FlagCommandLine | MultibootInfo.FlagModules));
        Assert.That(CString(vm, vm.Memory.ReadU32(info + 16)), Is.EqualTo("kernel.bin console=ttyS0"));
        Assert.That(vm.Memory.ReadU32(info + 20), Is.EqualTo(2));
        ulong list = vm.Memory.ReadU32(info + 24);
        ulong first = vm.Memory.ReadU32(list), firstEnd = vm.Memory.ReadU32(list + 4);
        ulong second = vm.Memory.ReadU32(list + 16), secondEnd = vm.Memory.ReadU32(list + 20);
        Assert.Multiple(() =>
        {
            Assert.That(first % 4096, Is.Zero, "page-aligned");
            Assert.That(first, Is.GreaterThanOrEqualTo(k.BootInfoArea + MultibootInfo.AreaSize), "after the boot area");
            Assert.That(firstEnd - first, Is.EqualTo(5000), "mod_end is exclusive");
            Assert.That(second, Is.EqualTo((firstEnd + 4095) & ~4095UL), "the next page boundary");
            Assert.That(secondEnd - second, Is.EqualTo(10));
            Assert.That(CString(vm, vm.Memory.ReadU32(list + 8)), Is.EqualTo("a.img"));
            Assert.That(CString(vm, vm.Memory.ReadU32(list + 24)), Is.EqualTo("b.txt x=1 y"));
            Assert.That(vm.Memory.ReadU32(first + 4996), Is.EqualTo(BitConverter.ToUInt32([4996 & 0xFF, 4997 & 0xFF, 4998 & 0xFF, 4999 & 0xFF])), "the module's bytes");
        });
    }

    [Test]
    public void Check_LongCommandLine_GrowsTheBootAreaByPages()
    {
        string line = "k " + new string('a', 6000);
        var k = MultibootKernel.Check(TestImages.Aout(a => a.hlt()), Mem, new MultibootBootOptions(line, [Module("m", 1)]));
        Assert.That(k.Modules[0].Start, Is.EqualTo(k.BootInfoArea + 0x2000), "0x800 + 6003 bytes of strings need two pages");
    }

    [Test]
    public void Check_ModuleThatDoesNotFit_OneLineNamingIt()
    {
        var boot = new MultibootBootOptions("k", [Module("small.img", 10), Module("big.img", 2 << 20)]);
        var e = Assert.Throws<ImageException>(() => MultibootKernel.Check(TestImages.Aout(a => a.hlt()), 2 << 20, boot))!;
        Assert.That(e.Message, Does.Match(@"^module 2 \(big\.img, 2097152 bytes\) does not fit: it goes at \[0x[0-9a-f]+, 0x[0-9a-f]+\) after the kernel and its boot information, but guest memory ends at 0x200000; try --memory$"));
    }

    [Test]
    public void Check_TooManyModules_IsRefused()
    {
        var boot = new MultibootBootOptions("k", Enumerable.Range(0, MultibootInfo.MaxModules + 1).Select(n => Module($"m{n}", 1)).ToList());
        var e = Assert.Throws<ImageException>(() => MultibootKernel.Check(TestImages.Aout(a => a.hlt()), Mem, boot))!;
        Assert.That(e.Message, Is.EqualTo("81 modules: hv passes at most 80"));
    }

    [Test]
    public void Run_ModuleTooLargeForMemory_Status2NothingRuns()
    {
        string module = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(module, new byte[3 << 20]);
            var o = InProcessHv.RunImage(TestImages.Aout(a => a.hlt()), "--memory", "2M", "--initrd", module);
            Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
            Assert.That(o.Error, Does.Contain($": module 1 ({module}, 3145728 bytes) does not fit: "));
            Assert.That(o.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries), Has.Length.EqualTo(1));
        }
        finally
        {
            File.Delete(module);
        }
    }

    [TestCase("--module", "/nonexistent/m.bin,args", "hv: --module /nonexistent/m.bin: no such file\n")]
    [TestCase("--initrd", "/nonexistent/initrd", "hv: --initrd /nonexistent/initrd: no such file\n")]
    public void Run_MissingModuleFile_Status2(string option, string value, string error)
    {
        var o = InProcessHv.RunImage(TestImages.Aout(a => a.hlt()), option, value);
        Assert.That((o.Status, o.Error), Is.EqualTo((ExitCodes.UsageOrImageError, error)));
    }

    [TestCase("m.bin", "m.bin", null)]
    [TestCase("m.bin,a b,c", "m.bin", "a b,c")]
    [TestCase("m.bin,", "m.bin", "")]
    public void ModuleArgument_SplitsAtTheFirstComma(string text, string file, string? args)
    {
        var m = ModuleArgument.Parse(text);
        Assert.That((m.File, m.Arguments), Is.EqualTo((file, args)));
        Assert.That(m.String, Is.EqualTo(args is null ? file : $"{file} {args}"));
    }
}
