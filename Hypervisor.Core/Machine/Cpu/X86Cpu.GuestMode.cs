using System.Runtime.CompilerServices;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Virtualization;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>
/// Guest mode: while <see cref="Intercepts"/> is set, events it names stop the CPU with an
/// <see cref="InterceptInfo"/> instead of happening (CpuExitReason.Intercept). The vendor's
/// Hardware part sets it on VMRUN/VMLAUNCH and clears it on the exit it builds from the record.
/// </summary>
public sealed unsafe partial class X86Cpu
{
    private InterceptInfo _intercept;

    /// <summary>The intercepts of the guest running now; null outside guest mode.</summary>
    public GuestIntercepts? Intercepts { get; set; }

    public bool IsGuestMode => Intercepts != null;

    /// <summary>The record of the last intercept exit.</summary>
    public ref readonly InterceptInfo LastIntercept => ref _intercept;

    /// <summary>Stops guest mode with <paramref name="info"/>; the instruction does not run.</summary>
    internal void RaiseIntercept(in InterceptInfo info)
    {
        _intercept = info;
        RequestExit(new CpuExit { Reason = CpuExitReason.Intercept, Address = info.Rip, Message = null }, restart: true);
    }

    /// <summary>The common case: an instruction intercept with no operands beyond the instruction.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool InterceptInstruction(InterceptReason reason, ref DecodedInsn i)
    {
        var set = Intercepts;
        if (set == null || !set.Has(reason))
            return false;
        RaiseIntercept(Basic(reason, ref i));
        return true;
    }

    internal static InterceptInfo Basic(InterceptReason reason, ref DecodedInsn i) => new()
    {
        Reason = reason,
        Rip = i.Ip,
        NextRip = i.NextIp,
        InstructionLength = i.Length,
        Gpr = 0xFF,
    };

    internal bool InterceptCr(bool write, int cr, int gpr, ulong value, ref DecodedInsn i) =>
        InterceptCr(write, cr, gpr, value, value, ref i);

    /// <summary><paramref name="newVisible"/>: the whole CR value the guest would see after the
    /// write, which the CR shadows compare (LMSW's record carries only its 4-bit source).</summary>
    internal bool InterceptCr(bool write, int cr, int gpr, ulong value, ulong newVisible, ref DecodedInsn i, bool clts = false, bool lmsw = false)
    {
        var set = Intercepts;
        if (set == null)
            return false;
        if (write && set.CrShadows && cr is 0 or 4)
        {
            if (!CrShadowWriteExits(set, cr, newVisible))
                return false;
        }
        else if (((write ? set.CrWrites : set.CrReads) & (1 << cr)) == 0)
        {
            return false;
        }
        var info = Basic(write ? InterceptReason.CrWrite : InterceptReason.CrRead, ref i);
        info.Number = (byte)cr;
        info.Gpr = (byte)gpr;
        info.Value = value;
        info.IsClts = clts;
        info.IsLmsw = lmsw;
        RaiseIntercept(info);
        return true;
    }

    internal bool InterceptDr(bool write, int dr, int gpr, ref DecodedInsn i)
    {
        var set = Intercepts;
        if (set == null || ((write ? set.DrWrites : set.DrReads) & (1 << dr)) == 0)
            return false;
        var info = Basic(write ? InterceptReason.DrWrite : InterceptReason.DrRead, ref i);
        info.Number = (byte)dr;
        info.Gpr = (byte)gpr;
        RaiseIntercept(info);
        return true;
    }

    internal bool InterceptIo(ushort port, int size, bool isIn, bool isString, ref DecodedInsn i)
    {
        var set = Intercepts;
        if (set == null || (set.Io != null && !set.Io.IsIoIntercepted(port, size)))
            return false;
        var info = Basic(InterceptReason.Io, ref i);
        info.Port = port;
        info.Size = (byte)size;
        info.IsIn = isIn;
        info.IsString = isString;
        info.IsRep = isString && i.Rep != 0;
        info.AddressSize = i.AddrSize;
        info.Segment = isString ? (isIn ? (byte)SegReg.Es : i.Seg) : (byte)0;
        RaiseIntercept(info);
        return true;
    }

    internal bool InterceptMsr(uint msr, bool write, ulong value, ref DecodedInsn i)
    {
        var set = Intercepts;
        if (set == null || (set.Msr != null && !set.Msr.IsMsrIntercepted(msr, write)))
            return false;
        var info = Basic(write ? InterceptReason.MsrWrite : InterceptReason.MsrRead, ref i);
        info.Msr = msr;
        info.Value = value;
        RaiseIntercept(info);
        return true;
    }

    /// <summary>Called by exception delivery: an intercepted vector leaves guest mode with its error
    /// code (and CR2 for #PF) instead of going through the guest's IDT.</summary>
    internal bool InterceptException(int vector, bool hasError, uint error, ulong cr2)
    {
        var set = Intercepts;
        if (set == null || (set.Exceptions & (1u << vector)) == 0)
            return false;
        _intercept = new InterceptInfo
        {
            Reason = InterceptReason.Exception,
            Rip = Rip,
            NextRip = Rip,
            Number = (byte)vector,
            HasErrorCode = hasError,
            ErrorCode = error,
            Address = cr2,
            Gpr = 0xFF,
        };
        _exit = new CpuExit { Reason = CpuExitReason.Intercept, Address = Rip };
        _exitPending = true;
        _abort = true;
        return true;
    }

    /// <summary>A triple fault in guest mode becomes an intercept when the vendor asked for it.</summary>
    /// <summary>Why the CPU last shut down (or would have, had the SHUTDOWN intercept not caught it),
    /// e.g. "triple fault: #GP while delivering #DF".</summary>
    public string? LastShutdownReason { get; private set; }

    internal bool InterceptShutdown(string reason)
    {
        LastShutdownReason = reason;
        var set = Intercepts;
        if (set == null || !set.Shutdown)
            return false;
        _intercept = new InterceptInfo { Reason = InterceptReason.Shutdown, Rip = Rip, NextRip = Rip, Gpr = 0xFF };
        _exit = new CpuExit { Reason = CpuExitReason.Intercept, Address = Rip };
        _exitPending = true;
        _abort = true;
        _pendingVector = -1;
        return true;
    }
}
