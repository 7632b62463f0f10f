using System.Text.Json.Nodes;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.Machine.Rap;
using Hypervisor.Core.X86;
using Hypervisor.Core.X86.Cpuid;

namespace Hypervisor.Core.Snapshots;

public static partial class VcpuSnapshot
{
    /// <summary>Restores <paramref name="vcpu"/> from the vCPU sections of <paramref name="root"/>:
    /// everything is read and checked first, and only then applied, so a refused snapshot leaves
    /// the vCPU as it was.</summary>
    public static void Restore(Vcpu vcpu, JsonObject root) => Read(vcpu, root)();

    /// <summary>Reads and checks the vCPU sections for <paramref name="vcpu"/>, changing nothing;
    /// returns what applies them. Throws <see cref="SnapshotException"/> with the field's path.</summary>
    public static Action Read(Vcpu vcpu, JsonObject root)
    {
        var r = new SnapshotReader(root, "");
        CheckHeader(r, vcpu.Ops.Name, vcpu.Vm.Kvm.Model.Name);
        var vendor = vcpu.Ops.Snapshots ?? throw new SnapshotException($"the {vcpu.Ops.Name} vendor module does not support snapshots");

        var vm = r.Object("vm");
        if (vm.Bool("nestedPaging") != vcpu.Vm.Options.NestedPaging || vm.Bool("interceptCr3AndInvpcid") != vcpu.Vm.Options.InterceptCr3AndInvpcid)
            throw new SnapshotException("vm: the snapshot's VM options (nested paging, CR3/INVPCID intercepts) differ from the VM it is restored into");

        var cpuid = ReadCpuid(r.Array("cpuid"));
        bool setCpuid = vcpu.Cpuid == null || !vcpu.Cpuid.IsIdentical(cpuid);
        if (setCpuid)
        {
            if (vcpu.HasRun)
                throw new SnapshotException("cpuid: the snapshot's guest CPUID differs from this vCPU's, which has run already (KVM_SET_CPUID2 would be refused)");
            try
            {
                GuestCpuid.Create(cpuid, vcpu.Vm.Kvm.SupportedCaps);
            }
            catch (CpuidException e)
            {
                throw new SnapshotException($"cpuid: refused by KVM_SET_CPUID2 ({e.Errno}): {e.Message}");
            }
        }

        var sregs = r.Object("sregs");
        var segs = new (int Seg, Segment Value)[]
        {
            (SegReg.Cs, ReadSegment(sregs.Object("cs"))), (SegReg.Ds, ReadSegment(sregs.Object("ds"))),
            (SegReg.Es, ReadSegment(sregs.Object("es"))), (SegReg.Fs, ReadSegment(sregs.Object("fs"))),
            (SegReg.Gs, ReadSegment(sregs.Object("gs"))), (SegReg.Ss, ReadSegment(sregs.Object("ss"))),
            (SegReg.Tr, ReadSegment(sregs.Object("tr"))), (SegReg.Ldtr, ReadSegment(sregs.Object("ldt"))),
        };
        var gdt = ReadTable(sregs.Object("gdt"));
        var idt = ReadTable(sregs.Object("idt"));
        ulong efer = sregs.Hex("efer"), cr2 = sregs.Hex("cr2"), cr8 = sregs.Hex("cr8");
        ulong dr6 = sregs.Hex("dr6"), dr7 = sregs.Hex("dr7");
        ulong xcr0 = r.Hex("xcr0");
        var x87 = ReadX87(r.Object("xsave").Object("x87"));

        var processor = ReadProcessor(r.Object("msrs").Object("processor"), sregs, r.Object("clock"));

        var cache = r.Object("regCache");
        ulong avail = cache.Hex("avail"), dirty = cache.Hex("dirty");
        if ((dirty & ~avail) != 0)
            throw new SnapshotException($"regCache: {RegisterCache.Describe(dirty & ~avail)} dirty but not available (a state the register cache never allows)");
        if (((avail | dirty) & ~VcpuRegs.AllMask) != 0)
            throw new SnapshotException($"regCache: bits beyond the {VcpuRegs.Count} cache registers are set");
        var values = ReadHexArray(cache.Array("values"), "regCache.values", VcpuRegs.Count);
        var pdptrs = ReadHexArray(cache.Array("pdptrs"), "regCache.pdptrs", 4);

        var rap = ReadRap(r.Object("rap"), vcpu.Cpu.Rap);
        var (requests, hasRun, lastExit, completion) = ReadEvents(r.Object("events"));
        var exits = ReadExits(r.Object("exits"));
        var tdp = ReadTdp(r, vcpu.Vm.Mmu);

        if (!r.Has(vendor.Section))
            throw new SnapshotException($"{vendor.Section}: missing (the {vcpu.Ops.Name} vendor's section)");
        var applyVendor = vendor.Read(vcpu, r.Object(vendor.Section));

        return () =>
        {
            if (setCpuid)
                vcpu.SetCpuid(cpuid);
            // Before the vCPU's requests are restored: the import asks every vCPU for a TLB flush.
            if (tdp is { } t)
                vcpu.Vm.Mmu!.Import(t.Leaves, t.Counters);
            foreach (var (seg, value) in segs)
                vcpu.Ops.SetSegment(vcpu, seg, value);
            vcpu.Ops.SetGdt(vcpu, gdt);
            vcpu.Ops.SetIdt(vcpu, idt);
            vcpu.RestoreArchState(efer, cr2, cr8, xcr0, dr6, dr7, requests, hasRun, lastExit, completion);
            vcpu.Cpu.RestoreProcessorState(processor);
            x87(vcpu.Cpu.X87);
            rap.Apply(vcpu.Cpu.Rap);
            vcpu.Regs.RestoreState(values, pdptrs, avail, dirty);
            vcpu.Stats.Restore(exits.Reasons, exits.Vendor);
            // The vendor structure last: it is the truth for everything it holds, whatever the
            // vendor-neutral setters above wrote into it.
            applyVendor();
        };
    }

    /// <summary>format, version, vendor and host CPU model: the checks that say most clearly why a
    /// snapshot does not fit, made before anything else.</summary>
    public static void CheckHeader(SnapshotReader r, string? vendor, string? hostCpu)
    {
        if (!r.Has("format") || r.Node["format"]?.ToString() != SnapshotFormat.Format)
            throw new SnapshotException($"not an hv snapshot (\"format\" is not \"{SnapshotFormat.Format}\")");
        long version = r.Number("version");
        if (version != SnapshotFormat.Version)
            throw new SnapshotException($"snapshot version {version} is not supported: this hv reads version {SnapshotFormat.Version}");
        string v = r.String("vendor");
        if (vendor != null && v != vendor)
            throw new SnapshotException($"the snapshot was taken under vendor {v}; it cannot be restored into a VM under {vendor}");
        string model = r.String("hostCpu");
        if (hostCpu != null && model != hostCpu)
            throw new SnapshotException($"the snapshot was taken on host CPU model {model}; it cannot be restored on {hostCpu}");
    }

    private static List<CpuidEntry> ReadCpuid(JsonArray a)
    {
        var list = new List<CpuidEntry>(a.Count);
        for (int i = 0; i < a.Count; i++)
        {
            var e = SnapshotReader.Element(a, i, "cpuid");
            list.Add(new CpuidEntry(U32(e, "function"), U32(e, "index"), U32(e, "flags"), U32(e, "eax"), U32(e, "ebx"), U32(e, "ecx"), U32(e, "edx")));
        }
        return list;
    }

    private static uint U32(SnapshotReader r, string key)
    {
        ulong v = r.Hex(key);
        return v <= uint.MaxValue ? (uint)v : throw new SnapshotException($"{r.Path}.{key}: 0x{v:x} does not fit 32 bits");
    }

    private static ushort U16(SnapshotReader r, string key)
    {
        ulong v = r.Hex(key);
        return v <= ushort.MaxValue ? (ushort)v : throw new SnapshotException($"{r.Path}.{key}: 0x{v:x} does not fit 16 bits");
    }

    internal static Segment ReadSegment(SnapshotReader r) =>
        new() { Selector = U16(r, "selector"), Base = r.Hex("base"), Limit = U32(r, "limit"), Attributes = U16(r, "attributes") };

    internal static DescriptorTable ReadTable(SnapshotReader r) => new() { Base = r.Hex("base"), Limit = U16(r, "limit") };

    private static Action<X87State> ReadX87(SnapshotReader r)
    {
        ushort fcw = U16(r, "fcw"), fsw = U16(r, "fsw"), fop = U16(r, "fop"), fcs = U16(r, "fcs"), fds = U16(r, "fds");
        ulong ftw = r.Hex("ftw");
        if (ftw > 0xFF)
            throw new SnapshotException($"{r.Path}.ftw: 0x{ftw:x} is not a byte");
        ulong fip = r.Hex("fip"), fdp = r.Hex("fdp");
        string st = r.String("st");
        if (st.Length != X87State.StBytes * 2 || !st.All(char.IsAsciiHexDigit))
            throw new SnapshotException($"{r.Path}.st: expected ST0..ST7 as {X87State.StBytes} bytes of hex");
        byte[] regs = Convert.FromHexString(st);
        return x =>
        {
            (x.Fcw, x.Fsw, x.Ftw, x.Fop, x.Fip, x.Fcs, x.Fdp, x.Fds) = (fcw, fsw, (byte)ftw, fop, fip, fcs, fdp, fds);
            regs.CopyTo(x.St, 0);
        };
    }

    private static ulong[] ReadHexArray(JsonArray a, string path, int count)
    {
        if (a.Count != count)
            throw new SnapshotException($"{path}: {a.Count} values where {count} are expected");
        var v = new ulong[count];
        for (int i = 0; i < count; i++)
            v[i] = SnapshotFormat.ParseHex(a[i], $"{path}[{i}]");
        return v;
    }

    private static ProcessorState ReadProcessor(SnapshotReader m, SnapshotReader sregs, SnapshotReader clock)
    {
        string mode = clock.String("mode");
        var tsc = mode switch
        {
            "instructions" => TscClock.Instructions,
            "host" => TscClock.Host,
            _ => throw new SnapshotException($"clock.mode: \"{mode}\" is neither \"instructions\" nor \"host\""),
        };
        return new ProcessorState
        {
            Dr0 = sregs.Hex("dr0"), Dr1 = sregs.Hex("dr1"), Dr2 = sregs.Hex("dr2"), Dr3 = sregs.Hex("dr3"),
            Cr8 = m.Hex("cr8"), Xcr0 = m.Hex("xcr0"),
            Star = m.Hex("STAR"), Lstar = m.Hex("LSTAR"), Cstar = m.Hex("CSTAR"), Sfmask = m.Hex("SFMASK"),
            KernelGsBase = m.Hex("KERNEL_GS_BASE"), TscAux = m.Hex("TSC_AUX"), Pat = m.Hex("IA32_PAT"),
            ApicBase = m.Hex("IA32_APIC_BASE"), SpecCtrl = m.Hex("IA32_SPEC_CTRL"),
            SysenterCs = m.Hex("IA32_SYSENTER_CS"), SysenterEsp = m.Hex("IA32_SYSENTER_ESP"), SysenterEip = m.Hex("IA32_SYSENTER_EIP"),
            Clock = tsc,
            InstructionsRetired = clock.Hex("instructionsRetired"),
            TscOffset = (long)clock.Hex("tscOffset"),
        };
    }

    private sealed record RapImage(int Capacity, bool Tagged, List<RapEntry> Entries, RapCounters Counters)
    {
        public void Apply(ReturnAddressPredictor rap) => rap.Restore(Capacity, Tagged, Entries, Counters);
    }

    private static RapImage ReadRap(SnapshotReader r, ReturnAddressPredictor target)
    {
        long physical = r.Number("physicalEntries");
        if (physical != target.PhysicalEntries)
            throw new SnapshotException($"rap.physicalEntries: the snapshot's RAP has {physical} entries, this processor's {target.PhysicalEntries}");
        long capacity = r.Number("capacity");
        if (capacity < 1 || capacity > physical)
            throw new SnapshotException($"rap.capacity: {capacity} is not within 1..{physical}");
        var a = r.Array("entries");
        if (a.Count > capacity)
            throw new SnapshotException($"rap.entries: {a.Count} entries do not fit a capacity of {capacity}");
        var entries = new List<RapEntry>(a.Count);
        for (int i = 0; i < a.Count; i++)
        {
            var e = SnapshotReader.Element(a, i, "rap.entries");
            string d = e.String("domain");
            var domain = d switch
            {
                "host" => RapDomain.Host,
                "guest" => RapDomain.Guest,
                "nested-guest" => RapDomain.NestedGuest,
                _ => throw new SnapshotException($"rap.entries[{i}].domain: \"{d}\" is not host, guest or nested-guest"),
            };
            entries.Add(new RapEntry(e.Hex("returnAddress"), domain));
        }
        var counters = new RapCounters(r.Number("calls"), r.Number("returns"), r.Number("predictions"), r.Number("mispredictions"),
            r.Number("underflows"), r.Number("crossDomainUses"), r.Number("reverseDomainUses"), r.Number("clears"), r.Number("tagMismatches"));
        return new RapImage((int)capacity, r.Bool("tagged"), entries, counters);
    }

    private static (VcpuRequest, bool, VcpuExit, PendingCompletion) ReadEvents(SnapshotReader r)
    {
        var c = r.Object("completion");
        string kind = c.String("kind");
        if (!PendingCompletion.Kinds.Contains(kind))
            throw new SnapshotException($"events.completion.kind: \"{kind}\" is not one of {string.Join(", ", PendingCompletion.Kinds)}");
        var completion = new PendingCompletion(kind, c.Hex("data"), (int)c.Number("stringSize"), c.Bool("stringRep"),
            (int)c.Number("stringAddressSize"), (int)c.Number("stringSegment"));
        var x = r.Object("lastExit");
        var exit = new VcpuExit
        {
            Reason = (KvmExitReason)x.Number("reason"),
            IoIn = x.Bool("ioIn"), IoSize = (byte)x.Number("ioSize"), IoPort = U16(x, "ioPort"), IoCount = (uint)x.Number("ioCount"), IoData = x.Hex("ioData"),
            MmioAddress = x.Hex("mmioAddress"), MmioLength = (byte)x.Number("mmioLength"), MmioIsWrite = x.Bool("mmioIsWrite"), MmioData = x.Hex("mmioData"),
            HypercallNr = x.Hex("hypercallNr"), Suberror = (KvmInternalError)x.Number("suberror"), HardwareReason = x.Hex("hardwareReason"),
            MsrIndex = U32(x, "msrIndex"), MsrData = x.Hex("msrData"),
            Message = x.Node["message"]?.GetValue<string>(),
        };
        ulong requests = r.Hex("requests");
        return ((VcpuRequest)requests, r.Bool("hasRun"), exit, completion);
    }

    private static (List<Hypervisor.Core.X86.Mmu.TdpLeaf> Leaves, Hypervisor.Core.X86.Mmu.TdpCounters Counters)? ReadTdp(SnapshotReader r, Hypervisor.Core.X86.Mmu.TdpMmu? mmu)
    {
        bool has = r.Node["tdp"] != null;
        if (has != (mmu != null))
            throw new SnapshotException(has ? "tdp: the snapshot has nested-paging tables, this VM does not use nested paging" : "tdp: missing (this VM uses nested paging)");
        if (!has)
            return null;
        var t = r.Object("tdp");
        var a = t.Array("leaves");
        var leaves = new List<Hypervisor.Core.X86.Mmu.TdpLeaf>(a.Count);
        for (int i = 0; i < a.Count; i++)
        {
            var e = SnapshotReader.Element(a, i, "tdp.leaves");
            leaves.Add(new(e.Hex("gpa"), e.Hex("size"), e.Hex("entry")));
        }
        string? why = mmu!.CheckLeaves(leaves);
        if (why != null)
            throw new SnapshotException($"tdp.leaves: {why}");
        var counters = new Hypervisor.Core.X86.Mmu.TdpCounters(t.Number("faultsHandled"), t.Number("mmioFaults"),
            t.Number("smallPagesMapped"), t.Number("largePagesMapped"), t.Number("zaps"));
        return (leaves, counters);
    }

    private static ((int, long)[] Reasons, (long, long)[] Vendor) ReadExits(SnapshotReader r)
    {
        var a = r.Array("byReason");
        var reasons = new (int, long)[a.Count];
        for (int i = 0; i < a.Count; i++)
        {
            var e = SnapshotReader.Element(a, i, "exits.byReason");
            long reason = e.Number("reason");
            if (reason is < 0 or > 63)
                throw new SnapshotException($"exits.byReason[{i}].reason: {reason} is not a KVM exit reason number");
            reasons[i] = ((int)reason, e.Number("count"));
        }
        var b = r.Array("byVendor");
        var vendor = new (long, long)[b.Count];
        for (int i = 0; i < b.Count; i++)
        {
            var e = SnapshotReader.Element(b, i, "exits.byVendor");
            long code = (long)e.Hex("code");
            if (!ExitStatistics.IsCountableVendorCode(code))
                throw new SnapshotException($"exits.byVendor[{i}].code: 0x{code:x} is outside the counted range");
            vendor[i] = (code, e.Number("count"));
        }
        return (reasons, vendor);
    }
}
