namespace Hypervisor.Core.X86;

/// <summary>What a vCPU still owes the guest after an exit to userspace (KVM's pending
/// <c>complete_userspace_io</c>): part of a snapshot taken between two runs.</summary>
public readonly record struct PendingCompletion(string Kind, ulong Data, int StringSize, bool StringRep, int StringAddressSize, int StringSegment)
{
    public static readonly IReadOnlyList<string> Kinds = ["none", "pio-out", "pio-in", "mmio-read", "string-out", "string-in"];
}

/// <summary>The vCPU state a snapshot keeps beyond the register cache and the vendor structure.</summary>
public sealed partial class Vcpu
{
    public PendingCompletion CapturePendingCompletion() =>
        new(PendingCompletion.Kinds[(int)_completion], _completionData, _string.Size, _string.Rep, _string.AddressSize, _string.Segment);

    /// <summary>Snapshot restore of everything <c>vcpu-&gt;arch</c> keeps outside the cache and the
    /// vendor structure. Values were validated when the snapshot was read.</summary>
    public void RestoreArchState(ulong efer, ulong cr2, ulong cr8, ulong xcr0, ulong dr6, ulong dr7, VcpuRequest requests,
        bool hasRun, in VcpuExit lastExit, PendingCompletion completion)
    {
        Efer = efer;
        Cr2 = cr2;
        Cr8 = cr8;
        Xcr0 = xcr0;
        Dr6 = dr6;
        Dr7 = dr7;
        _requests = requests;
        HasRun = hasRun;
        Exit = lastExit;
        int kind = -1;
        for (int i = 0; i < PendingCompletion.Kinds.Count; i++)
            if (PendingCompletion.Kinds[i] == completion.Kind)
                kind = i;
        if (kind < 0)
            throw new ArgumentException($"unknown pending completion '{completion.Kind}'");
        _completion = (PendingCompletionKind)kind;
        _completionData = completion.Data;
        _string = (completion.StringSize, completion.StringRep, completion.StringAddressSize, completion.StringSegment);
    }
}
