using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.Tests.Support;
using Hypervisor.Core.Tests.Support.Data;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Decoding;

/// <summary>
/// The REX2 prefix (0xD5, payload M0 R4 X4 B4 W R3 X3 B3) on the APX model. Iced cannot encode
/// REX2, so each instruction is written out as bytes, with its encoding spelled in a comment.
/// </summary>
public class ApxDecoderTests
{
    private static ModelMachine Apx(bool enabled = true)
    {
        var m = new ModelMachine(HostCpuModel.DiamondRapids);
        if (enabled)
            m.Cpu.Xcr0 = Xcr0Bits.X87 | X86Cpu.Xcr0Apx;
        return m;
    }

    private static void AssertHalted(ModelMachine m, CpuExit exit)
    {
        Assert.That(m.Caught, Is.Null, "no exception");
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
    }

    private static void AssertUd(ModelMachine m, CpuExit exit, ulong rip)
    {
        Assert.That(m.Caught, Is.Not.Null, $"expected #UD, got {exit}");
        Assert.That(m.Caught!.Value.Vector, Is.EqualTo(Vector.UD));
        Assert.That(m.Caught!.Value.Rip, Is.EqualTo(rip), "RIP left on the faulting instruction");
    }

    [Test]
    public void MovRmReg_B4_WritesR16()
    {
        using var m = Apx();
        var exit = m.Run(a =>
        {
            a.mov(rax, 0x1122334455667788);
            a.db(0xD5, 0x18, 0x89, 0xC0); // REX2(B4 W) 89 /r: mov r16, rax
        });
        AssertHalted(m, exit);
        Assert.That(m.Cpu.GetExtendedGpr(16), Is.EqualTo(0x1122334455667788UL));
        Assert.That(m.Cpu.GetGpr(Gpr.Rax), Is.EqualTo(0x1122334455667788UL));
        Assert.That(m.Cpu.GetGpr(Gpr.R8), Is.EqualTo(0), "B3=0: not R8");
    }

    [Test]
    public void MovImm64_OpcodeRegister_B4B3_WritesR31()
    {
        using var m = Apx();
        var exit = m.Run(a => a.db(0xD5, 0x19, 0xBF, 0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01)); // REX2(B4 W B3) BF+7 imm64: mov r31, imm
        AssertHalted(m, exit);
        Assert.That(m.Cpu.GetExtendedGpr(31), Is.EqualTo(0x0123456789ABCDEFUL));
    }

    [Test]
    public void AddRmReg_R4AndB4_BothFifthBitsApplied()
    {
        using var m = Apx();
        m.Cpu.SetExtendedGpr(17, 40);
        m.Cpu.SetExtendedGpr(25, 2);
        m.Cpu.SetGpr(Gpr.Rcx, 1000); // rm=001/reg=001 without the fifth bits
        m.Cpu.SetGpr(Gpr.R9, 1000);
        var exit = m.Run(a => a.db(0xD5, 0x5C, 0x01, 0xC9)); // REX2(R4 B4 W R3) 01 /r, modrm 11 001 001: add r17, r25
        AssertHalted(m, exit);
        Assert.That(m.Cpu.GetExtendedGpr(17), Is.EqualTo(42));
        Assert.That(m.Cpu.GetExtendedGpr(25), Is.EqualTo(2));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(1000));
    }

    [Test]
    public void Add8_B4_UsesLowByteOfR16NotAh()
    {
        using var m = Apx();
        m.Cpu.SetExtendedGpr(16, 0xFFFF_FFFF_FFFF_FF01);
        var exit = m.Run(a =>
        {
            a.mov(eax, 0x0202);
            a.db(0xD5, 0x10, 0x00, 0xC0); // REX2(B4) 00 /r: add r16b, al
        });
        AssertHalted(m, exit);
        Assert.That(m.Cpu.GetExtendedGpr(16), Is.EqualTo(0xFFFF_FFFF_FFFF_FF03UL), "only the low byte changes");
    }

    [Test]
    public void MemoryOperand_BaseB4IndexX4_AddressesWithR18AndR27()
    {
        using var m = Apx();
        m.Memory.WriteU64(0x200000 + 3 * 8 + 0x10, 0xCAFEF00D);
        m.Cpu.SetExtendedGpr(18, 0x200000);
        m.Cpu.SetExtendedGpr(27, 3);
        var exit = m.Run(a => a.db(0xD5, 0x3A, 0x8B, 0x44, 0xDA, 0x10)); // REX2(X4 B4 W X3) 8B /r, SIB 11 011 010: mov rax, [r18 + r27*8 + 0x10]
        AssertHalted(m, exit);
        Assert.That(m.Cpu.GetGpr(Gpr.Rax), Is.EqualTo(0xCAFEF00DUL));
    }

    [Test]
    public void SibIndex100_WithX4_IsR20NotNoIndex()
    {
        using var m = Apx();
        m.Memory.WriteU64(0x200000 + 5 * 2, 0x5150);
        m.Memory.WriteU64(0x200000, 0xBAD);
        m.Cpu.SetExtendedGpr(20, 5);
        m.Cpu.SetGpr(Gpr.Rbx, 0x200000);
        var exit = m.Run(a => a.db(0xD5, 0x28, 0x8B, 0x04, 0x63)); // REX2(X4 W) 8B /r, SIB 01 100 011: mov rax, [rbx + r20*2]
        AssertHalted(m, exit);
        Assert.That(m.Cpu.GetGpr(Gpr.Rax), Is.EqualTo(0x5150UL));
    }

    [Test]
    public void StoreFromModrmReg_R4R3_ReadsR30()
    {
        using var m = Apx();
        m.Cpu.SetExtendedGpr(30, 0x7777_0000_1234);
        m.Cpu.SetGpr(Gpr.Rbx, 0x200100);
        var exit = m.Run(a => a.db(0xD5, 0x4C, 0x89, 0x33)); // REX2(R4 W R3) 89 /r, modrm 00 110 011: mov [rbx], r30
        AssertHalted(m, exit);
        Assert.That(m.Memory.ReadU64(0x200100), Is.EqualTo(0x7777_0000_1234UL));
    }

    [Test]
    public void RipRelative_RealNextIpIsTheBase()
    {
        using var m = Apx();
        var exit = m.Run(a => a.db(0xD5, 0x48, 0x8D, 0x05, 0x00, 0x01, 0x00, 0x00)); // REX2(R4 W) 8D /r: lea r16, [rip + 0x100]
        AssertHalted(m, exit);
        Assert.That(m.Cpu.GetExtendedGpr(16), Is.EqualTo(GuestMachine.CodeBase + 8 + 0x100));
    }

    [Test]
    public void Map1_M0_ImulR19R22()
    {
        using var m = Apx();
        m.Cpu.SetExtendedGpr(19, 6);
        m.Cpu.SetExtendedGpr(22, 7);
        var exit = m.Run(a => a.db(0xD5, 0xD8, 0xAF, 0xDE)); // REX2(M0 R4 B4 W) 0F AF /r, modrm 11 011 110: imul r19, r22
        AssertHalted(m, exit);
        Assert.That(m.Cpu.GetExtendedGpr(19), Is.EqualTo(42));
    }

    [Test]
    public void PushPop_AndPushpPopp_MoveValuesThroughTheStack()
    {
        using var m = Apx();
        m.Cpu.SetExtendedGpr(20, 0xAAAA);
        m.Cpu.SetExtendedGpr(23, 0xBBBB);
        ulong rsp = m.Cpu.GetGpr(Gpr.Rsp);
        var exit = m.Run(a => a.db(
            0xD5, 0x10, 0x54,   // REX2(B4) 54: push r20
            0xD5, 0x18, 0x57,   // REX2(B4 W) 57: pushp r23 (PPX hint, same semantics)
            0xD5, 0x18, 0x5D,   // REX2(B4 W) 5D: popp r21
            0xD5, 0x10, 0x5E)); // REX2(B4) 5E: pop r22
        AssertHalted(m, exit);
        Assert.That(m.Cpu.GetExtendedGpr(21), Is.EqualTo(0xBBBB));
        Assert.That(m.Cpu.GetExtendedGpr(22), Is.EqualTo(0xAAAA));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(rsp));
    }

    [Test]
    public void Jmpabs_JumpsToAbsoluteTarget()
    {
        using var m = Apx();
        ulong target = GuestMachine.CodeBase + 0x800;
        m.Memory.Write(target, new byte[] { 0xB8, 0x2A, 0, 0, 0, 0xF4 }); // mov eax, 42; hlt
        var bytes = new List<byte> { 0xD5, 0x00, 0xA1 }; // REX2() A1 imm64: jmpabs
        bytes.AddRange(BitConverter.GetBytes(target));
        var exit = m.Run(a =>
        {
            a.db(bytes.ToArray());
            a.mov(eax, 1); // skipped
        });
        AssertHalted(m, exit);
        Assert.That(m.Cpu.GetGpr(Gpr.Rax), Is.EqualTo(42));
    }

    [Test]
    public void Jmpabs_NonCanonicalTarget_Gp()
    {
        using var m = Apx();
        var bytes = new List<byte> { 0xD5, 0x00, 0xA1 };
        bytes.AddRange(BitConverter.GetBytes(0x0000_8000_0000_0000UL));
        m.Run(a => a.db(bytes.ToArray()));
        Assert.That(m.Caught?.Vector, Is.EqualTo(Vector.GP));
        Assert.That(m.Caught!.Value.Rip, Is.EqualTo(GuestMachine.CodeBase));
    }

    [Test]
    public void LoopOnExtendedRegisters_RunsThroughTheCompiledTier()
    {
        using var m = Apx();
        m.Cpu.SetExtendedGpr(16, 100);
        m.Cpu.SetExtendedGpr(17, 0);
        var exit = m.Run(a =>
        {
            var top = a.CreateLabel();
            a.Label(ref top);
            a.db(0xD5, 0x58, 0x01, 0xC1); // REX2(R4 B4 W) 01 /r: add r17, r16
            a.db(0xD5, 0x18, 0xFF, 0xC8); // REX2(B4 W) FF /1: dec r16
            a.jne(top);
        });
        AssertHalted(m, exit);
        Assert.That(m.Cpu.GetExtendedGpr(17), Is.EqualTo(5050));
        Assert.That(m.Cpu.GetExtendedGpr(16), Is.EqualTo(0));
    }

    [TestCase(new byte[] { 0xD5, 0x00, 0x75, 0x00 }, TestName = "Rex2_Jcc8_Ud")]                 // map 0 row 7
    [TestCase(new byte[] { 0xD5, 0x00, 0xE8, 0, 0, 0, 0 }, TestName = "Rex2_CallRel32_Ud")]      // map 0 row E
    [TestCase(new byte[] { 0xD5, 0x00, 0x41, 0x90 }, TestName = "Rex2_ThenRex_Ud")]              // map 0 row 4
    [TestCase(new byte[] { 0xD5, 0x00, 0xD5, 0x00, 0x90 }, TestName = "Rex2_ThenRex2_Ud")]
    [TestCase(new byte[] { 0xD5, 0x00, 0xC5, 0xF8, 0x77 }, TestName = "Rex2_ThenVex_Ud")]
    [TestCase(new byte[] { 0xD5, 0x00, 0x66, 0x90 }, TestName = "Rex2_ThenLegacyPrefix_Ud")]
    [TestCase(new byte[] { 0xD5, 0x00, 0x0F, 0xAF, 0xC0 }, TestName = "Rex2_M0Clear_0FEscape_Ud")]
    [TestCase(new byte[] { 0xD5, 0x80, 0x38, 0x00, 0xC0 }, TestName = "Rex2_Map1_0F38Escape_Ud")] // map 1 row 3
    [TestCase(new byte[] { 0xD5, 0x80, 0x3A, 0x0F, 0xC0, 0x00 }, TestName = "Rex2_Map1_0F3AEscape_Ud")]
    [TestCase(new byte[] { 0xD5, 0x80, 0x31 }, TestName = "Rex2_Map1_Rdtsc_Ud")]
    [TestCase(new byte[] { 0xD5, 0x80, 0x84, 0, 0, 0, 0 }, TestName = "Rex2_Map1_Jcc32_Ud")]    // map 1 row 8
    [TestCase(new byte[] { 0x48, 0xD5, 0x18, 0x89, 0xC0 }, TestName = "Rex_ThenRex2_Ud")]
    [TestCase(new byte[] { 0xD5, 0x08, 0xA1, 0, 0, 0, 0, 0, 0, 0, 0 }, TestName = "Rex2_A1WithW_Ud")]
    [TestCase(new byte[] { 0xD5, 0x00, 0xA0, 0, 0, 0, 0, 0, 0, 0, 0 }, TestName = "Rex2_MovMoffs_Ud")]
    [TestCase(new byte[] { 0x66, 0xD5, 0x00, 0xA1, 0, 0, 0, 0, 0, 0, 0, 0 }, TestName = "Jmpabs_OperandSizePrefix_Ud")]
    public void ReservedRex2Forms_Ud(byte[] bytes)
    {
        using var m = Apx();
        var exit = m.Run(a => a.db(bytes));
        AssertUd(m, exit, GuestMachine.CodeBase);
    }

    [Test]
    public void Rex2_Xcr0ApxClear_Ud()
    {
        using var m = Apx(enabled: false);
        var exit = m.Run(a => a.db(0xD5, 0x18, 0x89, 0xC0));
        AssertUd(m, exit, GuestMachine.CodeBase);
    }

    [Test]
    public void Rex2_DecodedBlocksFollowXcr0ApxChanges()
    {
        using var m = Apx(enabled: false);
        m.Cpu.SetGpr(Gpr.Rax, 9);
        var exit = m.Run(a => a.db(0xD5, 0x18, 0x89, 0xC0));
        AssertUd(m, exit, GuestMachine.CodeBase);
        // Same bytes, now with XCR0[19] set: the #UD block must not be reused.
        m.Memory.WriteU32(ExceptionTrap.RecordBase, 0xFFFF_FFFF); // "no exception recorded"
        m.Cpu.Xcr0 = Xcr0Bits.X87 | X86Cpu.Xcr0Apx;
        m.Cpu.Rip = GuestMachine.CodeBase;
        m.Cpu.SetGpr(Gpr.Rsp, GuestMachine.StackTop);
        exit = m.Cpu.Run(100);
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.That(m.Cpu.GetExtendedGpr(16), Is.EqualTo(9));
        // And back: with XCR0[19] clear again the REX2 block is not reused either.
        m.Cpu.Xcr0 = Xcr0Bits.X87;
        m.Cpu.Rip = GuestMachine.CodeBase;
        m.Cpu.SetGpr(Gpr.Rsp, GuestMachine.StackTop);
        exit = m.Cpu.Run(100);
        AssertUd(m, exit, GuestMachine.CodeBase);
    }

    [Test]
    public void SwitchXcr0_BetweenRuns_FlushesNothingAndDecodesOnce()
    {
        using var m = Apx(enabled: false);
        m.Cpu.SetGpr(Gpr.Rax, 3);
        var exit = m.Run(a => a.db(0xD5, 0x18, 0x89, 0xC0)); // mov r16, rax (REX2): #UD with XCR0[19] clear
        AssertUd(m, exit, GuestMachine.CodeBase);
        long translations = m.Cpu.BlockTranslations;
        for (int round = 0; round < 3; round++)
        {
            m.Memory.WriteU32(ExceptionTrap.RecordBase, 0xFFFF_FFFF);
            m.Cpu.SwitchXcr0(Xcr0Bits.X87 | X86Cpu.Xcr0Apx);
            m.Cpu.Rip = GuestMachine.CodeBase;
            m.Cpu.SetGpr(Gpr.Rsp, GuestMachine.StackTop);
            exit = m.Cpu.Run(100);
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
            Assert.That(m.Caught, Is.Null);
            Assert.That(m.Cpu.GetExtendedGpr(16), Is.EqualTo(3));
            m.Cpu.SwitchXcr0(Xcr0Bits.X87);
        }
        // Decoded once under XCR0[19] = 1, then found again by its decode key on every later run.
        Assert.That(m.Cpu.BlockTranslations - translations, Is.EqualTo(1));
    }

    [TestCase(1, TestName = "Rex2_PayloadOnNextPage_Decoded")]
    [TestCase(3, TestName = "Rex2_ModrmOnNextPage_Decoded")]
    public void Rex2_InstructionCrossingAPage_Decoded(int bytesOnFirstPage)
    {
        using var m = Apx();
        ulong at = GuestMachine.CodeBase + 0x1000 - (ulong)bytesOnFirstPage;
        m.Memory.Write(at, new byte[] { 0xD5, 0x18, 0x89, 0xC0, 0xF4 }); // mov r16, rax; hlt
        var exit = m.Run(a =>
        {
            a.mov(eax, 77);
            a.jmp(at);
        });
        AssertHalted(m, exit);
        Assert.That(m.Cpu.GetExtendedGpr(16), Is.EqualTo(77));
    }

    [Test]
    public void D5_In32BitMode_IsAadEvenWithApxEnabled()
    {
        using var g = new GuestMachine(GuestMode.Protected32, HostCpuModel.DiamondRapids);
        g.Cpu.Xcr0 = Xcr0Bits.X87 | X86Cpu.Xcr0Apx;
        g.RunToHlt(a =>
        {
            a.mov(eax, 0x0307); // AH=3, AL=7
            a.db(0xD5, 0x0A);   // aad 10: AL = 3*10 + 7, AH = 0
        });
        Assert.That(g.Rax & 0xFFFF, Is.EqualTo(37));
    }
}
