using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86;
using Hypervisor.Svm.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Svm.Tests;

/// <summary>APX and SVM: the APX models are Intel models, where SVM cannot load, and SVM never
/// offers APX on the AMD ones, so a guest under SVM can neither enable XCR0[19] nor use REX2.</summary>
public class ApxUnderSvmTests
{
    [Test]
    public void Register_OnApxModel_RefusedForLackOfSvm() =>
        Assert.That(() => KvmX86.Register(new SvmOps(), HostCpuModel.DiamondRapids),
            Throws.TypeOf<KvmException>().With.Property("Errno").EqualTo("EOPNOTSUPP"));

    [Test]
    public void Rex2_UnderSvm_Ud()
    {
        using var g = new SvmGuest();
        ulong idt = 0x3000, handler = 0x4000;
        g.Vm.Memory.Write(handler, new byte[] { 0xF4 });
        ulong lo = (handler & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | ((handler >> 16 & 0xFFFF) << 48);
        g.Vm.Memory.WriteU64(idt + Vector.UD * 16, lo);
        g.Vm.Memory.WriteU64(idt + Vector.UD * 16 + 8, handler >> 32);
        var sregs = g.Vcpu.GetSregs();
        sregs.Idt = new DescriptorTable { Base = idt, Limit = 0xFFF };
        g.Vcpu.SetSregs(sregs);
        g.Load(a =>
        {
            a.mov(rax, 5);
            a.db(0xD5, 0x18, 0x89, 0xC0); // REX2(B4 W) 89 /r: mov r16, rax
            a.hlt();
        });
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(g.Vcpu.Rip, Is.EqualTo(handler + 1), "halted in the #UD handler");
        Assert.That(g.Vcpu.HasApx, Is.False);
        Assert.That(g.Vcpu.GetRegs().Egprs, Is.Null);
    }
}
