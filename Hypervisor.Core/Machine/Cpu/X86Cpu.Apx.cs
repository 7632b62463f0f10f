namespace Hypervisor.Core.Machine.Cpu;

/// <summary>
/// APX (Intel APX architecture specification): the extended GPRs R16..R31 and the XCR0 bit that
/// enables them. They live in the same register block as RAX..R15 (indices 16..31), so executors
/// reach them like any other register once the REX2 decoder has produced their numbers.
/// </summary>
public sealed unsafe partial class X86Cpu
{
    /// <summary>XCR0[19]: APX state (R16..R31) enabled; the REX2 prefix decodes only with it set.</summary>
    public const ulong Xcr0Apx = Xcr0Bits.Apx;

    private ulong _xcr0 = Xcr0Bits.X87;

    /// <summary>XCR0. Whether 0xD5 is a REX2 prefix or #UD is decided when a block is decoded, so
    /// the APX bit is part of the decode key blocks are looked up with: nothing is flushed when it
    /// changes, and a block is reused only under the key it was decoded with. An XSETBV changing
    /// it ends its own block, whose rest was decoded under the old rule.</summary>
    public ulong Xcr0
    {
        get => _xcr0;
        set
        {
            bool apxChanged = ((_xcr0 ^ value) & Xcr0Apx) != 0;
            _xcr0 = value;
            if (apxChanged)
            {
                UpdateDecodeKey();
                _stop = true;
            }
        }
    }

    /// <summary>XCR0 as a hypervisor's world switch loads it between runs (kvm_load_guest_xsave_state /
    /// kvm_load_host_xsave_state). Nothing is flushed; the decode key follows XCR0[19].</summary>
    public void SwitchXcr0(ulong value)
    {
        _xcr0 = value;
        UpdateDecodeKey();
    }

    /// <summary>Code size plus whether REX2 decodes: what a cached block must have been decoded for.</summary>
    internal int DecodeKey { get; private set; } = 16;

    private void UpdateDecodeKey() =>
        DecodeKey = CodeBits | (CodeBits == 64 && IsApxEnabled ? Decoding.Block.Rex2Key : 0);

    /// <summary>True when XCR0[19] is set: REX2 is valid in 64-bit mode and R16..R31 are usable.</summary>
    public bool IsApxEnabled => (_xcr0 & Xcr0Apx) != 0;

    /// <summary>Reads extended GPR R<paramref name="n"/> (16..31).</summary>
    public ulong GetExtendedGpr(int n)
    {
        CheckExtended(n);
        return Regs[n];
    }

    /// <summary>Writes extended GPR R<paramref name="n"/> (16..31).</summary>
    public void SetExtendedGpr(int n, ulong value)
    {
        CheckExtended(n);
        Regs[n] = value;
    }

    /// <summary>Copies R16..R31 into <paramref name="destination"/> (16 values; a VM exit saving the guest's).</summary>
    public void SaveExtendedGprs(Span<ulong> destination)
    {
        if (destination.Length < Gpr.ExtendedCount)
            throw new ArgumentException($"need room for {Gpr.ExtendedCount} registers, got {destination.Length}", nameof(destination));
        new ReadOnlySpan<ulong>(Regs + Gpr.R16, Gpr.ExtendedCount).CopyTo(destination);
    }

    /// <summary>Loads R16..R31 from <paramref name="source"/> (16 values; a VM entry loading the guest's).</summary>
    public void LoadExtendedGprs(ReadOnlySpan<ulong> source)
    {
        if (source.Length < Gpr.ExtendedCount)
            throw new ArgumentException($"need {Gpr.ExtendedCount} registers, got {source.Length}", nameof(source));
        source[..Gpr.ExtendedCount].CopyTo(new Span<ulong>(Regs + Gpr.R16, Gpr.ExtendedCount));
    }

    /// <summary>Zeroes R16..R31 (after a VM exit saved the guest's, so none leaks to the host).</summary>
    public void ClearExtendedGprs() => new Span<ulong>(Regs + Gpr.R16, Gpr.ExtendedCount).Clear();

    private static void CheckExtended(int n)
    {
        if (n < Gpr.R16 || n > Gpr.R31)
            throw new ArgumentOutOfRangeException(nameof(n), n, "extended GPRs are R16..R31");
    }
}
