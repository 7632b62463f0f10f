using System.Globalization;
using System.Text.Json.Nodes;
using Hypervisor.Core.Snapshots;
using Hypervisor.Core.X86;
using Hypervisor.Svm.Hardware;
using static Hypervisor.Core.Snapshots.SnapshotFormat;

namespace Hypervisor.Svm;

public sealed partial class SvmOps
{
    private SvmSnapshotState? _snapshots;

    public ISnapshotVendorState Snapshots => _snapshots ??= new SvmSnapshotState();
}

/// <summary>
/// The SVM part of a vCPU snapshot, the "vmcb" section: vmcb01's control area and state save
/// area by field name (<see cref="VmcbFields"/>), any other non-zero byte of the page by offset
/// (so nothing the page holds is lost), the permission maps by hash (they follow from the VM's
/// configuration, so a restore checks them rather than carries them), and the module's own
/// per-vCPU state. Restoring writes the page back byte for byte; the processor then reloads
/// everything at the next VMRUN, whatever the clean bits say.
/// </summary>
public sealed class SvmSnapshotState : ISnapshotVendorState
{
    public string Section => "vmcb";

    public string? CannotCapture(Vcpu vcpu) =>
        SvmOps.ToSvm(vcpu).IsGuestMode ? "it is running a nested (L2) guest; snapshots of nested SVM state are not supported yet" : null;

    public JsonObject Capture(Vcpu vcpu)
    {
        var svm = SvmOps.ToSvm(vcpu);
        var page = svm.Vmcb.Bytes;
        var covered = new bool[VmcbOffset.Size];
        var o = new JsonObject
        {
            ["control"] = Fields(page, VmcbFields.Control, covered),
            ["save"] = Fields(page, VmcbFields.Save, covered),
        };
        var other = new JsonArray();
        for (int i = 0; i < page.Length; i++)
            if (!covered[i] && page[i] != 0)
                other.Add(new JsonObject { ["offset"] = Hex16((ushort)i), ["value"] = Hex8(page[i]) });
        o["otherBytes"] = other;
        o["iopmSha256"] = Sha256Hex(svm.Iopm.Bytes);
        o["msrpmSha256"] = Sha256Hex(svm.Msrpm.Bytes);
        o["lastExitCode"] = Hex64((ulong)(long)svm.LastExitCode);
        o["nested"] = svm.Nested == null ? null : new JsonObject
        {
            ["vmcb12Gpa"] = Hex64(svm.Nested.Vmcb12Gpa),
            ["vmruns"] = svm.Nested.Vmruns,
            ["vmexits"] = svm.Nested.Vmexits,
        };
        return o;
    }

    private static JsonObject Fields(ReadOnlySpan<byte> page, IReadOnlyList<VmcbField> fields, bool[] covered)
    {
        var o = new JsonObject();
        foreach (var f in fields)
        {
            var bytes = page.Slice(f.Offset, f.Width);
            o[f.Name] = f.Width <= 8 ? Hex(Little(bytes), f.Width) : Convert.ToHexStringLower(bytes);
            Array.Fill(covered, true, f.Offset, f.Width);
        }
        return o;
    }

    private static ulong Little(ReadOnlySpan<byte> b)
    {
        ulong v = 0;
        for (int i = b.Length - 1; i >= 0; i--)
            v = (v << 8) | b[i];
        return v;
    }

    public Action Read(Vcpu vcpu, SnapshotReader section)
    {
        var page = new byte[VmcbOffset.Size];
        ReadFields(section.Object("control"), VmcbFields.Control, page);
        ReadFields(section.Object("save"), VmcbFields.Save, page);
        var other = section.Array("otherBytes");
        for (int i = 0; i < other.Count; i++)
        {
            var e = SnapshotReader.Element(other, i, $"{section.Path}.otherBytes");
            ulong offset = e.Hex("offset"), value = e.Hex("value");
            if (offset >= VmcbOffset.Size || value > 0xFF)
                throw new SnapshotException($"{e.Path}: offset 0x{offset:x} or value 0x{value:x} is outside the VMCB page or a byte");
            page[offset] = (byte)value;
        }
        string iopm = section.String("iopmSha256"), msrpm = section.String("msrpmSha256");
        var lastExit = (SvmExitCode)(long)section.Hex("lastExitCode");
        var nestedNode = section.Node["nested"];
        (ulong Gpa, long Vmruns, long Vmexits)? nested = null;
        if (nestedNode != null)
        {
            var n = section.Object("nested");
            nested = (n.Hex("vmcb12Gpa"), n.Number("vmruns"), n.Number("vmexits"));
        }
        var svm = SvmOps.ToSvm(vcpu);
        // The maps follow from configuration: a difference means a different VM, not a state to carry.
        if (Sha256Hex(svm.Iopm.Bytes) != iopm || Sha256Hex(svm.Msrpm.Bytes) != msrpm)
            throw new SnapshotException("vmcb: the I/O or MSR permission map of the snapshot differs from this VM's (a different configuration)");
        if ((nested != null) != (svm.Nested != null))
            throw new SnapshotException("vmcb.nested: the snapshot and this VM differ in whether nested SVM is enabled");
        if (svm.IsGuestMode)
            throw new SnapshotException("cannot restore into a vCPU that is running a nested (L2) guest");
        return () =>
        {
            page.CopyTo(svm.Vmcb.Bytes);
            svm.LastExitCode = lastExit;
            if (nested is { } s && svm.Nested != null)
            {
                svm.Nested.Vmcb12Gpa = s.Gpa;
                svm.Nested.Vmruns = s.Vmruns;
                svm.Nested.Vmexits = s.Vmexits;
            }
            svm.GuestHasEraps = vcpu.GuestCaps.Has(Hypervisor.Core.X86.Cpuid.CpuFeatures.Eraps);
            svm.Processor.ForgetLoadedVmcb();
        };
    }

    private static void ReadFields(SnapshotReader r, IReadOnlyList<VmcbField> fields, byte[] page)
    {
        foreach (var f in fields)
        {
            if (f.Width <= 8)
            {
                ulong v = r.Hex(f.Name);
                if (f.Width < 8 && (v >> (8 * f.Width)) != 0)
                    throw new SnapshotException($"{r.Path}.{f.Name}: 0x{v:x} does not fit {f.Width * 8} bits");
                for (int i = 0; i < f.Width; i++)
                    page[f.Offset + i] = (byte)(v >> (8 * i));
            }
            else
            {
                string s = r.String(f.Name);
                if (s.Length != f.Width * 2 || !s.All(char.IsAsciiHexDigit))
                    throw new SnapshotException($"{r.Path}.{f.Name}: expected {f.Width} bytes as {f.Width * 2} hex digits");
                for (int i = 0; i < f.Width; i++)
                    page[f.Offset + i] = byte.Parse(s.AsSpan(2 * i, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
            }
        }
    }
}
