using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Hypervisor.Core.Tests.Support.SystemGuest;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

/// <summary>CPUID with its state-dependent bits, XGETBV/XSETBV, RDMSR/WRMSR, the TSC readers and SWAPGS.</summary>
public class MsrCpuidTests
{
    private const ulong UserCode = 0x50000;

    /// <summary>The default model (zen5) does not list XSAVE; XCR0 tests use one that does.</summary>
    private static readonly Hypervisor.Core.Machine.Models.HostCpuModel XsaveModel = Support.Data.ModelMachine.DefaultWith(1, 'c', 26, present: true);

    private static GuestMachine Long(Hypervisor.Core.Machine.Models.HostCpuModel? model = null)
    {
        var m = new GuestMachine(GuestMode.Long64, model);
        InstallIdt(m);
        InstallTss64(m);
        return m;
    }

    private static CpuExit RunUser(GuestMachine m, Action<Assembler> user)
    {
        Place(m, UserCode, a =>
        {
            user(a);
            a.hlt(); // privileged: #GP(0) at CPL 3, so reaching it shows the code before ran
        });
        return SystemGuest.Run(m, a =>
        {
            a.push((int)UserData);
            a.push((int)UserStack);
            a.push(2);
            a.push((int)UserCode64);
            a.push((int)UserCode);
            a.iretq();
        });
    }

    private static void AssertGp0(GuestMachine m, CpuExit exit)
    {
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.GP), exit.ToString());
        Assert.That(Frame(m, 0), Is.EqualTo(0));
    }

    private static void SetOsxsave(Assembler a)
    {
        a.mov(rax, cr4);
        a.or(rax, (int)Cr4.Osxsave);
        a.mov(cr4, rax);
    }

    [Test]
    public void Cpuid_Leaf0_VendorAndZeroExtendsResults()
    {
        using var m = Long();
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(rbx, -1L);
            a.xor(eax, eax);
            a.cpuid();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Rax, Is.EqualTo(0xD));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x68747541), "\"Auth\", upper half cleared");
        Assert.That(m.Cpu.GetGpr(Gpr.Rdx), Is.EqualTo(0x69746E65));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(0x444D4163));
    }

    [Test]
    public void Cpuid_Leaf1_OsxsaveMirrorsCr4AndApicIdIsReported()
    {
        using var m = Long(XsaveModel);
        m.Cpu.InitialApicId = 3;
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(eax, 1);
            a.cpuid();
            a.mov(r8d, ecx);
            SetOsxsave(a);
            a.mov(eax, 1);
            a.cpuid();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetGpr(Gpr.R8) & (1u << 27), Is.Zero);
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx) & (1u << 27), Is.Not.Zero);
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx) >> 24, Is.EqualTo(3));
    }

    [Test]
    public void Cpuid_AdvertisesWhatTheCpuImplements()
    {
        using var m = Long();
        var leaf7 = m.Cpu.QueryCpuid(7, 0);
        Assert.That(leaf7.Ebx & (1u << 10), Is.Not.Zero, "INVPCID");
        Assert.That(leaf7.Ecx & (1u << 22), Is.Not.Zero, "RDPID");
        var ext1 = m.Cpu.QueryCpuid(0x80000001, 0);
        Assert.That(ext1.Edx & (1u << 11), Is.Not.Zero, "SYSCALL");
        Assert.That(ext1.Edx & (1u << 27), Is.Not.Zero, "RDTSCP");
        Assert.That(m.Cpu.QueryCpuid(1, 0).Edx & (1u << 1), Is.Zero, "VME: virtual-8086 mode is not implemented");
        Assert.That(m.Cpu.Cr4Supported & Cr4.Vme, Is.Zero);
    }

    [Test]
    public void XgetbvXsetbv_WithoutOsxsave_Ud()
    {
        using var m = Long();
        var exit = SystemGuest.Run(m, a => a.xgetbv());
        Assert.That(VectorOf(m, exit), Is.EqualTo(Vector.UD));
    }

    [Test]
    public void Xgetbv_ReadsXcr0()
    {
        using var m = Long(XsaveModel);
        var exit = SystemGuest.Run(m, a =>
        {
            SetOsxsave(a);
            a.xor(ecx, ecx);
            a.mov(eax, 1);
            a.xor(edx, edx);
            a.xsetbv();
            a.mov(rax, -1L);
            a.xgetbv();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Rax, Is.EqualTo(1));
        Assert.That(m.Cpu.GetGpr(Gpr.Rdx), Is.EqualTo(0));
    }

    [TestCase(0u, 0u, 0u)]     // x87 bit cleared
    [TestCase(0u, 3u, 0u)]     // SSE is not supported by the model
    [TestCase(1u, 1u, 0u)]     // XCR1 does not exist
    [TestCase(0u, 1u, 1u)]     // upper half reserved
    public void Xsetbv_InvalidValue_Gp0(uint xcr, uint eaxValue, uint edxValue)
    {
        using var m = Long();
        var exit = SystemGuest.Run(m, a =>
        {
            SetOsxsave(a);
            a.mov(ecx, xcr);
            a.mov(eax, eaxValue);
            a.mov(edx, edxValue);
            a.xsetbv();
        });
        AssertGp0(m, exit);
        Assert.That(m.Cpu.Xcr0, Is.EqualTo(1));
    }

    [Test]
    public void Xcr0Validation_FollowsTheComponentRules()
    {
        using var m = Long();
        Assert.That(m.Cpu.IsValidXcr0(1), Is.True);
        Assert.That(m.Cpu.IsValidXcr0(0), Is.False);
        Assert.That(m.Cpu.IsValidXcr0(5), Is.False, "AVX without SSE");
    }

    [Test]
    public void Cr4Osxsave_ModelWithoutXsave_Refused()
    {
        using var m = Long();
        Assert.That(m.Cpu.WriteCr4(m.Cpu.Cr4 | Cr4.Osxsave), Is.False, "CR4.OSXSAVE needs CPUID.1:ECX.XSAVE");
    }

    [Test]
    public void Xsetbv_Cpl3_Gp0()
    {
        using var m = Long(XsaveModel);
        m.Cpu.WriteCr4(m.Cpu.Cr4 | Cr4.Osxsave);
        var exit = RunUser(m, a =>
        {
            a.xor(ecx, ecx);
            a.mov(eax, 1);
            a.xor(edx, edx);
            a.xsetbv();
        });
        AssertGp0(m, exit);
    }

    [Test]
    public void WrmsrRdmsr_KernelGsBaseRoundTrips()
    {
        using var m = Long();
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(ecx, MsrIndex.KernelGsBase);
            a.mov(eax, 0x89ABCDEF);
            a.mov(edx, 0xFFFF8000);
            a.wrmsr();
            a.xor(eax, eax);
            a.xor(edx, edx);
            a.rdmsr();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Rax, Is.EqualTo(0x89ABCDEF));
        Assert.That(m.Cpu.GetGpr(Gpr.Rdx), Is.EqualTo(0xFFFF8000));
        Assert.That(m.Cpu.Msr.KernelGsBase, Is.EqualTo(0xFFFF8000_89ABCDEF));
    }

    [TestCase(0x12345678u, 0u, 0u, true)]                       // unknown MSR, read
    [TestCase(0x12345678u, 0u, 0u, false)]                      // unknown MSR, write
    [TestCase(MsrIndex.Lstar, 0u, 0x8000u, false)]              // non-canonical
    [TestCase(MsrIndex.Sfmask, 0u, 1u, false)]                  // reserved upper half
    [TestCase(MsrIndex.Efer, 1u << 12, 0u, false)]              // SVME is not implemented
    [TestCase(MsrIndex.Pat, 2u, 0u, false)]                     // memory type 2 is reserved
    [TestCase(MsrIndex.SpecCtrl, 0u, 0u, true)]                 // not enumerated by the model's CPUID
    public void Msr_UnknownOrReserved_Gp0(uint index, uint eaxValue, uint edxValue, bool read)
    {
        using var m = Long();
        ulong sfmask = m.Cpu.Msr.Sfmask;
        var exit = SystemGuest.Run(m, a =>
        {
            a.mov(ecx, index);
            a.mov(eax, eaxValue);
            a.mov(edx, edxValue);
            if (read) a.rdmsr();
            else a.wrmsr();
        });
        AssertGp0(m, exit);
        Assert.That(m.Cpu.Msr.Sfmask, Is.EqualTo(sfmask), "a refused write changes nothing");
    }

    [Test]
    public void Rdmsr_Cpl3_Gp0()
    {
        using var m = Long();
        var exit = RunUser(m, a =>
        {
            a.mov(ecx, MsrIndex.Efer);
            a.rdmsr();
        });
        AssertGp0(m, exit);
    }

    [Test]
    public void Rdtsc_CountsRetiredInstructionsExactly()
    {
        using var m = Long();
        var exit = SystemGuest.Run(m, a =>
        {
            a.rdtsc();                 // TSC 0: nothing retired before it
            a.mov(r8d, eax);
            a.nop();
            a.rdtsc();                 // TSC 3
            a.mov(r9d, eax);
            a.mov(ecx, MsrIndex.Tsc);
            a.mov(eax, 1000);
            a.xor(edx, edx);
            a.wrmsr();                 // the TSC at this instruction becomes 1000
            a.rdtsc();                 // 1001
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetGpr(Gpr.R8), Is.EqualTo(0));
        Assert.That(m.Cpu.GetGpr(Gpr.R9), Is.EqualTo(3));
        Assert.That(m.Rax, Is.EqualTo(1001));
    }

    [Test]
    public void Rdtscp_ReturnsTscAux()
    {
        using var m = Long();
        m.Cpu.Msr.TscAux = 0x42;
        var exit = SystemGuest.Run(m, a =>
        {
            a.nop();
            a.rdtscp();
            a.rdpid(r10);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Rax, Is.EqualTo(1));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(0x42));
        Assert.That(m.Cpu.GetGpr(Gpr.R10), Is.EqualTo(0x42));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Rdtsc_Cr4TsdMakesItPrivileged(bool tsd)
    {
        using var m = Long();
        if (tsd) m.Cpu.WriteCr4(m.Cpu.Cr4 | Cr4.Tsd);
        var exit = RunUser(m, a => a.rdtsc());
        AssertGp0(m, exit);
        Assert.That(Frame(m, 1), Is.EqualTo(tsd ? UserCode : UserCode + 2), "the #GP is RDTSC's with TSD, else the HLT's");
    }

    [Test]
    public void Swapgs_ExchangesGsBaseWithKernelGsBase()
    {
        using var m = Long();
        m.Cpu.Msr.KernelGsBase = 0x1234000;
        var exit = SystemGuest.Run(m, a =>
        {
            a.swapgs();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetSegment(SegReg.Gs).Base, Is.EqualTo(0x1234000));
        Assert.That(m.Cpu.Msr.KernelGsBase, Is.EqualTo(0));
    }

    [Test]
    public void Swapgs_Cpl3_Gp0()
    {
        using var m = Long();
        var exit = RunUser(m, a => a.swapgs());
        AssertGp0(m, exit);
    }
}
