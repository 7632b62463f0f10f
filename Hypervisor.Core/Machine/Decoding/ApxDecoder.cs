using Iced.Intel;
using Hypervisor.Core.Machine.Cpu;

namespace Hypervisor.Core.Machine.Decoding;

/// <summary>What the REX2 prefix of an instruction said, for the fix-ups after Iced decoded it.</summary>
internal struct Rex2Fixup
{
    /// <summary>The payload byte: M0 R4 X4 B4 W R3 X3 B3 (bit 7 to bit 0).</summary>
    public byte Payload;
    public bool Present;
    /// <summary>The SIB byte had index 100 with X3 = 0: with X4 = 1 that names R20, not "no index".</summary>
    public bool SibIndexIsR20;
    public byte SibScale;

    public readonly bool R4 => (Payload & 0x40) != 0;
    public readonly bool X4 => (Payload & 0x20) != 0;
    public readonly bool B4 => (Payload & 0x10) != 0;
}

/// <summary>
/// The REX2 prefix of Intel APX (APX architecture specification, "REX2 prefix"): 0xD5 and a
/// payload byte [M0 R4 X4 B4 W R3 X3 B3] that replaces REX, adds a fifth register-index bit to
/// ModRM.reg (R4), SIB.index (X4) and ModRM.rm / SIB.base / opcode register (B4), and selects
/// legacy map 0 or map 1 (M0) instead of a 0x0F escape byte. Iced 1.22 does not decode it, so the
/// instruction is rewritten as the REX form Iced knows (REX = 0100WRXB, then 0x0F when M0=1),
/// decoded, and the fifth bits are added to the register numbers afterwards. Only the translator
/// calls this, once per instruction per block, with preallocated buffers.
/// </summary>
internal sealed class ApxDecoder
{
    public enum Outcome : byte
    {
        /// <summary>No REX2 prefix: decode the bytes as they are.</summary>
        NotRex2,
        /// <summary>Decoded through the REX mapping; apply <see cref="Rex2Fixup"/>.</summary>
        Decoded,
        /// <summary>A REX2 form the architecture reserves: #UD.</summary>
        Invalid,
        /// <summary>JMPABS imm64 (REX2 with M0=0, W=0, opcode A1).</summary>
        Jmpabs,
        /// <summary>The instruction continues past the bytes available (next page).</summary>
        NeedMoreBytes,
    }

    private const byte Rex2Byte = 0xD5;
    private const int MaxLength = 15;

    private readonly CodeBuffer _buf = new();
    private readonly Decoder _decoder;

    public ApxDecoder() => _decoder = Decoder.Create(64, _buf, DecoderOptions.None);

    /// <summary>
    /// Looks at the instruction at <paramref name="bytes"/>[<paramref name="start"/>..<paramref name="length"/>)
    /// in 64-bit mode with XCR0[19] set. <paramref name="insLength"/> is the real length for
    /// <see cref="Outcome.Decoded"/>, <see cref="Outcome.Invalid"/> and <see cref="Outcome.Jmpabs"/>
    /// (whose target is <paramref name="target"/>).
    /// </summary>
    public Outcome Decode(byte[] bytes, int start, int length, ulong ip, out Instruction ins, out Rex2Fixup fix,
        out int insLength, out ulong target)
    {
        ins = default;
        fix = default;
        insLength = 0;
        target = 0;
        int p = start;
        bool restrictedPrefix = false;
        while (p < length && p - start < MaxLength && IsLegacyPrefix(bytes[p]))
        {
            restrictedPrefix |= bytes[p] is 0x66 or 0x67 or 0xF0 or 0xF2 or 0xF3;
            p++;
        }
        bool rex = false;
        while (p < length && p - start < MaxLength && (bytes[p] & 0xF0) == 0x40)
        {
            rex = true;
            p++;
        }
        if (p >= length)
            return Outcome.NeedMoreBytes;
        if (bytes[p] != Rex2Byte)
            return Outcome.NotRex2;
        if (rex)
        {
            // A REX prefix before REX2 is reserved.
            insLength = p + 1 - start;
            return Outcome.Invalid;
        }
        if (p + 2 >= length)
            return Outcome.NeedMoreBytes;
        byte payload = bytes[p + 1];
        int q = p + 2; // the opcode byte
        byte op = bytes[q];
        bool m0 = (payload & 0x80) != 0;
        insLength = q + 1 - start;
        if (m0 ? IsReservedMap1(op) : IsReservedMap0(op))
        {
            if (!m0 && op == 0xA1 && (payload & 0x08) == 0)
            {
                // JMPABS: REX2.M0=0, REX2.W=0, A1, imm64 (no operand-size, address-size, LOCK or REP prefix).
                if (q + 9 > length)
                    return Outcome.NeedMoreBytes;
                insLength = q + 9 - start;
                if (restrictedPrefix)
                    return Outcome.Invalid;
                target = BitConverter.ToUInt64(bytes, q + 1);
                return Outcome.Jmpabs;
            }
            return Outcome.Invalid;
        }

        // Rewrite: legacy prefixes, REX(W R3 X3 B3), [0F], opcode and the rest.
        int n = 0;
        for (int k = start; k < p; k++)
            _buf.Bytes[n++] = bytes[k];
        _buf.Bytes[n++] = (byte)(0x40 | (payload & 0x0F));
        if (m0)
            _buf.Bytes[n++] = 0x0F;
        int tail = Math.Min(length - q, MaxLength);
        Array.Copy(bytes, q, _buf.Bytes, n, tail);
        int shrink = m0 ? 0 : 1; // REX2 is two bytes; REX alone is one, REX + 0F two
        _buf.Position = 0;
        _buf.Length = n + tail;
        // Decode at IP + shrink so that Iced's next IP (and so RIP-relative and branch targets) is
        // the real one.
        _decoder.IP = ip + (ulong)shrink;
        _decoder.Decode(out ins);
        if (ins.IsInvalid)
        {
            if (_decoder.LastError == DecoderError.NoMoreBytes && tail < MaxLength)
                return Outcome.NeedMoreBytes;
            return Outcome.Invalid;
        }
        insLength = ins.Length + shrink;
        if (insLength > MaxLength)
            return Outcome.Invalid;
        ins.Length = insLength; // before IP: Iced keeps the next IP and derives IP from the length
        ins.IP = ip;
        fix.Present = true;
        fix.Payload = payload;
        if (fix.X4 && (payload & 0x02) == 0)
            FindSibIndex100(bytes, q + 1, length, ref fix);
        return Outcome.Decoded;
    }

    /// <summary>SIB.index = 100 with X3 = 0 means "no index" for REX; with X4 = 1 it is R20.</summary>
    private static void FindSibIndex100(byte[] bytes, int modrmAt, int length, ref Rex2Fixup fix)
    {
        if (modrmAt + 1 >= length)
            return;
        byte modrm = bytes[modrmAt];
        if ((modrm >> 6) == 3 || (modrm & 7) != 4)
            return;
        byte sib = bytes[modrmAt + 1];
        if (((sib >> 3) & 7) != 4)
            return;
        fix.SibIndexIsR20 = true;
        fix.SibScale = (byte)(sib >> 6);
    }

    /// <summary>
    /// Adds the fifth register bits to what <see cref="BlockTranslator"/> made of the REX form:
    /// ModRM.reg operands get R4, ModRM.rm and opcode-register operands get B4, a memory operand's
    /// base gets B4 and its index X4. Operands fixed by the opcode (RAX, CL, ...) stay as they are.
    /// </summary>
    public static void Apply(in Instruction ins, ref DecodedInsn d, in Rex2Fixup fix)
    {
        var opCode = ins.OpCode;
        int count = Math.Min(ins.OpCount, 3);
        bool hasMemory = false;
        for (int n = 0; n < count; n++)
        {
            if (ins.GetOpKind(n) == OpKind.Memory)
            {
                hasMemory = true;
                continue;
            }
            if (ins.GetOpKind(n) != OpKind.Register)
                continue;
            bool extend = opCode.GetOpKind(n) switch
            {
                OpCodeOperandKind.r8_reg or OpCodeOperandKind.r16_reg or OpCodeOperandKind.r32_reg or OpCodeOperandKind.r64_reg => fix.R4,
                OpCodeOperandKind.r8_or_mem or OpCodeOperandKind.r16_or_mem or OpCodeOperandKind.r32_or_mem or OpCodeOperandKind.r64_or_mem
                    or OpCodeOperandKind.r16_rm or OpCodeOperandKind.r32_rm or OpCodeOperandKind.r64_rm
                    or OpCodeOperandKind.r16_reg_mem or OpCodeOperandKind.r32_reg_mem or OpCodeOperandKind.r64_reg_mem
                    or OpCodeOperandKind.r8_opcode or OpCodeOperandKind.r16_opcode or OpCodeOperandKind.r32_opcode or OpCodeOperandKind.r64_opcode => fix.B4,
                _ => false,
            };
            if (!extend)
                continue;
            switch (n)
            {
                case 0: if (d.Kind0 == OperandKind.Reg) d.Reg0 += Gpr.R16; break;
                case 1: if (d.Kind1 == OperandKind.Reg) d.Reg1 += Gpr.R16; break;
                default: if (d.Kind2 == OperandKind.Reg) d.Reg2 += Gpr.R16; break;
            }
        }
        if (!hasMemory)
            return;
        if (fix.B4 && d.Base != DecodedInsn.NoReg)
            d.Base += Gpr.R16;
        if (fix.X4)
        {
            if (d.Index != DecodedInsn.NoReg)
            {
                d.Index += Gpr.R16;
            }
            else if (fix.SibIndexIsR20)
            {
                d.Index = Gpr.R16 + 4;
                d.Scale = fix.SibScale;
            }
        }
    }

    private static bool IsLegacyPrefix(byte b) =>
        b is 0x26 or 0x2E or 0x36 or 0x3E or 0x64 or 0x65 or 0x66 or 0x67 or 0xF0 or 0xF2 or 0xF3;

    /// <summary>Map 0 opcodes REX2 cannot prefix: rows 4 (REX), 7 (Jcc rel8) and E (LOOP, JrCXZ,
    /// IN/OUT imm8, CALL/JMP rel), A0-A3 (MOV moffs; A1 with W=0 is JMPABS), the 0x0F escape (M0
    /// selects map 1), and the bytes that are prefixes themselves (legacy, REX2, VEX, EVEX).</summary>
    private static bool IsReservedMap0(byte op) =>
        (op & 0xF0) is 0x40 or 0x70 or 0xE0
        || op is >= 0xA0 and <= 0xA3
        || op is 0x0F or Rex2Byte or 0xC4 or 0xC5 or 0x62
        || IsLegacyPrefix(op);

    /// <summary>Map 1 opcodes REX2 cannot prefix: row 3 (WRMSR, RDTSC, RDMSR, RDPMC, SYSENTER,
    /// SYSEXIT, GETSEC and the 0F38/0F3A escapes to maps 2 and 3) and row 8 (Jcc rel32).</summary>
    private static bool IsReservedMap1(byte op) => (op & 0xF0) is 0x30 or 0x80;
}
