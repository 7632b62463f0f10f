using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Translation;
using Hypervisor.Core.Machine.Virtualization;
using Hypervisor.Core.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Virtualization;

/// <summary>Guest mode: intercepted events stop the CPU with a vendor-neutral record and the
/// instruction not executed; events not intercepted behave as on the bare machine.</summary>
public class InterceptTests
{
    private sealed class PortFilter : IIoInterceptFilter
    {
        public readonly HashSet<ushort> Ports = new();
        public bool IsIoIntercepted(ushort port, int size) => Ports.Contains(port);
    }

    private sealed class MsrFilter : IMsrInterceptFilter
    {
        public uint Msr;
        public bool IsMsrIntercepted(uint msr, bool write) => msr == Msr;
    }

    /// <summary>Assembles <paramref name="build"/> + HLT at the code base and runs once in guest mode.</summary>
    private static CpuExit RunGuest(GuestMachine m, GuestIntercepts intercepts, Action<Assembler> build)
    {
        var a = m.NewAssembler();
        build(a);
        a.hlt();
        m.Load(a);
        m.Cpu.Intercepts = intercepts;
        return m.Cpu.Run(10_000);
    }

    /// <summary>Address of the first instruction for which <paramref name="prefix"/> emitted nothing before.</summary>
    private static ulong AddressAfter(GuestMachine m, Action<Assembler> prefix)
    {
        var a = m.NewAssembler();
        prefix(a);
        var ms = new MemoryStream();
        if (a.Instructions.Count > 0) a.Assemble(new StreamCodeWriter(ms), GuestMachine.CodeBase);
        return GuestMachine.CodeBase + (ulong)ms.Length;
    }

    [Test]
    public void Cpuid_Intercepted_StopsBeforeExecutingWithNextRip()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Cpu.SetGpr(Gpr.Rax, 0x1234);
        var exit = RunGuest(m, new GuestIntercepts().Set(InterceptReason.Cpuid), a => { a.nop(); a.cpuid(); });
        var info = m.Cpu.LastIntercept;
        Assert.Multiple(() =>
        {
            Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Intercept));
            Assert.That(info.Reason, Is.EqualTo(InterceptReason.Cpuid));
            Assert.That(info.Rip, Is.EqualTo(GuestMachine.CodeBase + 1), "RIP of the CPUID");
            Assert.That(info.NextRip, Is.EqualTo(GuestMachine.CodeBase + 3));
            Assert.That(info.InstructionLength, Is.EqualTo(2));
            Assert.That(m.Cpu.Rip, Is.EqualTo(GuestMachine.CodeBase + 1), "the CPU stays at the instruction");
            Assert.That(m.Cpu.GetGpr(Gpr.Rax), Is.EqualTo(0x1234), "CPUID did not run");
            Assert.That(m.Cpu.InstructionsRetired, Is.EqualTo(1), "only the NOP retired");
        });
    }

    [Test]
    public void Cpuid_NotIntercepted_RunsInGuestMode()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        var exit = RunGuest(m, new GuestIntercepts(), a => { a.xor(eax, eax); a.cpuid(); });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt));
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x68747541), "'Auth'");
    }

    [Test]
    public void Hlt_Intercepted_IsAnIntercept()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        var exit = RunGuest(m, new GuestIntercepts().Set(InterceptReason.Hlt), _ => { });
        Assert.That((exit.Reason, m.Cpu.LastIntercept.Reason), Is.EqualTo((CpuExitReason.Intercept, InterceptReason.Hlt)));
    }

    [Test]
    public void Hlt_InterceptedAtCpl3_PrivilegeFaultComesFirst()
    {
        // #GP for CPL > 0 is checked before the intercept; with #GP intercepted it shows as that.
        using var m = new GuestMachine(GuestMode.Long64);
        var a = m.NewAssembler();
        a.hlt();
        m.Load(a);
        m.Cpu.SetSegment(SegReg.Cs, new Segment { Selector = 0x33, Limit = 0xFFFFFFFF, Attributes = 0xA0FB });
        m.Cpu.SetSegment(SegReg.Ss, new Segment { Selector = 0x3B, Limit = 0xFFFFFFFF, Attributes = 0xC0F3 });
        m.Cpu.Intercepts = new GuestIntercepts { Exceptions = 1u << Vector.GP }.Set(InterceptReason.Hlt);
        m.Cpu.Run(100);
        Assert.That((m.Cpu.LastIntercept.Reason, m.Cpu.LastIntercept.Number, m.Cpu.LastIntercept.ErrorCode),
            Is.EqualTo((InterceptReason.Exception, (byte)Vector.GP, 0u)));
    }

    [Test]
    public void Out_InterceptedPort_RecordsPortSizeDirection()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        var filter = new PortFilter();
        filter.Ports.Add(0x80);
        var exit = RunGuest(m, new GuestIntercepts { Io = filter }, a => { a.mov(eax, 0x55); a.@out(0x80, ax); });
        var info = m.Cpu.LastIntercept;
        Assert.That((exit.Reason, info.Reason, info.Port, info.Size, info.IsIn, info.IsString), Is.EqualTo((CpuExitReason.Intercept, InterceptReason.Io, (ushort)0x80, (byte)2, false, false)));
    }

    [Test]
    public void Out_PortNotInFilter_IsOrdinaryIoExit()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        var filter = new PortFilter();
        filter.Ports.Add(0x80);
        var exit = RunGuest(m, new GuestIntercepts { Io = filter }, a => { a.mov(al, 0x41); a.@out(0xE9, al); });
        Assert.That((exit.Reason, exit.Port, exit.Data), Is.EqualTo((CpuExitReason.Io, (ushort)0xE9, 0x41UL)));
    }

    [Test]
    public void RepInsw_NullFilterInterceptsAll_RecordsStringRepAddressSize()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Cpu.SetGpr(Gpr.Rdx, 0x1F0);
        m.Cpu.SetGpr(Gpr.Rcx, 4);
        m.Cpu.SetGpr(Gpr.Rdi, GuestMachine.DataBase);
        RunGuest(m, new GuestIntercepts(), a => a.rep.insw());
        var info = m.Cpu.LastIntercept;
        Assert.That((info.Port, info.Size, info.IsIn, info.IsString, info.IsRep, info.AddressSize, info.Segment),
            Is.EqualTo(((ushort)0x1F0, (byte)2, true, true, true, (byte)8, (byte)SegReg.Es)));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(4), "nothing moved");
    }

    [Test]
    public void Wrmsr_Intercepted_RecordsIndexAndValue_RdmsrOfOtherMsrRuns()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        var intercepts = new GuestIntercepts { Msr = new MsrFilter { Msr = MsrIndex.Lstar } };
        var exit = RunGuest(m, intercepts, a =>
        {
            a.mov(ecx, MsrIndex.Star);
            a.rdmsr();                      // not intercepted
            a.mov(ecx, MsrIndex.Lstar);
            a.mov(eax, 0x1000);
            a.mov(edx, 0xFFFF8000);
            a.wrmsr();                      // intercepted
        });
        var info = m.Cpu.LastIntercept;
        Assert.That((exit.Reason, info.Reason, info.Msr, info.Value), Is.EqualTo((CpuExitReason.Intercept, InterceptReason.MsrWrite, MsrIndex.Lstar, 0xFFFF8000_00001000UL)));
        Assert.That(m.Cpu.Msr.Lstar, Is.Zero, "WRMSR did not run");
    }

    [Test]
    public void MovCr3_WriteIntercepted_RecordsCrGprValue()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        ulong cr3Before = m.Cpu.Cr3;
        RunGuest(m, new GuestIntercepts { CrWrites = 1 << 3 }, a => { a.mov(rbx, 0x5000); a.mov(cr3, rbx); });
        var info = m.Cpu.LastIntercept;
        Assert.That((info.Reason, info.Number, info.Gpr, info.Value), Is.EqualTo((InterceptReason.CrWrite, (byte)3, (byte)Gpr.Rbx, 0x5000UL)));
        Assert.That(m.Cpu.Cr3, Is.EqualTo(cr3Before));
    }

    [Test]
    public void MovFromCr0_ReadIntercepted_AndLmswIsACr0Write()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        RunGuest(m, new GuestIntercepts { CrReads = 1 }, a => a.mov(rcx, cr0));
        Assert.That((m.Cpu.LastIntercept.Reason, m.Cpu.LastIntercept.Number, m.Cpu.LastIntercept.Gpr), Is.EqualTo((InterceptReason.CrRead, (byte)0, (byte)Gpr.Rcx)));
        using var m2 = new GuestMachine(GuestMode.Long64);
        RunGuest(m2, new GuestIntercepts { CrWrites = 1 }, a => { a.mov(ax, 3); a.lmsw(ax); });
        Assert.That((m2.Cpu.LastIntercept.Reason, m2.Cpu.LastIntercept.Number), Is.EqualTo((InterceptReason.CrWrite, (byte)0)));
    }

    [Test]
    public void PageFault_Intercepted_CarriesErrorAndAddress_Cr2Untouched()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Cpu.Cr2 = 0xAAAA;
        ulong faulting = AddressAfter(m, _ => { });
        // 0x2_0000_0000 (8 GiB) is not mapped by the harness's identity map of 4 GiB.
        RunGuest(m, new GuestIntercepts { Exceptions = 1u << Vector.PF }, a => { a.mov(rax, 0x2_0000_0000); a.mov(__qword_ptr[rax], rbx); });
        var info = m.Cpu.LastIntercept;
        Assert.Multiple(() =>
        {
            Assert.That((info.Reason, info.Number, info.HasErrorCode), Is.EqualTo((InterceptReason.Exception, (byte)Vector.PF, true)));
            Assert.That(info.ErrorCode, Is.EqualTo(2u), "write to a not-present page, supervisor");
            Assert.That(info.Address, Is.EqualTo(0x2_0000_0000UL));
            Assert.That(m.Cpu.Cr2, Is.EqualTo(0xAAAAUL), "CR2 is not written for an intercepted #PF");
            Assert.That(info.Rip, Is.EqualTo(faulting + 10), "RIP of the faulting MOV (after the 10-byte MOV RAX, imm64)");
        });
    }

    [Test]
    public void Ud2_ExceptionNotIntercepted_GoesThroughGuestIdt_TripleFaultIsShutdownIntercept()
    {
        // No IDT in the harness: #UD → #GP (IDT limit) → #DF → triple fault, intercepted as SHUTDOWN.
        using var m = new GuestMachine(GuestMode.Long64);
        m.Cpu.Idtr = new DescriptorTable { Base = 0, Limit = 0 };
        var exit = RunGuest(m, new GuestIntercepts(), a => a.ud2());
        Assert.That((exit.Reason, m.Cpu.LastIntercept.Reason), Is.EqualTo((CpuExitReason.Intercept, InterceptReason.Shutdown)));
    }

    [Test]
    public void TripleFault_ShutdownNotIntercepted_IsMachineShutdown()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Cpu.Idtr = new DescriptorTable { Base = 0, Limit = 0 };
        var exit = RunGuest(m, new GuestIntercepts { Shutdown = false }, a => a.ud2());
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Shutdown));
    }

    [Test]
    public void Invlpg_Intercepted_RecordsLinearAddress()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        RunGuest(m, new GuestIntercepts().Set(InterceptReason.Invlpg), a => { a.mov(rax, 0x7000_1234); a.invlpg(__[rax]); });
        Assert.That((m.Cpu.LastIntercept.Reason, m.Cpu.LastIntercept.Address), Is.EqualTo((InterceptReason.Invlpg, 0x7000_1234UL)));
    }

    [Test]
    public void Invpcid_Intercepted_RecordsTypeRegisterAndDescriptorAddress_WithoutReadingIt()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        // The descriptor address is not mapped: an intercepted INVPCID must not touch it.
        RunGuest(m, new GuestIntercepts().Set(InterceptReason.Invpcid), a => { a.mov(ecx, 7); a.mov(rax, 0x3_0000_0000); a.invpcid(rcx, __[rax]); });
        var info = m.Cpu.LastIntercept;
        Assert.That((info.Reason, info.Value, info.Gpr, info.Address), Is.EqualTo((InterceptReason.Invpcid, 7UL, (byte)Gpr.Rcx, 0x3_0000_0000UL)));
    }

    [Test]
    public void Vmmcall_InterceptedIsHypercall_OtherwiseUd()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        RunGuest(m, new GuestIntercepts().Set(InterceptReason.Vmmcall), a => a.vmmcall());
        Assert.That(m.Cpu.LastIntercept.Reason, Is.EqualTo(InterceptReason.Vmmcall));
        using var m2 = new GuestMachine(GuestMode.Long64);
        RunGuest(m2, new GuestIntercepts { Exceptions = 1u << Vector.UD }, a => a.vmmcall());
        Assert.That((m2.Cpu.LastIntercept.Reason, m2.Cpu.LastIntercept.Number), Is.EqualTo((InterceptReason.Exception, (byte)Vector.UD)));
    }

    [Test]
    public void Xsetbv_Intercepted_RecordsValue()
    {
        using var m = new GuestMachine(GuestMode.Long64, Support.Data.ModelMachine.DefaultWith(1, 'c', 26, present: true));
        Assert.That(m.Cpu.WriteCr4(m.Cpu.Cr4 | Cr4.Osxsave), Is.True);
        RunGuest(m, new GuestIntercepts().Set(InterceptReason.Xsetbv), a => { a.xor(ecx, ecx); a.mov(eax, 1); a.xor(edx, edx); a.xsetbv(); });
        Assert.That((m.Cpu.LastIntercept.Reason, m.Cpu.LastIntercept.Value), Is.EqualTo((InterceptReason.Xsetbv, 1UL)));
    }

    [Test]
    [NonParallelizable]
    public void CpuidLoop_CompiledBlock_EveryIterationIntercepted()
    {
        // What a hypervisor does: emulate, skip to NextRip, resume. The loop body is compiled.
        int saved = BlockCompiler.Threshold;
        BlockCompiler.Threshold = 0;
        try
        {
            using var m = new GuestMachine(GuestMode.Long64);
            var a = m.NewAssembler();
            var top = a.CreateLabel();
            a.mov(ecx, 100);
            a.Label(ref top);
            a.mov(eax, 1);
            a.cpuid();
            a.dec(ecx);     // CPUID's emulation below leaves RCX alone, as if it returned ECX unchanged
            a.jne(top);
            a.hlt();
            m.Load(a);
            m.Cpu.Intercepts = new GuestIntercepts().Set(InterceptReason.Cpuid);
            int intercepts = 0;
            while (true)
            {
                var exit = m.Cpu.Run(1_000_000);
                if (exit.Reason != CpuExitReason.Intercept) { Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt)); break; }
                intercepts++;
                m.Cpu.SetGpr(Gpr.Rax, 0x42);
                m.Cpu.Rip = m.Cpu.LastIntercept.NextRip;
            }
            Assert.That(intercepts, Is.EqualTo(100));
            Assert.That(m.Cpu.GetGpr(Gpr.Rax), Is.EqualTo(0x42));
        }
        finally
        {
            BlockCompiler.Threshold = saved;
        }
    }
}
