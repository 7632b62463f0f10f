namespace Hypervisor.Core.X86;

/// <summary>The vendor side of the register cache: loads a register that is not available
/// from the VMCB/VMCS (KVM's <c>cache_reg</c> hook).</summary>
public interface IRegisterSource
{
    /// <summary>Loads <paramref name="reg"/> into <paramref name="cache"/> (which marks it available).</summary>
    void CacheReg(RegisterCache cache, VcpuReg reg);
}

/// <summary>
/// KVM's register cache (<c>kvm_cache_regs.h</c>): values plus two bitmaps. avail=0,dirty=0:
/// the value lives only in the VMCB/VMCS; avail=1,dirty=0: cached, in sync; avail=1,dirty=1:
/// cached and must be written back before the next entry; avail=0,dirty=1 is never allowed.
/// </summary>
public sealed class RegisterCache
{
    private readonly ulong[] _values = new ulong[VcpuRegs.Count];
    private readonly ulong[] _pdptrs = new ulong[4];
    private ulong _avail;
    private ulong _dirty;

    /// <summary>A new vCPU starts with everything available and dirty.</summary>
    public RegisterCache()
    {
        _avail = _dirty = VcpuRegs.AllMask;
    }

    public IRegisterSource? Source { get; set; }

    public ulong Available => _avail;
    public ulong Dirty => _dirty;

    public bool IsAvailable(VcpuReg r) => (_avail & VcpuRegs.Bit(r)) != 0;
    public bool IsDirty(VcpuReg r) => (_dirty & VcpuRegs.Bit(r)) != 0;

    /// <summary>Reads a register, asking the vendor to load it first when it is not available.</summary>
    public ulong Read(VcpuReg r)
    {
        if (!IsAvailable(r))
            Load(r);
        return _values[(int)r];
    }

    /// <summary>Writes a register: it becomes available and dirty.</summary>
    public void Write(VcpuReg r, ulong value)
    {
        _values[(int)r] = value;
        MarkDirty(r);
    }

    /// <summary>Vendor-side store after loading from the control structure: available, not dirty.</summary>
    public void Fill(VcpuReg r, ulong value)
    {
        _values[(int)r] = value;
        _avail |= VcpuRegs.Bit(r);
    }

    /// <summary>Reads the cached value without loading (vendors writing dirty values back).</summary>
    public ulong Peek(VcpuReg r) => _values[(int)r];

    public ulong ReadPdptr(int index)
    {
        if (!IsAvailable(VcpuReg.Pdptr))
            Load(VcpuReg.Pdptr);
        return _pdptrs[index];
    }

    public void FillPdptrs(ReadOnlySpan<ulong> values)
    {
        values.CopyTo(_pdptrs);
        _avail |= VcpuRegs.Bit(VcpuReg.Pdptr);
    }

    public void WritePdptrs(ReadOnlySpan<ulong> values)
    {
        values.CopyTo(_pdptrs);
        MarkDirty(VcpuReg.Pdptr);
    }

    public void MarkAvailable(VcpuReg r) => _avail |= VcpuRegs.Bit(r);

    /// <summary>Dirty implies available (the fourth state of the table is never allowed).</summary>
    public void MarkDirty(VcpuReg r)
    {
        ulong b = VcpuRegs.Bit(r);
        _avail |= b;
        _dirty |= b;
    }

    /// <summary>Drops registers from <c>avail</c> (VMX after every exit). A dirty register cannot
    /// be dropped: its value would be lost; that is a hypervisor bug, reported as one.</summary>
    public void ClearAvailable(ulong mask)
    {
        if ((_dirty & mask) != 0)
            throw new InvalidOperationException($"register cache: dropping dirty registers {Describe(_dirty & mask)} would lose their values");
        _avail &= ~mask;
    }

    public void ClearAvailable(VcpuReg r) => ClearAvailable(VcpuRegs.Bit(r));

    /// <summary>After the vendor wrote dirty values to the control structure (before/after entry).</summary>
    public void ClearDirty() => _dirty = 0;

    public void ClearDirty(VcpuReg r) => _dirty &= ~VcpuRegs.Bit(r);

    private void Load(VcpuReg r)
    {
        if (Source == null)
            throw new InvalidOperationException($"register cache: {VcpuRegs.Name(r)} is not available and no vendor source is attached");
        Source.CacheReg(this, r);
        if (!IsAvailable(r))
            throw new InvalidOperationException($"register cache: the vendor's CacheReg did not make {VcpuRegs.Name(r)} available");
    }

    /// <summary>Snapshot restore: every cached value, the PDPTRs and both bitmaps as captured.
    /// A register that is not available is reloaded from the vendor's (restored) structure when read.</summary>
    public void RestoreState(ReadOnlySpan<ulong> values, ReadOnlySpan<ulong> pdptrs, ulong avail, ulong dirty)
    {
        if (values.Length != VcpuRegs.Count || pdptrs.Length != 4)
            throw new ArgumentException($"register cache: {VcpuRegs.Count} values and 4 PDPTRs are restored together");
        if ((dirty & ~avail) != 0)
            throw new ArgumentException($"register cache: {Describe(dirty & ~avail)} dirty but not available (a state KVM never allows)");
        values.CopyTo(_values);
        pdptrs.CopyTo(_pdptrs);
        _avail = avail & VcpuRegs.AllMask;
        _dirty = dirty & VcpuRegs.AllMask;
    }

    /// <summary>The PDPTRs as cached, without loading them (snapshots).</summary>
    public void PeekPdptrs(Span<ulong> destination) => _pdptrs.CopyTo(destination);

    public static string Describe(ulong mask)
    {
        var names = new List<string>();
        for (int i = 0; i < VcpuRegs.Count; i++)
            if ((mask & (1UL << i)) != 0)
                names.Add(VcpuRegs.Name((VcpuReg)i));
        return string.Join(",", names);
    }
}
