using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

public class FarTransferTests
{
    private const ulong Far = 0x30000;   // routines placed at fixed addresses
    private const ulong Ptr = 0x38000;   // far pointers in memory

    // ---- Real mode ----

    [Test]
    public void JmpFarPtr_Real_LoadsCsAsSelectorTimes16()
    {
        using var m = new GuestMachine(GuestMode.Real);
        FaultStubs.Place(m, 0x20010, a => { a.mov(eax, 0x55); a.hlt(); });
        var (exit, _) = FaultStubs.Run(m, a => a.jmp(0x2000, 0x0010));
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Rax, Is.EqualTo(0x55));
        Assert.That(m.Cpu.GetSegment(SegReg.Cs).Selector, Is.EqualTo(0x2000));
        Assert.That(m.Cpu.GetSegment(SegReg.Cs).Base, Is.EqualTo(0x20000));
        Assert.That(m.Cpu.Rip, Is.EqualTo(0x10 + 7));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void CallFarRetf_Real_ReturnsToCallerAndReleasesImm(bool memoryPointer)
    {
        using var m = new GuestMachine(GuestMode.Real);
        FaultStubs.Place(m, 0x20000, a =>
        {
            a.mov(bp, sp);
            a.mov(bx, __word_ptr[bp]); // the return IP
            a.retf(4);
        });
        m.Memory.WriteU32(0x100, 0x2000_0000); // m16:16 at DS:0x100 (DS = 0)
        var (exit, _) = FaultStubs.Run(m, a =>
        {
            a.push(0x1111);
            a.push(0x2222);
            if (memoryPointer) a.db(0xFF, 0x1E, 0x00, 0x01); // call far [0x100]
            else a.call(0x2000, 0);
            a.hlt();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetSegment(SegReg.Cs).Selector, Is.EqualTo(0x1000));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx) & 0xFFFF, Is.EqualTo(memoryPointer ? 10 : 11), "return IP pushed by CALL");
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(0x7000), "RETF 4 released the two pushed words");
        Assert.That(m.Memory.ReadU32(0x7000 - 8) >> 16, Is.EqualTo(0x1000), "CS pushed above IP");
    }

    [Test]
    public void RetfTargetBeyondCsLimit_Real_RaisesGpAndKeepsSp()
    {
        using var m = new GuestMachine(GuestMode.Real);
        FaultStubs.Install(m);
        var (exit, _) = FaultStubs.Run(m, a =>
        {
            a.push(0x2000);        // CS
            a.push(0x0010);        // IP
            a.db(0x66, 0xCB);      // o32 retf: pops EIP = 0x20000010 (beyond the 64 KiB limit)
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.GP));
        Assert.That(FaultStubs.Frame(m, 0), Is.EqualTo(5), "IP of the RETF (push imm16, push imm8)");
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp) & 0xFFFF, Is.EqualTo(0x7000 - 4 - 6), "SP as before RETF, minus the 3-word frame");
    }

    // ---- Protected mode, same privilege ----

    [Test]
    public void JmpFar_Protected32_To16BitCodeSegment_SwitchesCodeSize()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        FaultStubs.Place(m, 0x8000, a => { a.mov(eax, 0x1234_5678); a.hlt(); }, bitness: 16);
        var (exit, _) = FaultStubs.Run(m, a => a.jmp(0x20, 0x8000));
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Rax, Is.EqualTo(0x1234_5678));
        Assert.That(m.Cpu.CodeBits, Is.EqualTo(16));
        Assert.That(m.Cpu.GetSegment(SegReg.Cs).Selector, Is.EqualTo(0x20));
        Assert.That(m.Cpu.GetSegment(SegReg.Cs).Attributes & 1, Is.EqualTo(1), "accessed");
        Assert.That(m.Memory.ReadU64(GuestMachine.GdtBase + 0x20) & (1UL << 40), Is.Not.Zero, "descriptor marked accessed");
    }

    [Test]
    public void CallFarRetf_Protected32_PushesCsAndEipAsDwords()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        FaultStubs.Place(m, Far, a =>
        {
            a.mov(eax, __dword_ptr[esp]);
            a.mov(ebx, __dword_ptr[esp + 4]);
            a.retf(8);
        });
        var (exit, _) = FaultStubs.Run(m, a =>
        {
            a.push(1);
            a.push(2);
            a.call(0x1B & ~3, (uint)Far); // selector 0x18
            a.hlt();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Rax, Is.EqualTo(GuestMachine.CodeBase + 2 + 2 + 7));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x18), "CS zero-extended to a dword");
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(GuestMachine.StackTop));
    }

    /// <summary>Far JMP/CALL target checks (SDM "JMP" Operation, protected mode).</summary>
    [TestCase(0x0000, 0x10000u, Vector.GP, 0x00, TestName = "FarJmp_NullSelector_Gp0")]
    [TestCase(0x0010, 0x10000u, Vector.GP, 0x10, TestName = "FarJmp_DataSegment_GpSelector")]
    [TestCase(0x0040, 0x10000u, Vector.GP, 0x40, TestName = "FarJmp_NonConformingDpl3FromCpl0_GpSelector")]
    [TestCase(0x001B, 0x10000u, Vector.GP, 0x18, TestName = "FarJmp_RplAboveCpl_GpSelector")]
    [TestCase(0x0048, 0x10000u, Vector.NP, 0x48, TestName = "FarJmp_NotPresent_NpSelector")]
    [TestCase(0x0100, 0x10000u, Vector.GP, 0x100, TestName = "FarJmp_BeyondGdtLimit_GpSelector")]
    [TestCase(0x0020, 0x20000u, Vector.GP, 0x00, TestName = "FarJmp_OffsetBeyondLimit_Gp0")]
    [TestCase(0x0050, 0x10000u, Vector.GP, 0x50, TestName = "FarJmp_LdtDescriptor_GpSelector")]
    public void FarJmpChecks_Protected32(int selector, uint offset, int vector, int error)
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        FaultStubs.Install(m);
        FaultStubs.SetGdtEntry(m, 9, 0, 0xFFFFF, 0x1B, 0xC);  // 0x48: code, not present
        FaultStubs.SetGdtEntry(m, 10, 0, 0xFFFF, 0x82, 0x0);  // 0x50: an LDT descriptor
        var (exit, _) = FaultStubs.Run(m, a => a.jmp((ushort)selector, offset));
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(vector));
        Assert.That(FaultStubs.Frame(m, 0), Is.EqualTo((ulong)error));
        Assert.That(FaultStubs.Frame(m, 1), Is.EqualTo(GuestMachine.CodeBase), "EIP of the JMP");
        Assert.That(FaultStubs.Frame(m, 2), Is.EqualTo(0x18), "CS unchanged");
    }

    [Test]
    public void CallFarToDataSegment_Protected32_FaultsWithoutPushing()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        FaultStubs.Install(m);
        var (exit, _) = FaultStubs.Run(m, a => a.call(0x10, 0x1000));
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.GP));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(GuestMachine.StackTop - 16), "only the exception frame is on the stack");
    }

    [Test]
    public void FarJmpThroughCallGate_StopsAsUnimplemented()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        FaultStubs.SetGdtEntry(m, 9, 0x18 << 16, 0, 0x8C, 0); // a 32-bit call gate
        var (exit, _) = FaultStubs.Run(m, a => a.jmp(0x48, 0));
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Unimplemented));
        Assert.That(exit.Message, Does.Contain("call gates"));
    }

    // ---- IA-32e mode ----

    [Test]
    public void JmpFarM1664_Long64_JumpsToSixtyFourBitOffset()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        FaultStubs.Place(m, Far, a => { a.mov(eax, 0x64); a.hlt(); });
        m.Memory.WriteU64(Ptr, Far);
        m.Memory.Write(Ptr + 8, new byte[] { 0x08, 0x00 });
        var (exit, _) = FaultStubs.Run(m, a =>
        {
            a.mov(eax, (uint)Ptr);
            a.db(0x48, 0xFF, 0x28); // jmp far qword [rax]: m16:64
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Rax, Is.EqualTo(0x64));
        Assert.That(m.Cpu.CodeBits, Is.EqualTo(64));
    }

    [Test]
    public void JmpFar_Long64_ToCompatibilityModeAndBack()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        // 32-bit code: eax = 0x32, then jmp far 0x08:Far+0x100 (back to 64-bit code).
        FaultStubs.Place(m, Far, a => { a.mov(eax, 0x32); a.jmp(0x08, (uint)(Far + 0x100)); }, bitness: 32);
        FaultStubs.Place(m, Far + 0x100, a => { a.add(eax, 0x100); a.hlt(); });
        m.Memory.WriteU32(Ptr, (uint)Far);
        m.Memory.Write(Ptr + 4, new byte[] { 0x18, 0x00 });
        var (exit, _) = FaultStubs.Run(m, a =>
        {
            a.mov(eax, (uint)Ptr);
            a.db(0xFF, 0x28); // jmp far [rax]: m16:32
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Rax, Is.EqualTo(0x132));
        Assert.That(m.Cpu.CodeBits, Is.EqualTo(64));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void CallFarRetf_Long64_OperandSizeSetsSlotWidth(bool rexW)
    {
        using var m = new GuestMachine(GuestMode.Long64);
        // The callee reads the return address and CS from the stack, then returns with the
        // same operand size (RETFQ or the default 32-bit RETF).
        FaultStubs.Place(m, Far, a =>
        {
            if (rexW) { a.mov(rbx, __qword_ptr[rsp]); a.mov(rcx, __qword_ptr[rsp + 8]); a.db(0x48, 0xCB); }
            else { a.mov(ebx, __dword_ptr[rsp]); a.mov(ecx, __dword_ptr[rsp + 4]); a.db(0xCB); }
        });
        if (rexW) m.Memory.WriteU64(Ptr, Far); else m.Memory.WriteU32(Ptr, (uint)Far);
        m.Memory.Write(Ptr + (rexW ? 8UL : 4UL), new byte[] { 0x08, 0x00 });
        var (exit, _) = FaultStubs.Run(m, a =>
        {
            a.mov(eax, (uint)Ptr);
            if (rexW) a.db(0x48, 0xFF, 0x18); else a.db(0xFF, 0x18); // call far [rax]
            a.hlt();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(GuestMachine.CodeBase + 5 + (rexW ? 3UL : 2UL)));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(0x08));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(GuestMachine.StackTop));
    }

    /// <summary>Builds the RETFQ frame for a return to CPL 3: [RIP][CS][imm bytes][RSP][SS].</summary>
    private static void PushOuterFrame(Assembler a, ushort newSs, ulong newRsp, ushort newCs, ulong newRip, int paramBytes)
    {
        a.mov(rax, newSs); a.push(rax);
        a.mov(rax, newRsp); a.push(rax);
        if (paramBytes > 0) a.sub(rsp, paramBytes);
        a.mov(rax, newCs); a.push(rax);
        a.mov(rax, newRip); a.push(rax);
    }

    [TestCase(0)]
    [TestCase(16)]
    public void RetfToOuterPrivilege_Long64_LoadsSsRspAndNullsDataSegments(int imm)
    {
        using var m = new GuestMachine(GuestMode.Long64);
        FaultStubs.Install(m);
        const ulong userRsp = 0x60000;
        FaultStubs.Place(m, Far, a => a.hlt()); // HLT at CPL 3 raises #GP: the frame shows the user state
        var (exit, _) = FaultStubs.Run(m, a =>
        {
            PushOuterFrame(a, 0x3B, userRsp, 0x33, Far, imm);
            if (imm == 0) a.db(0x48, 0xCB); else { a.db(0x48, 0xCA); a.dw((ushort)imm); }
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.GP));
        Assert.That(FaultStubs.Frame(m, 1), Is.EqualTo(Far), "RIP");
        Assert.That(FaultStubs.Frame(m, 2), Is.EqualTo(0x33), "CS");
        Assert.That(FaultStubs.Frame(m, 4), Is.EqualTo(userRsp + (ulong)imm), "RSP: imm16 released on the new stack too");
        Assert.That(FaultStubs.Frame(m, 5), Is.EqualTo(0x3B), "SS");
        Assert.That(m.Cpu.GetSegment(SegReg.Ds).Selector, Is.Zero, "DS (DPL 0) is nulled on the way out");
        Assert.That(m.Cpu.GetSegment(SegReg.Es).Selector, Is.Zero);
    }

    [Test]
    public void RetfToOuterPrivilegeWithNullSs_Long64_RaisesGp()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        FaultStubs.Install(m);
        var (exit, _) = FaultStubs.Run(m, a =>
        {
            PushOuterFrame(a, 0x03, 0x60000, 0x33, Far, 0);
            a.db(0x48, 0xCB);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.GP));
        Assert.That(FaultStubs.Frame(m, 0), Is.Zero);
        Assert.That(FaultStubs.Frame(m, 2), Is.EqualTo(0x08), "still in ring 0");
    }

    [Test]
    public void RetfSamePrivilegeNonCanonical_Long64_RaisesGp0()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        FaultStubs.Install(m);
        var (exit, _) = FaultStubs.Run(m, a =>
        {
            a.push(0x08);
            a.mov(rax, 0x0000_8000_0000_0000UL);
            a.push(rax);
            a.db(0x48, 0xCB);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.GP));
        Assert.That(FaultStubs.Frame(m, 0), Is.Zero);
        Assert.That(FaultStubs.Frame(m, 4), Is.EqualTo(GuestMachine.StackTop - 16), "RSP unchanged by the failed RETF");
    }

    [Test]
    public void FarJmpToLongAndDefaultBigSegment_Long64_RaisesGpSelector()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        FaultStubs.Install(m);
        ushort bad = FaultStubs.SetGdtEntry(m, 9, 0, 0xFFFFF, 0x9B, 0xE); // L=1 and D=1
        m.Memory.WriteU64(Ptr, Far);
        m.Memory.Write(Ptr + 8, new byte[] { (byte)bad, 0x00 });
        var (exit, _) = FaultStubs.Run(m, a =>
        {
            a.mov(eax, (uint)Ptr);
            a.db(0x48, 0xFF, 0x28);
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.GP));
        Assert.That(FaultStubs.Frame(m, 0), Is.EqualTo(bad));
    }

    [Test]
    public void RetfToOuterPrivilege_Protected32_SwitchesStackAndCpl()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        FaultStubs.Install(m);
        FaultStubs.Place(m, Far, a => a.hlt());
        var (exit, _) = FaultStubs.Run(m, a =>
        {
            a.push(0x3B);           // SS (user data, RPL 3)
            a.push(0x60000);        // ESP
            a.push(0x43);           // CS (user code32, RPL 3)
            a.push((int)Far);       // EIP
            a.retf();
        });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.That(FaultStubs.Vector(m), Is.EqualTo(Vector.GP));
        // 32-bit frame after a privilege change: error, EIP, CS, EFLAGS, ESP, SS.
        Assert.That(FaultStubs.Frame(m, 1), Is.EqualTo(Far));
        Assert.That(FaultStubs.Frame(m, 2), Is.EqualTo(0x43));
        Assert.That(FaultStubs.Frame(m, 4), Is.EqualTo(0x60000));
        Assert.That(FaultStubs.Frame(m, 5), Is.EqualTo(0x3B));
        Assert.That(m.Cpu.GetGpr(Gpr.Rsp), Is.EqualTo(FaultStubs.KernelStackTop - 24));
    }
}
