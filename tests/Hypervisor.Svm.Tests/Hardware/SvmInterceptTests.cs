using Hypervisor.Svm.Hardware;

namespace Hypervisor.Svm.Tests.Hardware;

/// <summary>Intercept bits against AMD APM vol. 2 table B-1: each named intercept at its byte offset and bit.</summary>
public class SvmInterceptTests
{
    // (intercept, APM offset of its 32-bit word, bit within the word)
    private static readonly object[] Table =
    {
        // 000h: CR reads 15:0, CR writes 31:16
        new object[] { SvmIntercept.Cr0Read, 0x000, 0 },
        new object[] { SvmIntercept.Cr3Read, 0x000, 3 },
        new object[] { SvmIntercept.Cr8Read, 0x000, 8 },
        new object[] { SvmIntercept.Cr15Read, 0x000, 15 },
        new object[] { SvmIntercept.Cr0Write, 0x000, 16 },
        new object[] { SvmIntercept.Cr3Write, 0x000, 19 },
        new object[] { SvmIntercept.Cr4Write, 0x000, 20 },
        new object[] { SvmIntercept.Cr8Write, 0x000, 24 },
        new object[] { SvmIntercept.Cr15Write, 0x000, 31 },
        // 004h: DR reads 15:0, DR writes 31:16
        new object[] { SvmIntercept.Dr0Read, 0x004, 0 },
        new object[] { SvmIntercept.Dr7Read, 0x004, 7 },
        new object[] { SvmIntercept.Dr15Read, 0x004, 15 },
        new object[] { SvmIntercept.Dr0Write, 0x004, 16 },
        new object[] { SvmIntercept.Dr7Write, 0x004, 23 },
        new object[] { SvmIntercept.Dr15Write, 0x004, 31 },
        // 008h: exceptions
        new object[] { SvmIntercept.Exception0, 0x008, 0 },
        new object[] { SvmIntercept.Exception0 + 14, 0x008, 14 },
        new object[] { SvmIntercept.Exception0 + 31, 0x008, 31 },
        // 00Ch
        new object[] { SvmIntercept.Intr, 0x00C, 0 },
        new object[] { SvmIntercept.Nmi, 0x00C, 1 },
        new object[] { SvmIntercept.Smi, 0x00C, 2 },
        new object[] { SvmIntercept.Init, 0x00C, 3 },
        new object[] { SvmIntercept.Vintr, 0x00C, 4 },
        new object[] { SvmIntercept.Cr0SelectiveWrite, 0x00C, 5 },
        new object[] { SvmIntercept.IdtrRead, 0x00C, 6 },
        new object[] { SvmIntercept.GdtrRead, 0x00C, 7 },
        new object[] { SvmIntercept.LdtrRead, 0x00C, 8 },
        new object[] { SvmIntercept.TrRead, 0x00C, 9 },
        new object[] { SvmIntercept.IdtrWrite, 0x00C, 10 },
        new object[] { SvmIntercept.GdtrWrite, 0x00C, 11 },
        new object[] { SvmIntercept.LdtrWrite, 0x00C, 12 },
        new object[] { SvmIntercept.TrWrite, 0x00C, 13 },
        new object[] { SvmIntercept.Rdtsc, 0x00C, 14 },
        new object[] { SvmIntercept.Rdpmc, 0x00C, 15 },
        new object[] { SvmIntercept.Pushf, 0x00C, 16 },
        new object[] { SvmIntercept.Popf, 0x00C, 17 },
        new object[] { SvmIntercept.Cpuid, 0x00C, 18 },
        new object[] { SvmIntercept.Rsm, 0x00C, 19 },
        new object[] { SvmIntercept.Iret, 0x00C, 20 },
        new object[] { SvmIntercept.Swint, 0x00C, 21 },
        new object[] { SvmIntercept.Invd, 0x00C, 22 },
        new object[] { SvmIntercept.Pause, 0x00C, 23 },
        new object[] { SvmIntercept.Hlt, 0x00C, 24 },
        new object[] { SvmIntercept.Invlpg, 0x00C, 25 },
        new object[] { SvmIntercept.Invlpga, 0x00C, 26 },
        new object[] { SvmIntercept.IoioProt, 0x00C, 27 },
        new object[] { SvmIntercept.MsrProt, 0x00C, 28 },
        new object[] { SvmIntercept.TaskSwitch, 0x00C, 29 },
        new object[] { SvmIntercept.FerrFreeze, 0x00C, 30 },
        new object[] { SvmIntercept.Shutdown, 0x00C, 31 },
        // 010h
        new object[] { SvmIntercept.Vmrun, 0x010, 0 },
        new object[] { SvmIntercept.Vmmcall, 0x010, 1 },
        new object[] { SvmIntercept.Vmload, 0x010, 2 },
        new object[] { SvmIntercept.Vmsave, 0x010, 3 },
        new object[] { SvmIntercept.Stgi, 0x010, 4 },
        new object[] { SvmIntercept.Clgi, 0x010, 5 },
        new object[] { SvmIntercept.Skinit, 0x010, 6 },
        new object[] { SvmIntercept.Rdtscp, 0x010, 7 },
        new object[] { SvmIntercept.Icebp, 0x010, 8 },
        new object[] { SvmIntercept.Wbinvd, 0x010, 9 },
        new object[] { SvmIntercept.Monitor, 0x010, 10 },
        new object[] { SvmIntercept.Mwait, 0x010, 11 },
        new object[] { SvmIntercept.MwaitConditional, 0x010, 12 },
        new object[] { SvmIntercept.Xsetbv, 0x010, 13 },
        new object[] { SvmIntercept.Rdpru, 0x010, 14 },
        new object[] { SvmIntercept.EferWriteTrap, 0x010, 15 },
        new object[] { SvmIntercept.Cr0WriteTrap, 0x010, 16 },
        new object[] { SvmIntercept.Cr3WriteTrap, 0x010, 19 },
        new object[] { SvmIntercept.Cr4WriteTrap, 0x010, 20 },
        new object[] { SvmIntercept.Cr8WriteTrap, 0x010, 24 },
        new object[] { SvmIntercept.Cr15WriteTrap, 0x010, 31 },
        // 014h
        new object[] { SvmIntercept.Invlpgb, 0x014, 0 },
        new object[] { SvmIntercept.InvlpgbIllegal, 0x014, 1 },
        new object[] { SvmIntercept.Invpcid, 0x014, 2 },
        new object[] { SvmIntercept.Mcommit, 0x014, 3 },
        new object[] { SvmIntercept.Tlbsync, 0x014, 4 },
        new object[] { SvmIntercept.BusLock, 0x014, 5 },
        new object[] { SvmIntercept.IdleHlt, 0x014, 6 },
    };

    [TestCaseSource(nameof(Table))]
    public void SetIntercept_Bit_LandsAtApmWordAndBit(SvmIntercept intercept, int wordOffset, int bit)
    {
        using var vmcb = new Vmcb();
        vmcb.SetIntercept(intercept);
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.Read32(wordOffset), Is.EqualTo(1u << bit));
            Assert.That(vmcb.Bytes.ToArray().Count(b => b != 0), Is.EqualTo(1), "exactly one byte changed");
            Assert.That(vmcb.IsIntercepted(intercept), Is.True);
        });
        vmcb.ClearIntercept(intercept);
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.Read32(wordOffset), Is.EqualTo(0u));
            Assert.That(vmcb.IsIntercepted(intercept), Is.False);
        });
    }

    [TestCaseSource(nameof(Table))]
    public void IsIntercepted_RawBitSet_ReportsOnlyThatIntercept(SvmIntercept intercept, int wordOffset, int bit)
    {
        using var vmcb = new Vmcb();
        vmcb.Write32(wordOffset, 1u << bit);
        Assert.That(vmcb.IsIntercepted(intercept), Is.True);
        foreach (SvmIntercept other in Enum.GetValues<SvmIntercept>())
        {
            if (other != intercept)
                Assert.That(vmcb.IsIntercepted(other), Is.False, other.ToString());
        }
    }

    [Test]
    public void SetIntercept_SeveralInOneWord_Accumulate()
    {
        using var vmcb = new Vmcb();
        vmcb.SetIntercept(SvmIntercept.Cpuid);
        vmcb.SetIntercept(SvmIntercept.Hlt);
        vmcb.SetIntercept(SvmIntercept.IoioProt, true);
        vmcb.SetIntercept(SvmIntercept.MsrProt, true);
        vmcb.SetIntercept(SvmIntercept.MsrProt, false);
        Assert.That(vmcb.InterceptMisc1, Is.EqualTo((1u << 18) | (1u << 24) | (1u << 27)));
    }

    [Test]
    public void RegisterHelpers_ReadTheirHalfWords()
    {
        using var vmcb = new Vmcb();
        vmcb.InterceptCrRead = 1 << 3;
        vmcb.InterceptCrWrite = (1 << 0) | (1 << 8);
        vmcb.InterceptDrWrite = 1 << 7;
        vmcb.InterceptExceptions = (1u << 14) | (1u << 6);
        Assert.Multiple(() =>
        {
            Assert.That(vmcb.IsCrReadIntercepted(3), Is.True);
            Assert.That(vmcb.IsCrReadIntercepted(0), Is.False);
            Assert.That(vmcb.IsCrWriteIntercepted(8), Is.True);
            Assert.That(vmcb.IsCrWriteIntercepted(3), Is.False);
            Assert.That(vmcb.IsDrWriteIntercepted(7), Is.True);
            Assert.That(vmcb.IsDrReadIntercepted(7), Is.False);
            Assert.That(vmcb.IsExceptionIntercepted(14), Is.True);
            Assert.That(vmcb.IsExceptionIntercepted(6), Is.True);
            Assert.That(vmcb.IsExceptionIntercepted(13), Is.False);
            Assert.That(vmcb.IsIntercepted(SvmIntercept.Cr3Read), Is.True);
            Assert.That(vmcb.IsIntercepted(SvmIntercept.Cr8Write), Is.True);
            Assert.That(vmcb.IsIntercepted(SvmIntercept.Exception0 + 14), Is.True);
        });
    }

    [Test]
    public void Enum_LastMember_IsIdleHltInWord5()
    {
        var all = Enum.GetValues<SvmIntercept>();
        Assert.Multiple(() =>
        {
            Assert.That(all.Max(), Is.EqualTo(SvmIntercept.IdleHlt));
            Assert.That((int)SvmIntercept.IdleHlt, Is.EqualTo(5 * 32 + 6));
            Assert.That((int)SvmIntercept.Shutdown, Is.EqualTo(3 * 32 + 31));
            Assert.That((int)SvmIntercept.Cr15WriteTrap, Is.EqualTo(4 * 32 + 31));
        });
    }
}
