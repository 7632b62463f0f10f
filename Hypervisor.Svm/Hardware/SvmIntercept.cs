namespace Hypervisor.Svm.Hardware;

/// <summary>
/// Every intercept bit of the VMCB control area (APM vol. 2 table B-1), numbered as a bit index
/// across the six 32-bit words that start at offset 000h: word = value / 32 (byte offset
/// 4 × word), bit = value % 32. CR and DR intercepts are one bit per register; the exception
/// word has one bit per vector (<see cref="Exception0"/> + vector).
/// </summary>
public enum SvmIntercept
{
    // Word 0, offset 000h: bits 15:0 intercept reads of CR0-15, bits 31:16 writes of CR0-15.
    Cr0Read = 0, Cr1Read, Cr2Read, Cr3Read, Cr4Read, Cr5Read, Cr6Read, Cr7Read,
    Cr8Read, Cr9Read, Cr10Read, Cr11Read, Cr12Read, Cr13Read, Cr14Read, Cr15Read,
    Cr0Write = 16, Cr1Write, Cr2Write, Cr3Write, Cr4Write, Cr5Write, Cr6Write, Cr7Write,
    Cr8Write, Cr9Write, Cr10Write, Cr11Write, Cr12Write, Cr13Write, Cr14Write, Cr15Write,

    // Word 1, offset 004h: bits 15:0 reads of DR0-15, bits 31:16 writes of DR0-15.
    Dr0Read = 32, Dr1Read, Dr2Read, Dr3Read, Dr4Read, Dr5Read, Dr6Read, Dr7Read,
    Dr8Read, Dr9Read, Dr10Read, Dr11Read, Dr12Read, Dr13Read, Dr14Read, Dr15Read,
    Dr0Write = 48, Dr1Write, Dr2Write, Dr3Write, Dr4Write, Dr5Write, Dr6Write, Dr7Write,
    Dr8Write, Dr9Write, Dr10Write, Dr11Write, Dr12Write, Dr13Write, Dr14Write, Dr15Write,

    /// <summary>Word 2, offset 008h: exception vector n is bit n. The bit for vector 2 (NMI) is
    /// not implemented (use <see cref="Nmi"/>), nor is vector 9 (APM §15.12).</summary>
    Exception0 = 64,

    // Word 3, offset 00Ch.
    Intr = 96,
    Nmi,
    Smi,
    Init,
    Vintr,
    /// <summary>CR0 writes that change bits other than CR0.TS or CR0.MP.</summary>
    Cr0SelectiveWrite,
    IdtrRead,
    GdtrRead,
    LdtrRead,
    TrRead,
    IdtrWrite,
    GdtrWrite,
    LdtrWrite,
    TrWrite,
    Rdtsc,
    Rdpmc,
    Pushf,
    Popf,
    Cpuid,
    Rsm,
    Iret,
    /// <summary>INTn.</summary>
    Swint,
    Invd,
    Pause,
    Hlt,
    Invlpg,
    Invlpga,
    /// <summary>IN/OUT/INS/OUTS to the ports selected by the I/O permission map.</summary>
    IoioProt,
    /// <summary>RDMSR/WRMSR of the MSRs selected by the MSR permission map.</summary>
    MsrProt,
    TaskSwitch,
    FerrFreeze,
    Shutdown,

    // Word 4, offset 010h.
    Vmrun = 128,
    Vmmcall,
    Vmload,
    Vmsave,
    Stgi,
    Clgi,
    Skinit,
    Rdtscp,
    Icebp,
    /// <summary>WBINVD and WBNOINVD.</summary>
    Wbinvd,
    /// <summary>MONITOR and MONITORX.</summary>
    Monitor,
    /// <summary>MWAIT/MWAITX, unconditionally.</summary>
    Mwait,
    /// <summary>MWAIT/MWAITX if the monitor hardware is armed.</summary>
    MwaitConditional,
    Xsetbv,
    Rdpru,
    /// <summary>Trap after a guest instruction that wrote EFER.</summary>
    EferWriteTrap,
    /// <summary>Bits 31:16: trap after a guest instruction that wrote CR0-15.</summary>
    Cr0WriteTrap, Cr1WriteTrap, Cr2WriteTrap, Cr3WriteTrap, Cr4WriteTrap, Cr5WriteTrap, Cr6WriteTrap, Cr7WriteTrap,
    Cr8WriteTrap, Cr9WriteTrap, Cr10WriteTrap, Cr11WriteTrap, Cr12WriteTrap, Cr13WriteTrap, Cr14WriteTrap, Cr15WriteTrap,

    // Word 5, offset 014h.
    /// <summary>Every INVLPGB.</summary>
    Invlpgb = 160,
    /// <summary>Only INVLPGB with an illegal specification.</summary>
    InvlpgbIllegal,
    Invpcid,
    Mcommit,
    Tlbsync,
    /// <summary>Bus locks while the bus lock threshold counter is 0.</summary>
    BusLock,
    /// <summary>HLT when no virtual interrupt (V_INTR or V_NMI) is pending.</summary>
    IdleHlt,
}
