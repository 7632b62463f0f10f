using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Tests.Support;
using static Hypervisor.Core.Tests.Support.AluReference;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

/// <summary>
/// DAA/DAS/AAA/AAS/AAM/AAD (SDM vol. 2A), valid outside 64-bit mode only. The references follow the
/// SDM's pseudo-code; flags it leaves undefined take QEMU's values: OF=0 after DAA/DAS; OF SF ZF PF
/// unchanged after AAA/AAS; CF=OF=AF=0 after AAM/AAD.
/// </summary>
public class DecimalTests
{
    private InstructionRunner _run = null!;

    [OneTimeSetUp]
    public void SetUp() => _run = new InstructionRunner(GuestMode.Protected32);

    [OneTimeTearDown]
    public void TearDown() => _run.Dispose();

    private const ulong High = 0xBEEF_0000;

    private static (ulong Al, ulong Flags) DaaReference(ulong al, ulong flagsIn)
    {
        ulong oldAl = al;
        bool oldCf = (flagsIn & C) != 0, cf = false, af = false;
        if ((al & 0xF) > 9 || (flagsIn & A) != 0)
        {
            cf = oldCf || al + 6 > 0xFF;
            al = (al + 6) & 0xFF;
            af = true;
        }
        if (oldAl > 0x99 || oldCf)
        {
            al = (al + 0x60) & 0xFF;
            cf = true;
        }
        else
        {
            cf = false;
        }
        return (al, Szp(al, 1) | If(cf, C) | If(af, A));
    }

    private static (ulong Al, ulong Flags) DasReference(ulong al, ulong flagsIn)
    {
        ulong oldAl = al;
        bool oldCf = (flagsIn & C) != 0, cf = false, af = false;
        if ((al & 0xF) > 9 || (flagsIn & A) != 0)
        {
            cf = oldCf || al < 6; // borrow from AL - 6
            al = (al - 6) & 0xFF;
            af = true;
        }
        if (oldAl > 0x99 || oldCf)
        {
            al = (al - 0x60) & 0xFF;
            cf = true;
        }
        return (al, Szp(al, 1) | If(cf, C) | If(af, A));
    }

    private static (ulong Ax, ulong Flags) AsciiReference(bool subtract, ulong ax, ulong flagsIn)
    {
        ulong al = ax & 0xFF, ah = (ax >> 8) & 0xFF;
        bool adjust = (al & 0xF) > 9 || (flagsIn & A) != 0;
        if (adjust)
        {
            if (subtract)
            {
                ulong wide = ((ah << 8) | al) - 6; // AX - 6, then AH - 1
                al = wide & 0xFF;
                ah = ((wide >> 8) - 1) & 0xFF;
            }
            else
            {
                ulong wide = ((ah << 8) | al) + 0x106; // AX + 106H
                al = wide & 0xFF;
                ah = (wide >> 8) & 0xFF;
            }
        }
        al &= 0xF;
        return ((ah << 8) | al, (flagsIn & ~(C | A)) | If(adjust, C | A));
    }

    [TestCase(0x79UL, 0x35UL, 0x14UL, "C P A")]   // 79 + 35 = 114 (SDM's example)
    [TestCase(0x19UL, 0x28UL, 0x47UL, "P A")]     // 19 + 28 = 47: low digit carry only
    [TestCase(0x50UL, 0x50UL, 0x00UL, "C P Z")]   // 50 + 50 = 100
    public void Daa_AfterAdd_MakesPackedBcd(ulong x, ulong y, ulong expected, string flags)
    {
        var r = _run.Run(a =>
        {
            a.add(al, bl);
            a.daa();
        }, rax: x, rbx: y);
        Assert.That(r.Rax & 0xFF, Is.EqualTo(expected));
        Assert.That(Names(r.Arith), Is.EqualTo(Names(Flags(flags))));
    }

    [TestCase(0x35UL, 0x47UL, 0x88UL, "C P A S")] // 35 - 47 = -12: 88 with a borrow
    [TestCase(0x47UL, 0x35UL, 0x12UL, "P")]
    [TestCase(0x10UL, 0x01UL, 0x09UL, "P A")]
    public void Das_AfterSub_MakesPackedBcd(ulong x, ulong y, ulong expected, string flags)
    {
        var r = _run.Run(a =>
        {
            a.sub(al, bl);
            a.das();
        }, rax: x, rbx: y);
        Assert.That(r.Rax & 0xFF, Is.EqualTo(expected));
        Assert.That(Names(r.Arith), Is.EqualTo(Names(Flags(flags))));
    }

    [Test]
    public void DaaDas_EveryAlAndCarryPair_MatchSdm()
    {
        for (ulong al = 0; al < 0x100; al++)
            foreach (ulong f in new[] { 0UL, C, A, C | A, O | S | Z | P, C | A | O })
            {
                ulong rax = High | 0x5500 | al;
                var daa = _run.Run(a => a.daa(), rax: rax, flags: f);
                var (dAl, dF) = DaaReference(al, f);
                Assert.That(daa.Rax, Is.EqualTo((rax & ~0xFFUL) | dAl), $"daa {al:x} {Names(f)}");
                Assert.That(Names(daa.Arith), Is.EqualTo(Names(dF)), $"daa {al:x} {Names(f)}");
                var das = _run.Run(a => a.das(), rax: rax, flags: f);
                var (sAl, sF) = DasReference(al, f);
                Assert.That(das.Rax, Is.EqualTo((rax & ~0xFFUL) | sAl), $"das {al:x} {Names(f)}");
                Assert.That(Names(das.Arith), Is.EqualTo(Names(sF)), $"das {al:x} {Names(f)}");
            }
    }

    [Test]
    public void Aaa_AfterAdd_CarriesIntoAh()
    {
        var r = _run.Run(a =>
        {
            a.add(al, bl); // 9 + 8 = 0x11, AF=1
            a.aaa();
        }, rax: 0x0009, rbx: 0x08);
        Assert.That(r.Rax & 0xFFFF, Is.EqualTo(0x0107UL));
        Assert.That(r.Arith & (C | A), Is.EqualTo(C | A));
    }

    [Test]
    public void Aas_AfterSub_BorrowsFromAh()
    {
        var r = _run.Run(a =>
        {
            a.sub(al, bl); // 2 - 9 = 0xF9, AF=1
            a.aas();
        }, rax: 0x0102, rbx: 0x09);
        Assert.That(r.Rax & 0xFFFF, Is.EqualTo(0x0003UL), "12 - 9 = 03");
        Assert.That(r.Arith & (C | A), Is.EqualTo(C | A));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void AaaAas_EveryAl_MatchSdm(bool subtract)
    {
        for (ulong al = 0; al < 0x100; al++)
            foreach (ulong ah in new ulong[] { 0x00, 0x09, 0xFF })
                foreach (ulong f in new[] { 0UL, A, C | P | Z | S | O, C | A | P | Z | S | O })
                {
                    ulong rax = High | (ah << 8) | al;
                    var r = _run.Run(a => { if (subtract) a.aas(); else a.aaa(); }, rax: rax, flags: f);
                    var (ax, flags) = AsciiReference(subtract, (ah << 8) | al, f);
                    string what = $"{(subtract ? "aas" : "aaa")} ax={(ah << 8) | al:x} {Names(f)}";
                    Assert.That(r.Rax, Is.EqualTo(High | ax), what);
                    Assert.That(Names(r.Arith), Is.EqualTo(Names(flags)), what);
                }
    }

    [TestCase(10)]
    [TestCase(16)]
    [TestCase(7)]
    [TestCase(255)]
    public void Aam_EveryAl_DividesByImmediate(int imm)
    {
        for (ulong al = 0; al < 0x100; al++)
        {
            var r = _run.Run(a => a.aam(unchecked((sbyte)imm)), rax: High | 0x7700 | al, flags: C | A | O);
            ulong q = al / (ulong)imm, rem = al % (ulong)imm;
            Assert.That(r.Rax, Is.EqualTo(High | (q << 8) | rem), $"aam {imm} al={al:x}");
            Assert.That(Names(r.Arith), Is.EqualTo(Names(Szp(rem, 1))), $"aam {imm} al={al:x}");
        }
    }

    [TestCase(10)]
    [TestCase(16)]
    [TestCase(0)]
    [TestCase(255)]
    public void Aad_EveryAh_CombinesDigits(int imm)
    {
        foreach (ulong al in new ulong[] { 0, 3, 9, 0x80, 0xFF })
            for (ulong ah = 0; ah < 0x100; ah++)
            {
                var r = _run.Run(a => a.aad(unchecked((sbyte)imm)), rax: High | (ah << 8) | al, flags: C | A | O);
                ulong res = (al + ah * (ulong)imm) & 0xFF;
                Assert.That(r.Rax, Is.EqualTo(High | res), $"aad {imm} ax={(ah << 8) | al:x}");
                Assert.That(Names(r.Arith), Is.EqualTo(Names(Szp(res, 1))), $"aad {imm} ax={(ah << 8) | al:x}");
            }
    }

    [Test]
    public void Aam_ZeroImmediate_RaisesDe()
    {
        var r = _run.Run(a => a.aam(0), rax: 0x1234, flags: Z);
        Assert.That(r.Vector, Is.EqualTo(Vector.DE));
        Assert.That(r.FaultRip, Is.EqualTo(_run.CodeStart));
        Assert.That(r.Rax, Is.EqualTo(0x1234UL));
        Assert.That(Names(r.Arith), Is.EqualTo("Z"));
    }

    [Test]
    public void DaaAam_RealMode_Work()
    {
        using var run = new InstructionRunner(GuestMode.Real);
        var r = run.Run(a =>
        {
            a.add(al, bl);
            a.daa();      // 0x58 + 0x25 = BCD 83
            a.mov(cl, al);
            a.mov(al, 99);
            a.aam(10);    // AH=9, AL=9
        }, rax: 0x58, rbx: 0x25);
        Assert.That(r.Rcx & 0xFF, Is.EqualTo(0x83UL));
        Assert.That(r.Rax & 0xFFFF, Is.EqualTo(0x0909UL));
    }

    [TestCase(new byte[] { 0x27 }, TestName = "Daa_64BitMode_IsUd")]
    [TestCase(new byte[] { 0x2F }, TestName = "Das_64BitMode_IsUd")]
    [TestCase(new byte[] { 0x37 }, TestName = "Aaa_64BitMode_IsUd")]
    [TestCase(new byte[] { 0x3F }, TestName = "Aas_64BitMode_IsUd")]
    [TestCase(new byte[] { 0xD4, 0x0A }, TestName = "Aam_64BitMode_IsUd")]
    [TestCase(new byte[] { 0xD5, 0x0A }, TestName = "Aad_64BitMode_IsUd")]
    public void DecimalAdjust_64BitMode_RaisesUd(byte[] bytes)
    {
        using var run = new InstructionRunner(GuestMode.Long64);
        var r = run.Run(a => a.db(bytes), rax: 0x99);
        Assert.That(r.Vector, Is.EqualTo(Vector.UD));
        Assert.That(r.Rax, Is.EqualTo(0x99UL));
    }
}
