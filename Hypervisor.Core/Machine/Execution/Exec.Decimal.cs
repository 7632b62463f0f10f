using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>
/// The decimal adjusts DAA/DAS/AAA/AAS/AAM/AAD (SDM vol. 2A). They are invalid in 64-bit mode,
/// which the decoder already reports as #UD. Flags the SDM leaves undefined take QEMU TCG's values:
/// OF=0 after DAA/DAS; OF/SF/ZF/PF unchanged after AAA/AAS; CF=OF=AF=0 after AAM/AAD.
/// </summary>
internal static unsafe partial class Exec
{
    /// <summary>DAA: adjusts AL after adding two packed BCD values.</summary>
    public static void Daa(X86Cpu c, ref DecodedInsn i)
    {
        ulong oldAl = (byte)c.Regs[Gpr.Rax];
        bool oldCf = c.GetCf();
        ulong al = oldAl, f = 0;
        if ((al & 0x0F) > 9 || c.GetAf())
        {
            al = (al + 6) & 0xFF;
            f |= RFlags.Af;
        }
        // The SDM's "CF = old CF or carry from AL+6" cannot matter: that carry needs AL >= 0xFA,
        // which also takes this branch and sets CF.
        if (oldAl > 0x99 || oldCf)
        {
            al = (al + 0x60) & 0xFF;
            f |= RFlags.Cf;
        }
        c.WriteReg(Gpr.Rax, 1, al);
        c.SetFlags(RFlags.Arith, f | X86Cpu.SzpFlags(al, 1));
    }

    /// <summary>DAS: adjusts AL after subtracting two packed BCD values.</summary>
    public static void Das(X86Cpu c, ref DecodedInsn i)
    {
        ulong oldAl = (byte)c.Regs[Gpr.Rax];
        bool oldCf = c.GetCf();
        ulong al = oldAl, f = 0;
        if ((al & 0x0F) > 9 || c.GetAf())
        {
            f |= RFlags.Af;
            if (al < 6 || oldCf) // borrow from AL-6, or the old CF
                f |= RFlags.Cf;
            al = (al - 6) & 0xFF;
        }
        if (oldAl > 0x99 || oldCf)
        {
            al = (al - 0x60) & 0xFF;
            f |= RFlags.Cf;
        }
        c.WriteReg(Gpr.Rax, 1, al);
        c.SetFlags(RFlags.Arith, f | X86Cpu.SzpFlags(al, 1));
    }

    /// <summary>AAA: adjusts AL after an unpacked BCD addition; AX + 106h when adjusting.</summary>
    public static void Aaa(X86Cpu c, ref DecodedInsn i) => EmitAsciiAdjust(c, subtract: false);

    /// <summary>AAS: adjusts AL after an unpacked BCD subtraction; AX - 6, AH - 1 when adjusting.</summary>
    public static void Aas(X86Cpu c, ref DecodedInsn i) => EmitAsciiAdjust(c, subtract: true);

    private static void EmitAsciiAdjust(X86Cpu c, bool subtract)
    {
        ulong ax = (ushort)c.Regs[Gpr.Rax];
        bool adjust = (ax & 0x0F) > 9 || c.GetAf();
        if (adjust)
            ax = subtract ? ax - 6 - 0x100 : ax + 0x106;
        ulong al = ax & 0x0F, ah = (ax >> 8) & 0xFF;
        c.WriteReg(Gpr.Rax, 2, (ah << 8) | al);
        c.SetFlags(RFlags.Cf | RFlags.Af, adjust ? RFlags.Cf | RFlags.Af : 0);
    }

    /// <summary>AAM imm8: AH = AL / imm8, AL = AL mod imm8; an immediate of 0 is #DE.</summary>
    public static void Aam(X86Cpu c, ref DecodedInsn i)
    {
        ulong baseValue = i.Imm & 0xFF;
        if (baseValue == 0)
        {
            c.RaiseFault(Vector.DE);
            return;
        }
        ulong al = (byte)c.Regs[Gpr.Rax];
        ulong q = al / baseValue, rem = al - q * baseValue;
        c.WriteReg(Gpr.Rax, 2, (q << 8) | rem);
        c.SetFlagsLazy(FlagOp.Logic, 1, rem, rem, 0);
    }

    /// <summary>AAD imm8: AL = (AL + AH * imm8) mod 256, AH = 0.</summary>
    public static void Aad(X86Cpu c, ref DecodedInsn i)
    {
        ulong ax = (ushort)c.Regs[Gpr.Rax];
        ulong al = ((ax & 0xFF) + (ax >> 8) * (i.Imm & 0xFF)) & 0xFF;
        c.WriteReg(Gpr.Rax, 2, al);
        c.SetFlagsLazy(FlagOp.Logic, 1, al, al, 0);
    }
}
