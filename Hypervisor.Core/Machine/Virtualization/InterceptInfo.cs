namespace Hypervisor.Core.Machine.Virtualization;

/// <summary>
/// The vendor-neutral record the CPU leaves when an intercepted event stops guest mode. The
/// instruction has not executed (RIP points at it); <see cref="NextRip"/> and
/// <see cref="InstructionLength"/> let the hypervisor skip it after emulating it.
/// </summary>
public struct InterceptInfo
{
    public InterceptReason Reason;
    /// <summary>RIP of the intercepted instruction (or of the faulting one for an exception).</summary>
    public ulong Rip;
    public ulong NextRip;
    public byte InstructionLength;
    /// <summary>CR/DR number, exception vector.</summary>
    public byte Number;
    /// <summary>General register operand of MOV CR/DR and INVPCID's type register; 0xFF when none.</summary>
    public byte Gpr;
    public bool HasErrorCode;
    public uint ErrorCode;
    /// <summary>INVLPG/INVPCID-descriptor linear address, CR2 of a #PF, faulting GPA of a nested fault.</summary>
    public ulong Address;
    /// <summary>Linear address of a nested page fault, when known (<see cref="HasLinearAddress"/>).</summary>
    public ulong LinearAddress;
    /// <summary>Nested page fault: <see cref="LinearAddress"/> is valid (not for a PDPTE load).</summary>
    public bool HasLinearAddress;
    /// <summary>Value written (XSETBV, MOV to CR, WRMSR), INVPCID type.</summary>
    public ulong Value;
    // Port I/O
    public ushort Port;
    public byte Size;
    public bool IsIn;
    public bool IsString;
    public bool IsRep;
    public byte AddressSize;
    public byte Segment;
    // MSR
    public uint Msr;
    /// <summary>Nested page fault: the fault happened while walking the guest's page tables.</summary>
    public bool DuringGuestWalk;
    /// <summary>EPT: the walk met a misconfigured entry (SDM vol. 3 §29.3.3.1) rather than a violation;
    /// <see cref="ErrorCode"/> is then unused.</summary>
    public bool IsEptMisconfiguration;
    /// <summary>A CR0 write that is CLTS or LMSW rather than MOV (VMX reports the kind in the
    /// CR-access qualification).</summary>
    public bool IsClts, IsLmsw;
    // The memory operand of an instruction intercept (INVPCID), as VMX reports it in the VM-exit
    // instruction information and the qualification: base and index registers (0xFF none), scale
    // as a shift count, displacement.
    public byte MemBase, MemIndex, MemScale;
    public ulong Displacement;

    /// <summary>Nested page fault: the whole error code as AMD reports it in EXITINFO1: the
    /// #PF-style bits of <see cref="ErrorCode"/> plus bit 32 (final translation) or bit 33
    /// (guest page-table walk), from <see cref="DuringGuestWalk"/>.</summary>
    public readonly ulong NestedFaultErrorCode =>
        ErrorCode | (DuringGuestWalk ? NestedFaultCode.GuestPageTable : NestedFaultCode.FinalTranslation);

    public override readonly string ToString() => Reason switch
    {
        InterceptReason.Io => $"io {(IsIn ? "in" : "out")} port=0x{Port:x} size={Size}{(IsString ? " string" : "")}{(IsRep ? " rep" : "")} rip=0x{Rip:x}",
        InterceptReason.MsrRead or InterceptReason.MsrWrite => $"{Reason} msr=0x{Msr:x} rip=0x{Rip:x}",
        InterceptReason.Exception => $"exception {Number}{(HasErrorCode ? $" error=0x{ErrorCode:x}" : "")} rip=0x{Rip:x}",
        InterceptReason.CrRead or InterceptReason.CrWrite => $"{Reason} cr{Number} gpr={Gpr} rip=0x{Rip:x}",
        InterceptReason.NestedPageFault => $"nested page fault gpa=0x{Address:x} error=0x{NestedFaultErrorCode:x} rip=0x{Rip:x}",
        _ => $"{Reason} rip=0x{Rip:x}",
    };
}
