using System.Runtime.CompilerServices;
using Iced.Intel;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Execution;

/// <summary>
/// MOVS, STOS, LODS, CMPS, SCAS in every element size, with REP/REPE/REPNE (SDM vol. 2 "REP").
/// The source is DS:rSI (segment override allowed), the destination always ES:rDI; rSI, rDI and
/// rCX are used and updated in the address size (the bits above it are kept for 16-bit, cleared
/// for 32-bit). A repeated instruction runs its elements in a loop inside one execution and
/// writes the registers back whenever it stops, so after a fault, an MMIO exit or a pause they
/// describe exactly the elements done and the instruction restarts from the next one.
/// </summary>
internal static unsafe partial class Exec
{
    /// <summary>Elements (or page-sized direct runs) one execution of a repeated instruction
    /// processes before it yields: it then points RIP back at itself so the run loop can check
    /// stop requests and budgets between pieces of a long string operation.</summary>
    internal const int RepBudget = 4096;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong StringStep(X86Cpu c, int size) => c.DirectionDown ? (ulong)-size : (ulong)size;

    /// <summary>End of a repeated instruction's execution: write back the registers when any
    /// element completed, and when elements remain without a fault, run it again.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void EndRep(X86Cpu c, ref DecodedInsn i, ulong count, ulong left)
    {
        if (left == count) return;
        c.WriteReg(Gpr.Rcx, i.AddrSize, left);
        if (left != 0 && !c._abort)
        {
            c.Rip = i.Ip;
            c._stop = true;
        }
    }

    // ---- MOVS ----

    public static void Movsb(X86Cpu c, ref DecodedInsn i) => EmitMovs(c, ref i, 1);
    public static void Movsw(X86Cpu c, ref DecodedInsn i) => EmitMovs(c, ref i, 2);
    public static void Movsq(X86Cpu c, ref DecodedInsn i) => EmitMovs(c, ref i, 8);

    /// <summary>The mnemonic is shared with SSE2 MOVSD xmm, which belongs to another family.</summary>
    public static void Movsd(X86Cpu c, ref DecodedInsn i)
    {
        if (i.Code == Code.Movsd_m32_m32) EmitMovs(c, ref i, 4);
        else Unimplemented(c, ref i);
    }

    private static void EmitMovs(X86Cpu c, ref DecodedInsn i, int size)
    {
        int a = i.AddrSize;
        ulong mask = X86Cpu.SizeMask(a);
        ulong si = c.ReadReg(Gpr.Rsi, a), di = c.ReadReg(Gpr.Rdi, a);
        ulong step = StringStep(c, size);
        ulong count = i.Rep != 0 ? c.ReadReg(Gpr.Rcx, a) : 1;
        ulong left = count;
        bool direct = i.Rep != 0 && step == (ulong)size && c.IsFlatSegment(i.Seg) && c.IsFlatSegment(SegReg.Es);
        int budget = RepBudget;
        while (left != 0)
        {
            ulong n = direct ? MovsRun(c, i.Seg, si, di, size, left, mask) : 0;
            if (n != 0)
            {
                si = (si + n * (ulong)size) & mask;
                di = (di + n * (ulong)size) & mask;
                left -= n;
            }
            else
            {
                ulong v = c.ReadMem(i.Seg, si, size);
                if (c._abort) break;
                c.WriteMem(SegReg.Es, di, size, v);
                if (c._abort) break;
                si = (si + step) & mask;
                di = (di + step) & mask;
                left--;
            }
            // An MMIO store left as an exit ends this execution after its element.
            if (c._exitPending || --budget == 0) break;
        }
        if (left == count) return;
        c.WriteReg(Gpr.Rsi, a, si);
        c.WriteReg(Gpr.Rdi, a, di);
        if (i.Rep != 0) EndRep(c, ref i, count, left);
    }

    /// <summary>Copies forward, host to host, as many whole elements as fit in the current source
    /// and destination pages (and below the address-size wrap). Returns 0 when a page is not in
    /// the fast TLB or no whole element fits; the caller then does one element the ordinary way.</summary>
    private static ulong MovsRun(X86Cpu c, int seg, ulong si, ulong di, int size, ulong left, ulong mask)
    {
        ulong src = c.SegBase(seg) + si, dst = c.SegBase(SegReg.Es) + di;
        byte* s = c.HostForRead(src);
        if (s == null) return 0;
        byte* d = c.HostForWrite(dst);
        if (d == null) return 0;
        ulong room = Math.Min(0x1000 - (src & 0xFFF), 0x1000 - (dst & 0xFFF));
        if (mask != ulong.MaxValue)
            room = Math.Min(room, Math.Min(mask - si, mask - di) + 1);
        ulong n = Math.Min(room / (ulong)size, left);
        if (n == 0) return 0;
        ulong bytes = n * (ulong)size;
        if (d > s && d < s + bytes)
        {
            // The destination overlaps ahead of the source: each element must see what the
            // elements before it stored (REP MOVSB with DI = SI + 1 replicates a byte).
            for (ulong k = 0; k < bytes; k += (ulong)size)
                CopyElement(s + k, d + k, size);
        }
        else
        {
            Buffer.MemoryCopy(s, d, bytes, bytes);
        }
        return n;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyElement(byte* s, byte* d, int size)
    {
        switch (size)
        {
            case 1: *d = *s; break;
            case 2: *(ushort*)d = *(ushort*)s; break;
            case 4: *(uint*)d = *(uint*)s; break;
            default: *(ulong*)d = *(ulong*)s; break;
        }
    }

    // ---- STOS ----

    public static void Stosb(X86Cpu c, ref DecodedInsn i) => EmitStos(c, ref i, 1);
    public static void Stosw(X86Cpu c, ref DecodedInsn i) => EmitStos(c, ref i, 2);
    public static void Stosd(X86Cpu c, ref DecodedInsn i) => EmitStos(c, ref i, 4);
    public static void Stosq(X86Cpu c, ref DecodedInsn i) => EmitStos(c, ref i, 8);

    private static void EmitStos(X86Cpu c, ref DecodedInsn i, int size)
    {
        int a = i.AddrSize;
        ulong mask = X86Cpu.SizeMask(a);
        ulong di = c.ReadReg(Gpr.Rdi, a);
        ulong v = c.ReadReg(Gpr.Rax, size);
        ulong step = StringStep(c, size);
        ulong count = i.Rep != 0 ? c.ReadReg(Gpr.Rcx, a) : 1;
        ulong left = count;
        bool direct = i.Rep != 0 && step == (ulong)size && c.IsFlatSegment(SegReg.Es);
        int budget = RepBudget;
        while (left != 0)
        {
            ulong n = direct ? StosRun(c, di, size, v, left, mask) : 0;
            if (n != 0)
            {
                di = (di + n * (ulong)size) & mask;
                left -= n;
            }
            else
            {
                c.WriteMem(SegReg.Es, di, size, v);
                if (c._abort) break;
                di = (di + step) & mask;
                left--;
            }
            if (c._exitPending || --budget == 0) break;
        }
        if (left == count) return;
        c.WriteReg(Gpr.Rdi, a, di);
        if (i.Rep != 0) EndRep(c, ref i, count, left);
    }

    /// <summary>Fills forward, directly in host memory, the whole elements that fit in the current
    /// destination page; 0 when the page is not in the fast TLB or no whole element fits.</summary>
    private static ulong StosRun(X86Cpu c, ulong di, int size, ulong v, ulong left, ulong mask)
    {
        ulong dst = c.SegBase(SegReg.Es) + di;
        byte* d = c.HostForWrite(dst);
        if (d == null) return 0;
        ulong room = 0x1000 - (dst & 0xFFF);
        if (mask != ulong.MaxValue)
            room = Math.Min(room, mask - di + 1);
        ulong n = Math.Min(room / (ulong)size, left);
        if (n == 0) return 0;
        switch (size)
        {
            case 1: new Span<byte>(d, (int)n).Fill((byte)v); break;
            case 2: new Span<ushort>(d, (int)n).Fill((ushort)v); break;
            case 4: new Span<uint>(d, (int)n).Fill((uint)v); break;
            default: new Span<ulong>(d, (int)n).Fill(v); break;
        }
        return n;
    }

    // ---- LODS ----

    public static void Lodsb(X86Cpu c, ref DecodedInsn i) => EmitLods(c, ref i, 1);
    public static void Lodsw(X86Cpu c, ref DecodedInsn i) => EmitLods(c, ref i, 2);
    public static void Lodsd(X86Cpu c, ref DecodedInsn i) => EmitLods(c, ref i, 4);
    public static void Lodsq(X86Cpu c, ref DecodedInsn i) => EmitLods(c, ref i, 8);

    private static void EmitLods(X86Cpu c, ref DecodedInsn i, int size)
    {
        int a = i.AddrSize;
        ulong mask = X86Cpu.SizeMask(a);
        ulong si = c.ReadReg(Gpr.Rsi, a);
        ulong step = StringStep(c, size);
        ulong count = i.Rep != 0 ? c.ReadReg(Gpr.Rcx, a) : 1;
        ulong left = count;
        ulong v = 0;
        int budget = RepBudget;
        while (left != 0)
        {
            ulong x = c.ReadMem(i.Seg, si, size);
            if (c._abort) break;
            v = x;
            si = (si + step) & mask;
            left--;
            if (--budget == 0) break;
        }
        if (left == count) return;
        c.WriteReg(Gpr.Rax, size, v);
        c.WriteReg(Gpr.Rsi, a, si);
        if (i.Rep != 0) EndRep(c, ref i, count, left);
    }

    // ---- CMPS / SCAS: REPE repeats while equal, REPNE while not equal ----

    public static void Cmpsb(X86Cpu c, ref DecodedInsn i) => EmitCmps(c, ref i, 1);
    public static void Cmpsw(X86Cpu c, ref DecodedInsn i) => EmitCmps(c, ref i, 2);
    public static void Cmpsq(X86Cpu c, ref DecodedInsn i) => EmitCmps(c, ref i, 8);

    /// <summary>The mnemonic is shared with SSE2 CMPSD xmm, which belongs to another family.</summary>
    public static void Cmpsd(X86Cpu c, ref DecodedInsn i)
    {
        if (i.Code == Code.Cmpsd_m32_m32) EmitCmps(c, ref i, 4);
        else Unimplemented(c, ref i);
    }

    /// <summary>CMPS: flags of [seg:rSI] − ES:[rDI].</summary>
    private static void EmitCmps(X86Cpu c, ref DecodedInsn i, int size)
    {
        int a = i.AddrSize;
        ulong mask = X86Cpu.SizeMask(a);
        ulong si = c.ReadReg(Gpr.Rsi, a), di = c.ReadReg(Gpr.Rdi, a);
        ulong step = StringStep(c, size);
        ulong count = i.Rep != 0 ? c.ReadReg(Gpr.Rcx, a) : 1;
        ulong left = count;
        ulong x = 0, y = 0;
        int budget = RepBudget;
        while (left != 0)
        {
            ulong p = c.ReadMem(i.Seg, si, size);
            ulong q = c.ReadMem(SegReg.Es, di, size);
            if (c._abort) break;
            x = p;
            y = q;
            si = (si + step) & mask;
            di = (di + step) & mask;
            left--;
            if (RepEnds(i.Rep, p == q) || c._exitPending || --budget == 0) break;
        }
        if (left == count) return;
        c.SetFlagsLazy(FlagOp.Sub, size, (x - y) & X86Cpu.SizeMask(size), x, y);
        c.WriteReg(Gpr.Rsi, a, si);
        c.WriteReg(Gpr.Rdi, a, di);
        if (i.Rep != 0) EndRepCompare(c, ref i, count, left, x == y);
    }

    public static void Scasb(X86Cpu c, ref DecodedInsn i) => EmitScas(c, ref i, 1);
    public static void Scasw(X86Cpu c, ref DecodedInsn i) => EmitScas(c, ref i, 2);
    public static void Scasd(X86Cpu c, ref DecodedInsn i) => EmitScas(c, ref i, 4);
    public static void Scasq(X86Cpu c, ref DecodedInsn i) => EmitScas(c, ref i, 8);

    /// <summary>SCAS: flags of rAX − ES:[rDI].</summary>
    private static void EmitScas(X86Cpu c, ref DecodedInsn i, int size)
    {
        int a = i.AddrSize;
        ulong mask = X86Cpu.SizeMask(a);
        ulong di = c.ReadReg(Gpr.Rdi, a);
        ulong x = c.ReadReg(Gpr.Rax, size);
        ulong step = StringStep(c, size);
        ulong count = i.Rep != 0 ? c.ReadReg(Gpr.Rcx, a) : 1;
        ulong left = count;
        ulong y = 0;
        int budget = RepBudget;
        while (left != 0)
        {
            ulong q = c.ReadMem(SegReg.Es, di, size);
            if (c._abort) break;
            y = q;
            di = (di + step) & mask;
            left--;
            if (RepEnds(i.Rep, x == q) || c._exitPending || --budget == 0) break;
        }
        if (left == count) return;
        c.SetFlagsLazy(FlagOp.Sub, size, (x - y) & X86Cpu.SizeMask(size), x, y);
        c.WriteReg(Gpr.Rdi, a, di);
        if (i.Rep != 0) EndRepCompare(c, ref i, count, left, x == y);
    }

    /// <summary>REPE (1) stops on a difference, REPNE (2) on equality; no prefix after one element.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool RepEnds(byte rep, bool equal) => rep == 1 ? !equal : rep != 2 || equal;

    /// <summary>Like <see cref="EndRep"/>, but a compare that met its termination condition is done.</summary>
    private static void EndRepCompare(X86Cpu c, ref DecodedInsn i, ulong count, ulong left, bool equal)
    {
        c.WriteReg(Gpr.Rcx, i.AddrSize, left);
        if (left != 0 && !c._abort && !RepEnds(i.Rep, equal))
        {
            c.Rip = i.Ip;
            c._stop = true;
        }
    }
}
