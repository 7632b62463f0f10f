using System.Runtime.CompilerServices;

namespace Hypervisor.Svm.Hardware;

/// <summary>Classification and log names of <see cref="SvmExitCode"/> values (APM vol. 2 table C-1).</summary>
public static class SvmExitCodes
{
    /// <summary>Exit codes 00h-A6h, then the 400h block, are the ones the APM assigns.</summary>
    public const long LastInstructionCode = (long)SvmExitCode.IdleHlt;
    public const long FirstHighCode = (long)SvmExitCode.Npf;
    public const long LastHighCode = (long)SvmExitCode.Vmgexit;

    private static readonly string?[] LowNames = BuildLowNames();
    private static readonly string[] HighNames = { "VMEXIT_NPF", "VMEXIT_AVIC_INCOMPLETE_IPI", "VMEXIT_AVIC_NOACCEL", "VMEXIT_VMGEXIT" };
    private static readonly string[] ErrorNames = { "VMEXIT_INVALID", "VMEXIT_BUSY", "VMEXIT_IDLE_REQUIRED", "VMEXIT_INVALID_PMC" };

    /// <summary>The APM's name for a code ("VMEXIT_CPUID"), or "VMEXIT_UNKNOWN" for codes the APM does not assign.</summary>
    public static string Name(SvmExitCode code)
    {
        long c = (long)code;
        if (c >= 0 && c <= LastInstructionCode)
            return LowNames[c] ?? "VMEXIT_UNKNOWN";
        if (c >= FirstHighCode && c <= LastHighCode)
            return HighNames[c - FirstHighCode];
        if (c <= -1 && c >= -ErrorNames.Length)
            return ErrorNames[-c - 1];
        return "VMEXIT_UNKNOWN";
    }

    /// <summary>Whether the APM assigns this code.</summary>
    public static bool IsDefined(SvmExitCode code)
    {
        long c = (long)code;
        return (c >= 0 && c <= LastInstructionCode && LowNames[c] != null)
            || (c >= FirstHighCode && c <= LastHighCode)
            || (c <= -1 && c >= -ErrorNames.Length);
    }

    /// <summary>The negative codes: VMRUN itself failed, no guest instruction ran.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsError(SvmExitCode code) => (long)code < 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsException(SvmExitCode code) => (ulong)((long)code - (long)SvmExitCode.Excp0) < 32;

    /// <summary>The vector of an exception exit (40h + vector).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ExceptionVector(SvmExitCode code) => (int)((long)code - (long)SvmExitCode.Excp0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static SvmExitCode ForException(int vector) => SvmExitCode.Excp0 + vector;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsCrRead(SvmExitCode code) => (ulong)code < 0x10;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsCrWrite(SvmExitCode code) => (ulong)((long)code - 0x10) < 0x10;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsDrRead(SvmExitCode code) => (ulong)((long)code - 0x20) < 0x10;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsDrWrite(SvmExitCode code) => (ulong)((long)code - 0x30) < 0x10;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsCrWriteTrap(SvmExitCode code) => (ulong)((long)code - 0x90) < 0x10;

    /// <summary>The register number of a CR/DR read or write exit or a CR write trap (low 4 bits of the code).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int RegisterNumber(SvmExitCode code) => (int)((long)code & 0xF);

    private static string?[] BuildLowNames()
    {
        var n = new string?[LastInstructionCode + 1];
        for (int i = 0; i < 16; i++)
        {
            n[0x00 + i] = $"VMEXIT_CR{i}_READ";
            n[0x10 + i] = $"VMEXIT_CR{i}_WRITE";
            n[0x20 + i] = $"VMEXIT_DR{i}_READ";
            n[0x30 + i] = $"VMEXIT_DR{i}_WRITE";
            n[0x90 + i] = $"VMEXIT_CR{i}_WRITE_TRAP";
        }
        for (int v = 0; v < 32; v++)
            n[0x40 + v] = $"VMEXIT_EXCP{v}";
        string[] misc =
        {
            "INTR", "NMI", "SMI", "INIT", "VINTR", "CR0_SEL_WRITE", "IDTR_READ", "GDTR_READ",
            "LDTR_READ", "TR_READ", "IDTR_WRITE", "GDTR_WRITE", "LDTR_WRITE", "TR_WRITE", "RDTSC", "RDPMC",
            "PUSHF", "POPF", "CPUID", "RSM", "IRET", "SWINT", "INVD", "PAUSE",
            "HLT", "INVLPG", "INVLPGA", "IOIO", "MSR", "TASK_SWITCH", "FERR_FREEZE", "SHUTDOWN",
            "VMRUN", "VMMCALL", "VMLOAD", "VMSAVE", "STGI", "CLGI", "SKINIT", "RDTSCP",
            "ICEBP", "WBINVD", "MONITOR", "MWAIT", "MWAIT_CONDITIONAL", "XSETBV", "RDPRU", "EFER_WRITE_TRAP",
        };
        for (int i = 0; i < misc.Length; i++)
            n[0x60 + i] = "VMEXIT_" + misc[i];
        string[] late = { "INVLPGB", "INVLPGB_ILLEGAL", "INVPCID", "MCOMMIT", "TLBSYNC", "BUSLOCK", "IDLE_HLT" };
        for (int i = 0; i < late.Length; i++)
            n[0xA0 + i] = "VMEXIT_" + late[i];
        return n;
    }
}
