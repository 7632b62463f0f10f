namespace Hypervisor.Core.Machine.Decoding;

/// <summary>A run of instructions decoded once: straight-line code ending at a control transfer,
/// a page boundary or a size limit. Identified by the guest physical address of its first byte,
/// and valid only for the CS offset, CS base and code size it was decoded for.</summary>
public sealed class Block
{
    public Block(ulong physical, ulong ip, ulong linear, int decodeKey, DecodedInsn[] insns, int count, ulong secondPage)
    {
        Physical = physical;
        Ip = ip;
        Linear = linear;
        DecodeKey = decodeKey;
        Insns = insns;
        Count = count;
        SecondPage = secondPage;
    }

    public ulong Physical { get; }
    public ulong Ip { get; }
    public ulong Linear { get; }
    public int CodeBits => DecodeKey & CodeBitsMask;
    /// <summary>What decoding depended on: the code size, plus <see cref="Rex2Key"/> when REX2 was
    /// decoded (64-bit mode with XCR0[19] set). A block is reused only under the same key.</summary>
    public int DecodeKey { get; }

    public const int CodeBitsMask = 0xFF;
    public const int Rex2Key = 0x100;
    public DecodedInsn[] Insns { get; }
    public int Count { get; }
    /// <summary>Physical page of the last instruction's tail when it crosses a page, else <see cref="NoSecondPage"/>.</summary>
    public ulong SecondPage { get; }
    public bool Valid { get; internal set; } = true;
    /// <summary>How many times the run loop entered this block (profiling; a later JIT tier keys on it).</summary>
    public long Executions;
    /// <summary>The IL-compiled form, once the block is hot (see Translation/BlockCompiler).</summary>
    internal Translation.CompiledBlock? Compiled;

    public const ulong NoSecondPage = ulong.MaxValue;
}
