using Hypervisor.Vmx.Hardware;

namespace Hypervisor.Vmx.Tests.Hardware;

/// <summary>VM-exit instruction-information layouts (SDM §28.2.5).</summary>
public class VmxInstructionInfoTests
{
    [Test]
    public void Invpcid_TypeInRcx_DescriptorAtDsRaxPlusRbx8_64BitAddress()
    {
        // invpcid rcx, [rax + rbx*8]: scaling 3, address size 2, DS (3), index rbx (3), base rax (0), Reg2 rcx (1).
        var i = VmxInvalidationInfo.Create(typeRegister: 1, scale: 8, addressSize: 8, segment: 3, index: 3, baseReg: 0);
        Assert.Multiple(() =>
        {
            Assert.That(i.Raw, Is.EqualTo(3u | (2u << 7) | (3u << 15) | (3u << 18) | (0u << 23) | (1u << 28)));
            Assert.That(i.TypeRegister, Is.EqualTo(1));
            Assert.That(i.Scale, Is.EqualTo(8));
            Assert.That(i.AddressSize, Is.EqualTo(8));
            Assert.That(i.Segment, Is.EqualTo(3));
            Assert.That(i.Index, Is.EqualTo(3));
            Assert.That(i.Base, Is.Zero);
        });
    }

    [Test]
    public void Invept_NoIndexNoBase_SetsBits22And27()
    {
        var i = VmxInvalidationInfo.Create(15, 1, 4, 2, -1, -1);
        Assert.Multiple(() =>
        {
            Assert.That(i.Raw & (1u << 22), Is.Not.Zero);
            Assert.That(i.Raw & (1u << 27), Is.Not.Zero);
            Assert.That(i.Index, Is.EqualTo(-1));
            Assert.That(i.Base, Is.EqualTo(-1));
            Assert.That(i.AddressSize, Is.EqualTo(4));
            Assert.That(i.TypeRegister, Is.EqualTo(15));
            Assert.That(i.Raw >> 28, Is.EqualTo(15u));
        });
    }

    [TestCase(VmxDescriptorTableInstruction.Sgdt, 0u)]
    [TestCase(VmxDescriptorTableInstruction.Sidt, 1u)]
    [TestCase(VmxDescriptorTableInstruction.Lgdt, 2u)]
    [TestCase(VmxDescriptorTableInstruction.Lidt, 3u)]
    public void DescriptorTable_IdentityIsBits29To28(VmxDescriptorTableInstruction insn, uint code)
    {
        var i = VmxDescriptorTableInfo.Create(insn, operandSize32: true, scale: 1, addressSize: 2, segment: 0, index: -1, baseReg: 6);
        Assert.Multiple(() =>
        {
            Assert.That(i.Raw >> 28 & 3, Is.EqualTo(code));
            Assert.That(i.Instruction, Is.EqualTo(insn));
            Assert.That(i.Raw & (1u << 11), Is.Not.Zero);
            Assert.That(i.IsOperandSize32, Is.True);
            Assert.That(i.AddressSize, Is.EqualTo(2));
            Assert.That(i.Base, Is.EqualTo(6));
        });
    }

    [Test]
    public void LdtrTr_RegisterOperand_Reg1AtBits6To3_Bit10Set()
    {
        var i = VmxLdtrTrInfo.WithRegister(VmxLdtrTrInstruction.Ltr, 10);
        Assert.Multiple(() =>
        {
            Assert.That(i.Raw, Is.EqualTo((10u << 3) | (1u << 10) | (3u << 28)));
            Assert.That(i.IsRegisterOperand, Is.True);
            Assert.That(i.Register, Is.EqualTo(10));
            Assert.That(i.Instruction, Is.EqualTo(VmxLdtrTrInstruction.Ltr));
        });
    }

    [Test]
    public void LdtrTr_MemoryOperand()
    {
        var i = VmxLdtrTrInfo.WithMemory(VmxLdtrTrInstruction.Sldt, 2, 8, 5, 1, 12);
        Assert.Multiple(() =>
        {
            Assert.That(i.IsRegisterOperand, Is.False);
            Assert.That(i.Instruction, Is.EqualTo(VmxLdtrTrInstruction.Sldt));
            Assert.That(i.Scale, Is.EqualTo(2));
            Assert.That(i.Segment, Is.EqualTo(5));
            Assert.That(i.Index, Is.EqualTo(1));
            Assert.That(i.Base, Is.EqualTo(12));
        });
    }
}
