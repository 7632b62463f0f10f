using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Host.Tests.Loading;

public class MultibootKernelTests
{
    private const ulong Mem = 16 << 20;

    private static BareMachine Bare() => (BareMachine)VirtualMachine.Create(Mem, Stream.Null, new MachineOptions { Vendor = VendorKind.Bare });

    private static string ErrorOf(byte[] image, ulong memory = Mem) =>
        Assert.Throws<ImageException>(() => MultibootKernel.Check(image, memory))!.Message;

    private static byte[] Aout(uint headerAddr, uint loadAddr, uint loadEnd, uint bssEnd, uint entry, int fileLength = 256, int headerOffset = 0)
    {
        var f = new byte[fileLength];
        uint flags = MultibootHeader.FlagAoutKludge;
        uint[] fields = { MultibootHeader.Magic, flags, unchecked(0u - MultibootHeader.Magic - flags), headerAddr, loadAddr, loadEnd, bssEnd, entry };
        for (int k = 0; k < fields.Length; k++)
            BitConverter.TryWriteBytes(f.AsSpan(headerOffset + 4 * k), fields[k]);
        return f;
    }

    [Test]
    public void Check_AoutImage_LoadsOneRangeWithBssAndEntryAfterHeader()
    {
        byte[] image = TestImages.Aout(a => a.hlt(), bssSize: 0x2000);
        var k = MultibootKernel.Check(image, Mem);
        Assert.That(k.Format, Is.EqualTo(ImageFormat.AoutKludge));
        Assert.That(k.Segments, Has.Count.EqualTo(1));
        Assert.That(k.Segments[0], Is.EqualTo(new LoadSegment(0, 0x100000, 0, (ulong)image.Length, (ulong)image.Length + 0x2000)));
        Assert.That(k.Entry, Is.EqualTo(0x100020));
        Assert.That(k.BootInfoArea, Is.EqualTo(0x103000), "the page after the bss");
    }

    [Test]
    public void Check_AoutLoadEndZero_LoadsToEndOfFile()
    {
        var k = MultibootKernel.Check(Aout(0x100000, 0x100000, 0, 0, 0x100020), Mem);
        Assert.That(k.Segments[0].FileSize, Is.EqualTo(256));
    }

    [Test]
    public void Check_AoutHeaderInsideImage_LoadsFromBeforeTheHeader()
    {
        // The header sits 64 bytes into the file and says it is 64 bytes after load_addr.
        var k = MultibootKernel.Check(Aout(0x100040, 0x100000, 0x100100, 0, 0x100000, fileLength: 256, headerOffset: 64), Mem);
        Assert.That(k.Segments[0].FileOffset, Is.EqualTo(0));
        Assert.That(k.Segments[0].FileSize, Is.EqualTo(0x100));
    }

    [TestCase(32)]
    [TestCase(64)]
    public void Check_Elf_UsesProgramHeadersAndEntry(int bits)
    {
        byte[] image = TestImages.Elf(a => a.hlt(), elf64: bits == 64);
        var k = MultibootKernel.Check(image, Mem);
        Assert.That(k.Format, Is.EqualTo(bits == 32 ? ImageFormat.Elf32 : ImageFormat.Elf64));
        Assert.That(k.Entry, Is.EqualTo(0x100000 + (bits == 32 ? 96u : 132u)));
    }

    [Test]
    public void Check_ImageLargerThanMemory_SaysSo()
    {
        string m = ErrorOf(TestImages.Aout(a => a.hlt(), bssSize: 3 << 20), memory: 2 << 20);
        Assert.That(m, Does.StartWith("image larger than memory:").And.Contain("guest memory is 2097152 bytes"));
    }

    [Test]
    public void Check_SegmentPastEndOfMemory_NamesSegmentAndRange()
    {
        var f = RawElf.Build(32, 0x100000, new RawSegment(0x100000, new byte[16]), new RawSegment(0x1FF000, new byte[0x2000]));
        Assert.That(ErrorOf(f, memory: 2 << 20), Is.EqualTo("program header 1 (PT_LOAD [0x1ff000, 0x201000)) is outside guest memory [0x0, 0x200000)"));
    }

    [Test]
    public void Check_SegmentAbove4GiB_IsOutsideReach()
    {
        var f = RawElf.Build(64, 0x100000, new RawSegment(0x100000, new byte[16]), new RawSegment(0x1_0000_0000, new byte[16]));
        Assert.That(ErrorOf(f, memory: 8UL << 30), Does.Contain("program header 1 (PT_LOAD [0x100000000, 0x100000010)) is outside guest memory [0x0, 0x100000000)"));
    }

    [Test]
    public void Check_AoutRangePastEndOfMemory_IsOutsideMemory()
    {
        string m = ErrorOf(Aout(0xFFF000, 0xFFF000, 0, 0x1001000, 0xFFF020));
        Assert.That(m, Is.EqualTo("the a.out kludge load range [0xfff000, 0x1001000) is outside guest memory [0x0, 0x1000000)"));
    }

    [Test]
    public void Check_OverlappingSegments_NamesBoth()
    {
        var f = RawElf.Build(32, 0x200000, new RawSegment(0x200800, new byte[0x100]), new RawSegment(0x200000, new byte[0x1000]));
        Assert.That(ErrorOf(f), Is.EqualTo("program header 1 (PT_LOAD [0x200000, 0x201000)) and program header 0 (PT_LOAD [0x200800, 0x200900)) overlap"));
    }

    [Test]
    public void Check_AdjacentSegments_DoNotOverlap()
    {
        var f = RawElf.Build(32, 0x200000, new RawSegment(0x200000, new byte[0x1000]), new RawSegment(0x201000, new byte[0x10]));
        Assert.That(MultibootKernel.Check(f, Mem).Segments, Has.Count.EqualTo(2));
    }

    [Test]
    public void Check_EntryOutsideEverySegment_SaysWhereCodeIs()
    {
        var f = RawElf.Build(32, 0x400000, new RawSegment(0x200000, new byte[0x10]));
        Assert.That(ErrorOf(f), Is.EqualTo("entry point 0x400000 is outside the loaded code [0x200000, 0x200010)"));
    }

    [Test]
    public void Check_EntryInBss_IsOutsideLoadedCode()
    {
        var f = RawElf.Build(32, 0x200100, new RawSegment(0x200000, new byte[0x10], MemorySize: 0x1000));
        Assert.That(ErrorOf(f), Does.StartWith("entry point 0x200100 is outside the loaded code"));
    }

    [Test]
    public void Check_AoutEntryOutsideLoadRange_IsRefused()
    {
        Assert.That(ErrorOf(Aout(0x100000, 0x100000, 0x100100, 0, 0x100200)), Does.StartWith("entry point 0x100200 is outside the loaded code [0x100000, 0x100100)"));
    }

    [Test]
    public void Check_LoadAddrAboveHeaderAddr_IsRefused()
    {
        Assert.That(ErrorOf(Aout(0x100000, 0x100010, 0, 0, 0x100020)), Is.EqualTo("multiboot header at file offset 0x0: load_addr 0x100010 is above header_addr 0x100000"));
    }

    [Test]
    public void Check_LoadStartBeforeFile_IsRefused()
    {
        Assert.That(ErrorOf(Aout(0x100100, 0x100000, 0, 0, 0x100100)), Does.Contain("256 bytes before the beginning of the file"));
    }

    [Test]
    public void Check_LoadEndBelowLoadAddr_IsRefused()
    {
        Assert.That(ErrorOf(Aout(0x100000, 0x100000, 0xFF000, 0, 0x100000)), Does.Contain("load_end_addr 0xff000 is below load_addr 0x100000"));
    }

    [Test]
    public void Check_LoadEndPastEndOfFile_SaysTruncated()
    {
        Assert.That(ErrorOf(Aout(0x100000, 0x100000, 0x100200, 0, 0x100000)), Does.StartWith("truncated: load_addr..load_end_addr [0x100000, 0x100200) needs file bytes [0x0, 0x200) but the file ends at 0x100"));
    }

    [Test]
    public void Check_BssEndBelowLoadEnd_IsRefused()
    {
        Assert.That(ErrorOf(Aout(0x100000, 0x100000, 0x100100, 0x100080, 0x100000)), Does.Contain("bss_end_addr 0x100080 is below the end of the loaded data 0x100100"));
    }

    [Test]
    public void Check_NoPageLeftForBootInformation_IsRefused()
    {
        var f = RawElf.Build(32, 0x100000, new RawSegment(0x100000, new byte[16], MemorySize: 0x100000));
        Assert.That(ErrorOf(f, memory: 2 << 20), Does.StartWith("no room for the multiboot information: it goes in the page after the image (0x200000)"));
    }

    [Test]
    public void LoadInto_CopiesCodeZeroesBssAndWritesBootPage()
    {
        byte[] image = TestImages.Aout(a => a.hlt(), bssSize: 0x1800);
        var k = MultibootKernel.Check(image, Mem);
        using var vm = Bare();
        var dirt = new byte[0x4000];
        Array.Fill(dirt, (byte)0xAA);
        vm.Memory.Write(0x100000, dirt);
        k.LoadInto(vm.Memory, vm.Cpu);

        var loaded = new byte[image.Length];
        vm.Memory.Read(0x100000, loaded);
        Assert.That(loaded, Is.EqualTo(image));
        var bss = new byte[0x1800];
        vm.Memory.Read(0x100000 + (ulong)image.Length, bss);
        Assert.That(bss, Is.All.EqualTo(0));
        Assert.That(vm.Memory.ReadU32(k.BootInfoAddress), Is.EqualTo(MultibootInfo.FlagMemory | MultibootInfo.FlagMemoryMap | MultibootInfo.FlagBootLoaderName));
    }

    [Test]
    public void LoadInto_SetsMultibootEntryState()
    {
        var k = MultibootKernel.Check(TestImages.Aout(a => a.hlt()), Mem);
        using var vm = Bare();
        k.LoadInto(vm.Memory, vm.Cpu);
        var cpu = vm.Cpu;
        Assert.That(cpu.GetGpr(Gpr.Rax), Is.EqualTo(0x2BADB002));
        Assert.That(cpu.GetGpr(Gpr.Rbx), Is.EqualTo(k.BootInfoAddress));
        Assert.That(cpu.Rip, Is.EqualTo(0x100020));
        Assert.That(cpu.Cr0 & (Cr0.Pe | Cr0.Pg), Is.EqualTo(Cr0.Pe), "protected mode, paging off");
        Assert.That(cpu.CodeBits, Is.EqualTo(32));
        Assert.That(cpu.GetRFlags() & (RFlags.If | RFlags.Vm), Is.EqualTo(0));
        foreach (int s in new[] { SegReg.Cs, SegReg.Ds, SegReg.Es, SegReg.Fs, SegReg.Gs, SegReg.Ss })
        {
            var seg = cpu.GetSegment(s);
            Assert.That((seg.Base, seg.Limit), Is.EqualTo((0UL, 0xFFFFFFFFu)), SegReg.Names[s]);
        }
        Assert.That(cpu.GetSegment(SegReg.Cs).IsCode, Is.True);
        Assert.That(cpu.GetSegment(SegReg.Ss).DefaultBig, Is.True);
        // The GDT the selectors name is really there, so reloading them works.
        Assert.That(cpu.Gdtr.Base, Is.EqualTo(k.BootInfoArea));
        Assert.That(vm.Memory.ReadU64(cpu.Gdtr.Base + 8), Is.EqualTo(0x00CF9B000000FFFFUL));
        Assert.That(vm.Memory.ReadU64(cpu.Gdtr.Base + 16), Is.EqualTo(0x00CF93000000FFFFUL));
    }

    [Test]
    public void EntryState_NamesEntryBootInformationAndBootGdt()
    {
        var k = MultibootKernel.Check(TestImages.Aout(a => a.hlt()), Mem);
        Assert.That(k.EntryState, Is.EqualTo(new MultibootEntryState(0x100020, (uint)k.BootInfoAddress, k.BootInfoArea + MultibootInfo.GdtOffset)));
        Assert.That((k.EntryState.Gdt.Base, k.EntryState.Gdt.Limit), Is.EqualTo((k.BootInfoArea, (ushort)(MultibootInfo.GdtEntries * 8 - 1))));
    }

    [Test]
    public void WriteInto_WritesImageAndBootPageOnly()
    {
        var k = MultibootKernel.Check(TestImages.Aout(a => a.hlt()), Mem);
        using var vm = Bare();
        ulong rip = vm.Cpu.Rip;
        k.WriteInto(vm.Memory);
        Assert.That(vm.Memory.ReadU32(k.BootInfoAddress), Is.Not.Zero);
        Assert.That(vm.Cpu.Rip, Is.EqualTo(rip), "the processor is the caller's to set");
    }

    [TestCase(VendorKind.Svm)]
    [TestCase(VendorKind.Bare)]
    public void Run_SegmentReloadFromBootGdt_Works(VendorKind vendor)
    {
        byte[] image = TestImages.Aout(a =>
        {
            a.mov(ax, 0x10);
            a.mov(ds, ax);
            a.mov(ss, ax);
            a.mov(al, 0x42);
            a.@out(0xF4, al);
        });
        var k = MultibootKernel.Check(image, Mem);
        using var vm = TestMachines.Create(vendor, Mem, Stream.Null);
        vm.Load(k);
        Assert.That(vm.Run(1000), Is.EqualTo(new RunResult(RunEnd.DebugExit, 0x42)));
    }

    [TestCase(VendorKind.Svm)]
    [TestCase(VendorKind.Bare)]
    public void Run_Elf64Container_StartsIn32BitMode(VendorKind vendor)
    {
        byte[] image = TestImages.Elf(a =>
        {
            a.mov(eax, 7);
            a.@out(0xF4, al);
        }, elf64: true);
        var k = MultibootKernel.Check(image, Mem);
        using var vm = TestMachines.Create(vendor, Mem, Stream.Null);
        vm.Load(k);
        Assert.That(vm.Run(1000), Is.EqualTo(new RunResult(RunEnd.DebugExit, 7)));
    }
}
