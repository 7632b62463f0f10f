using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Host.Cli;
using Hypervisor.Host.Loading;
using Hypervisor.Host.Runtime;
using Hypervisor.Host.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Host.Tests.Loading;

public class LongModeElfKernelTests
{
    private const ulong Mem = 32 << 20;

    /// <summary>64-bit code that proves where it runs: a 64-bit register, the stack hv gave it, a
    /// write and read through the identity map, then "64\n" on COM1 and debug-exit 0x21.</summary>
    private static void Probe(Assembler a)
    {
        var fail = a.CreateLabel();
        a.mov(rax, 0x1_2345_6789UL);
        a.shr(rax, 32);
        a.cmp(eax, 1);
        a.jne(fail);
        a.cmp(rsp, (int)LongModeEntryState.StackTop);
        a.jne(fail);
        a.push(rax);
        a.pop(rcx);
        a.mov(rbx, 0x1F0_0000UL);                  // 31 MiB, in RAM, reached through a 2 MiB page
        a.mov(rax, 0x1122_3344_5566_7788UL);
        a.mov(__qword_ptr[rbx], rax);
        a.cmp(__qword_ptr[rbx], rax);
        a.jne(fail);
        a.mov(dx, 0x3F8);
        foreach (char c in "64\n")
        {
            a.mov(al, (byte)c);
            a.@out(dx, al);
        }
        a.mov(al, 0x21);
        a.@out(0xF4, al);
        a.Label(ref fail);
        a.mov(al, 0x0F);
        a.@out(0xF4, al);
    }

    [TestCase("svm")]
    [TestCase("vmx")]
    [TestCase("bare")]
    public void Run_Elf64WithoutMultibootHeader_StartsIn64BitMode(string vendor)
    {
        var o = InProcessHv.RunImage(LongModeImages.Elf64(Probe), "--vendor", vendor, "--memory", "32M");
        Assert.That((o.Status, o.SerialText, o.Error), Is.EqualTo((0x43, "64\n", "")));
    }

    [Test]
    public void Load_SetsTheDocumentedState()
    {
        var k = LongModeElfKernel.Check(LongModeImages.Elf64(a => a.hlt()), Mem);
        using var vm = (BareMachine)VirtualMachine.Create(Mem, Stream.Null, new MachineOptions { Vendor = VendorKind.Bare });
        vm.Load(k);
        var cpu = vm.Cpu;
        Assert.Multiple(() =>
        {
            Assert.That(cpu.IsLongMode, Is.True);
            Assert.That(cpu.CodeBits, Is.EqualTo(64));
            Assert.That(cpu.Rip, Is.EqualTo(LongModeImages.LoadAddress));
            Assert.That(cpu.GetGpr(Gpr.Rsp), Is.EqualTo(0x9000));
            Assert.That(cpu.Cr3, Is.EqualTo(0x2000));
            Assert.That(cpu.Cr0, Is.EqualTo(Cr0.Pe | Cr0.Et | Cr0.Ne | Cr0.Wp | Cr0.Pg));
            Assert.That(cpu.Cr4, Is.EqualTo(Cr4.Pae));
            Assert.That(cpu.Gdtr.Base, Is.EqualTo(0x1000));
            Assert.That(cpu.GetSegment(SegReg.Tr).Base, Is.EqualTo(0x1080));
            Assert.That(cpu.GetRFlags() & RFlags.If, Is.EqualTo(0));
            // The last 2 MiB page below 4 GiB maps itself: PD 3, entry 511.
            Assert.That(vm.Memory.ReadU64(0x4000 + 3 * 0x1000 + 511 * 8), Is.EqualTo(0xFFE0_0000UL | 0x83));
        });
    }

    [Test]
    public void Load_UnderSvm_VcpuGetsTheSameState()
    {
        var k = LongModeElfKernel.Check(LongModeImages.Elf64(a => a.hlt()), Mem);
        using var vm = TestMachines.Svm(memory: Mem);
        vm.Load(k);
        var s = vm.Vcpu.GetSregs();
        var r = vm.Vcpu.GetRegs();
        Assert.That((s.Efer & (Efer.Lme | Efer.Lma), s.Cr3, s.Cs.Long, s.Tr.Selector, r.Rsp, r.Rip),
            Is.EqualTo((Efer.Lme | Efer.Lma, 0x2000UL, true, (ushort)0x18, 0x9000UL, LongModeImages.LoadAddress)));
    }

    private static string ErrorOf(byte[] file, ulong memory = Mem) =>
        Assert.Throws<ImageException>(() => BootImageLoader.Load(file, memory, new LoadOptions()))!.Message;

    [Test]
    public void Check_SegmentOverBootStructures_IsRefused()
    {
        var f = RawElf.Build(64, 0x8000, multiboot: false, new RawSegment(0x8000, new byte[0x100]));
        Assert.That(ErrorOf(f), Is.EqualTo("program header 0 (PT_LOAD [0x8000, 0x8100)) overlaps [0x1000, 0x9000), where hv puts the 64-bit boot GDT, TSS, page tables and stack; load the image elsewhere"));
    }

    [Test]
    public void Check_VirtualDiffersFromPhysical_IsRefused()
    {
        var f = RawElf.Build(64, 0xFFFFFFFF80200000, multiboot: false, new RawSegment(0x200000, new byte[16], VirtualAddress: 0xFFFFFFFF80200000));
        Assert.That(ErrorOf(f), Does.StartWith("program header 0 (PT_LOAD [0x200000, 0x200010)): p_vaddr 0xffffffff80200000 differs from p_paddr 0x200000"));
    }

    [Test]
    public void Check_EntryOutsideCode_IsRefused()
    {
        var f = RawElf.Build(64, 0x300000, multiboot: false, new RawSegment(0x200000, new byte[16]));
        Assert.That(ErrorOf(f), Is.EqualTo("entry point 0x300000 is outside the loaded code [0x200000, 0x200010)"));
    }

    [Test]
    public void Check_SegmentBeyondMemory_IsRefused()
    {
        var f = RawElf.Build(64, 0x200000, multiboot: false, new RawSegment(0x200000, new byte[16], MemorySize: 0x200000));
        Assert.That(ErrorOf(f, memory: 3 << 20), Is.EqualTo("program header 0 (PT_LOAD [0x200000, 0x400000)) is outside guest memory [0x0, 0x300000)"));
    }

    [Test]
    public void Check_OverlappingSegments_IsRefused()
    {
        var f = RawElf.Build(64, 0x200000, multiboot: false, new RawSegment(0x200000, new byte[0x100]), new RawSegment(0x200080, new byte[0x10]));
        Assert.That(ErrorOf(f), Is.EqualTo("program header 0 (PT_LOAD [0x200000, 0x200100)) and program header 1 (PT_LOAD [0x200080, 0x200090)) overlap"));
    }

    [Test]
    public void Check_Elf32WithoutMultibootHeader_NamesWhatIsMissing()
    {
        var f = RawElf.Build(32, 0x200000, multiboot: false, new RawSegment(0x200000, new byte[16]));
        Assert.That(ErrorOf(f), Does.StartWith("no multiboot header"));
    }

    [Test]
    public void Run_Elf64WithAppend_Status2NothingRuns()
    {
        var o = InProcessHv.RunImage(LongModeImages.Elf64(Probe), "--append", "quiet");
        Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(o.Error, Does.Contain(": an ELF64 kernel without a multiboot header starts in 64-bit mode with no boot information"));
        Assert.That(o.Serial, Is.Empty);
    }

    [Test]
    public void Run_Elf64WhenTheGuestCpuidLacksLongMode_Status2NothingRuns()
    {
        var o = InProcessHv.RunImage(LongModeImages.Elf64(Probe), "--cpu", "host,-lm");
        Assert.That(o.Status, Is.EqualTo(ExitCodes.UsageOrImageError));
        Assert.That(o.Error, Does.Match(@"^hv: \S+: cannot start the ELF64 kernel \(started in 64-bit mode\): KVM_SET_SREGS refused: .*\n$"));
        Assert.That(o.Serial, Is.Empty);
    }
}
