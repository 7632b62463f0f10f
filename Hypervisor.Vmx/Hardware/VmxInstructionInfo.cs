using System.Runtime.CompilerServices;

namespace Hypervisor.Vmx.Hardware;

/// <summary>Identity of a descriptor-table instruction, bits 29:28 of its instruction information (SDM §28.2.5).</summary>
public enum VmxDescriptorTableInstruction
{
    Sgdt = 0,
    Sidt = 1,
    Lgdt = 2,
    Lidt = 3,
}

/// <summary>Identity of an LDTR/TR instruction, bits 29:28 of its instruction information (SDM §28.2.5).</summary>
public enum VmxLdtrTrInstruction
{
    Sldt = 0,
    Str = 1,
    Lldt = 2,
    Ltr = 3,
}

/// <summary>
/// The memory-operand part shared by the VM-exit instruction-information layouts (SDM §28.2.5):
/// bits 1:0 scaling (log2 of the scale), bits 9:7 address size (0 16-bit, 1 32-bit, 2 64-bit),
/// bits 17:15 segment register (ES 0 .. GS 5), bits 21:18 index register, bit 22 index invalid,
/// bits 26:23 base register, bit 27 base invalid. Displacement is in the exit qualification.
/// </summary>
public static class VmxInstructionInfoFields
{
    public const int ScalingShift = 0;
    public const int AddressSizeShift = 7;
    public const int SegmentShift = 15;
    public const int IndexShift = 18;
    public const uint IndexInvalid = 1u << 22;
    public const int BaseShift = 23;
    public const uint BaseInvalid = 1u << 27;

    /// <summary>Encodes the memory operand; <paramref name="index"/> or <paramref name="baseReg"/> of -1 means "none".</summary>
    /// <param name="addressSize">address size in bytes: 2, 4 or 8</param>
    public static uint Memory(int scale, int addressSize, int segment, int index, int baseReg)
    {
        uint scaling = scale switch { 1 => 0u, 2 => 1u, 4 => 2u, _ => 3u };
        uint v = scaling | (AddressSizeCode(addressSize) << AddressSizeShift) | ((uint)(segment & 7) << SegmentShift);
        v |= index < 0 ? IndexInvalid : (uint)(index & 0xF) << IndexShift;
        v |= baseReg < 0 ? BaseInvalid : (uint)(baseReg & 0xF) << BaseShift;
        return v;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint AddressSizeCode(int bytes) => bytes switch { 2 => 0u, 4 => 1u, _ => 2u };

    public static int Scale(uint raw) => 1 << (int)(raw & 3);
    /// <summary>Address size in bytes (2, 4, 8).</summary>
    public static int AddressSize(uint raw) => 2 << (int)((raw >> AddressSizeShift) & 7);
    public static int Segment(uint raw) => (int)((raw >> SegmentShift) & 7);
    /// <summary>Index register number, or -1 when bit 22 says there is none.</summary>
    public static int Index(uint raw) => (raw & IndexInvalid) != 0 ? -1 : (int)((raw >> IndexShift) & 0xF);
    /// <summary>Base register number, or -1 when bit 27 says there is none.</summary>
    public static int Base(uint raw) => (raw & BaseInvalid) != 0 ? -1 : (int)((raw >> BaseShift) & 0xF);
}

/// <summary>
/// Instruction information of INVEPT, INVPCID and INVVPID (SDM §28.2.5): the memory operand
/// (the descriptor) plus bits 31:28 Reg2, the register holding the type.
/// </summary>
public readonly record struct VmxInvalidationInfo(uint Raw)
{
    public const int Reg2Shift = 28;

    public static VmxInvalidationInfo Create(int typeRegister, int scale, int addressSize, int segment, int index, int baseReg)
        => new(VmxInstructionInfoFields.Memory(scale, addressSize, segment, index, baseReg) | ((uint)(typeRegister & 0xF) << Reg2Shift));

    public int TypeRegister => (int)(Raw >> Reg2Shift);
    public int Scale => VmxInstructionInfoFields.Scale(Raw);
    public int AddressSize => VmxInstructionInfoFields.AddressSize(Raw);
    public int Segment => VmxInstructionInfoFields.Segment(Raw);
    public int Index => VmxInstructionInfoFields.Index(Raw);
    public int Base => VmxInstructionInfoFields.Base(Raw);
}

/// <summary>
/// Instruction information of LGDT, LIDT, SGDT and SIDT (GDTR/IDTR access, basic reason 46, SDM
/// §28.2.5): the memory operand, bit 11 operand size (0 16-bit, 1 32-bit; ignored in 64-bit
/// mode), bits 29:28 the instruction.
/// </summary>
public readonly record struct VmxDescriptorTableInfo(uint Raw)
{
    public const uint OperandSize32 = 1u << 11;
    public const int InstructionShift = 28;

    public static VmxDescriptorTableInfo Create(VmxDescriptorTableInstruction instruction, bool operandSize32, int scale, int addressSize, int segment, int index, int baseReg)
        => new(VmxInstructionInfoFields.Memory(scale, addressSize, segment, index, baseReg)
            | (operandSize32 ? OperandSize32 : 0) | ((uint)instruction << InstructionShift));

    public VmxDescriptorTableInstruction Instruction => (VmxDescriptorTableInstruction)((Raw >> InstructionShift) & 3);
    public bool IsOperandSize32 => (Raw & OperandSize32) != 0;
    public int Scale => VmxInstructionInfoFields.Scale(Raw);
    public int AddressSize => VmxInstructionInfoFields.AddressSize(Raw);
    public int Segment => VmxInstructionInfoFields.Segment(Raw);
    public int Index => VmxInstructionInfoFields.Index(Raw);
    public int Base => VmxInstructionInfoFields.Base(Raw);
}

/// <summary>
/// Instruction information of LLDT, LTR, SLDT and STR (LDTR/TR access, basic reason 47, SDM
/// §28.2.5): bits 6:3 Reg1 (the register operand when bit 10 is set), bit 10 register operand
/// (0 memory), the memory-operand fields otherwise, bits 29:28 the instruction.
/// </summary>
public readonly record struct VmxLdtrTrInfo(uint Raw)
{
    public const int Reg1Shift = 3;
    public const uint RegisterOperand = 1u << 10;
    public const int InstructionShift = 28;

    public static VmxLdtrTrInfo WithRegister(VmxLdtrTrInstruction instruction, int reg)
        => new(RegisterOperand | ((uint)(reg & 0xF) << Reg1Shift) | ((uint)instruction << InstructionShift));

    public static VmxLdtrTrInfo WithMemory(VmxLdtrTrInstruction instruction, int scale, int addressSize, int segment, int index, int baseReg)
        => new(VmxInstructionInfoFields.Memory(scale, addressSize, segment, index, baseReg) | ((uint)instruction << InstructionShift));

    public VmxLdtrTrInstruction Instruction => (VmxLdtrTrInstruction)((Raw >> InstructionShift) & 3);
    public bool IsRegisterOperand => (Raw & RegisterOperand) != 0;
    public int Register => (int)((Raw >> Reg1Shift) & 0xF);
    public int Scale => VmxInstructionInfoFields.Scale(Raw);
    public int AddressSize => VmxInstructionInfoFields.AddressSize(Raw);
    public int Segment => VmxInstructionInfoFields.Segment(Raw);
    public int Index => VmxInstructionInfoFields.Index(Raw);
    public int Base => VmxInstructionInfoFields.Base(Raw);
}
