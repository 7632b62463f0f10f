using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

/// <summary>BMI1: results and flags against the SDM's definitions, 32- and 64-bit.</summary>
public class BmiTests
{
    private const ulong Cf = RFlags.Cf, Zf = RFlags.Zf, Sf = RFlags.Sf, Of = RFlags.Of;

    private static readonly ulong[] Values = { 0, 1, 0x80, 0xF0F0, 0x8000_0000, 0xFFFF_FFFF, 0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 0x1234_5678_9ABC_DEF0 };

    /// <summary>Runs one instruction with RCX = a, RDX = b; RAX is the destination. Flags start all set.</summary>
    private static (ulong Rax, ulong Flags) Run(Action<Iced.Intel.Assembler> emit, ulong a, ulong b)
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Cpu.SetGpr(Gpr.Rax, 0xDEAD);
        m.Cpu.SetGpr(Gpr.Rcx, a);
        m.Cpu.SetGpr(Gpr.Rdx, b);
        m.Cpu.SetRFlags(RFlags.Fixed1 | RFlags.Arith);
        m.RunToHlt(emit);
        return (m.Rax, m.Flags & (Cf | Zf | Sf | Of));
    }

    private static ulong Szf(ulong r, int bits) => (r == 0 ? Zf : 0) | (((r >> (bits - 1)) & 1) != 0 ? Sf : 0);

    [Test]
    public void Andn_EveryPair_NotAndWithSfZfAndClearCfOf([Values(32, 64)] int bits)
    {
        ulong mask = bits == 64 ? ulong.MaxValue : 0xFFFF_FFFF;
        foreach (var a in Values)
            foreach (var b in Values)
            {
                var (r, f) = Run(x => { if (bits == 64) x.andn(rax, rcx, rdx); else x.andn(eax, ecx, edx); }, a, b);
                ulong want = ~a & b & mask;
                Assert.That((r, f), Is.EqualTo((want, Szf(want, bits))), $"andn a=0x{a:x} b=0x{b:x}");
            }
    }

    [TestCase(0x0000UL, 0xFFUL)]      // length 0: result 0
    [TestCase(0x0804UL, 0xABCDUL)]    // start 4, length 8
    [TestCase(0x4000UL, 0x1234UL)]    // length 64 from bit 0
    [TestCase(0x0820UL, 0xFFFF_FFFF_1234_5678UL)] // start 32, length 8
    [TestCase(0x08FFUL, 0xFFUL)]      // start beyond the operand: 0
    public void Bextr_StartAndLength_ExtractsField(ulong control, ulong src)
    {
        foreach (int bits in new[] { 32, 64 })
        {
            ulong mask = bits == 64 ? ulong.MaxValue : 0xFFFF_FFFF;
            var (r, f) = Run(x => { if (bits == 64) x.bextr(rax, rcx, rdx); else x.bextr(eax, ecx, edx); }, src, control);
            int start = (int)(control & 0xFF), len = (int)((control >> 8) & 0xFF);
            ulong s = src & mask, want = 0;
            if (start < bits && len > 0) { want = s >> start; if (len < 64) want &= (1UL << len) - 1; }
            want &= mask;
            Assert.That(r, Is.EqualTo(want), $"bextr/{bits}");
            Assert.That(f & (Cf | Of | Zf), Is.EqualTo(want == 0 ? Zf : 0), $"bextr/{bits} flags");
        }
    }

    [Test]
    public void BlsFamily_EveryValue_MatchesSdm([Values(32, 64)] int bits)
    {
        ulong mask = bits == 64 ? ulong.MaxValue : 0xFFFF_FFFF;
        foreach (var v in Values)
        {
            ulong s = v & mask;
            var (ri, fi) = Run(x => { if (bits == 64) x.blsi(rax, rcx); else x.blsi(eax, ecx); }, v, 0);
            ulong wi = (0 - s) & s & mask;
            Assert.That((ri, fi), Is.EqualTo((wi, Szf(wi, bits) | (s != 0 ? Cf : 0))), $"blsi 0x{v:x}");

            var (rm, fm) = Run(x => { if (bits == 64) x.blsmsk(rax, rcx); else x.blsmsk(eax, ecx); }, v, 0);
            ulong wm = ((s - 1) ^ s) & mask;
            Assert.That((rm, fm), Is.EqualTo((wm, (Szf(wm, bits) & ~Zf) | (s == 0 ? Cf : 0))), $"blsmsk 0x{v:x}");

            var (rr, fr) = Run(x => { if (bits == 64) x.blsr(rax, rcx); else x.blsr(eax, ecx); }, v, 0);
            ulong wr = (s - 1) & s & mask;
            Assert.That((rr, fr), Is.EqualTo((wr, Szf(wr, bits) | (s == 0 ? Cf : 0))), $"blsr 0x{v:x}");
        }
    }

    [Test]
    public void Tzcnt_WithBmi1Model_CountsTrailingZerosNotBsf()
    {
        // BSF leaves the destination alone for a zero source; TZCNT writes the operand size.
        var (r, f) = Run(x => x.tzcnt(rax, rcx), 0, 0);
        Assert.That((r, f & (Cf | Zf)), Is.EqualTo((64UL, Cf)));
        (r, f) = Run(x => x.tzcnt(eax, ecx), 0x100, 0);
        Assert.That((r, f & (Cf | Zf)), Is.EqualTo((8UL, 0UL)));
    }

    [Test]
    public void Andn_InRealMode_IsUndefinedOpcode()
    {
        // #UD goes through the real-mode IVT: vector 6 points at a HLT at 0000:0500.
        using var m = new GuestMachine(GuestMode.Real);
        m.Memory.Write(0x500, new byte[] { 0xF4 });
        m.Memory.WriteU32(6 * 4, 0x0000_0500);
        var a = m.NewAssembler();
        a.andn(eax, ecx, edx);
        m.Load(a);
        var exit = m.Run(100);
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That((m.Cpu.GetSegment(SegReg.Cs).Selector, m.Cpu.Rip), Is.EqualTo(((ushort)0, 0x501UL)), "delivered through IVT[6]");
    }
}
