using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Memory;
using Hypervisor.Core.Machine.Mmu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.Machine.Rap;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>
/// The software x86-64 CPU: architectural state plus the machinery that runs guest code
/// (block cache, software TLB, lazy flags). One instance is one logical processor.
/// </summary>
public sealed unsafe partial class X86Cpu : IDisposable
{
    /// <summary>General registers R0..R31 in one contiguous native block (hot path uses a pointer).</summary>
    internal readonly ulong* Regs;

    public ulong Rip;
    internal readonly Segment[] Segs = new Segment[SegReg.Count];
    public DescriptorTable Gdtr, Idtr;
    public ulong Cr0, Cr2, Cr3, Cr4, Cr8, Efer;
    public readonly ulong[] Dr = new ulong[8];

    /// <summary>Current privilege level (CS.RPL outside real mode).</summary>
    public int Cpl { get; internal set; }

    public PhysicalMemory Memory { get; }
    public HostCpuModel Model { get; }
    public Tlb Tlb { get; } = new();
    public ReturnAddressPredictor Rap { get; }
    public Msrs Msr { get; } = new();
    /// <summary>x87 FPU state (XSAVE component 0), kept for XSAVE/XRSTOR.</summary>
    public X87State X87 { get; } = new();

    /// <summary>Instructions retired since reset. The TSC is derived from it, so runs are deterministic.</summary>
    public ulong InstructionsRetired;
    /// <summary>Added to <see cref="InstructionsRetired"/> to form the TSC (IA32_TSC writes adjust it).</summary>
    public long TscOffset;

    public X86Cpu(PhysicalMemory memory, HostCpuModel? model = null)
    {
        Memory = memory;
        Model = model ?? HostCpuModel.Default;
        Regs = (ulong*)NativeMemory.AllocZeroed((nuint)(Gpr.Count * sizeof(ulong)));
        Rap = new ReturnAddressPredictor(Model.RapEntries) { Tagged = Model.HasEraps };
        Memory.PageWritten += OnHostPageWritten;
        _blocks = new BlockCache(this);
        Reset();
    }

    /// <summary>Power-on / RESET state (SDM vol. 3 §10.1.1), with CS:IP = F000:FFF0.</summary>
    public void Reset()
    {
        for (int i = 0; i < Gpr.Count; i++)
            Regs[i] = 0;
        Regs[Gpr.Rdx] = Model.ResetEdx;
        Rip = 0xFFF0;
        SetRFlags(RFlags.Fixed1);
        for (int s = 0; s < SegReg.Count; s++)
            Segs[s] = Segment.RealMode(0);
        Segs[SegReg.Cs] = new Segment { Selector = 0xF000, Base = 0xFFFF0000, Limit = 0xFFFF, Attributes = 0x9B };
        Segs[SegReg.Ldtr] = new Segment { Limit = 0xFFFF, Attributes = 0x82 };
        Segs[SegReg.Tr] = new Segment { Limit = 0xFFFF, Attributes = 0x8B };
        Gdtr = new DescriptorTable { Limit = 0xFFFF };
        Idtr = new DescriptorTable { Limit = 0xFFFF };
        Cr0 = Cpu.Cr0.Et | Cpu.Cr0.Cd | Cpu.Cr0.Nw;
        Cr2 = Cr3 = Cr4 = Cr8 = Efer = 0;
        Xcr0 = 1;
        Array.Clear(Dr);
        Dr[6] = 0xFFFF0FF0;
        Dr[7] = 0x400;
        Cpl = 0;
        InstructionsRetired = 0;
        TscOffset = 0;
        Msr.Reset();
        X87.Reset();
        Rap.Clear();
        Tlb.FlushAll();
        ClearPending();
        ModeChanged();
    }

    // ---- General registers -------------------------------------------------------------------

    public ulong GetGpr(int r) => Regs[r];
    public void SetGpr(int r, ulong value) => Regs[r] = value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong ReadReg(int r, int size) => size switch
    {
        1 => (byte)Regs[r],
        2 => (ushort)Regs[r],
        4 => (uint)Regs[r],
        _ => Regs[r],
    };

    /// <summary>Writes the low <paramref name="size"/> bytes; a 32-bit write zero-extends (SDM vol. 1 §3.4.1.1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void WriteReg(int r, int size, ulong v)
    {
        ulong* p = Regs + r;
        switch (size)
        {
            case 1: *p = (*p & ~0xFFUL) | (byte)v; break;
            case 2: *p = (*p & ~0xFFFFUL) | (ushort)v; break;
            case 4: *p = (uint)v; break;
            default: *p = v; break;
        }
    }

    internal byte ReadHigh8(int r) => (byte)(Regs[r] >> 8);
    internal void WriteHigh8(int r, ulong v) => Regs[r] = (Regs[r] & ~0xFF00UL) | ((v & 0xFF) << 8);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong SizeMask(int size) => size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong SignBit(int size) => 1UL << (size * 8 - 1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong SignExtend(ulong v, int size) => size switch
    {
        1 => (ulong)(long)(sbyte)v,
        2 => (ulong)(long)(short)v,
        4 => (ulong)(long)(int)v,
        _ => v,
    };

    // ---- Segments ------------------------------------------------------------------------------

    public Segment GetSegment(int s) => Segs[s];

    /// <summary>Sets a segment register with its hidden part as given (KVM_SET_SREGS, loaders).</summary>
    public void SetSegment(int s, Segment value)
    {
        Segs[s] = value;
        if (s == SegReg.Cs)
            Cpl = !IsProtectedMode ? 0 : IsV86Mode ? 3 : value.Selector & 3;
        ModeChanged();
    }

    public bool IsProtectedMode => (Cr0 & Cpu.Cr0.Pe) != 0;
    public bool IsLongMode => (Efer & Cpu.Efer.Lma) != 0;
    public bool IsPaging => (Cr0 & Cpu.Cr0.Pg) != 0;
    public bool IsV86Mode => IsProtectedMode && (_rflags & RFlags.Vm) != 0;

    /// <summary>Code size in bits of the current CS: 16, 32 or 64.</summary>
    public int CodeBits { get; private set; } = 16;

    /// <summary>Stack address size in bytes: 8 in 64-bit mode, else 4 when SS.B, else 2.</summary>
    internal int StackAddrSize;

    /// <summary>Recomputes everything derived from CR0, CR4, EFER, CS and SS: call after any of them changes.</summary>
    internal void ModeChanged()
    {
        ref var cs = ref Segs[SegReg.Cs];
        if (!IsProtectedMode)
            CodeBits = 16;
        else if (IsLongMode && cs.Long)
            CodeBits = 64;
        else
            CodeBits = cs.DefaultBig && !IsV86Mode ? 32 : 16;
        StackAddrSize = CodeBits == 64 ? 8 : (IsProtectedMode && !IsV86Mode && Segs[SegReg.Ss].DefaultBig ? 4 : 2);
        UpdateDecodeKey();
        UpdateSegmentFastPaths();
        FlushFastTlb();
    }

    public void Dispose()
    {
        Memory.PageWritten -= OnHostPageWritten;
        NativeMemory.Free(Regs);
    }
}
