using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>
/// XSAVE, XRSTOR and their 64-bit forms, standard (non-compacted) format (SDM vol. 1 ch. 13,
/// vol. 2 "XSAVE", "XRSTOR"). The components this CPU's models can enable are x87 (0, legacy
/// region) and APX (19, R16..R31 at CPUID.(0Dh,19):EBX = 960); XCR0 never holds another bit
/// (IsValidXcr0 allows only enumerated components), so no other component reaches here.
/// </summary>
internal static unsafe partial class Exec
{
    private const int XsaveHeader = 512;
    private const int XsaveApxOffset = 960;

    public static void Xsave(X86Cpu c, ref DecodedInsn i) => EmitXsave(c, ref i, rex64: false);
    public static void Xsave64(X86Cpu c, ref DecodedInsn i) => EmitXsave(c, ref i, rex64: true);
    public static void Xrstor(X86Cpu c, ref DecodedInsn i) => EmitXrstor(c, ref i, rex64: false);
    public static void Xrstor64(X86Cpu c, ref DecodedInsn i) => EmitXrstor(c, ref i, rex64: true);

    /// <summary>The checks XSAVE and XRSTOR share: #UD without CR4.OSXSAVE (a LOCK prefix is #UD
    /// already: Iced decodes it as invalid), #NM with CR0.TS, #GP(0) unless the area is 64-byte
    /// aligned. Returns the area's offset in its segment.</summary>
    private static bool XsaveArea(X86Cpu c, ref DecodedInsn i, out ulong offset)
    {
        offset = 0;
        if (!RequireOsxsave(c)) return false;
        if ((c.Cr0 & Cr0.Ts) != 0) { c.RaiseFault(Vector.NM); return false; }
        offset = c.EffectiveAddress(ref i);
        if (((c.SegBase(i.Seg) + offset) & 63) != 0) { c.RaiseGp0(); return false; }
        return true;
    }

    /// <summary>Requested-feature bitmap: XCR0 ∧ EDX:EAX.</summary>
    private static ulong Rfbm(X86Cpu c) =>
        c.Xcr0 & (((ulong)(uint)c.GetGpr(Gpr.Rdx) << 32) | (uint)c.GetGpr(Gpr.Rax));

    private static void EmitXsave(X86Cpu c, ref DecodedInsn i, bool rex64)
    {
        if (!XsaveArea(c, ref i, out ulong a)) return;
        int seg = i.Seg;
        ulong rfbm = Rfbm(c);
        // XSTATE_BV keeps its bits outside RFBM; inside, it says which components are not in their
        // init configuration (XINUSE). Nothing else of the header is written.
        ulong xstateBv = c.ReadMem(seg, a + XsaveHeader, 8);
        if (c._abort) return;
        ulong inUse = (c.X87.IsInit ? 0 : Xcr0Bits.X87) | (ApxInUse(c) ? Xcr0Bits.Apx : 0);
        if ((rfbm & Xcr0Bits.X87) != 0)
        {
            WriteX87(c, seg, a, rex64);
            if (c._abort) return;
        }
        if ((rfbm & Xcr0Bits.Apx) != 0)
        {
            for (int r = 0; r < Gpr.ExtendedCount; r++)
            {
                c.WriteMem(seg, a + XsaveApxOffset + (ulong)r * 8, 8, c.Regs[Gpr.R16 + r]);
                if (c._abort) return;
            }
        }
        c.WriteMem(seg, a + XsaveHeader, 8, (xstateBv & ~rfbm) | (inUse & rfbm));
    }

    private static bool ApxInUse(X86Cpu c)
    {
        for (int r = Gpr.R16; r <= Gpr.R31; r++)
            if (c.Regs[r] != 0) return true;
        return false;
    }

    /// <summary>Legacy region bytes 0-23 and 32-159 (FXSAVE layout): MXCSR (24-31) belongs to the
    /// SSE/AVX components, which no model enables.</summary>
    private static void WriteX87(X86Cpu c, int seg, ulong a, bool rex64)
    {
        var x = c.X87;
        c.WriteMem(seg, a, 8, x.Fcw | ((ulong)x.Fsw << 16) | ((ulong)x.Ftw << 32) | ((ulong)x.Fop << 48));
        if (c._abort) return;
        if (rex64)
        {
            c.WriteMem(seg, a + 8, 8, x.Fip);
            if (c._abort) return;
            c.WriteMem(seg, a + 16, 8, x.Fdp);
        }
        else
        {
            c.WriteMem(seg, a + 8, 8, (uint)x.Fip | ((ulong)x.Fcs << 32));
            if (c._abort) return;
            c.WriteMem(seg, a + 16, 8, (uint)x.Fdp | ((ulong)x.Fds << 32));
        }
        if (c._abort) return;
        for (int r = 0; r < 8; r++)
        {
            // Each 80-bit register sits in a 16-byte slot; bytes 10-15 of the slot are reserved.
            ulong slot = a + 32 + (ulong)r * 16;
            c.WriteMem(seg, slot, 8, BitConverter.ToUInt64(x.St, r * 10));
            if (c._abort) return;
            c.WriteMem(seg, slot + 8, 2, BitConverter.ToUInt16(x.St, r * 10 + 8));
            if (c._abort) return;
        }
    }

    private static void EmitXrstor(X86Cpu c, ref DecodedInsn i, bool rex64)
    {
        if (!XsaveArea(c, ref i, out ulong a)) return;
        int seg = i.Seg;
        ulong xstateBv = c.ReadMem(seg, a + XsaveHeader, 8);
        if (c._abort) return;
        ulong xcompBv = c.ReadMem(seg, a + XsaveHeader + 8, 8);
        if (c._abort) return;
        ulong reserved = c.ReadMem(seg, a + XsaveHeader + 16, 8);
        if (c._abort) return;
        // Standard form only (no XSAVEC: CPUID.(0Dh,1):EAX[1] = 0): XCOMP_BV and header bytes 23:16
        // must be zero, and XSTATE_BV may name only components XCR0 enables.
        if (xcompBv != 0 || reserved != 0 || (xstateBv & ~c.Xcr0) != 0) { c.RaiseGp0(); return; }
        ulong rfbm = Rfbm(c);

        // Read everything first: a fault leaves the state as it was.
        ulong* x87 = stackalloc ulong[3 + 16];
        ulong* apx = stackalloc ulong[Gpr.ExtendedCount];
        bool loadX87 = (rfbm & xstateBv & Xcr0Bits.X87) != 0;
        bool loadApx = (rfbm & xstateBv & Xcr0Bits.Apx) != 0;
        if (loadX87)
        {
            for (int k = 0; k < 3; k++)
            {
                x87[k] = c.ReadMem(seg, a + (ulong)k * 8, 8);
                if (c._abort) return;
            }
            for (int r = 0; r < 8; r++)
            {
                ulong slot = a + 32 + (ulong)r * 16;
                x87[3 + r * 2] = c.ReadMem(seg, slot, 8);
                if (c._abort) return;
                x87[4 + r * 2] = c.ReadMem(seg, slot + 8, 2);
                if (c._abort) return;
            }
        }
        if (loadApx)
        {
            for (int r = 0; r < Gpr.ExtendedCount; r++)
            {
                apx[r] = c.ReadMem(seg, a + XsaveApxOffset + (ulong)r * 8, 8);
                if (c._abort) return;
            }
        }

        if ((rfbm & Xcr0Bits.X87) != 0)
        {
            if (loadX87) LoadX87(c.X87, x87, rex64);
            else c.X87.Init();
        }
        if ((rfbm & Xcr0Bits.Apx) != 0)
        {
            for (int r = 0; r < Gpr.ExtendedCount; r++)
                c.Regs[Gpr.R16 + r] = loadApx ? apx[r] : 0;
        }
    }

    private static void LoadX87(X87State x, ulong* v, bool rex64)
    {
        x.Fcw = (ushort)v[0];
        x.Fsw = (ushort)(v[0] >> 16);
        x.Ftw = (byte)(v[0] >> 32);
        x.Fop = (ushort)(v[0] >> 48);
        if (rex64)
        {
            x.Fip = v[1];
            x.Fdp = v[2];
            x.Fcs = x.Fds = 0;
        }
        else
        {
            x.Fip = (uint)v[1];
            x.Fcs = (ushort)(v[1] >> 32);
            x.Fdp = (uint)v[2];
            x.Fds = (ushort)(v[2] >> 32);
        }
        for (int r = 0; r < 8; r++)
        {
            BitConverter.TryWriteBytes(x.St.AsSpan(r * 10, 8), v[3 + r * 2]);
            BitConverter.TryWriteBytes(x.St.AsSpan(r * 10 + 8, 2), (ushort)v[4 + r * 2]);
        }
    }
}
