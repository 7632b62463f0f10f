using Hypervisor.Svm.Hardware;

namespace Hypervisor.Svm.Tests.Hardware;

/// <summary>Exit codes against AMD APM vol. 2 table C-1 and the numbers KVM-FACTS §7 lists.</summary>
public class SvmExitCodeTests
{
    [TestCase(SvmExitCode.Cr3Write, 0x13)]
    [TestCase(SvmExitCode.Excp0, 0x40)]
    [TestCase(SvmExitCode.Intr, 0x60)]
    [TestCase(SvmExitCode.Cpuid, 0x72)]
    [TestCase(SvmExitCode.Hlt, 0x78)]
    [TestCase(SvmExitCode.Invlpg, 0x79)]
    [TestCase(SvmExitCode.Ioio, 0x7B)]
    [TestCase(SvmExitCode.Msr, 0x7C)]
    [TestCase(SvmExitCode.Shutdown, 0x7F)]
    [TestCase(SvmExitCode.Vmrun, 0x80)]
    [TestCase(SvmExitCode.Vmmcall, 0x81)]
    [TestCase(SvmExitCode.Vmload, 0x82)]
    [TestCase(SvmExitCode.Vmsave, 0x83)]
    [TestCase(SvmExitCode.Stgi, 0x84)]
    [TestCase(SvmExitCode.Clgi, 0x85)]
    [TestCase(SvmExitCode.Xsetbv, 0x8D)]
    [TestCase(SvmExitCode.Invpcid, 0xA2)]
    [TestCase(SvmExitCode.Npf, 0x400)]
    [TestCase(SvmExitCode.Invalid, -1)]
    public void KvmFactsNumbers_Match(SvmExitCode code, long expected) => Assert.That((long)code, Is.EqualTo(expected));

    // Table C-1, every code the APM assigns, with its name.
    private static readonly object[] ApmTable =
    {
        new object[] { 0x00L, "VMEXIT_CR0_READ" }, new object[] { 0x0FL, "VMEXIT_CR15_READ" },
        new object[] { 0x10L, "VMEXIT_CR0_WRITE" }, new object[] { 0x1FL, "VMEXIT_CR15_WRITE" },
        new object[] { 0x20L, "VMEXIT_DR0_READ" }, new object[] { 0x2FL, "VMEXIT_DR15_READ" },
        new object[] { 0x30L, "VMEXIT_DR0_WRITE" }, new object[] { 0x3FL, "VMEXIT_DR15_WRITE" },
        new object[] { 0x40L, "VMEXIT_EXCP0" }, new object[] { 0x4EL, "VMEXIT_EXCP14" }, new object[] { 0x5FL, "VMEXIT_EXCP31" },
        new object[] { 0x60L, "VMEXIT_INTR" }, new object[] { 0x61L, "VMEXIT_NMI" }, new object[] { 0x62L, "VMEXIT_SMI" },
        new object[] { 0x63L, "VMEXIT_INIT" }, new object[] { 0x64L, "VMEXIT_VINTR" }, new object[] { 0x65L, "VMEXIT_CR0_SEL_WRITE" },
        new object[] { 0x66L, "VMEXIT_IDTR_READ" }, new object[] { 0x67L, "VMEXIT_GDTR_READ" }, new object[] { 0x68L, "VMEXIT_LDTR_READ" },
        new object[] { 0x69L, "VMEXIT_TR_READ" }, new object[] { 0x6AL, "VMEXIT_IDTR_WRITE" }, new object[] { 0x6BL, "VMEXIT_GDTR_WRITE" },
        new object[] { 0x6CL, "VMEXIT_LDTR_WRITE" }, new object[] { 0x6DL, "VMEXIT_TR_WRITE" }, new object[] { 0x6EL, "VMEXIT_RDTSC" },
        new object[] { 0x6FL, "VMEXIT_RDPMC" }, new object[] { 0x70L, "VMEXIT_PUSHF" }, new object[] { 0x71L, "VMEXIT_POPF" },
        new object[] { 0x72L, "VMEXIT_CPUID" }, new object[] { 0x73L, "VMEXIT_RSM" }, new object[] { 0x74L, "VMEXIT_IRET" },
        new object[] { 0x75L, "VMEXIT_SWINT" }, new object[] { 0x76L, "VMEXIT_INVD" }, new object[] { 0x77L, "VMEXIT_PAUSE" },
        new object[] { 0x78L, "VMEXIT_HLT" }, new object[] { 0x79L, "VMEXIT_INVLPG" }, new object[] { 0x7AL, "VMEXIT_INVLPGA" },
        new object[] { 0x7BL, "VMEXIT_IOIO" }, new object[] { 0x7CL, "VMEXIT_MSR" }, new object[] { 0x7DL, "VMEXIT_TASK_SWITCH" },
        new object[] { 0x7EL, "VMEXIT_FERR_FREEZE" }, new object[] { 0x7FL, "VMEXIT_SHUTDOWN" }, new object[] { 0x80L, "VMEXIT_VMRUN" },
        new object[] { 0x81L, "VMEXIT_VMMCALL" }, new object[] { 0x82L, "VMEXIT_VMLOAD" }, new object[] { 0x83L, "VMEXIT_VMSAVE" },
        new object[] { 0x84L, "VMEXIT_STGI" }, new object[] { 0x85L, "VMEXIT_CLGI" }, new object[] { 0x86L, "VMEXIT_SKINIT" },
        new object[] { 0x87L, "VMEXIT_RDTSCP" }, new object[] { 0x88L, "VMEXIT_ICEBP" }, new object[] { 0x89L, "VMEXIT_WBINVD" },
        new object[] { 0x8AL, "VMEXIT_MONITOR" }, new object[] { 0x8BL, "VMEXIT_MWAIT" }, new object[] { 0x8CL, "VMEXIT_MWAIT_CONDITIONAL" },
        new object[] { 0x8DL, "VMEXIT_XSETBV" }, new object[] { 0x8EL, "VMEXIT_RDPRU" }, new object[] { 0x8FL, "VMEXIT_EFER_WRITE_TRAP" },
        new object[] { 0x90L, "VMEXIT_CR0_WRITE_TRAP" }, new object[] { 0x93L, "VMEXIT_CR3_WRITE_TRAP" }, new object[] { 0x9FL, "VMEXIT_CR15_WRITE_TRAP" },
        new object[] { 0xA0L, "VMEXIT_INVLPGB" }, new object[] { 0xA1L, "VMEXIT_INVLPGB_ILLEGAL" }, new object[] { 0xA2L, "VMEXIT_INVPCID" },
        new object[] { 0xA3L, "VMEXIT_MCOMMIT" }, new object[] { 0xA4L, "VMEXIT_TLBSYNC" }, new object[] { 0xA5L, "VMEXIT_BUSLOCK" },
        new object[] { 0xA6L, "VMEXIT_IDLE_HLT" },
        new object[] { 0x400L, "VMEXIT_NPF" }, new object[] { 0x401L, "VMEXIT_AVIC_INCOMPLETE_IPI" },
        new object[] { 0x402L, "VMEXIT_AVIC_NOACCEL" }, new object[] { 0x403L, "VMEXIT_VMGEXIT" },
        new object[] { -1L, "VMEXIT_INVALID" }, new object[] { -2L, "VMEXIT_BUSY" },
        new object[] { -3L, "VMEXIT_IDLE_REQUIRED" }, new object[] { -4L, "VMEXIT_INVALID_PMC" },
    };

    [TestCaseSource(nameof(ApmTable))]
    public void Name_ApmCode_IsApmName(long code, string name)
    {
        Assert.Multiple(() =>
        {
            Assert.That(SvmExitCodes.Name((SvmExitCode)code), Is.EqualTo(name));
            Assert.That(SvmExitCodes.IsDefined((SvmExitCode)code), Is.True);
            // The enum member's own name spells the same thing in C# case.
            string member = Enum.GetName((SvmExitCode)code)!;
            Assert.That(member.ToUpperInvariant(), Is.EqualTo(name["VMEXIT_".Length..].Replace("_", "")));
        });
    }

    [TestCase(0xA7L)]
    [TestCase(0xFFL)]
    [TestCase(0x3FFL)]
    [TestCase(0x404L)]
    [TestCase(-5L)]
    [TestCase(0xF000_0000L)]
    public void Name_UnassignedCode_IsUnknown(long code)
    {
        Assert.Multiple(() =>
        {
            Assert.That(SvmExitCodes.Name((SvmExitCode)code), Is.EqualTo("VMEXIT_UNKNOWN"));
            Assert.That(SvmExitCodes.IsDefined((SvmExitCode)code), Is.False);
        });
    }

    [Test]
    public void Enum_EveryMember_IsDefinedAndNamed()
    {
        foreach (var code in Enum.GetValues<SvmExitCode>())
            Assert.That(SvmExitCodes.Name(code), Does.StartWith("VMEXIT_").And.Not.EqualTo("VMEXIT_UNKNOWN"), code.ToString());
        // 16 CR reads + 16 CR writes + 32 DR + 32 exceptions + 48 (60h-8Fh) + 16 traps + 7 (A0h-A6h) + 4 (400h) + 4 errors
        Assert.That(Enum.GetValues<SvmExitCode>().Length, Is.EqualTo(16 + 16 + 32 + 32 + 48 + 16 + 7 + 4 + 4));
    }

    [Test]
    public void Classifiers_Ranges_AreExact()
    {
        Assert.Multiple(() =>
        {
            Assert.That(SvmExitCodes.IsException(SvmExitCode.Excp0 + 14), Is.True);
            Assert.That(SvmExitCodes.ExceptionVector(SvmExitCode.Excp0 + 14), Is.EqualTo(14));
            Assert.That(SvmExitCodes.ForException(13), Is.EqualTo((SvmExitCode)0x4D));
            Assert.That(SvmExitCodes.IsException((SvmExitCode)0x3F), Is.False);
            Assert.That(SvmExitCodes.IsException((SvmExitCode)0x5F), Is.True);
            Assert.That(SvmExitCodes.IsException(SvmExitCode.Intr), Is.False);
            Assert.That(SvmExitCodes.IsException(SvmExitCode.Invalid), Is.False);
            Assert.That(SvmExitCodes.IsCrRead(SvmExitCode.Cr3Read), Is.True);
            Assert.That(SvmExitCodes.IsCrRead(SvmExitCode.Cr0Write), Is.False);
            Assert.That(SvmExitCodes.IsCrRead(SvmExitCode.Invalid), Is.False);
            Assert.That(SvmExitCodes.IsCrWrite(SvmExitCode.Cr3Write), Is.True);
            Assert.That(SvmExitCodes.IsCrWrite(SvmExitCode.Dr0Read), Is.False);
            Assert.That(SvmExitCodes.IsDrRead(SvmExitCode.Dr7Read), Is.True);
            Assert.That(SvmExitCodes.IsDrWrite(SvmExitCode.Dr7Write), Is.True);
            Assert.That(SvmExitCodes.IsDrWrite(SvmExitCode.Excp0), Is.False);
            Assert.That(SvmExitCodes.IsCrWriteTrap(SvmExitCode.Cr4WriteTrap), Is.True);
            Assert.That(SvmExitCodes.IsCrWriteTrap(SvmExitCode.EferWriteTrap), Is.False);
            Assert.That(SvmExitCodes.RegisterNumber(SvmExitCode.Cr8Write), Is.EqualTo(8));
            Assert.That(SvmExitCodes.RegisterNumber(SvmExitCode.Cr3WriteTrap), Is.EqualTo(3));
            Assert.That(SvmExitCodes.IsError(SvmExitCode.Busy), Is.True);
            Assert.That(SvmExitCodes.IsError(SvmExitCode.Cr0Read), Is.False);
        });
    }
}
