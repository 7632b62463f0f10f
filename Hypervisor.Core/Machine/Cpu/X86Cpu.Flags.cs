using System.Numerics;
using System.Runtime.CompilerServices;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>The last flag-setting operation, kept so flags are computed only when read.</summary>
internal enum FlagOp : byte
{
    /// <summary>The arithmetic flags are materialized in <c>_rflags</c>.</summary>
    None,
    Add,
    Adc,
    Sub,
    Sbb,
    /// <summary>AND/OR/XOR/TEST: CF=OF=0, AF=0 (undefined in the SDM; 0 as QEMU leaves it).</summary>
    Logic,
    /// <summary>INC: flags of ADD a,1 but CF preserved.</summary>
    Inc,
    /// <summary>DEC: flags of SUB a,1 but CF preserved.</summary>
    Dec,
    /// <summary>SHL/SAL/SHLD: <c>_fA</c> is the operand shifted by count-1, so CF is its MSB and
    /// OF = MSB(_fA) XOR MSB(result) (QEMU's CC_OP_SHL, which gives OF for every count); AF=0.</summary>
    Shl,
    /// <summary>SHR/SAR/SHRD: <c>_fA</c> is the operand shifted by count-1, so CF is its LSB and
    /// OF = MSB(_fA) XOR MSB(result) (QEMU's CC_OP_SAR); AF=0.</summary>
    Sar,
    /// <summary>MUL/IMUL: <c>_fA</c> is 1 when the high half is significant (CF=OF=1). SF/ZF/PF of
    /// the low half and AF=0 are undefined in the SDM; QEMU's CC_OP_MUL computes them this way.</summary>
    Mul,
}

/// <summary>Lazy arithmetic flags (the Bochs / QEMU technique): results and operands are stored,
/// flags computed on demand. Operands and result are kept masked to the operation size.</summary>
public sealed unsafe partial class X86Cpu
{
    internal ulong _rflags = RFlags.Fixed1;
    internal FlagOp _fOp;
    internal byte _fSize;
    internal ulong _fRes, _fA, _fB;
    /// <summary>Carry-in for ADC/SBB; the preserved CF for INC/DEC.</summary>
    internal ulong _fCarry;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void SetFlagsLazy(FlagOp op, int size, ulong result, ulong a, ulong b)
    {
        _fOp = op;
        _fSize = (byte)size;
        _fRes = result;
        _fA = a;
        _fB = b;
    }

    /// <summary>ADC/SBB with a carry-in of 1 (a carry-in of 0 is plain ADD/SUB).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void SetFlagsWithCarry(FlagOp op, int size, ulong result, ulong a, ulong b)
    {
        _fCarry = 1;
        SetFlagsLazy(op, size, result, a, b);
    }

    /// <summary>INC/DEC keep CF: capture it before replacing the lazy state.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void SetFlagsIncDec(FlagOp op, int size, ulong result, ulong a)
    {
        _fCarry = GetCf() ? 1UL : 0UL;
        SetFlagsLazy(op, size, result, a, 1);
    }

    internal bool GetCf() => _fOp switch
    {
        FlagOp.None => (_rflags & RFlags.Cf) != 0,
        FlagOp.Add => _fRes < _fA,
        FlagOp.Adc => _fRes < _fA || (_fCarry != 0 && _fRes == _fA),
        FlagOp.Sub => _fA < _fB,
        FlagOp.Sbb => _fA < _fB || (_fCarry != 0 && _fA == _fB),
        FlagOp.Inc or FlagOp.Dec => _fCarry != 0,
        FlagOp.Shl => (_fA & SignBit(_fSize)) != 0,
        FlagOp.Sar => (_fA & 1) != 0,
        FlagOp.Mul => _fA != 0,
        _ => false, // Logic
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool GetZf() => _fOp == FlagOp.None ? (_rflags & RFlags.Zf) != 0 : _fRes == 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool GetSf() => _fOp == FlagOp.None ? (_rflags & RFlags.Sf) != 0 : (_fRes & SignBit(_fSize)) != 0;

    internal bool GetOf() => _fOp switch
    {
        FlagOp.None => (_rflags & RFlags.Of) != 0,
        FlagOp.Add or FlagOp.Adc or FlagOp.Inc => ((_fA ^ _fRes) & (_fB ^ _fRes) & SignBit(_fSize)) != 0,
        FlagOp.Sub or FlagOp.Sbb or FlagOp.Dec => ((_fA ^ _fB) & (_fA ^ _fRes) & SignBit(_fSize)) != 0,
        FlagOp.Shl or FlagOp.Sar => ((_fA ^ _fRes) & SignBit(_fSize)) != 0,
        FlagOp.Mul => _fA != 0,
        _ => false,
    };

    internal bool GetAf() => _fOp switch
    {
        FlagOp.None => (_rflags & RFlags.Af) != 0,
        FlagOp.Logic or FlagOp.Shl or FlagOp.Sar or FlagOp.Mul => false,
        _ => ((_fA ^ _fB ^ _fRes) & 0x10) != 0,
    };

    internal bool GetPf() => _fOp == FlagOp.None ? (_rflags & RFlags.Pf) != 0 : (BitOperations.PopCount((uint)(byte)_fRes) & 1) == 0;

    /// <summary>Writes the lazily held flags into <c>_rflags</c> and drops the lazy state.</summary>
    internal void MaterializeFlags()
    {
        if (_fOp == FlagOp.None)
            return;
        ulong f = _rflags & ~RFlags.Arith;
        if (GetCf()) f |= RFlags.Cf;
        if (GetPf()) f |= RFlags.Pf;
        if (GetAf()) f |= RFlags.Af;
        if (GetZf()) f |= RFlags.Zf;
        if (GetSf()) f |= RFlags.Sf;
        if (GetOf()) f |= RFlags.Of;
        _rflags = f;
        _fOp = FlagOp.None;
    }

    /// <summary>Sets the flags in <paramref name="mask"/> to <paramref name="value"/>, leaving the others as they are.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void SetFlags(ulong mask, ulong value)
    {
        if (_fOp != FlagOp.None)
            MaterializeFlags();
        _rflags = (_rflags & ~mask) | (value & mask);
    }

    /// <summary>SF, ZF and PF of a result, as bits, for executors that set flags eagerly.</summary>
    internal static ulong SzpFlags(ulong result, int size)
    {
        ulong f = 0;
        result &= SizeMask(size);
        if (result == 0) f |= RFlags.Zf;
        if ((result & SignBit(size)) != 0) f |= RFlags.Sf;
        if ((BitOperations.PopCount((uint)(byte)result) & 1) == 0) f |= RFlags.Pf;
        return f;
    }

    /// <summary>RFLAGS as software sees it (PUSHF, exception frames, snapshots).</summary>
    public ulong GetRFlags()
    {
        MaterializeFlags();
        return _rflags;
    }

    /// <summary>Loads RFLAGS whole (POPF/IRET after their privilege filtering, KVM_SET_REGS).</summary>
    public void SetRFlags(ulong value)
    {
        bool vmChanged = ((_rflags ^ value) & RFlags.Vm) != 0;
        _fOp = FlagOp.None;
        _rflags = (value & RFlags.Defined) | RFlags.Fixed1;
        if (vmChanged)
            ModeChanged();
    }

    internal bool InterruptsEnabled => (_rflags & RFlags.If) != 0;
    internal bool DirectionDown => (_rflags & RFlags.Df) != 0;

    /// <summary>Evaluates a condition code (SDM vol. 2 appendix B, "tttn"). CMP and TEST results
    /// are compared directly, which is the case behind most conditional branches.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool Condition(int cc)
    {
        if (_fOp == FlagOp.Sub)
        {
            int shift = 64 - _fSize * 8;
            switch (cc)
            {
                case 2: return _fA < _fB;
                case 3: return _fA >= _fB;
                case 4: return _fA == _fB;
                case 5: return _fA != _fB;
                case 6: return _fA <= _fB;
                case 7: return _fA > _fB;
                case 12: return (long)(_fA << shift) < (long)(_fB << shift);
                case 13: return (long)(_fA << shift) >= (long)(_fB << shift);
                case 14: return (long)(_fA << shift) <= (long)(_fB << shift);
                case 15: return (long)(_fA << shift) > (long)(_fB << shift);
            }
        }
        return ConditionSlow(cc);
    }

    private bool ConditionSlow(int cc)
    {
        bool r = (cc >> 1) switch
        {
            0 => GetOf(),
            1 => GetCf(),
            2 => GetZf(),
            3 => GetCf() || GetZf(),
            4 => GetSf(),
            5 => GetPf(),
            6 => GetSf() != GetOf(),
            _ => GetZf() || GetSf() != GetOf(),
        };
        return r ^ ((cc & 1) != 0);
    }
}
