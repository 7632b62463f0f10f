using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Hypervisor.Core.Machine.Decoding;

namespace Hypervisor.Core.Machine.Cpu;

/// <summary>The execution loop: find the block at RIP (decoding it once), run its instructions
/// through their handlers, and turn aborted instructions into exception delivery or exits.</summary>
public sealed unsafe partial class X86Cpu
{
    private readonly BlockCache _blocks;
    /// <summary>The retired-instruction count at which the current <see cref="Run"/> must stop.</summary>
    internal ulong _runEnd;

    /// <summary>Blocks by linear RIP for the current translation epoch (like QEMU's tb_jmp_cache).</summary>
    private const int JumpCacheSize = 4096;
    private readonly Block?[] _jumpCache = new Block?[JumpCacheSize];
    private readonly uint[] _jumpCacheEpoch = new uint[JumpCacheSize];

    public long BlockTranslations => _blocks.Translations;
    public long BlockInvalidations => _blocks.Invalidations;
    public int CachedBlocks => _blocks.Count;

    /// <summary>Runs guest code until an exit or until <paramref name="maxInstructions"/> more have retired.</summary>
    public CpuExit Run(ulong maxInstructions = ulong.MaxValue)
    {
        ulong end = maxInstructions > ulong.MaxValue - InstructionsRetired ? ulong.MaxValue : InstructionsRetired + maxInstructions;
        // Compiled self-loops compare against it; keep room so Retired + 2n cannot overflow.
        _runEnd = Math.Min(end, ulong.MaxValue / 2);
        _stopRequested = false;
        _stop = false; // set by state changes made between runs (mode, TLB): nothing to stop yet
        while (true)
        {
            if (_stopRequested)
                return new CpuExit { Reason = CpuExitReason.StopRequested, Address = Rip };
            if (InstructionsRetired >= end)
                return new CpuExit { Reason = CpuExitReason.InstructionLimit, Address = Rip };
            if ((_rflags & (RFlags.Tf | RFlags.Rf)) != 0 || _singleStepPending)
            {
                if (StepBoundary())
                    return TakeExit();
                continue;
            }

            Block? block = FindBlock();
            if (block == null)
            {
                if (_exitPending)
                    return TakeExit();
                if (_pendingVector >= 0 && !DeliverPendingException())
                    return TakeExit();
                continue;
            }
            block.Executions++;
            int n = block.Count;
            ulong left = end - InstructionsRetired;
            if ((ulong)n > left)
                n = (int)left;

            ref DecodedInsn first = ref MemoryMarshal.GetArrayDataReference(block.Insns);
            int k = 0;
            if (n == block.Count && (block.Compiled != null || CompileIfHot(block)))
            {
                k = block.Compiled!(this, block.Insns);
            }
            else
            {
                for (; k < n; k++)
                {
                    ref DecodedInsn insn = ref Unsafe.Add(ref first, k);
                    Rip = insn.NextIp;
                    insn.Handler(this, ref insn);
                    if (_abort | _stop)
                        break;
                }
            }
            if (k == n)
            {
                InstructionsRetired += (ulong)n;
                continue;
            }
            ref DecodedInsn last = ref Unsafe.Add(ref first, k);
            _stop = false;
            if (_abort)
            {
                InstructionsRetired += (ulong)k;
                _abort = false;
                Rip = last.Ip;
                if (_exitPending)
                    return TakeExit();
                if (!DeliverPendingException())
                    return TakeExit();
                continue;
            }
            InstructionsRetired += (ulong)k + 1;
            if (_exitPending)
                return TakeExit();
        }
    }

    private static bool CompileIfHot(Block block)
    {
        if (!Translation.BlockCompiler.Enabled || block.Executions <= Translation.BlockCompiler.Threshold)
            return false;
        block.Compiled = Translation.BlockCompiler.Compile(block);
        return true;
    }

    private CpuExit TakeExit()
    {
        _exitPending = false;
        _abort = _stop = false;
        var e = _exit;
        _exit = default;
        if (e.Reason == CpuExitReason.Intercept && _intercept.Reason == Virtualization.InterceptReason.NestedPageFault)
            CompleteNestedPageFaultRecord(ref e);
        return e;
    }

    /// <summary>The block at CS:RIP, from the jump cache, the block cache or a fresh translation.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Block? FindBlock()
    {
        ulong linear = Segs[SegReg.Cs].Base + Rip;
        if (CodeBits != 64)
            linear = (uint)linear;
        int slot = (int)(linear ^ (linear >> 12)) & (JumpCacheSize - 1);
        Block? b = _jumpCache[slot];
        if (b != null && b.Linear == linear && _jumpCacheEpoch[slot] == _tlbEpoch && b.Valid && b.Ip == Rip && b.DecodeKey == DecodeKey)
            return b;
        return FindBlockSlow(linear, slot);
    }

    private Block? FindBlockSlow(ulong linear, int slot)
    {
        if (CodeBits != 64 && Rip > Segs[SegReg.Cs].Limit)
        {
            RaiseFault(Vector.GP, 0);
            return null;
        }
        if (!TranslateFetch(linear, raiseFault: true, out ulong phys))
            return null;
        Block? b = _blocks.Lookup(phys, Rip, linear, DecodeKey);
        if (b != null && b.SecondPage != Block.NoSecondPage)
        {
            // The tail of its last instruction lies on another page, whose mapping may have changed.
            if (!TranslateFetch((linear & ~0xFFFUL) + 0x1000, raiseFault: false, out ulong p2) || (p2 & ~0xFFFUL) != b.SecondPage)
                b = null;
        }
        b ??= _blocks.Translate(phys, Rip, linear, DecodeKey);
        if (b == null)
            return null;
        _jumpCache[slot] = b;
        _jumpCacheEpoch[slot] = _tlbEpoch;
        return b;
    }

    /// <summary>Linear → physical for an instruction fetch, through the fast execute TLB.</summary>
    internal bool TranslateFetch(ulong linear, bool raiseFault, out ulong physical)
    {
        FastTlbEntry* e = _xtlb + ((linear >> 12) & (FastTlbSize - 1));
        if (e->Tag == ((linear & ~0xFFFUL) | _tlbTag))
        {
            physical = e->Phys | (linear & 0xFFF);
            return true;
        }
        bool exitWasPending = _exitPending;
        if (!Translate(linear, AccessType.Execute, false, out physical, out _))
        {
            if (!raiseFault)
            {
                _abort = false;
                _pendingVector = -1;
                _exitPending = exitWasPending; // a probe's nested page fault is dropped like its #PF
            }
            return false;
        }
        e->Tag = (linear & ~0xFFFUL) | _tlbTag;
        e->Phys = physical & ~0xFFFUL;
        return true;
    }

    /// <summary>Drops every translated block (after a host-side change to guest code it cannot track).</summary>
    public void FlushTranslations()
    {
        _blocks.Clear();
        Array.Clear(_jumpCache);
    }
}
