using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Memory;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Svm.Hardware;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Svm.Tests.Hardware;

/// <summary>VMRUN and #VMEXIT on the software CPU, without a hypervisor on top: the VMCB is set up by
/// hand as a hypervisor would, and the exit information checked against the APM's encodings.</summary>
public class SvmProcessorTests
{
    private const ulong Code = 0x10000, Pml4 = 0x100000, Gdt = 0x1000;

    private sealed class Rig : IDisposable
    {
        public readonly PhysicalMemory Memory = new();
        public readonly X86Cpu Cpu;
        public readonly SvmProcessor Svm;
        public readonly Vmcb Vmcb = new();

        public Rig()
        {
            Memory.AddSlot(0, 0, 16 << 20);
            Cpu = new X86Cpu(Memory, HostCpuModel.Zen5);
            Svm = new SvmProcessor(Cpu);
            Memory.WriteU64(Gdt + 8, 0x00AF9B000000FFFFUL);
            Memory.WriteU64(Gdt + 16, 0x00CF93000000FFFFUL);
            Memory.WriteU64(Pml4, (Pml4 + 0x1000) | 3);
            Memory.WriteU64(Pml4 + 0x1000, (Pml4 + 0x2000) | 3);
            for (ulong e = 0; e < 8; e++)
                Memory.WriteU64(Pml4 + 0x2000 + e * 8, (e << 21) | 0x83);
            var v = Vmcb;
            var data = new Segment { Selector = 0x10, Limit = 0xFFFFFFFF, Attributes = 0xC093 };
            v.Cs = new Segment { Selector = 0x08, Limit = 0xFFFFFFFF, Attributes = 0xA09B };
            v.Ds = v.Es = v.Ss = v.Fs = v.Gs = data;
            v.Tr = new Segment { Limit = 0xFFFF, Attributes = 0x8B };
            v.Gdtr = new DescriptorTable { Base = Gdt, Limit = 0x17 };
            v.Cr0 = Cr0.Pe | Cr0.Et | Cr0.Pg;
            v.Cr3 = Pml4;
            v.Cr4 = Cr4.Pae;
            v.Efer = Efer.Lme | Efer.Lma | Efer.Svme;
            v.Rflags = RFlags.Fixed1;
            v.Rip = Code;
            v.Rsp = 0x80000;
            v.Dr6 = 0xFFFF0FF0;
            v.Dr7 = 0x400;
            v.GuestAsid = 1;
            v.SetIntercept(SvmIntercept.Vmrun);
        }

        public void Load(Action<Assembler> build)
        {
            var a = new Assembler(64);
            build(a);
            var ms = new MemoryStream();
            a.Assemble(new StreamCodeWriter(ms), Code);
            Memory.Write(Code, ms.ToArray());
        }

        public void Dispose()
        {
            Vmcb.Dispose();
            Cpu.Dispose();
            Memory.Dispose();
        }
    }

    private static IEnumerable<TestCaseData> InvalidStates()
    {
        yield return new TestCaseData((Action<Vmcb>)(v => v.Efer &= ~Efer.Svme), "SVME").SetName("Vmrun_EferSvmeClear_Invalid");
        yield return new TestCaseData((Action<Vmcb>)(v => v.Cr0 = (v.Cr0 & ~Cr0.Cd) | Cr0.Nw), "CR0.NW").SetName("Vmrun_Cr0NwWithoutCd_Invalid");
        yield return new TestCaseData((Action<Vmcb>)(v => v.Cr0 |= 1UL << 32), "CR0[63:32]").SetName("Vmrun_Cr0HighBits_Invalid");
        yield return new TestCaseData((Action<Vmcb>)(v => v.Cr3 |= 1UL << 60), "CR3").SetName("Vmrun_Cr3BeyondMaxPhysAddr_Invalid");
        yield return new TestCaseData((Action<Vmcb>)(v => v.Cr4 |= 1UL << 30), "CR4").SetName("Vmrun_Cr4Reserved_Invalid");
        yield return new TestCaseData((Action<Vmcb>)(v => v.Dr7 |= 1UL << 40), "DR6").SetName("Vmrun_Dr7High_Invalid");
        yield return new TestCaseData((Action<Vmcb>)(v => v.Cr4 &= ~Cr4.Pae), "CR4.PAE").SetName("Vmrun_LongModeWithoutPae_Invalid");
        yield return new TestCaseData((Action<Vmcb>)(v => { var cs = v.Cs; cs.Attributes |= Segment.AttrDb; v.Cs = cs; }), "CS.L").SetName("Vmrun_CsLAndD_Invalid");
        yield return new TestCaseData((Action<Vmcb>)(v => v.ClearIntercept(SvmIntercept.Vmrun)), "VMRUN intercept").SetName("Vmrun_VmrunInterceptClear_Invalid");
        yield return new TestCaseData((Action<Vmcb>)(v => v.GuestAsid = 0), "ASID").SetName("Vmrun_AsidZero_Invalid");
    }

    [TestCaseSource(nameof(InvalidStates))]
    public void Vmrun_IllegalGuestState_ExitInvalidNamingTheCheck(Action<Vmcb> breakIt, string named)
    {
        using var r = new Rig();
        r.Load(a => a.hlt());
        breakIt(r.Vmcb);
        r.Svm.Vmrun(r.Vmcb);
        Assert.That(r.Vmcb.ExitCode, Is.EqualTo(SvmExitCode.Invalid));
        Assert.That(r.Svm.InvalidReason, Does.Contain(named));
        Assert.That(r.Cpu.IsGuestMode, Is.False);
    }

    [Test]
    public void Ioio_ExitInfo1EncodesPortSizeDirection_ExitInfo2IsNextRip()
    {
        using var r = new Rig();
        r.Vmcb.SetIntercept(SvmIntercept.IoioProt);
        var iopm = new SvmIoPermissionMap();
        r.Svm.Iopm = iopm;
        r.Load(a => { a.mov(dx, 0x3F8); a.@out(dx, ax); });
        r.Svm.Vmrun(r.Vmcb);
        var io = new SvmIoioInfo(r.Vmcb.ExitInfo1);
        Assert.That((r.Vmcb.ExitCode, io.Port, io.Size, io.IsIn, io.IsString), Is.EqualTo((SvmExitCode.Ioio, (ushort)0x3F8, 2, false, false)));
        Assert.That(r.Vmcb.ExitInfo2, Is.EqualTo(Code + 4 + 2), "RIP after the OUT");
        Assert.That(r.Vmcb.NRip, Is.EqualTo(Code + 4 + 2));
        Assert.That(r.Vmcb.Rip, Is.EqualTo(Code + 4), "guest RIP at the OUT");
    }

    [Test]
    public void Msr_ExitInfo1IsZeroForReadOneForWrite()
    {
        using var r = new Rig();
        r.Vmcb.SetIntercept(SvmIntercept.MsrProt);
        r.Svm.Msrpm = new SvmMsrPermissionMap();
        r.Load(a => { a.mov(ecx, 0xC0000082); a.wrmsr(); });
        r.Svm.Vmrun(r.Vmcb);
        Assert.That((r.Vmcb.ExitCode, r.Vmcb.ExitInfo1), Is.EqualTo((SvmExitCode.Msr, 1UL)));
    }

    [Test]
    public void MovToCr3_WriteIntercept_DecodeAssistNamesTheGpr()
    {
        using var r = new Rig();
        r.Vmcb.InterceptCrWrite = 1 << 3;
        r.Load(a => a.mov(cr3, r13));
        r.Svm.Vmrun(r.Vmcb);
        Assert.That(r.Vmcb.ExitCode, Is.EqualTo(SvmExitCode.Cr0Write + 3));
        Assert.That(r.Vmcb.ExitInfo1, Is.EqualTo((1UL << 63) | 13));
    }

    [Test]
    public void Invpcid_ExitInfo1DescriptorAddress_ExitInfo2Type()
    {
        using var r = new Rig();
        r.Vmcb.SetIntercept(SvmIntercept.Invpcid);
        r.Load(a => { a.mov(edx, 2); a.mov(eax, 0x5000); a.invpcid(rdx, __[rax + 8]); });
        r.Svm.Vmrun(r.Vmcb);
        Assert.That((r.Vmcb.ExitCode, r.Vmcb.ExitInfo1, r.Vmcb.ExitInfo2), Is.EqualTo((SvmExitCode.Invpcid, 0x5008UL, 2UL)));
    }

    [Test]
    public void PageFaultIntercept_ErrorCodeInInfo1_FaultAddressInInfo2_NoNrip()
    {
        using var r = new Rig();
        r.Vmcb.InterceptExceptions = 1u << Vector.PF;
        r.Load(a => { a.mov(rax, 0x4000_0000); a.mov(__dword_ptr[rax], ecx); });
        r.Svm.Vmrun(r.Vmcb);
        Assert.That((r.Vmcb.ExitCode, r.Vmcb.ExitInfo1, r.Vmcb.ExitInfo2, r.Vmcb.NRip), Is.EqualTo((SvmExitCode.Cr0Read + 0x40 + Vector.PF, 2UL, 0x4000_0000UL, 0UL)));
    }

    [Test]
    public void EventInj_ExceptionDeliveredThroughGuestIdtBeforeFirstInstruction()
    {
        using var r = new Rig();
        ulong idt = 0x3000, handler = 0x4000;
        r.Memory.Write(handler, new byte[] { 0xF4 });
        r.Memory.WriteU64(idt + 6 * 16, (handler & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40));
        r.Memory.WriteU64(idt + 6 * 16 + 8, 0);
        r.Vmcb.Idtr = new DescriptorTable { Base = idt, Limit = 0xFFF };
        r.Vmcb.SetIntercept(SvmIntercept.Hlt);
        r.Vmcb.EventInj = SvmEventInfo.Create(Vector.UD, SvmEventType.Exception);
        r.Load(a => a.nop());
        r.Svm.Vmrun(r.Vmcb);
        Assert.That(r.Vmcb.ExitCode, Is.EqualTo(SvmExitCode.Hlt));
        Assert.That(r.Vmcb.Rip, Is.EqualTo(handler), "HLT intercepted in the #UD handler");
        Assert.That(r.Vmcb.EventInj.IsValid, Is.False, "EVENTINJ consumed");
    }

    [Test]
    public void TlbControlFlushGuest_DropsCachedTranslations_WithoutClearingTheRap()
    {
        using var r = new Rig();
        r.Vmcb.SetIntercept(SvmIntercept.Hlt);
        r.Load(a => { var f = a.CreateLabel(); a.mov(eax, __dword_ptr[0x5000]); a.call(f); a.Label(ref f); a.hlt(); });
        r.Svm.Vmrun(r.Vmcb);
        int rapBefore = r.Cpu.Rap.Count;
        Assert.That(r.Cpu.Tlb.CountValid(), Is.GreaterThan(0));
        r.Vmcb.TlbControl = TlbControl.FlushGuest;
        r.Vmcb.Rip = Code + 100; // a HLT on a page already cached
        r.Memory.Write(Code + 100, new byte[] { 0xF4 });
        r.Svm.Vmrun(r.Vmcb);
        Assert.That(r.Cpu.Rap.Count, Is.EqualTo(rapBefore), "TLB_CONTROL does not touch the RAP");
        Assert.That(r.Cpu.Tlb.CountValid(), Is.LessThanOrEqualTo(2), "only the fetch of the new RIP's page is cached again");
    }
}
