using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Virtualization;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>System instructions: HLT, CLI/STI, MOV to and from segment, control and debug registers,
/// the CR0 shorthands, cache and TLB maintenance, UD0-UD2.</summary>
internal static unsafe partial class Exec
{
    /// <summary>Privileged instructions raise #GP(0) outside ring 0 (real mode is ring 0).</summary>
    internal static bool RequireCpl0(X86Cpu c)
    {
        if (c.Cpl == 0) return true;
        c.RaiseGp0();
        return false;
    }

    public static void Hlt(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireCpl0(c)) return;
        if (c.InterceptInstruction(InterceptReason.Hlt, ref i)) return;
        c.RequestExit(new CpuExit { Reason = CpuExitReason.Hlt, Address = i.Ip }, restart: false);
    }

    /// <summary>CLI/STI: allowed when CPL ≤ IOPL (IOPL-sensitive), else #GP(0). VME/PVI are not modelled.</summary>
    private static bool IoplAllows(X86Cpu c)
    {
        if (!c.IsProtectedMode) return true;
        int iopl = (int)((c._rflags >> 12) & 3);
        if (c.Cpl <= iopl && !c.IsV86Mode) return true;
        if (c.IsV86Mode && iopl == 3) return true;
        c.RaiseGp0();
        return false;
    }

    public static void Cli(X86Cpu c, ref DecodedInsn i)
    {
        if (IoplAllows(c)) c._rflags &= ~RFlags.If;
    }

    public static void Sti(X86Cpu c, ref DecodedInsn i)
    {
        if (IoplAllows(c)) c._rflags |= RFlags.If;
    }

    private static void MovSeg(X86Cpu c, ref DecodedInsn i)
    {
        if (i.Kind1 == OperandKind.Seg)
        {
            // MOV r/m, Sreg: a register destination gets the zero-extended selector; memory gets 16 bits.
            ulong sel = c.GetSegment(i.Reg1).Selector;
            int size = i.Kind0 == OperandKind.Mem ? 2 : i.OpSize;
            c.WriteOperand(ref i, i.Kind0, i.Reg0, size, sel);
            return;
        }
        if (i.Reg0 == SegReg.Cs)
        {
            c.RaiseUd();
            return;
        }
        ulong v = c.ReadOperand(ref i, i.Kind1, i.Reg1, 2);
        if (c._abort) return;
        if (c.LoadDataSegment(i.Reg0, (ushort)v) && i.Reg0 == SegReg.Ss)
            c._stop = true;
    }

    /// <summary>MOV to/from CR0, CR2, CR3, CR4 and (64-bit mode only) CR8 (SDM vol. 2 "MOV—Move
    /// to/from Control Registers"): the operand is 64 bits in 64-bit mode, else 32, whatever the prefixes.</summary>
    private static void MovControl(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireCpl0(c)) return;
        int size = c.CodeBits == 64 ? 8 : 4;
        if (i.Kind0 == OperandKind.Dr || i.Kind1 == OperandKind.Dr)
        {
            MovDebug(c, ref i, size);
            return;
        }
        int cr = i.Kind1 == OperandKind.Cr ? i.Reg1 : i.Reg0;
        // CR1, CR5-CR7 and CR9-CR15 do not exist; CR8 (TPR) is reachable only from 64-bit mode.
        if (cr is not (0 or 2 or 3 or 4 or 8) || (cr == 8 && c.CodeBits != 64))
        {
            c.RaiseUd();
            return;
        }
        if (i.Kind1 == OperandKind.Cr)
        {
            if (c.InterceptCr(write: false, cr, i.Reg0, 0, ref i)) return;
            ulong v = cr switch { 0 => c.VisibleCr0, 2 => c.Cr2, 3 => c.Cr3, 4 => c.VisibleCr4, _ => c.Cr8 };
            c.WriteReg(i.Reg0, size, v);
            return;
        }
        ulong value = c.ReadReg(i.Reg1, size);
        if (c.InterceptCr(write: true, cr, i.Reg1, value, ref i)) return;
        value = c.MergeShadowedCrWrite(cr, value);
        bool ok = cr switch
        {
            0 => c.WriteCr0(value),
            2 => SetCr2(c, value),
            3 => c.WriteCr3(value),
            4 => c.WriteCr4(value),
            _ => SetCr8(c, value),
        };
        if (!ok) c.RaiseGp0();
        else c._stop = true; // paging or mode may have changed
    }

    private static bool SetCr2(X86Cpu c, ulong v)
    {
        c.Cr2 = v;
        return true;
    }

    private static bool SetCr8(X86Cpu c, ulong v)
    {
        if ((v & ~0xFUL) != 0) return false;
        c.Cr8 = v;
        return true;
    }

    private static void MovDebug(X86Cpu c, ref DecodedInsn i, int size)
    {
        int dr = i.Kind0 == OperandKind.Dr ? i.Reg0 : i.Reg1;
        if (dr is 4 or 5)
        {
            if ((c.Cr4 & Cpu.Cr4.De) != 0) { c.RaiseUd(); return; }
            dr += 2; // DR4/DR5 alias DR6/DR7 when CR4.DE = 0
        }
        if (dr > 7) { c.RaiseUd(); return; }
        bool write = i.Kind0 == OperandKind.Dr;
        if (c.InterceptDr(write, i.Kind0 == OperandKind.Dr ? i.Reg0 : i.Reg1, write ? i.Reg1 : i.Reg0, ref i)) return;
        if (i.Kind1 == OperandKind.Dr)
        {
            c.WriteReg(i.Reg0, size, c.Dr[dr]);
            return;
        }
        ulong v = c.ReadReg(i.Reg1, size);
        if (dr >= 6 && (v >> 32) != 0) { c.RaiseGp0(); return; }
        c.Dr[dr] = dr switch
        {
            6 => (v | 0xFFFF0FF0) & 0xFFFFFFFF,
            7 => (v | 0x400) & ~0xD000UL & 0xFFFFFFFF,
            _ => v,
        };
    }

    /// <summary>LMSW: loads CR0[3:0] (PE, MP, EM, TS) from a 16-bit operand; it can set PE but never clear it.</summary>
    public static void Lmsw(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireCpl0(c)) return;
        ulong src = c.ReadOperand(ref i, i.Kind0, i.Reg0, 2);
        if (c._abort) return;
        ulong visible = (c.VisibleCr0 & ~0xEUL) | (src & 0xF);
        if (c.InterceptCr(write: true, 0, i.Kind0 == OperandKind.Reg ? i.Reg0 : 0xFF, src & 0xF, visible, ref i, lmsw: true)) return;
        ulong cr0 = c.MergeShadowedCrWrite(0, visible);
        if (!c.WriteCr0(cr0)) { c.RaiseGp0(); return; }
        c._stop = true;
    }

    /// <summary>SMSW: CR0 to a register in the operand size (as QEMU does: the whole low part of CR0),
    /// or its low 16 bits to memory. Allowed at any CPL (UMIP is not enumerated).</summary>
    public static void Smsw(X86Cpu c, ref DecodedInsn i)
    {
        int size = i.Kind0 == OperandKind.Mem ? 2 : i.OpSize;
        c.WriteOperand(ref i, i.Kind0, i.Reg0, size, c.VisibleCr0 & X86Cpu.SizeMask(size));
    }

    public static void Clts(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireCpl0(c)) return;
        if (c.InterceptCr(write: true, 0, 0xFF, c.Cr0 & ~Cpu.Cr0.Ts, c.VisibleCr0 & ~Cpu.Cr0.Ts, ref i, clts: true)) return;
        c.Cr0 = c.MergeShadowedCrWrite(0, c.VisibleCr0 & ~Cpu.Cr0.Ts);
    }

    /// <summary>WBINVD / INVD: privileged; caches are not modelled, so nothing else happens.</summary>
    public static void Wbinvd(X86Cpu c, ref DecodedInsn i)
    {
        if (RequireCpl0(c))
            c.InterceptInstruction(i.Mnemonic == Iced.Intel.Mnemonic.Invd ? InterceptReason.Invd : InterceptReason.Wbinvd, ref i);
    }

    /// <summary>UD0, UD1, UD2: the defined invalid opcodes.</summary>
    public static void Ud(X86Cpu c, ref DecodedInsn i) => c.RaiseUd();

    /// <summary>INVLPG: drops the translations of the page holding the operand's linear address in
    /// the current PCID, and global ones (SDM §4.10.4.1). A non-canonical address is a no-op.</summary>
    public static void Invlpg(X86Cpu c, ref DecodedInsn i)
    {
        if (!RequireCpl0(c)) return;
        ulong linear = c.SegBase(i.Seg) + c.EffectiveAddress(ref i);
        if (c.CodeBits != 64) linear = (uint)linear;
        if (c.Intercepts != null && c.Intercepts.Has(InterceptReason.Invlpg))
        {
            var info = X86Cpu.Basic(InterceptReason.Invlpg, ref i);
            info.Address = linear;
            c.RaiseIntercept(info);
            return;
        }
        c.InvalidatePage(linear);
        c._stop = true; // the code of this very block may have been remapped
    }

    /// <summary>INVPCID (SDM vol. 2 "INVPCID"; KVM-FACTS §3): type in a register, a 16-byte
    /// descriptor {PCID in bits 11:0 of the first qword, linear address in the second} in memory.</summary>
    public static void Invpcid(X86Cpu c, ref DecodedInsn i)
    {
        if (!c.Model.HasFeature(7, 0, 'b', 10)) { c.RaiseUd(); return; }
        if (c.Intercepts != null && c.Intercepts.IsUndefined(InterceptReason.Invpcid)) { c.RaiseUd(); return; }
        if (!RequireCpl0(c)) return;
        ulong type = c.ReadReg(i.Reg0, c.CodeBits == 64 ? 8 : 4);
        ulong ea = c.EffectiveAddress(ref i);
        if (c.Intercepts != null && c.Intercepts.Has(InterceptReason.Invpcid))
        {
            // The descriptor is not read: the hypervisor emulates the whole instruction (KVM-FACTS §3).
            var info = X86Cpu.Basic(InterceptReason.Invpcid, ref i);
            info.Gpr = i.Reg0;
            info.Value = type;
            info.Address = c.SegBase(i.Seg) + ea;
            info.Segment = i.Seg;
            info.AddressSize = i.AddrSize;
            info.MemBase = i.Base;
            info.MemIndex = i.Index;
            info.MemScale = i.Scale;
            info.Displacement = i.Disp;
            c.RaiseIntercept(info);
            return;
        }
        if (type > 3) { c.RaiseGp0(); return; }
        ulong lo = c.ReadMem(i.Seg, ea, 8);
        ulong linear = c.ReadMem(i.Seg, (ea + 8) & X86Cpu.SizeMask(i.AddrSize), 8);
        if (c._abort) return;
        if ((lo >> 12) != 0) { c.RaiseGp0(); return; }
        ushort pcid = (ushort)lo;
        bool pcide = (c.Cr4 & Cpu.Cr4.Pcide) != 0;
        switch (type)
        {
            case 0:
                if ((!pcide && pcid != 0) || !X86Cpu.IsCanonical(linear)) { c.RaiseGp0(); return; }
                c.InvalidatePcidAddress(pcid, linear);
                break;
            case 1:
                if (!pcide && pcid != 0) { c.RaiseGp0(); return; }
                c.FlushTlbPcid(pcid);
                break;
            case 2:
                c.FlushTlbAll();
                break;
            default:
                c.FlushTlbAllNonGlobal();
                break;
        }
        c._stop = true;
    }

    /// <summary>CLFLUSH: caches are not modelled, but the operand is checked like a byte load
    /// (segment limit, translation, #PF), which is all software can observe.</summary>
    public static void Clflush(X86Cpu c, ref DecodedInsn i)
    {
        ulong linear = c.Linear(i.Seg, c.EffectiveAddress(ref i), 1, false);
        if (c._abort) return;
        c.Translate(linear, AccessType.Read, false, out _, out _);
    }
}
