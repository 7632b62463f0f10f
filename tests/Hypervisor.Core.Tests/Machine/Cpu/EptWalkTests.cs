using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Virtualization;
using Hypervisor.Core.Tests.Support;
using static Iced.Intel.AssemblerRegisters;
using static Hypervisor.Core.Tests.Support.NestedGuest;

namespace Hypervisor.Core.Tests.Machine.Cpu;

/// <summary>The second-stage walk in EPT format (SDM vol. 3 §29.3) with hand-built tables: the
/// permission bits, violations with their access and permission bits, misconfigurations.
/// NestedTables' table entries (bits 2:0 set) are EPT read/write/execute entries too.</summary>
public class EptWalkTests
{
    private const ulong R = 1, W = 2, X = 4, WriteBack = 6UL << 3, Large = 1UL << 7;

    private static (GuestMachine M, NestedTables N) CreateEpt()
    {
        var m = new GuestMachine(GuestMode.Long64);
        var n = new NestedTables(m.Memory);
        n.IdentityMap(0, GuestMachine.RamSize, R | W | X | WriteBack);
        return (m, n);
    }

    private static CpuExit RunEpt(GuestMachine m, NestedTables n, Action<Iced.Intel.Assembler> build)
    {
        var a = m.NewAssembler();
        build(a);
        a.hlt();
        m.Load(a);
        m.Cpu.Intercepts = new GuestIntercepts();
        m.Cpu.NestedPaging = new NestedPaging(n.Root, NoExecute: true, Ept: true);
        return m.Run(100_000);
    }

    [Test]
    public void ReadOnlyPage_ReadAllowed_WriteIsAViolationWithPermissions()
    {
        var (m, n) = CreateEpt();
        using var _ = m;
        n.Map4K(Page, Page, R | X | WriteBack);
        var exit = RunEpt(m, n, a => { a.mov(rax, Page); a.mov(rbx, __qword_ptr[rax]); a.mov(__qword_ptr[rax + 8], rbx); });
        var info = ExpectNpf(m, exit);
        Assert.Multiple(() =>
        {
            Assert.That(info.IsEptMisconfiguration, Is.False);
            Assert.That(info.ErrorCode, Is.EqualTo((uint)(EptViolationCode.Write | ((R | X) << EptViolationCode.PermissionShift))));
            Assert.That((info.Address, info.LinearAddress, info.HasLinearAddress, info.DuringGuestWalk), Is.EqualTo((Page + 8, Page + 8, true, false)));
        });
    }

    [Test]
    public void NotPresent_ViolationWithNoPermissions_ReadAccess()
    {
        var (m, n) = CreateEpt();
        using var _ = m;
        n.Unmap4K(Page);
        var info = ExpectNpf(m, RunEpt(m, n, a => { a.mov(rax, Page); a.mov(rbx, __qword_ptr[rax]); }));
        Assert.That(info.ErrorCode, Is.EqualTo((uint)EptViolationCode.Read));
    }

    [Test]
    public void NoExecutePermission_FetchIsAViolation()
    {
        var (m, n) = CreateEpt();
        using var _ = m;
        n.Map4K(CodePage, CodePage, R | W | WriteBack);
        m.Memory.Write(CodePage, new byte[] { 0xF4 });
        var info = ExpectNpf(m, RunEpt(m, n, a => { a.mov(rax, CodePage); a.jmp(rax); }));
        Assert.That(info.ErrorCode, Is.EqualTo((uint)(EptViolationCode.Fetch | ((R | W) << EptViolationCode.PermissionShift))));
    }

    [TestCase(W, "write without read")]
    [TestCase(W | X, "write and execute without read")]
    [TestCase(R | W | X | (2UL << 3), "memory type 2")]
    [TestCase(R | W | X | WriteBack | (1UL << 50), "a bit above MAXPHYADDR")]
    public void Misconfigured_LeafIsAMisconfigurationNotAViolation(ulong bits, string what)
    {
        var (m, n) = CreateEpt();
        using var _ = m;
        n.Map4K(Page, Page, bits & ~(1UL << 50));
        if ((bits & (1UL << 50)) != 0)
            n.SetEntry(Page, 1, n.Entry(Page, 1) | (1UL << 50));
        var info = ExpectNpf(m, RunEpt(m, n, a => { a.mov(rax, Page); a.mov(rbx, __qword_ptr[rax]); }));
        Assert.That((info.IsEptMisconfiguration, info.Address), Is.EqualTo((true, Page)), what);
    }

    [Test]
    public void LargeLeaf_2MiB_MapsTheWholeRange()
    {
        var (m, n) = CreateEpt();
        using var _ = m;
        m.Memory.WriteU64(0xA00000 + 0x1230, 0x5151);
        Assert.That(n.Entry(0xA00000, 2) & Large, Is.EqualTo(Large));
        var exit = RunEpt(m, n, a => { a.mov(rax, 0xA00000 + 0x1230); a.mov(rbx, __qword_ptr[rax]); });
        Assert.That(exit.Reason, Is.EqualTo(CpuExitReason.Hlt), exit.ToString());
        Assert.That(m.Cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x5151UL));
    }
}
