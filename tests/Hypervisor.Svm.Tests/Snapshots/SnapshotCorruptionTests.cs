using System.Text;
using Hypervisor.Core.Snapshots;
using Hypervisor.Core.X86;
using Hypervisor.Svm.Tests.Support;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Svm.Tests.Snapshots;

/// <summary>A damaged snapshot is refused with a message that says what is wrong, and the VM it
/// was to be restored into is left exactly as it was.</summary>
public class SnapshotCorruptionTests
{
    private string _dir = "";

    [SetUp]
    public void CreateDirectory() => _dir = Directory.CreateTempSubdirectory("hv-snap-corrupt-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_dir, recursive: true);

    private static SvmGuest Guest()
    {
        var g = new SvmGuest();
        g.Load(a =>
        {
            a.mov(rdi, SvmGuest.DataBase);
            a.mov(__qword_ptr[rdi], 0x1234);   // a non-zero chunk in guest memory
            a.mov(edx, 0x80);
            a.@out(dx, al);
            a.hlt();
        });
        Assert.That(g.Run().Reason, Is.EqualTo(KvmExitReason.Io));
        return g;
    }

    private static string Text(SvmGuest g) => MachineSnapshot.Capture(g.Vcpu, [], includeMemory: false).ToJson();

    /// <summary>Guest memory as its chunk hashes and SHA-256.</summary>
    private static string[] Memory(SvmGuest g)
    {
        var image = MachineSnapshot.Capture(g.Vcpu, []).Memory!;
        return [.. image.Chunks, image.Sha256];
    }

    /// <summary>Saves a snapshot of a guest stopped at its OUT; returns the path.</summary>
    private string Saved()
    {
        using var g = Guest();
        string path = Path.Combine(_dir, "vm.snap");
        MachineSnapshot.Capture(g.Vcpu, []).Save(path);
        return path;
    }

    /// <summary>Loading and restoring <paramref name="path"/> into a fresh guest fails with a
    /// <see cref="SnapshotException"/> and the guest is unchanged; returns the message.</summary>
    private static string Refused(string path)
    {
        using var target = new SvmGuest();
        string before = Text(target);
        var memoryBefore = Memory(target);
        var e = Assert.Throws<SnapshotException>(() => MachineSnapshot.Load(path).Restore(target.Vcpu, [], memoryIsZero: false))!;
        Assert.That(Text(target), Is.EqualTo(before), "a refused snapshot changed the VM");
        Assert.That(Memory(target), Is.EqualTo(memoryBefore), "a refused snapshot changed guest memory");
        return e.Message;
    }

    [Test]
    public void FlipAByte_InEachRegionOfTheFile_Refused()
    {
        string path = Saved();
        byte[] good = File.ReadAllBytes(path);
        const int Regions = 24;
        for (int k = 0; k < Regions; k++)
        {
            int at = (int)((long)good.Length * k / Regions);
            foreach (int offset in new[] { at, Math.Min(good.Length - 1, at + 7) })
            {
                var bad = (byte[])good.Clone();
                bad[offset] ^= 0x01;
                File.WriteAllBytes(path, bad);
                string message = Refused(path);
                Assert.That(message, Does.Contain(path).And.Match("checksum|truncated|not valid|not an hv snapshot|version|does not end"),
                    $"flipped byte {offset}");
            }
        }
        // The checksum digits and the very last byte too.
        foreach (int offset in new[] { good.Length - 5, good.Length - 1, good.Length - 2 })
        {
            var bad = (byte[])good.Clone();
            bad[offset] ^= 0x01;
            File.WriteAllBytes(path, bad);
            Refused(path);
        }
    }

    [Test]
    public void Truncate_AtManyLengths_RefusedAsTruncated()
    {
        string path = Saved();
        byte[] good = File.ReadAllBytes(path);
        foreach (int length in new[] { 0, 1, 100, good.Length / 2, good.Length - 80, good.Length - 3, good.Length - 1 })
        {
            File.WriteAllBytes(path, good[..length]);
            Assert.That(Refused(path), Does.Contain("truncated").Or.Contain("checksum"), $"truncated to {length} bytes");
        }
    }

    [Test]
    public void ChangeVersion_RefusedNamingTheVersion()
    {
        string path = Saved();
        string text = File.ReadAllText(path).Replace("\"version\": 1,", "\"version\": 2,");
        File.WriteAllText(path, text);
        Assert.That(Refused(path), Does.Contain("snapshot version 2 is not supported").And.Contain("version 1"));
    }

    [Test]
    public void WrongVendor_RefusedNamingBoth()
    {
        string path = Saved();
        // A file written by another vendor has its own valid checksum: build one.
        var snap = MachineSnapshot.Load(path);
        snap.Content["vendor"] = "vmx";
        File.WriteAllText(path, snap.ToJson());
        Assert.That(Refused(path), Does.Contain("vendor vmx").And.Contain("under svm"));
    }

    [Test]
    public void MemoryFile_FlipAByteInDataAndInAZeroChunk_Refused()
    {
        string path = Saved();
        string mem = path + ".mem";
        byte[] good = File.ReadAllBytes(mem);
        foreach (long offset in new[] { (long)SvmGuest.DataBase, 0x10000, 5L << 20 })
        {
            var bad = (byte[])good.Clone();
            bad[offset] ^= 0x40;
            File.WriteAllBytes(mem, bad);
            Assert.That(Refused(path), Does.Contain("does not match its hash"), $"memory byte 0x{offset:x}");
        }
    }

    [Test]
    public void MemoryFile_TruncatedOrMissing_Refused()
    {
        string path = Saved();
        string mem = path + ".mem";
        using (var f = File.OpenWrite(mem))
            f.SetLength(f.Length - 4096);
        Assert.That(Refused(path), Does.Contain("truncated or replaced"));
        File.Delete(mem);
        Assert.That(Refused(path), Does.Contain("does not exist"));
    }

    [Test]
    public void NotASnapshot_Refused()
    {
        string path = Path.Combine(_dir, "other.json");
        File.WriteAllText(path, "{\"hello\": 1}");
        Assert.That(Refused(path), Does.Contain("not an hv snapshot"));
        File.WriteAllBytes(path, Encoding.UTF8.GetBytes("\u00ff\u00fe garbage"));
        Assert.That(Refused(path), Does.Contain("not a complete snapshot"));
    }
}
