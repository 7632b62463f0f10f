using System.Text;
using System.Text.Json.Nodes;
using Hypervisor.Core.Snapshots;
using Hypervisor.Core.X86;
using Hypervisor.Svm.Tests.Support;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Svm.Tests.Snapshots;

/// <summary>vCPU snapshots under SVM: capture, the file form, restore into a new VM, and runs that
/// continue from a restored snapshot ending exactly as the run that was never interrupted.</summary>
public class SvmSnapshotTests
{
    /// <summary>A guest that leaves a trail in every kind of state: a loop of CALL/RET (RAP), RDTSC
    /// (clock), stores to memory, OUTs (exits to userspace), CPUID and an IN; then HLT.</summary>
    private static void Busy(Assembler a)
    {
        var loop = a.CreateLabel();
        var sub = a.CreateLabel();
        var done = a.CreateLabel();
        a.mov(ecx, 12);
        a.mov(rdi, SvmGuest.DataBase);
        a.Label(ref loop);
        a.call(sub);
        a.rdtsc();
        a.mov(__qword_ptr[rdi], rax);
        a.add(rdi, 8);
        a.mov(edx, 0x80);
        a.mov(eax, ecx);
        a.@out(dx, eax);          // exit to userspace
        a.push(rcx);
        a.mov(eax, 1);
        a.cpuid();               // exit handled in the hypervisor
        a.pop(rcx);
        a.dec(ecx);
        a.jnz(loop);
        a.mov(edx, 0x81);
        a.@in(eax, dx);          // an IN completed by userspace
        a.mov(r15, rax);
        a.jmp(done);
        a.Label(ref sub);
        a.imul(r8, rcx, 3);
        a.ret();
        a.Label(ref done);
        a.hlt();
    }

    private static SvmGuest NewGuest()
    {
        var g = new SvmGuest();
        g.Load(Busy);
        return g;
    }

    /// <summary>Runs to the next exit to userspace, servicing an IN with a fixed value; true at HLT.</summary>
    private static bool Step(SvmGuest g)
    {
        var exit = g.Run();
        if (exit.Reason == KvmExitReason.Io && exit.IoIn)
            g.Vcpu.CompleteIo(0x5A5A);
        Assert.That(exit.Reason, Is.AnyOf(KvmExitReason.Io, KvmExitReason.Hlt), exit.ToString());
        return exit.Reason == KvmExitReason.Hlt;
    }

    private static string Text(SvmGuest g) => MachineSnapshot.Capture(g.Vcpu, []).ToJson();

    private static string RunToEnd(SvmGuest g)
    {
        for (int i = 0; i < 1000 && !Step(g); i++)
        {
        }
        return Text(g);
    }

    [Test]
    public void Capture_ThenRestoreIntoNewVm_CapturesIdentically()
    {
        using var g = NewGuest();
        Step(g);
        Step(g);
        var snap = MachineSnapshot.Capture(g.Vcpu, []);
        using var h = new SvmGuest();
        snap.Restore(h.Vcpu, [], memoryIsZero: false);
        Assert.That(Text(h), Is.EqualTo(snap.ToJson()));
    }

    [Test]
    public void Capture_ChangesNothing_TwoCapturesAreEqual()
    {
        using var g = NewGuest();
        Step(g);
        Assert.That(Text(g), Is.EqualTo(Text(g)));
    }

    [Test]
    public void TwoRuns_SameGuest_BitIdenticalFinalSnapshots()
    {
        using var a = NewGuest();
        using var b = NewGuest();
        Assert.That(RunToEnd(b), Is.EqualTo(RunToEnd(a)));
    }

    [Test]
    public void RestoreAtEveryExit_RunOn_EndsExactlyAsTheUninterruptedRun()
    {
        string expected;
        using (var whole = NewGuest())
            expected = RunToEnd(whole);
        for (int k = 0; k <= 13; k++)
        {
            using var first = NewGuest();
            bool halted = false;
            for (int i = 0; i < k && !halted; i++)
                halted = Step(first);
            var file = Path.Combine(Path.GetTempPath(), $"hv-snap-{Environment.ProcessId}-{k}.snap");
            try
            {
                MachineSnapshot.Capture(first.Vcpu, []).Save(file);
                using var second = new SvmGuest();
                MachineSnapshot.Load(file).Restore(second.Vcpu, [], memoryIsZero: false);
                string final = halted ? Text(second) : RunToEnd(second);
                var diff = SnapshotDiff.Compare(JsonNode.Parse(expected), JsonNode.Parse(final));
                Assert.That(diff, Is.Empty, $"restored after {k} exits:\n{SnapshotDiff.Format(diff)}");
            }
            finally
            {
                File.Delete(file);
                File.Delete(file + ".mem");
            }
        }
    }

    [Test]
    public void Snapshot_HasTheIssueKeysInOrder_And64BitHex()
    {
        using var g = NewGuest();
        Step(g);
        var root = MachineSnapshot.Capture(g.Vcpu, []).Content;
        var keys = root.Select(kv => kv.Key).ToList();
        Assert.That(keys, Is.EqualTo(new[]
        {
            "format", "version", "vendor", "hostCpu", "vm", "regs", "sregs", "msrs", "xcr0", "xsave", "cpuid", "regCache", "rap",
            "vmcb", "events", "clock", "exits", "tdp", "devices", "memory",
        }));
        Assert.That(root["regs"]!["rip"]!.ToString(), Does.Match("^0x[0-9a-f]{16}$"));
        Assert.That(root["vmcb"]!["save"]!["rip"]!.ToString(), Is.EqualTo(root["regs"]!["rip"]!.ToString()));
        Assert.That((long)root["rap"]!["calls"]!, Is.GreaterThan(0), "the guest's CALLs are counted");
    }

    [Test]
    public void X87State_RoundTrips()
    {
        using var g = NewGuest();
        Step(g);
        var x = g.Vcpu.Cpu.X87;
        (x.Fcw, x.Fsw, x.Ftw, x.Fop, x.Fip, x.Fdp) = (0x027F, 0x3800, 0x81, 0x1D9, 0x10020, 0x200000);
        x.St[0] = 0xAB;
        x.St[79] = 0xCD;
        var snap = MachineSnapshot.Capture(g.Vcpu, []);
        Assert.That(snap.Content["xsave"]!["x87"]!["fcw"]!.ToString(), Is.EqualTo("0x027f"));
        using var h = new SvmGuest();
        snap.Restore(h.Vcpu, [], memoryIsZero: false);
        var y = h.Vcpu.Cpu.X87;
        Assert.That((y.Fcw, y.Fsw, y.Ftw, y.Fop, y.Fip, y.Fdp), Is.EqualTo((x.Fcw, x.Fsw, x.Ftw, x.Fop, x.Fip, x.Fdp)));
        Assert.That(y.St, Is.EqualTo(x.St));
    }

    [Test]
    public void Restore_IntoVmOfOtherVendor_RefusedAndNothingChanges()
    {
        using var g = NewGuest();
        Step(g);
        var snap = MachineSnapshot.Capture(g.Vcpu, []);
        snap.Content["vendor"] = "vmx";
        using var h = NewGuest();
        string before = Text(h);
        var e = Assert.Throws<SnapshotException>(() => snap.Restore(h.Vcpu, [], memoryIsZero: false))!;
        Assert.That(e.Message, Does.Contain("vendor vmx").And.Contain("under svm"));
        Assert.That(Text(h), Is.EqualTo(before));
    }
}
