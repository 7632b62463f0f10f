using Iced.Intel;
using Hypervisor.Core.Machine.Cpu;

namespace Hypervisor.Core.Machine.Decoding;

/// <summary>Reads code bytes for Iced from a buffer the translator fills from guest memory.</summary>
internal sealed class CodeBuffer : CodeReader
{
    public readonly byte[] Bytes = new byte[4096 + 16];
    public int Position;
    public int Length;

    public override int ReadByte() => Position < Length ? Bytes[Position++] : -1;
}

/// <summary>
/// Decodes guest code with Iced once per block and reduces each instruction to a
/// <see cref="DecodedInsn"/>. A block ends at a control transfer, at the end of its page (an
/// instruction that crosses into the next page ends it and records that page) or after
/// <see cref="MaxInsns"/> instructions.
/// </summary>
internal sealed unsafe class BlockTranslator
{
    public const int MaxInsns = 64;

    /// <summary>Use the specialized executors for hot operand forms (tests turn it off to compare
    /// them with the generic executors).</summary>
    internal static bool SpecializeForms = true;
    private readonly X86Cpu _cpu;
    private readonly CodeBuffer _code = new();
    private readonly Decoder _d16, _d32, _d64;
    private readonly DecodedInsn[] _scratch = new DecodedInsn[MaxInsns];
    private readonly ApxDecoder _apx = new();

    public BlockTranslator(X86Cpu cpu)
    {
        _cpu = cpu;
        _d16 = Decoder.Create(16, _code, DecoderOptions.None);
        _d32 = Decoder.Create(32, _code, DecoderOptions.None);
        _d64 = Decoder.Create(64, _code, DecoderOptions.None);
    }

    public Block? Translate(ulong physical, ulong ip, ulong linear, int decodeKey)
    {
        int codeBits = decodeKey & Block.CodeBitsMask;
        int pageOffset = (int)(physical & 0xFFF);
        int firstPart = 4096 - pageOffset;
        byte* host = _cpu.Memory.HostPointer(physical, out _);
        if (host == null)
        {
            _cpu.Fail(CpuExitReason.InternalError, $"instruction fetch from guest physical 0x{physical:x}, which no memory slot backs");
            return null;
        }
        new ReadOnlySpan<byte>(host, firstPart).CopyTo(_code.Bytes);
        _code.Position = 0;
        _code.Length = firstPart;
        var decoder = codeBits switch { 64 => _d64, 32 => _d32, _ => _d16 };
        bool apxEnabled = (decodeKey & Block.Rex2Key) != 0;
        decoder.IP = ip;
        ulong secondPage = Block.NoSecondPage;
        bool secondTried = false;
        int count = 0;
        while (count < MaxInsns)
        {
            int start = _code.Position;
            ulong insIp = decoder.IP;
            Instruction ins;
            Rex2Fixup rex2 = default;
            var apx = ApxDecoder.Outcome.NotRex2;
            int apxLength = 0;
            ulong jmpabsTarget = 0;
            // REX2 exists only in 64-bit mode with XCR0[19] set; elsewhere 0xD5 is AAD (16/32-bit)
            // or #UD (64-bit), which Iced already decodes as such. The block records the choice in
            // its decode key and is reused only under the same one.
            if (apxEnabled)
                apx = _apx.Decode(_code.Bytes, start, _code.Length, insIp, out ins, out rex2, out apxLength, out jmpabsTarget);
            else
                ins = default;
            bool needMore;
            if (apx == ApxDecoder.Outcome.NotRex2)
            {
                decoder.Decode(out ins);
                needMore = ins.IsInvalid && decoder.LastError == DecoderError.NoMoreBytes;
            }
            else
            {
                needMore = apx == ApxDecoder.Outcome.NeedMoreBytes;
                if (!needMore)
                {
                    _code.Position = start + apxLength;
                    decoder.IP = insIp + (ulong)apxLength;
                }
            }
            if (needMore)
            {
                if (secondTried)
                    break;
                // The instruction continues on the next page: fetch up to 15 more bytes from it.
                secondTried = true;
                ulong nextLinear = (linear & ~0xFFFUL) + 0x1000;
                if (!_cpu.TranslateFetch(nextLinear, raiseFault: count == 0, out ulong nextPhys))
                    break;
                byte* h2 = _cpu.Memory.HostPointer(nextPhys, out _);
                if (h2 == null)
                {
                    if (count == 0)
                        _cpu.Fail(CpuExitReason.InternalError, $"instruction fetch from guest physical 0x{nextPhys:x}, which no memory slot backs");
                    break;
                }
                new ReadOnlySpan<byte>(h2, 15).CopyTo(_code.Bytes.AsSpan(firstPart));
                _code.Length = firstPart + 15;
                _code.Position = start;
                decoder.IP = insIp;
                secondPage = nextPhys & ~0xFFFUL;
                continue;
            }
            ref var d = ref _scratch[count++];
            bool endsBlock;
            if (apx is ApxDecoder.Outcome.Invalid or ApxDecoder.Outcome.Jmpabs)
            {
                ApxForm(ref d, apx, insIp, apxLength, jmpabsTarget);
                endsBlock = true;
            }
            else
            {
                Convert(in ins, ref d, codeBits, in rex2);
                endsBlock = ins.FlowControl != FlowControl.Next || ins.IsInvalid;
            }
            if (_code.Position > firstPart || endsBlock)
                break;
            if (_code.Position == firstPart)
                break; // the page ends exactly here
        }
        if (count == 0)
            return null;
        if (secondPage != Block.NoSecondPage && _code.Position <= firstPart)
            secondPage = Block.NoSecondPage; // fetched but no instruction used it
        var insns = new DecodedInsn[count];
        Array.Copy(_scratch, insns, count);
        for (int k = 0; k < count; k++)
            insns[k].BlockIndex = (ushort)k;
        return new Block(physical, ip, linear, decodeKey, insns, count, secondPage);
    }

    /// <summary>The REX2 forms Iced has no instruction for: a reserved one (#UD) or JMPABS, which
    /// runs as JMP to an absolute 64-bit target (no RAP entry: it is not a call).</summary>
    private static void ApxForm(ref DecodedInsn d, ApxDecoder.Outcome outcome, ulong ip, int length, ulong target)
    {
        d = default;
        d.Ip = ip;
        d.Length = (byte)length;
        d.NextIp = ip + (ulong)length;
        d.Base = d.Index = DecodedInsn.NoReg;
        d.Seg = SegReg.Ds;
        if (outcome == ApxDecoder.Outcome.Invalid)
        {
            d.Code = Code.INVALID;
            d.Handler = Execution.HandlerTable.InvalidOpcode;
            return;
        }
        // Jmp_rm64 (not a rel form) keeps the compiled tier from inlining it as a relative JMP;
        // Exec.Jmp takes the Imm operand as the absolute target and checks it is canonical.
        d.Code = Code.Jmp_rm64;
        d.Mnemonic = Mnemonic.Jmp;
        d.Handler = Execution.HandlerTable.For(Mnemonic.Jmp);
        d.Kind0 = OperandKind.Imm;
        d.Imm = target;
        d.OpSize = 8;
        d.AddrSize = 8;
        d.StackSize = 8;
    }

    private static void Convert(in Instruction ins, ref DecodedInsn d, int codeBits, in Rex2Fixup rex2)
    {
        d = default;
        d.Ip = ins.IP;
        d.NextIp = ins.NextIP;
        d.Length = (byte)ins.Length;
        d.Code = ins.Code;
        d.Mnemonic = ins.Mnemonic;
        d.Base = d.Index = DecodedInsn.NoReg;
        d.Seg = SegReg.Ds;
        if (ins.IsInvalid)
        {
            d.Handler = Execution.HandlerTable.InvalidOpcode;
            return;
        }
        d.Handler = Execution.HandlerTable.For(ins.Mnemonic);
        d.Rep = (byte)(ins.HasRepePrefix ? 1 : ins.HasRepnePrefix ? 2 : 0);
        d.Lock = (byte)(ins.HasLockPrefix ? 1 : 0);
        d.Cond = ins.ConditionCode == ConditionCode.None ? (byte)0 : (byte)(ins.ConditionCode - 1);
        int opSizeFromCode = ins.OpCode.OperandSize / 8;
        d.AddrSize = (byte)(codeBits / 8);
        bool firstImm = true;
        int opCount = Math.Min(ins.OpCount, 3);
        for (int n = 0; n < opCount; n++)
        {
            OperandKind kind = OperandKind.None;
            byte reg = 0;
            switch (ins.GetOpKind(n))
            {
                case OpKind.Register:
                    (kind, reg) = MapRegister(ins.GetOpRegister(n));
                    if (n == 0 || d.OpSize == 0)
                        d.OpSize = (byte)RegisterSize(ins.GetOpRegister(n));
                    else if (d.SrcSize == 0)
                        d.SrcSize = (byte)RegisterSize(ins.GetOpRegister(n));
                    break;
                case OpKind.Memory:
                    kind = OperandKind.Mem;
                    SetMemory(in ins, ref d, codeBits);
                    int ms = ins.MemorySize.GetSize();
                    if (n == 0 || d.OpSize == 0)
                        d.OpSize = (byte)ms;
                    else if (d.SrcSize == 0)
                        d.SrcSize = (byte)ms;
                    break;
                case OpKind.NearBranch16:
                case OpKind.NearBranch32:
                case OpKind.NearBranch64:
                    kind = OperandKind.Imm;
                    d.Imm = ins.NearBranchTarget;
                    break;
                case OpKind.FarBranch16:
                    kind = OperandKind.Imm;
                    d.Imm = ins.FarBranch16;
                    d.Imm2 = ins.FarBranchSelector;
                    break;
                case OpKind.FarBranch32:
                    kind = OperandKind.Imm;
                    d.Imm = ins.FarBranch32;
                    d.Imm2 = ins.FarBranchSelector;
                    break;
                case OpKind.Immediate8_2nd:
                    kind = OperandKind.Imm;
                    d.Imm2 = ins.Immediate8_2nd;
                    break;
                case OpKind.Immediate8:
                case OpKind.Immediate16:
                case OpKind.Immediate32:
                case OpKind.Immediate64:
                case OpKind.Immediate8to16:
                case OpKind.Immediate8to32:
                case OpKind.Immediate8to64:
                case OpKind.Immediate32to64:
                    kind = OperandKind.Imm;
                    if (firstImm) d.Imm = ins.GetImmediate(n);
                    else d.Imm2 = ins.GetImmediate(n);
                    firstImm = false;
                    if (n == 0 && d.OpSize == 0)
                        d.OpSize = (byte)ImmediateSize(ins.GetOpKind(n));
                    break;
                case OpKind.MemorySegSI:
                case OpKind.MemorySegESI:
                case OpKind.MemorySegRSI:
                case OpKind.MemorySegDI:
                case OpKind.MemorySegEDI:
                case OpKind.MemorySegRDI:
                case OpKind.MemoryESDI:
                case OpKind.MemoryESEDI:
                case OpKind.MemoryESRDI:
                    kind = OperandKind.Mem;
                    d.AddrSize = (byte)StringAddressSize(ins.GetOpKind(n));
                    if (ins.GetOpKind(n) is OpKind.MemorySegSI or OpKind.MemorySegESI or OpKind.MemorySegRSI or OpKind.MemorySegDI or OpKind.MemorySegEDI or OpKind.MemorySegRDI)
                        d.Seg = (byte)(ins.MemorySegment - Register.ES);
                    if (d.OpSize == 0)
                        d.OpSize = (byte)ins.MemorySize.GetSize();
                    break;
            }
            if (n == 0) { d.Kind0 = kind; d.Reg0 = reg; }
            else if (n == 1) { d.Kind1 = kind; d.Reg1 = reg; }
            else { d.Kind2 = kind; d.Reg2 = reg; }
        }
        if (opSizeFromCode != 0 && (d.OpSize == 0 || d.Kind0 is OperandKind.Imm or OperandKind.Seg))
            d.OpSize = (byte)opSizeFromCode;
        if (d.OpSize == 0)
            d.OpSize = (byte)(codeBits == 64 ? 4 : codeBits / 8);
        d.StackSize = (byte)(opSizeFromCode != 0 ? opSizeFromCode : codeBits == 64 ? 8 : codeBits / 8);
        if (ins.Mnemonic is Mnemonic.Loop or Mnemonic.Loope or Mnemonic.Loopne or Mnemonic.Jcxz or Mnemonic.Jecxz or Mnemonic.Jrcxz)
        {
            // LOOP/JrCXZ count with CX, ECX or RCX: the code fixes it, whatever the operand size.
            d.AddrSize = (byte)(ins.OpCode.AddressSize / 8);
        }
        if (rex2.Present)
            ApxDecoder.Apply(in ins, ref d, in rex2);
        if (SpecializeForms)
            Execution.FastForms.Specialize(ref d);
    }

    private static void SetMemory(in Instruction ins, ref DecodedInsn d, int codeBits)
    {
        d.Seg = (byte)(ins.MemorySegment - Register.ES);
        if (ins.IsIPRelativeMemoryOperand)
        {
            d.Disp = ins.IPRelativeMemoryAddress;
            d.AddrSize = (byte)(ins.MemoryBase == Register.EIP ? 4 : 8);
            return;
        }
        d.Disp = ins.MemoryDisplacement64;
        if (ins.MemoryBase != Register.None)
        {
            d.Base = MapRegister(ins.MemoryBase).Reg;
            d.AddrSize = (byte)RegisterSize(ins.MemoryBase);
        }
        if (ins.MemoryIndex != Register.None)
        {
            d.Index = MapRegister(ins.MemoryIndex).Reg;
            d.Scale = (byte)System.Numerics.BitOperations.Log2((uint)ins.MemoryIndexScale);
            // The base sets the address size when there is one: XLAT's "index" is AL.
            if (ins.MemoryBase == Register.None)
                d.AddrSize = (byte)RegisterSize(ins.MemoryIndex);
        }
        if (ins.MemoryBase == Register.None && ins.MemoryIndex == Register.None)
            d.AddrSize = (byte)(codeBits == 64 ? 8 : ins.MemoryDisplSize is 2 or 4 ? ins.MemoryDisplSize : codeBits / 8);
    }

    private static int StringAddressSize(OpKind k) => k switch
    {
        OpKind.MemorySegSI or OpKind.MemorySegDI or OpKind.MemoryESDI => 2,
        OpKind.MemorySegESI or OpKind.MemorySegEDI or OpKind.MemoryESEDI => 4,
        _ => 8,
    };

    private static int ImmediateSize(OpKind k) => k switch
    {
        OpKind.Immediate8 => 1,
        OpKind.Immediate16 or OpKind.Immediate8to16 => 2,
        OpKind.Immediate32 or OpKind.Immediate8to32 => 4,
        _ => 8,
    };

    internal static int RegisterSize(Register r) => r switch
    {
        >= Register.AL and <= Register.R15L => 1,
        >= Register.AX and <= Register.R15W => 2,
        >= Register.EAX and <= Register.R15D => 4,
        >= Register.RAX and <= Register.R15 => 8,
        >= Register.ES and <= Register.GS => 2,
        Register.EIP => 4,
        Register.RIP => 8,
        _ => 8,
    };

    internal static (OperandKind Kind, byte Reg) MapRegister(Register r)
    {
        switch (r)
        {
            case >= Register.AL and <= Register.R15L:
            {
                int n = r - Register.AL;
                if (n < 4) return (OperandKind.Reg, (byte)n);
                if (n < 8) return (OperandKind.RegHigh8, (byte)(n - 4));
                return (OperandKind.Reg, (byte)(n - 4));
            }
            case >= Register.AX and <= Register.R15W: return (OperandKind.Reg, (byte)(r - Register.AX));
            case >= Register.EAX and <= Register.R15D: return (OperandKind.Reg, (byte)(r - Register.EAX));
            case >= Register.RAX and <= Register.R15: return (OperandKind.Reg, (byte)(r - Register.RAX));
            case >= Register.ES and <= Register.GS: return (OperandKind.Seg, (byte)(r - Register.ES));
            case >= Register.CR0 and <= Register.CR15: return (OperandKind.Cr, (byte)(r - Register.CR0));
            case >= Register.DR0 and <= Register.DR15: return (OperandKind.Dr, (byte)(r - Register.DR0));
            default: return (OperandKind.None, DecodedInsn.NoReg);
        }
    }
}
