using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.Tests.Support;
using Hypervisor.Core.Tests.Support.Data;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

/// <summary>XSAVE/XRSTOR in the standard format on the APX model: the x87 legacy region, the
/// header's XSTATE_BV, and component 19 (R16..R31, 128 bytes at offset 960); plus XSETBV turning
/// APX off and on again.</summary>
public class XsaveTests
{
    private const ulong Area = 0x200000;
    private const ulong ApxState = Area + 960;

    private static ModelMachine Apx(HostCpuModel? model = null) => new(model ?? HostCpuModel.DiamondRapids);

    /// <summary>CR4.OSXSAVE, then XCR0 = <paramref name="xcr0"/>.</summary>
    private static void EnableXsave(Assembler a, ulong xcr0)
    {
        a.mov(rax, cr4);
        a.or(rax, (int)Cr4.Osxsave);
        a.mov(cr4, rax);
        a.xor(ecx, ecx);
        a.mov(eax, (uint)xcr0);
        a.mov(edx, (uint)(xcr0 >> 32));
        a.xsetbv();
    }

    private static void AllComponents(Assembler a)
    {
        a.mov(eax, -1);
        a.mov(edx, -1);
        a.mov(rbx, Area);
    }

    private const ulong X87AndApx = Xcr0Bits.X87 | Xcr0Bits.Apx;

    private static void SetEgprs(X86Cpu cpu, ulong seed)
    {
        for (int n = 16; n < 32; n++)
            cpu.SetExtendedGpr(n, seed + (ulong)n);
    }

    [Test]
    public void Xsave64_WritesX87RegionHeaderAndApxComponent()
    {
        using var m = Apx();
        SetEgprs(m.Cpu, 0xE000);
        var x = m.Cpu.X87;
        x.Fcw = 0x027F; x.Fsw = 0x3800; x.Ftw = 0x81; x.Fop = 0x05DB;
        x.Fip = 0x1122_3344_5566_7788; x.Fdp = 0x0000_7FFF_0000_1000;
        x.St[0] = 0xAB; x.St[79] = 0xCD;
        m.Memory.WriteU64(Area + 512, 1UL << 40); // an XSTATE_BV bit outside RFBM: kept
        var exit = m.Run(a =>
        {
            EnableXsave(a, X87AndApx);
            AllComponents(a);
            a.xsave64(__[rbx]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), $"{exit} {m.Caught}");
        Assert.Multiple(() =>
        {
            Assert.That(m.Memory.ReadU64(Area), Is.EqualTo(0x05DB_0081_3800_027FUL), "FCW FSW FTW FOP");
            Assert.That(m.Memory.ReadU64(Area + 8), Is.EqualTo(0x1122_3344_5566_7788UL), "64-bit FIP");
            Assert.That(m.Memory.ReadU64(Area + 16), Is.EqualTo(0x0000_7FFF_0000_1000UL), "64-bit FDP");
            Assert.That(m.Memory.ReadU64(Area + 32) & 0xFF, Is.EqualTo(0xABUL), "ST0 low byte");
            Assert.That(m.Memory.ReadU64(Area + 32 + 7 * 16 + 8) & 0xFFFF, Is.EqualTo(0xCD00UL), "ST7 exponent word");
            Assert.That(m.Memory.ReadU64(Area + 512), Is.EqualTo((1UL << 40) | X87AndApx), "XSTATE_BV");
            Assert.That(m.Memory.ReadU64(ApxState), Is.EqualTo(0xE010UL), "R16");
            Assert.That(m.Memory.ReadU64(ApxState + 15 * 8), Is.EqualTo(0xE01FUL), "R31");
        });
    }

    [Test]
    public void Xsave_NoRexW_X87PointersAsSelectorAndOffset()
    {
        using var m = Apx();
        m.Cpu.X87.Fip = 0x8877_6655_1122_3344;
        m.Cpu.X87.Fcs = 0x5566;
        m.Cpu.X87.Fdp = 0x0BAD_0000_2000;
        m.Cpu.X87.Fds = 0x7788;
        var exit = m.Run(a =>
        {
            EnableXsave(a, X87AndApx);
            AllComponents(a);
            a.xsave(__[rbx]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), $"{exit} {m.Caught}");
        Assert.That(m.Memory.ReadU64(Area + 8), Is.EqualTo(0x5566_1122_3344UL), "FIP[31:0], FCS");
        Assert.That(m.Memory.ReadU64(Area + 16), Is.EqualTo(0x7788_0000_2000UL), "FDP[31:0], FDS");
    }

    [Test]
    public void XsaveXrstor64_RoundTripsEgprsAndX87()
    {
        using var m = Apx();
        SetEgprs(m.Cpu, 0x5000_0000);
        m.Cpu.X87.Fcw = 0x0A7F;
        m.Cpu.X87.St[12] = 0x42;
        var exit = m.Run(a =>
        {
            EnableXsave(a, X87AndApx);
            AllComponents(a);
            a.xsave64(__[rbx]);
            a.hlt();
            a.xrstor64(__[rbx]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), $"{exit} {m.Caught}");
        SetEgprs(m.Cpu, 0);
        for (int n = 16; n < 32; n++) m.Cpu.SetExtendedGpr(n, 0xDEAD);
        m.Cpu.X87.Init();
        exit = m.Cpu.Run(100);
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), $"{exit} {m.Caught}");
        Assert.That(Enumerable.Range(16, 16).Select(m.Cpu.GetExtendedGpr), Is.EqualTo(Enumerable.Range(16, 16).Select(n => 0x5000_0000UL + (ulong)n)));
        Assert.That(m.Cpu.X87.Fcw, Is.EqualTo(0x0A7F));
        Assert.That(m.Cpu.X87.St[12], Is.EqualTo(0x42));
    }

    [Test]
    public void Xrstor_XstateBvClear_LoadsInitConfiguration()
    {
        using var m = Apx();
        SetEgprs(m.Cpu, 0x77);
        m.Cpu.X87.Fcw = 0x0040;
        m.Memory.WriteU64(ApxState, 0x1234); // ignored: XSTATE_BV[19] = 0
        var exit = m.Run(a =>
        {
            EnableXsave(a, X87AndApx);
            AllComponents(a);
            a.xrstor64(__[rbx]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), $"{exit} {m.Caught}");
        Assert.That(Enumerable.Range(16, 16).Select(m.Cpu.GetExtendedGpr), Is.All.EqualTo(0UL));
        Assert.That(m.Cpu.X87.Fcw, Is.EqualTo(0x037F));
        Assert.That(m.Cpu.X87.IsInit, Is.True);
    }

    [Test]
    public void Xrstor_RfbmWithoutApx_LeavesEgprsAlone()
    {
        using var m = Apx();
        SetEgprs(m.Cpu, 0x900);
        m.Memory.WriteU64(Area + 512, X87AndApx);
        var exit = m.Run(a =>
        {
            EnableXsave(a, X87AndApx);
            a.mov(eax, 1); // RFBM = x87 only
            a.xor(edx, edx);
            a.mov(rbx, Area);
            a.xrstor64(__[rbx]);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), $"{exit} {m.Caught}");
        Assert.That(m.Cpu.GetExtendedGpr(16), Is.EqualTo(0x910));
    }

    [TestCase(0x8000_0000_0000_0000UL, 0UL, TestName = "Xrstor_CompactedForm_Gp")]
    [TestCase(0UL, 2UL, TestName = "Xrstor_XstateBvSseNotInXcr0_Gp")]
    public void Xrstor_BadHeader_Gp(ulong xcompBv, ulong xstateBv)
    {
        using var m = Apx();
        m.Memory.WriteU64(Area + 512, xstateBv);
        m.Memory.WriteU64(Area + 520, xcompBv);
        m.Run(a =>
        {
            EnableXsave(a, X87AndApx);
            AllComponents(a);
            a.xrstor64(__[rbx]);
        });
        Assert.That(m.Caught?.Vector, Is.EqualTo(Vector.GP));
        Assert.That(m.Caught!.Value.ErrorCode, Is.EqualTo(0));
    }

    [Test]
    public void Xsave_AreaNotAligned64_Gp()
    {
        using var m = Apx();
        m.Run(a =>
        {
            EnableXsave(a, X87AndApx);
            AllComponents(a);
            a.xsave64(__[rbx + 32]);
        });
        Assert.That(m.Caught?.Vector, Is.EqualTo(Vector.GP));
    }

    [Test]
    public void Xsave_WithoutOsxsave_Ud()
    {
        using var m = Apx();
        m.Run(a =>
        {
            AllComponents(a);
            a.xsave64(__[rbx]);
        });
        Assert.That(m.Caught?.Vector, Is.EqualTo(Vector.UD));
    }

    [Test]
    public void Xsave_LockPrefix_Ud()
    {
        using var m = Apx();
        m.Run(a =>
        {
            EnableXsave(a, X87AndApx);
            AllComponents(a);
            a.db(0xF0, 0x48, 0x0F, 0xAE, 0x23); // lock xsave64 [rbx]
        });
        Assert.That(m.Caught?.Vector, Is.EqualTo(Vector.UD));
    }

    [Test]
    public void Xsave_Cr0Ts_Nm()
    {
        using var m = Apx();
        m.Run(a =>
        {
            EnableXsave(a, X87AndApx);
            a.mov(rax, cr0);
            a.or(eax, (int)Cr0.Ts);
            a.mov(cr0, rax);
            AllComponents(a);
            a.xsave64(__[rbx]);
        });
        Assert.That(m.Caught?.Vector, Is.EqualTo(Vector.NM));
    }

    [Test]
    public void Xsetbv_ApxOffThenOn_EgprsKeepTheirValues()
    {
        using var m = Apx();
        var exit = m.Run(a =>
        {
            EnableXsave(a, X87AndApx);
            a.db(0xD5, 0x18, 0xB8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11); // REX2(B4 W) B8+0: mov r16, imm64
            a.mov(eax, 1);      // XCR0 = x87: APX off
            a.xsetbv();
            a.mov(eax, (uint)X87AndApx);
            a.xsetbv();         // APX on again
            a.db(0xD5, 0x48, 0x89, 0xC1); // REX2(R4 W) 89 /r: mov rcx, r16
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), $"{exit} {m.Caught}");
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(0x1122334455667788UL));
    }

    [Test]
    public void Xsetbv_Bit19OnModelWithoutApx_Gp()
    {
        using var m = Apx(HostCpuModel.GraniteRapids);
        m.Run(a => EnableXsave(a, X87AndApx));
        Assert.That(m.Caught?.Vector, Is.EqualTo(Vector.GP));
        Assert.That(m.Cpu.Xcr0, Is.EqualTo(Xcr0Bits.X87));
    }
}
