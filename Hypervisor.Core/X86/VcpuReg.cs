namespace Hypervisor.Core.X86;

/// <summary>
/// Register numbers of the vCPU register cache, as KVM numbers them (<c>enum kvm_reg</c>):
/// the 16 legacy general registers, RIP at 16, then the extended registers. ERAPS shares CR3's
/// number, so every flow that marks CR3 dirty also asks for a RAP clear (KVM-FACTS §1).
/// APX's R16..R31 join the general registers; they are numbered after EXIT_INFO_2 so the
/// established numbers stay what KVM's are.
/// </summary>
public enum VcpuReg
{
    Rax = 0, Rcx = 1, Rdx = 2, Rbx = 3, Rsp = 4, Rbp = 5, Rsi = 6, Rdi = 7,
    R8 = 8, R9 = 9, R10 = 10, R11 = 11, R12 = 12, R13 = 13, R14 = 14, R15 = 15,
    Rip = 16,
    Pdptr = 17,
    Cr0 = 18,
    Cr3 = 19,
    /// <summary>Alias of <see cref="Cr3"/>: "the RAP must be cleared before the next guest entry".</summary>
    Eraps = Cr3,
    Cr4 = 20,
    Rflags = 21,
    Segments = 22,
    ExitInfo1 = 23,
    ExitInfo2 = 24,
    R16 = 25, R17, R18, R19, R20, R21, R22, R23, R24, R25, R26, R27, R28, R29, R30, R31,
}

public static class VcpuRegs
{
    /// <summary>How many cache slots there are (R31 is the last).</summary>
    public const int Count = (int)VcpuReg.R31 + 1;

    /// <summary>The 17 general registers of KVM's numbering (RAX..R15 and RIP).</summary>
    public const int GeneralCount = 17;

    public static ulong Bit(VcpuReg r) => 1UL << (int)r;

    /// <summary>The GPR index (0..31) of a general register number, or -1.</summary>
    public static int GprIndex(VcpuReg r) => r switch
    {
        <= VcpuReg.R15 => (int)r,
        >= VcpuReg.R16 and <= VcpuReg.R31 => 16 + (r - VcpuReg.R16),
        _ => -1,
    };

    public static VcpuReg FromGprIndex(int gpr) => gpr < 16 ? (VcpuReg)gpr : VcpuReg.R16 + (gpr - 16);

    public static bool IsExtendedGpr(VcpuReg r) => r is >= VcpuReg.R16 and <= VcpuReg.R31;

    public static string Name(VcpuReg r) => r == VcpuReg.Cr3 ? "CR3/ERAPS" : r.ToString().ToUpperInvariant();

    /// <summary>All registers: what a new vCPU starts with as available and dirty.</summary>
    public const ulong AllMask = (1UL << Count) - 1;
}
