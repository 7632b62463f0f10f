using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.X86;
using Hypervisor.Svm.Hardware;
using Hypervisor.Svm.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Svm.Tests;

/// <summary>The SVM module end to end: KvmX86 → Vm → Vcpu.Run → SvmOps → VMRUN on the software CPU.</summary>
public class SvmOpsTests
{
    [Test]
    public void Cpuid_InterceptedAndEmulatedFromGuestTable_ThenHltExitsToUserspace()
    {
        using var g = new SvmGuest();
        g.Load(a => { a.xor(eax, eax); a.cpuid(); a.hlt(); });
        var exit = g.Run();
        Assert.That(exit.Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(g.Vcpu.ReadGpr(Gpr.Rbx), Is.EqualTo(0x68747541), "'Auth' from the guest CPUID table");
        Assert.That(g.Vcpu.Stats.ByVendorExit["VMEXIT_CPUID"], Is.EqualTo(1));
        Assert.That(g.Vcpu.Rip, Is.EqualTo(SvmGuest.CodeBase + 2 + 2 + 1), "RIP past the HLT (NRIP)");
    }

    [Test]
    public void Out_BecomesKvmExitIo_ThenInReceivesCompletedData()
    {
        using var g = new SvmGuest();
        g.Load(a => { a.mov(eax, 0x41); a.@out(0xE9, al); a.@in(ax, 0x60); a.hlt(); });
        var exit = g.Run();
        Assert.That((exit.Reason, exit.IoIn, exit.IoPort, exit.IoSize, exit.IoData), Is.EqualTo((KvmExitReason.Io, false, (ushort)0xE9, (byte)1, 0x41UL)));
        exit = g.Run();
        Assert.That((exit.Reason, exit.IoIn, exit.IoPort, exit.IoSize), Is.EqualTo((KvmExitReason.Io, true, (ushort)0x60, (byte)2)));
        g.Vcpu.CompleteIo(0xBEEF);
        exit = g.Run();
        Assert.That(exit.Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(g.Vcpu.ReadGpr(Gpr.Rax), Is.EqualTo(0xBEEFUL), "IN ax merged into RAX (upper bits of EAX=0x41 were zero)");
    }

    [Test]
    public void RepOutsb_OneKvmExitIoPerElement_ThenTheInstructionCompletes()
    {
        using var g = new SvmGuest();
        g.Vm.Memory.Write(SvmGuest.DataBase, "hello"u8);
        g.Load(a => { a.mov(esi, (uint)SvmGuest.DataBase); a.mov(ecx, 5); a.mov(dx, 0xE9); a.rep.outsb(); a.hlt(); });
        var text = new System.Text.StringBuilder();
        VcpuExit exit;
        while ((exit = g.Run()).Reason == KvmExitReason.Io)
        {
            Assert.That((exit.IoIn, exit.IoPort, exit.IoSize), Is.EqualTo((false, (ushort)0xE9, (byte)1)));
            text.Append((char)exit.IoData);
        }
        Assert.That(exit.Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(text.ToString(), Is.EqualTo("hello"));
        Assert.That((g.Vcpu.ReadGpr(Gpr.Rcx), g.Vcpu.ReadGpr(Gpr.Rsi)), Is.EqualTo((0UL, SvmGuest.DataBase + 5)));
    }

    [Test]
    public void RepInsw_Backwards_StoresEachCompletedValue()
    {
        using var g = new SvmGuest();
        g.Load(a => { a.mov(edi, (uint)SvmGuest.DataBase + 4); a.mov(ecx, 3); a.mov(dx, 0x1F0); a.std(); a.rep.insw(); a.cld(); a.hlt(); });
        ushort value = 0x1111;
        VcpuExit exit;
        while ((exit = g.Run()).Reason == KvmExitReason.Io)
        {
            Assert.That((exit.IoIn, exit.IoPort, exit.IoSize), Is.EqualTo((true, (ushort)0x1F0, (byte)2)));
            g.Vcpu.CompleteIo(value);
            value += 0x1111;
        }
        Assert.That(exit.Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(g.Vm.Memory.ReadU64(SvmGuest.DataBase) & 0xFFFF_FFFF_FFFF, Is.EqualTo(0x1111_2222_3333UL), "stored at +4, +2, +0");
        Assert.That(g.Vcpu.ReadGpr(Gpr.Rdi), Is.EqualTo(SvmGuest.DataBase - 2));
    }

    [Test]
    public void TripleFault_IsKvmExitShutdown()
    {
        using var g = new SvmGuest();
        g.Load(a => a.ud2()); // no IDT: #UD → #GP → #DF → shutdown
        var exit = g.Run();
        Assert.That(exit.Reason, Is.EqualTo(KvmExitReason.Shutdown));
        Assert.That(exit.Message, Does.StartWith("triple fault:").And.Contain("#DF"), "the CPU's reason, as on the bare machine");
    }

    [Test]
    public void AfterExit_RegisterCache_AllAvailableButPdptrNothingDirty()
    {
        // An OUT exit: the instruction is skipped only on the next run, so nothing is written now.
        using var g = new SvmGuest();
        g.Load(a => { a.mov(ecx, 7); a.@out(0x80, al); a.hlt(); });
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Io));
        var regs = g.Vcpu.Regs;
        Assert.That(regs.Dirty, Is.Zero);
        Assert.That(regs.IsAvailable(VcpuReg.Pdptr), Is.False);
        Assert.That(regs.IsAvailable(VcpuReg.Rip) && regs.IsAvailable(VcpuReg.Rcx) && regs.IsAvailable(VcpuReg.Cr3), Is.True);
        Assert.That(g.Vcpu.ReadGpr(Gpr.Rcx), Is.EqualTo(7));
    }

    [Test]
    public void AfterHltExit_OnlyRipIsDirty_FromSkippingTheInstruction()
    {
        using var g = new SvmGuest();
        g.Load(a => a.hlt());
        g.Run();
        Assert.That(g.Vcpu.Regs.Dirty, Is.EqualTo(VcpuRegs.Bit(VcpuReg.Rip)));
    }

    [Test]
    public void InstructionBudget_CoversTheWholeRun_AcrossExitsHandledInside()
    {
        // Every CPUID exits and is handled in the hypervisor; the budget must still run out.
        using var g = new SvmGuest();
        g.Load(a => { var l = a.CreateLabel(); a.Label(ref l); a.cpuid(); a.jmp(l); });
        g.Vcpu.InstructionBudget = 50;
        ulong before = g.Vcpu.Cpu.InstructionsRetired;
        var exit = g.Run();
        Assert.That(exit.Reason, Is.EqualTo(KvmExitReason.Intr));
        Assert.That(g.Vcpu.Cpu.InstructionsRetired - before, Is.EqualTo(50UL));
    }

    [Test]
    public void Vmmcall_UnknownHypercall_ReturnsMinusKvmEnosys()
    {
        using var g = new SvmGuest();
        g.Load(a => { a.mov(eax, 12345); a.vmmcall(); a.hlt(); });
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(g.Vcpu.ReadGpr(Gpr.Rax), Is.EqualTo(unchecked((ulong)-1000L)));
    }

    [Test]
    public void EntryWithInvalidState_IsFailEntryNamingTheCheck()
    {
        using var g = new SvmGuest();
        g.Load(a => a.hlt());
        g.Svm.Vmcb.GuestAsid = 0;
        var exit = g.Run();
        Assert.That(exit.Reason, Is.EqualTo(KvmExitReason.FailEntry));
        Assert.That(exit.Message, Does.Contain("ASID"));
        Assert.That(exit.HardwareReason, Is.EqualTo(ulong.MaxValue), "VMEXIT_INVALID (-1)");
    }

    [Test]
    public void Register_ModelWithoutSvm_RefusedWithReason()
    {
        var noSvm = Core.Tests.ModelEdit.Without(Core.Machine.Models.HostCpuModel.Zen5, 0x80000001, 'c', 2);
        Assert.That(() => KvmX86.Register(new SvmOps(), noSvm), Throws.TypeOf<KvmException>().With.Message.Contains("SVM"));
    }

    [Test]
    public void SupportedCpuid_Zen5_HasErapsAndRapSize_NoApx()
    {
        using var g = new SvmGuest();
        var leaf = g.Kvm.GetSupportedCpuid().Single(e => e.Function == 0x80000021);
        Assert.That((leaf.Eax & (1u << 24)) != 0, Is.True);
        Assert.That((leaf.Ebx >> 16) & 0xFF, Is.EqualTo(64u));
        Assert.That(g.Kvm.SupportedCaps.Has(Core.X86.Cpuid.CpuFeatures.ApxF), Is.False);
    }
}
