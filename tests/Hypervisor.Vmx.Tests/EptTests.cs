using Hypervisor.Core.X86;
using Hypervisor.Core.X86.Mmu;
using Hypervisor.Vmx.Hardware;
using Hypervisor.Vmx.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Vmx.Tests;

/// <summary>EPT: the TDP MMU builds EPT-format tables on EPT violations; the violation's
/// qualification and addresses; unbacked guest-physical space reaches userspace as MMIO through an
/// EPT misconfiguration.</summary>
public class EptTests
{
    private const ulong PageDirectory = 0x102000; // VmxGuest's PD: one 2 MiB entry per 8 bytes

    [Test]
    public void FirstTouch_EptViolationsMapGuestRam_InEptFormat()
    {
        using var g = new VmxGuest();
        g.Load(a => { a.mov(rbx, VmxGuest.DataBase + 0x10); a.mov(__qword_ptr[rbx], rbx); a.hlt(); });
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
        Assert.That(g.Exits(VmxExitReason.EptViolation), Is.EqualTo(2), "one 2 MiB page for code, stack and page tables, one for the data");
        var mmu = g.Vm.Mmu!;
        Assert.That(mmu.Format, Is.EqualTo(TdpFormat.Ept));
        ulong leaf = mmu.LookupLeaf(VmxGuest.DataBase);
        Assert.Multiple(() =>
        {
            Assert.That(leaf & 7, Is.EqualTo(7UL), "read, write, execute");
            Assert.That((leaf >> 3) & 7, Is.EqualTo(6UL), "memory type write-back");
            Assert.That(leaf & (1UL << 7), Is.Not.Zero, "a 2 MiB page: the slot covers the whole range");
            Assert.That(leaf & 0x000F_FFFF_FFE0_0000UL, Is.EqualTo(VmxGuest.DataBase));
        });
        Assert.That(g.Vm.Memory.ReadU64(VmxGuest.DataBase + 0x10), Is.EqualTo(VmxGuest.DataBase + 0x10));
    }

    [Test]
    public void WriteToReadOnlySlot_EptViolationQualificationAndAddresses()
    {
        using var g = new VmxGuest();
        const ulong romBase = 16UL << 20;
        g.Vm.SetUserMemoryRegion(1, romBase, 2UL << 20, readOnly: true);
        g.Vm.Memory.WriteU64(PageDirectory + 8 * 8, romBase | 0x83);
        g.Load(a => { a.mov(rbx, romBase + 0x10); a.mov(rax, __qword_ptr[rbx]); a.mov(__qword_ptr[rbx], rax); a.hlt(); });
        var exit = g.Run();
        Assert.That((exit.Reason, exit.HardwareReason), Is.EqualTo((KvmExitReason.InternalError, (ulong)VmxExitReason.EptViolation)), exit.ToString());
        var q = new VmxEptViolationQualification(g.Vmcs[VmcsField.ExitQualification]);
        Assert.Multiple(() =>
        {
            Assert.That((q.IsRead, q.IsWrite, q.IsFetch), Is.EqualTo((false, true, false)), "a data write");
            Assert.That(q.EptPermissions, Is.EqualTo(0b101), "the page is readable and executable, not writable");
            Assert.That((q.IsGuestLinearAddressValid, q.IsTranslatedAccess), Is.EqualTo((true, true)), "the final translation of a linear address");
            Assert.That(g.Vmcs[VmcsField.GuestPhysicalAddress], Is.EqualTo(romBase + 0x10));
            Assert.That(g.Vmcs[VmcsField.GuestLinearAddress], Is.EqualTo(romBase + 0x10));
            Assert.That(g.Vmcs[VmcsField.VmExitInstructionLength], Is.Zero, "not an instruction exit");
            Assert.That(g.Vcpu.ReadGpr(0), Is.Zero, "the read before it was allowed (zeroed RAM)");
        });
    }

    [Test]
    public void UnbackedGuestPhysical_EptMisconfigurationThenKvmExitMmio()
    {
        using var g = new VmxGuest();
        const ulong mmio = 24UL << 20;
        g.Vm.Memory.WriteU64(PageDirectory + 12 * 8, mmio | 0x83);
        g.Load(a => { a.mov(rbx, mmio + 0x40); a.mov(eax, __dword_ptr[rbx]); a.mov(__dword_ptr[rbx + 4], eax); a.hlt(); });
        var exit = g.Run();
        Assert.That((exit.Reason, exit.MmioAddress, exit.MmioLength, exit.MmioIsWrite), Is.EqualTo((KvmExitReason.Mmio, mmio + 0x40, (byte)4, false)));
        Assert.That(g.Vmcs[VmcsField.ExitReason], Is.EqualTo((ulong)VmxExitReason.EptMisconfiguration));
        Assert.That(g.Vmcs[VmcsField.GuestPhysicalAddress], Is.EqualTo(mmio + 0x40));
        g.Vcpu.CompleteMmio(0x1234_5678);
        exit = g.Run();
        Assert.That((exit.Reason, exit.MmioAddress, exit.MmioIsWrite, exit.MmioData), Is.EqualTo((KvmExitReason.Mmio, mmio + 0x44, true, 0x1234_5678UL)));
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Hlt));
    }
}
