using Hypervisor.Vmx.Hardware;

namespace Hypervisor.Vmx.Tests.Hardware;

/// <summary>Control bit positions (SDM §25.6-25.8) and the capability MSRs (SDM appendix A).</summary>
public class VmxControlsTests
{
    [TestCase(VmxPinBasedControls.ExternalInterruptExiting, 0)]
    [TestCase(VmxPinBasedControls.NmiExiting, 3)]
    [TestCase(VmxPinBasedControls.VirtualNmis, 5)]
    [TestCase(VmxPinBasedControls.ActivateVmxPreemptionTimer, 6)]
    [TestCase(VmxPinBasedControls.ProcessPostedInterrupts, 7)]
    public void PinBased_Bit(VmxPinBasedControls c, int bit) => Assert.That((uint)c, Is.EqualTo(1u << bit));

    [TestCase(VmxPrimaryProcessorControls.InterruptWindowExiting, 2)]
    [TestCase(VmxPrimaryProcessorControls.UseTscOffsetting, 3)]
    [TestCase(VmxPrimaryProcessorControls.HltExiting, 7)]
    [TestCase(VmxPrimaryProcessorControls.InvlpgExiting, 9)]
    [TestCase(VmxPrimaryProcessorControls.MwaitExiting, 10)]
    [TestCase(VmxPrimaryProcessorControls.RdpmcExiting, 11)]
    [TestCase(VmxPrimaryProcessorControls.RdtscExiting, 12)]
    [TestCase(VmxPrimaryProcessorControls.Cr3LoadExiting, 15)]
    [TestCase(VmxPrimaryProcessorControls.Cr3StoreExiting, 16)]
    [TestCase(VmxPrimaryProcessorControls.ActivateTertiaryControls, 17)]
    [TestCase(VmxPrimaryProcessorControls.Cr8LoadExiting, 19)]
    [TestCase(VmxPrimaryProcessorControls.Cr8StoreExiting, 20)]
    [TestCase(VmxPrimaryProcessorControls.UseTprShadow, 21)]
    [TestCase(VmxPrimaryProcessorControls.NmiWindowExiting, 22)]
    [TestCase(VmxPrimaryProcessorControls.MovDrExiting, 23)]
    [TestCase(VmxPrimaryProcessorControls.UnconditionalIoExiting, 24)]
    [TestCase(VmxPrimaryProcessorControls.UseIoBitmaps, 25)]
    [TestCase(VmxPrimaryProcessorControls.MonitorTrapFlag, 27)]
    [TestCase(VmxPrimaryProcessorControls.UseMsrBitmaps, 28)]
    [TestCase(VmxPrimaryProcessorControls.MonitorExiting, 29)]
    [TestCase(VmxPrimaryProcessorControls.PauseExiting, 30)]
    [TestCase(VmxPrimaryProcessorControls.ActivateSecondaryControls, 31)]
    public void PrimaryProcessorBased_Bit(VmxPrimaryProcessorControls c, int bit) => Assert.That((uint)c, Is.EqualTo(1u << bit));

    [TestCase(VmxSecondaryProcessorControls.VirtualizeApicAccesses, 0)]
    [TestCase(VmxSecondaryProcessorControls.EnableEpt, 1)]
    [TestCase(VmxSecondaryProcessorControls.DescriptorTableExiting, 2)]
    [TestCase(VmxSecondaryProcessorControls.EnableRdtscp, 3)]
    [TestCase(VmxSecondaryProcessorControls.EnableVpid, 5)]
    [TestCase(VmxSecondaryProcessorControls.WbinvdExiting, 6)]
    [TestCase(VmxSecondaryProcessorControls.UnrestrictedGuest, 7)]
    [TestCase(VmxSecondaryProcessorControls.EnableInvpcid, 12)]
    [TestCase(VmxSecondaryProcessorControls.VmcsShadowing, 14)]
    [TestCase(VmxSecondaryProcessorControls.EnablePml, 17)]
    [TestCase(VmxSecondaryProcessorControls.EnableXsavesXrstors, 20)]
    [TestCase(VmxSecondaryProcessorControls.UseTscScaling, 25)]
    [TestCase(VmxSecondaryProcessorControls.EnableUserWaitAndPause, 26)]
    [TestCase(VmxSecondaryProcessorControls.VmmBusLockDetection, 30)]
    [TestCase(VmxSecondaryProcessorControls.InstructionTimeout, 31)]
    public void SecondaryProcessorBased_Bit(VmxSecondaryProcessorControls c, int bit) => Assert.That((uint)c, Is.EqualTo(1u << bit));

    [TestCase(VmxExitControls.SaveDebugControls, 2)]
    [TestCase(VmxExitControls.HostAddressSpaceSize, 9)]
    [TestCase(VmxExitControls.LoadIa32PerfGlobalCtrl, 12)]
    [TestCase(VmxExitControls.AcknowledgeInterruptOnExit, 15)]
    [TestCase(VmxExitControls.SaveIa32Pat, 18)]
    [TestCase(VmxExitControls.LoadIa32Pat, 19)]
    [TestCase(VmxExitControls.SaveIa32Efer, 20)]
    [TestCase(VmxExitControls.LoadIa32Efer, 21)]
    [TestCase(VmxExitControls.SaveVmxPreemptionTimerValue, 22)]
    [TestCase(VmxExitControls.ClearIa32Bndcfgs, 23)]
    [TestCase(VmxExitControls.ClearIa32RtitCtl, 25)]
    [TestCase(VmxExitControls.SaveIa32PerfGlobalCtrl, 30)]
    [TestCase(VmxExitControls.ActivateSecondaryControls, 31)]
    public void Exit_Bit(VmxExitControls c, int bit) => Assert.That((uint)c, Is.EqualTo(1u << bit));

    [TestCase(VmxEntryControls.LoadDebugControls, 2)]
    [TestCase(VmxEntryControls.Ia32eModeGuest, 9)]
    [TestCase(VmxEntryControls.EntryToSmm, 10)]
    [TestCase(VmxEntryControls.DeactivateDualMonitorTreatment, 11)]
    [TestCase(VmxEntryControls.LoadIa32PerfGlobalCtrl, 13)]
    [TestCase(VmxEntryControls.LoadIa32Pat, 14)]
    [TestCase(VmxEntryControls.LoadIa32Efer, 15)]
    [TestCase(VmxEntryControls.LoadIa32Bndcfgs, 16)]
    [TestCase(VmxEntryControls.LoadIa32RtitCtl, 18)]
    [TestCase(VmxEntryControls.LoadCetState, 20)]
    [TestCase(VmxEntryControls.LoadFred, 23)]
    public void Entry_Bit(VmxEntryControls c, int bit) => Assert.That((uint)c, Is.EqualTo(1u << bit));

    [Test]
    public void SecondaryExit_FredBits()
    {
        Assert.Multiple(() =>
        {
            Assert.That((ulong)VmxSecondaryExitControls.SaveFred, Is.EqualTo(1UL));
            Assert.That((ulong)VmxSecondaryExitControls.LoadFred, Is.EqualTo(2UL));
        });
    }

    [Test]
    public void CapabilityMsr_Indices()
    {
        Assert.Multiple(() =>
        {
            Assert.That(VmxMsr.Ia32FeatureControl, Is.EqualTo(0x3Au));
            Assert.That(VmxMsr.Basic, Is.EqualTo(0x480u));
            Assert.That(VmxMsr.PinbasedCtls, Is.EqualTo(0x481u));
            Assert.That(VmxMsr.Misc, Is.EqualTo(0x485u));
            Assert.That(VmxMsr.Cr0Fixed0, Is.EqualTo(0x486u));
            Assert.That(VmxMsr.Cr4Fixed1, Is.EqualTo(0x489u));
            Assert.That(VmxMsr.VmcsEnum, Is.EqualTo(0x48Au));
            Assert.That(VmxMsr.ProcbasedCtls2, Is.EqualTo(0x48Bu));
            Assert.That(VmxMsr.EptVpidCap, Is.EqualTo(0x48Cu));
            Assert.That(VmxMsr.TruePinbasedCtls, Is.EqualTo(0x48Du));
            Assert.That(VmxMsr.TrueEntryCtls, Is.EqualTo(0x490u));
            Assert.That(VmxMsr.Vmfunc, Is.EqualTo(0x491u));
            Assert.That(VmxMsr.ProcbasedCtls3, Is.EqualTo(0x492u));
        });
    }

    [Test]
    public void Basic_Fields()
    {
        var b = VmxBasic.Create(0x4, 0x1000, VmxBasic.MemoryTypeWriteBack, insOutsInfo: true, trueControls: true);
        Assert.Multiple(() =>
        {
            Assert.That(b.Raw, Is.EqualTo(0x00D8_1000_0000_0004UL));
            Assert.That(b.RevisionId, Is.EqualTo(4u));
            Assert.That(b.RegionSize, Is.EqualTo(4096));
            Assert.That(b.MemoryType, Is.EqualTo(6));
            Assert.That(b.HasInsOutsInfo && b.HasTrueControls, Is.True);
            Assert.That(b.IsPhysicalAddress32 || b.HasNoErrorCodeCheck, Is.False);
            Assert.That(new VmxBasic(1UL << 56).HasNoErrorCodeCheck, Is.True);
        });
    }

    [Test]
    public void AllowedSettings_MustBeOneAndMayBeOne()
    {
        // Bits 1, 4, 5 must be 1 (default-1 pin-based controls); bits 0-7 may be 1.
        var s = VmxAllowedSettings.Create(mustBeOne: 0x32, mayBeOne: 0xFF);
        Assert.Multiple(() =>
        {
            Assert.That(s.Raw, Is.EqualTo(0x0000_00FF_0000_0032UL));
            Assert.That(s.IsAllowed(0x32), Is.True);
            Assert.That(s.IsAllowed(0x3B), Is.True);
            Assert.That(s.IsAllowed(0x30), Is.False, "a must-be-one bit clear");
            Assert.That(s.IsAllowed(0x132), Is.False, "a bit outside the allowed 1-settings");
            Assert.That(s.Adjust(0x101), Is.EqualTo(0x33u));
        });
    }

    [Test]
    public void FixedBits_Cr0()
    {
        const ulong fixed0 = 0x8000_0021; // PG, NE, PE
        const ulong fixed1 = 0xFFFF_FFFF;
        Assert.Multiple(() =>
        {
            Assert.That(VmxFixedBits.IsAllowed(0x8000_0031, fixed0, fixed1), Is.True);
            Assert.That(VmxFixedBits.IsAllowed(0x0000_0031, fixed0, fixed1), Is.False);
            Assert.That(VmxFixedBits.IsAllowed(0x1_8000_0021, fixed0, fixed1), Is.False);
            Assert.That(VmxFixedBits.IsAllowed(0x31, fixed0 & ~0x8000_0001UL, fixed1), Is.True, "unrestricted guest: PE/PG exempt");
        });
    }

    [Test]
    public void Misc_Fields()
    {
        var m = new VmxMisc(0x0000_0000_2000_01E5 | (3UL << 16) | (1UL << 25));
        Assert.Multiple(() =>
        {
            Assert.That(m.PreemptionTimerRate, Is.EqualTo(5));
            Assert.That(m.Cr3TargetCount, Is.EqualTo(3));
            Assert.That(m.MaxMsrListEntries, Is.EqualTo(1024));
            Assert.That(m.CanVmwriteAnyField, Is.True);
            Assert.That(m.Raw & VmxMisc.ActivityHlt, Is.Not.Zero);
        });
    }

    [Test]
    public void EptVpidCap_BitPositions()
    {
        Assert.Multiple(() =>
        {
            Assert.That((ulong)VmxEptVpidCapabilities.PageWalkLength4, Is.EqualTo(1UL << 6));
            Assert.That((ulong)VmxEptVpidCapabilities.MemoryTypeWriteBack, Is.EqualTo(1UL << 14));
            Assert.That((ulong)VmxEptVpidCapabilities.Pde2MiBPages, Is.EqualTo(1UL << 16));
            Assert.That((ulong)VmxEptVpidCapabilities.Pdpte1GiBPages, Is.EqualTo(1UL << 17));
            Assert.That((ulong)VmxEptVpidCapabilities.Invept, Is.EqualTo(1UL << 20));
            Assert.That((ulong)VmxEptVpidCapabilities.InveptAllContext, Is.EqualTo(1UL << 26));
            Assert.That((ulong)VmxEptVpidCapabilities.Invvpid, Is.EqualTo(1UL << 32));
            Assert.That((ulong)VmxEptVpidCapabilities.InvvpidSingleContextRetainingGlobals, Is.EqualTo(1UL << 43));
        });
    }
}
