namespace Hypervisor.Core.Machine.Virtualization;

/// <summary>Decides which port accesses leave guest mode (SVM's IOPM, VMX's I/O bitmaps).</summary>
public interface IIoInterceptFilter
{
    /// <summary>True when an access of <paramref name="size"/> bytes at <paramref name="port"/> is intercepted.</summary>
    bool IsIoIntercepted(ushort port, int size);
}

/// <summary>Decides which MSR accesses leave guest mode (SVM's MSRPM, VMX's MSR bitmaps).</summary>
public interface IMsrInterceptFilter
{
    bool IsMsrIntercepted(uint msr, bool write);
}

/// <summary>
/// The intercept set a vendor's Hardware part hands the CPU when it enters a guest. Plain fields
/// so the checks on the (rare) intercept-capable instructions stay one load and a test.
/// </summary>
public sealed class GuestIntercepts
{
    /// <summary>Instruction intercepts: bit n set intercepts <see cref="InterceptReason"/> n (n &lt; 32).</summary>
    public uint Instructions;
    /// <summary>Bit n: MOV from / to CRn (CR0 writes include LMSW and CLTS).</summary>
    public ushort CrReads, CrWrites;
    public ushort DrReads, DrWrites;
    /// <summary>Bit v: exception vector v leaves guest mode instead of being delivered.</summary>
    public uint Exceptions;
    /// <summary>Null: every port access is intercepted.</summary>
    public IIoInterceptFilter? Io;
    /// <summary>Null: every MSR access is intercepted.</summary>
    public IMsrInterceptFilter? Msr;
    /// <summary>Intercept a triple fault rather than shutting the machine down.</summary>
    public bool Shutdown = true;
    /// <summary>VMX's CR0/CR4 guest/host masks and read shadows (SDM vol. 3 §25.6.6): when set,
    /// writes to CR0/CR4 leave guest mode exactly when they would change a bit the mask owns away
    /// from its shadow value (<see cref="CrWrites"/> bits 0 and 4 are not consulted), and reads of
    /// an owned bit return the shadow.</summary>
    public bool CrShadows;
    public ulong Cr0GuestHostMask, Cr0ReadShadow, Cr4GuestHostMask, Cr4ReadShadow;

    /// <summary>Instructions that raise #UD in this guest (bit = 1 &lt;&lt; <see cref="InterceptReason"/>):
    /// VMX's INVPCID with "enable INVPCID" clear (SDM vol. 3 §26.3).</summary>
    public uint Undefined;

    public bool IsUndefined(InterceptReason r) => (int)r < 32 && (Undefined & (1u << (int)r)) != 0;

    public bool Has(InterceptReason r) => (int)r < 32 && (Instructions & (1u << (int)r)) != 0;

    public GuestIntercepts Set(InterceptReason r, bool on = true)
    {
        if ((int)r >= 32)
            throw new ArgumentOutOfRangeException(nameof(r), r, "only instruction intercepts live in the instruction bitmap");
        if (on) Instructions |= 1u << (int)r;
        else Instructions &= ~(1u << (int)r);
        return this;
    }
}
