namespace Hypervisor.Core.X86;

/// <summary>Why <see cref="Vcpu.Run"/> returned to userspace: KVM's <c>KVM_EXIT_*</c> numbers (uapi/linux/kvm.h).</summary>
public enum KvmExitReason
{
    Unknown = 0,
    Exception = 1,
    Io = 2,
    Hypercall = 3,
    Debug = 4,
    Hlt = 5,
    Mmio = 6,
    IrqWindowOpen = 7,
    Shutdown = 8,
    FailEntry = 9,
    Intr = 10,
    Nmi = 16,
    InternalError = 17,
    SystemEvent = 24,
    X86Rdmsr = 29,
    X86Wrmsr = 30,
    MemoryFault = 39,
    Tdx = 40,
}

/// <summary>KVM_INTERNAL_ERROR_* sub-reasons.</summary>
public enum KvmInternalError
{
    Emulation = 1,
    SimulEx = 2,
    DeliveryEv = 3,
    UnexpectedExitReason = 4,
}

/// <summary>
/// What <see cref="Vcpu.Run"/> reports, shaped like <c>struct kvm_run</c>: the exit reason and the
/// payload that goes with it. Completion data for IN and MMIO reads is written back through
/// <see cref="Vcpu.CompleteIo"/> / <see cref="Vcpu.CompleteMmio"/> before the next run.
/// </summary>
public struct VcpuExit
{
    public KvmExitReason Reason;

    // KVM_EXIT_IO
    public bool IoIn;
    public byte IoSize;
    public ushort IoPort;
    public uint IoCount;
    public ulong IoData;

    // KVM_EXIT_MMIO
    public ulong MmioAddress;
    public byte MmioLength;
    public bool MmioIsWrite;
    public ulong MmioData;

    // KVM_EXIT_HYPERCALL
    public ulong HypercallNr;

    // KVM_EXIT_INTERNAL_ERROR / KVM_EXIT_FAIL_ENTRY
    public KvmInternalError Suberror;
    public ulong HardwareReason;

    // KVM_EXIT_X86_RDMSR / WRMSR
    public uint MsrIndex;
    public ulong MsrData;

    /// <summary>A sentence for logs and error reports (the machine's own report where there is one).</summary>
    public string? Message;

    public override readonly string ToString() => Reason switch
    {
        KvmExitReason.Io => $"KVM_EXIT_IO {(IoIn ? "in" : "out")} port=0x{IoPort:x} size={IoSize} count={IoCount} data=0x{IoData:x}",
        KvmExitReason.Mmio => $"KVM_EXIT_MMIO {(MmioIsWrite ? "write" : "read")} gpa=0x{MmioAddress:x} len={MmioLength} data=0x{MmioData:x}",
        KvmExitReason.InternalError => $"KVM_EXIT_INTERNAL_ERROR suberror={Suberror}{(Message == null ? "" : ": " + Message)}",
        KvmExitReason.FailEntry => $"KVM_EXIT_FAIL_ENTRY hardware_entry_failure_reason=0x{HardwareReason:x}{(Message == null ? "" : ": " + Message)}",
        _ => Message == null ? $"KVM_EXIT_{Reason.ToString().ToUpperInvariant()}" : $"KVM_EXIT_{Reason.ToString().ToUpperInvariant()}: {Message}",
    };
}
