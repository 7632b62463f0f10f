using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Cpu;

/// <summary>A store into translated code drops the stale translation, so the new bytes run
/// (SDM vol. 3 §11.6: self-modifying code takes effect for the next fetch).</summary>
public class SelfModifyingCodeTests
{
    [TestCase(GuestMode.Long64)]
    [TestCase(GuestMode.Protected32)]
    public void StoreJustAheadInTheSameBlock_NewInstructionRuns(GuestMode mode)
    {
        using var m = new GuestMachine(mode);
        m.RunToHlt(a =>
        {
            var target = a.CreateLabel();
            a.mov(ebx, 5);
            // FF C3 = INC EBX over XOR EBX, EBX. 32-bit code has no RIP-relative form: the target
            // follows MOV EBX (5 bytes) and this 9-byte store.
            if (mode == GuestMode.Long64) a.mov(__word_ptr[target], 0xC3FF);
            else a.mov(__word_ptr[(uint)GuestMachine.CodeBase + 14], 0xC3FF);
            a.Label(ref target);
            a.xor(ebx, ebx);
        });
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(6));
    }

    [Test]
    public void StoreIntoABlockThatAlreadyRan_IsRetranslated()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            var func = a.CreateLabel();
            var end = a.CreateLabel();
            a.mov(ecx, 10);
            a.call(func);                       // translates and runs XOR ECX, ECX
            a.mov(edx, ecx);
            a.mov(ecx, 10);
            a.mov(__word_ptr[func], 0xC1FF);    // FF C1 = INC ECX
            a.call(func);
            a.jmp(end);
            a.Label(ref func);
            a.xor(ecx, ecx);
            a.ret();
            a.Label(ref end);
        });
        Assert.That(m.Cpu.GetGpr(Gpr.Rdx), Is.EqualTo(0));
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(11));
        Assert.That(m.Cpu.BlockInvalidations, Is.GreaterThan(0));
    }
}
