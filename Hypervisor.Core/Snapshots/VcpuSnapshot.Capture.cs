using System.Text.Json.Nodes;
using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.Machine.Rap;
using Hypervisor.Core.X86;
using static Hypervisor.Core.Snapshots.SnapshotFormat;

namespace Hypervisor.Core.Snapshots;

/// <summary>
/// Capture and restore of one vCPU in the snapshot JSON form: every section from "format" to
/// "exits", keys in the fixed order of <see cref="SnapshotFormat.TopLevelKeys"/>. The host adds
/// "devices" and "memory" (<see cref="MachineSnapshot"/>). A capture is taken between two runs
/// (after an exit to userspace was serviced) and changes nothing in the vCPU.
/// </summary>
public static partial class VcpuSnapshot
{
    /// <summary>MSRs listed in "msrs", as KVM_GET_MSRS would return them (EFER is in "sregs").</summary>
    public static IReadOnlyList<(string Name, uint Index)> ListedMsrs { get; } =
    [
        ("IA32_TSC", MsrIndex.Tsc), ("IA32_APIC_BASE", MsrIndex.ApicBase), ("IA32_SPEC_CTRL", MsrIndex.SpecCtrl),
        ("IA32_SYSENTER_CS", MsrIndex.SysenterCs), ("IA32_SYSENTER_ESP", MsrIndex.SysenterEsp), ("IA32_SYSENTER_EIP", MsrIndex.SysenterEip),
        ("IA32_PAT", MsrIndex.Pat), ("STAR", MsrIndex.Star), ("LSTAR", MsrIndex.Lstar), ("CSTAR", MsrIndex.Cstar),
        ("SFMASK", MsrIndex.Sfmask), ("FS_BASE", MsrIndex.FsBase), ("GS_BASE", MsrIndex.GsBase),
        ("KERNEL_GS_BASE", MsrIndex.KernelGsBase), ("TSC_AUX", MsrIndex.TscAux),
    ];

    private static readonly string[] GprNames =
    [
        "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
        "r16", "r17", "r18", "r19", "r20", "r21", "r22", "r23", "r24", "r25", "r26", "r27", "r28", "r29", "r30", "r31",
    ];

    /// <summary>Why <paramref name="vcpu"/> cannot be captured now, or null.</summary>
    public static string? CannotCapture(Vcpu vcpu)
    {
        var vendor = vcpu.Ops.Snapshots;
        if (vendor == null)
            return $"the {vcpu.Ops.Name} vendor module does not support snapshots";
        if (vcpu.Cpu.HasPendingReplay)
            return "the processor is in the middle of an instruction (a snapshot is taken between two runs)";
        return vendor.CannotCapture(vcpu);
    }

    /// <summary>Whether the guest has APX's R16-R31 (they are listed only then).</summary>
    private static bool HasEgprs(Vcpu vcpu) => vcpu.GuestCaps.Has(Hypervisor.Core.X86.Cpuid.CpuFeatures.ApxF);

    /// <summary>The vCPU sections of a snapshot, "format" to "exits".</summary>
    /// <exception cref="SnapshotException">the vCPU cannot be captured now (<see cref="CannotCapture"/>).</exception>
    public static JsonObject Capture(Vcpu vcpu)
    {
        string? why = CannotCapture(vcpu);
        if (why != null)
            throw new SnapshotException($"cannot snapshot vCPU {vcpu.Id}: {why}");
        var vendor = vcpu.Ops.Snapshots!;
        var cache = vcpu.Regs;
        ulong avail = cache.Available, dirty = cache.Dirty;
        var values = new ulong[VcpuRegs.Count];
        Span<ulong> pdptrs = stackalloc ulong[4];
        cache.PeekPdptrs(pdptrs);
        for (int r = 0; r < VcpuRegs.Count; r++)
            values[r] = cache.Peek((VcpuReg)r);

        var root = new JsonObject
        {
            ["format"] = Format,
            ["version"] = SnapshotFormat.Version,
            ["vendor"] = vcpu.Ops.Name,
            ["hostCpu"] = vcpu.Vm.Kvm.Model.Name,
            ["vm"] = new JsonObject
            {
                ["vcpuId"] = vcpu.Id,
                ["nestedPaging"] = vcpu.Vm.Options.NestedPaging,
                ["interceptCr3AndInvpcid"] = vcpu.Vm.Options.InterceptCr3AndInvpcid,
            },
            ["regs"] = CaptureRegs(vcpu),
            ["sregs"] = CaptureSregs(vcpu),
            ["msrs"] = CaptureMsrs(vcpu),
            ["xcr0"] = Hex64(vcpu.Xcr0),
            ["xsave"] = CaptureXsave(vcpu.Cpu),
            ["cpuid"] = CaptureCpuid(vcpu),
        };
        // Reading registers through the vCPU may have loaded some from the vendor structure: the
        // cache goes back to exactly what it was, so capturing changes nothing.
        cache.RestoreState(values, pdptrs, avail, dirty);
        root["regCache"] = new JsonObject
        {
            ["avail"] = Hex64(avail),
            ["dirty"] = Hex64(dirty),
            ["availNames"] = RegisterCache.Describe(avail),
            ["dirtyNames"] = RegisterCache.Describe(dirty),
            ["values"] = HexArray(values),
            ["pdptrs"] = HexArray(pdptrs.ToArray()),
        };
        root["rap"] = CaptureRap(vcpu.Cpu.Rap);
        root[vendor.Section] = vendor.Capture(vcpu);
        root["events"] = CaptureEvents(vcpu);
        root["clock"] = CaptureClock(vcpu.Cpu);
        root["exits"] = CaptureExits(vcpu.Stats);
        root["tdp"] = CaptureTdp(vcpu.Vm.Mmu);
        return root;
    }

    private static JsonArray HexArray(IEnumerable<ulong> values) => new(values.Select(v => (JsonNode)Hex64(v)).ToArray());

    private static JsonObject CaptureRegs(Vcpu vcpu)
    {
        var o = new JsonObject();
        int count = HasEgprs(vcpu) ? Gpr.Count : Gpr.LegacyCount;
        for (int g = 0; g < count; g++)
            o[GprNames[g]] = Hex64(vcpu.ReadGpr(g));
        o["rip"] = Hex64(vcpu.Rip);
        o["rflags"] = Hex64(vcpu.Rflags);
        return o;
    }

    internal static JsonObject SegmentNode(Segment s) => new()
    {
        ["selector"] = Hex16(s.Selector),
        ["base"] = Hex64(s.Base),
        ["limit"] = Hex32(s.Limit),
        ["attributes"] = Hex16(s.Attributes),
    };

    internal static JsonObject TableNode(DescriptorTable t) => new()
    {
        ["base"] = Hex64(t.Base),
        ["limit"] = Hex16(t.Limit),
    };

    private static JsonObject CaptureSregs(Vcpu vcpu)
    {
        var s = vcpu.GetSregs();
        var cpu = vcpu.Cpu;
        return new JsonObject
        {
            ["cs"] = SegmentNode(s.Cs), ["ds"] = SegmentNode(s.Ds), ["es"] = SegmentNode(s.Es),
            ["fs"] = SegmentNode(s.Fs), ["gs"] = SegmentNode(s.Gs), ["ss"] = SegmentNode(s.Ss),
            ["tr"] = SegmentNode(s.Tr), ["ldt"] = SegmentNode(s.Ldt),
            ["gdt"] = TableNode(s.Gdt), ["idt"] = TableNode(s.Idt),
            ["cpl"] = vcpu.Ops.GetCpl(vcpu),
            ["cr0"] = Hex64(s.Cr0), ["cr2"] = Hex64(s.Cr2), ["cr3"] = Hex64(s.Cr3), ["cr4"] = Hex64(s.Cr4),
            ["cr8"] = Hex64(s.Cr8), ["efer"] = Hex64(s.Efer), ["apicBase"] = Hex64(s.ApicBase),
            ["dr0"] = Hex64(cpu.Dr[0]), ["dr1"] = Hex64(cpu.Dr[1]), ["dr2"] = Hex64(cpu.Dr[2]), ["dr3"] = Hex64(cpu.Dr[3]),
            ["dr6"] = Hex64(vcpu.Dr6), ["dr7"] = Hex64(vcpu.Dr7),
        };
    }

    private static JsonObject CaptureMsrs(Vcpu vcpu)
    {
        var guest = new JsonObject();
        foreach (var (name, index) in ListedMsrs)
            if (vcpu.TryGetMsr(index, out ulong v))
                guest[name] = Hex64(v);
        var p = vcpu.Cpu.CaptureProcessorState();
        // The processor's own copies: restore uses these (the guest view above is KVM_GET_MSRS's,
        // mostly held by the vendor structure, which its own section restores).
        guest["processor"] = new JsonObject
        {
            ["STAR"] = Hex64(p.Star), ["LSTAR"] = Hex64(p.Lstar), ["CSTAR"] = Hex64(p.Cstar), ["SFMASK"] = Hex64(p.Sfmask),
            ["KERNEL_GS_BASE"] = Hex64(p.KernelGsBase), ["TSC_AUX"] = Hex64(p.TscAux), ["IA32_PAT"] = Hex64(p.Pat),
            ["IA32_APIC_BASE"] = Hex64(p.ApicBase), ["IA32_SPEC_CTRL"] = Hex64(p.SpecCtrl),
            ["IA32_SYSENTER_CS"] = Hex64(p.SysenterCs), ["IA32_SYSENTER_ESP"] = Hex64(p.SysenterEsp),
            ["IA32_SYSENTER_EIP"] = Hex64(p.SysenterEip),
            ["cr8"] = Hex64(p.Cr8), ["xcr0"] = Hex64(p.Xcr0),
        };
        return guest;
    }

    /// <summary>The XSAVE-managed state the processor keeps: x87 (component 0). Guest-owned; the
    /// processor holds it across exits as the hardware would between XSAVE and XRSTOR.</summary>
    private static JsonObject CaptureXsave(X86Cpu cpu)
    {
        var x = cpu.X87;
        return new JsonObject
        {
            ["x87"] = new JsonObject
            {
                ["fcw"] = Hex16(x.Fcw), ["fsw"] = Hex16(x.Fsw), ["ftw"] = Hex8(x.Ftw), ["fop"] = Hex16(x.Fop),
                ["fip"] = Hex64(x.Fip), ["fcs"] = Hex16(x.Fcs), ["fdp"] = Hex64(x.Fdp), ["fds"] = Hex16(x.Fds),
                ["st"] = Convert.ToHexStringLower(x.St),
            },
        };
    }

    private static JsonArray CaptureCpuid(Vcpu vcpu)
    {
        var a = new JsonArray();
        foreach (var e in vcpu.Cpuid?.Entries ?? [])
            a.Add(new JsonObject
            {
                ["function"] = Hex32(e.Function), ["index"] = Hex32(e.Index), ["flags"] = Hex32(e.Flags),
                ["eax"] = Hex32(e.Eax), ["ebx"] = Hex32(e.Ebx), ["ecx"] = Hex32(e.Ecx), ["edx"] = Hex32(e.Edx),
            });
        return a;
    }

    private static JsonObject CaptureRap(ReturnAddressPredictor rap)
    {
        var c = rap.Counters;
        return new JsonObject
        {
            ["physicalEntries"] = rap.PhysicalEntries,
            ["capacity"] = rap.Capacity,
            ["tagged"] = rap.Tagged,
            ["entries"] = new JsonArray(rap.Snapshot().Select(e => (JsonNode)new JsonObject
            {
                ["returnAddress"] = Hex64(e.ReturnAddress),
                ["domain"] = DomainName(e.Domain),
            }).ToArray()),
            ["calls"] = c.Calls, ["returns"] = c.Returns, ["predictions"] = c.Predictions, ["mispredictions"] = c.Mispredictions,
            ["underflows"] = c.Underflows, ["crossDomainUses"] = c.CrossDomainUses, ["reverseDomainUses"] = c.ReverseDomainUses,
            ["clears"] = c.Clears, ["tagMismatches"] = c.TagMismatches,
        };
    }

    internal static string DomainName(RapDomain d) => d switch
    {
        RapDomain.Host => "host",
        RapDomain.Guest => "guest",
        _ => "nested-guest",
    };

    private static JsonObject CaptureEvents(Vcpu vcpu)
    {
        var c = vcpu.CapturePendingCompletion();
        var x = vcpu.Exit;
        return new JsonObject
        {
            ["hasRun"] = vcpu.HasRun,
            ["requests"] = Hex32((uint)vcpu.PendingRequests),
            ["completion"] = new JsonObject
            {
                ["kind"] = c.Kind, ["data"] = Hex64(c.Data), ["stringSize"] = c.StringSize, ["stringRep"] = c.StringRep,
                ["stringAddressSize"] = c.StringAddressSize, ["stringSegment"] = c.StringSegment,
            },
            ["lastExit"] = new JsonObject
            {
                ["reason"] = (int)x.Reason, ["name"] = ExitName(x.Reason),
                ["ioIn"] = x.IoIn, ["ioSize"] = x.IoSize, ["ioPort"] = Hex16(x.IoPort), ["ioCount"] = x.IoCount, ["ioData"] = Hex64(x.IoData),
                ["mmioAddress"] = Hex64(x.MmioAddress), ["mmioLength"] = x.MmioLength, ["mmioIsWrite"] = x.MmioIsWrite, ["mmioData"] = Hex64(x.MmioData),
                ["hypercallNr"] = Hex64(x.HypercallNr), ["suberror"] = (int)x.Suberror, ["hardwareReason"] = Hex64(x.HardwareReason),
                ["msrIndex"] = Hex32(x.MsrIndex), ["msrData"] = Hex64(x.MsrData),
                ["message"] = x.Message,
            },
        };
    }

    public static string ExitName(KvmExitReason r) => "KVM_EXIT_" + r switch
    {
        KvmExitReason.InternalError => "INTERNAL_ERROR",
        KvmExitReason.FailEntry => "FAIL_ENTRY",
        KvmExitReason.IrqWindowOpen => "IRQ_WINDOW_OPEN",
        KvmExitReason.SystemEvent => "SYSTEM_EVENT",
        KvmExitReason.X86Rdmsr => "X86_RDMSR",
        KvmExitReason.X86Wrmsr => "X86_WRMSR",
        KvmExitReason.MemoryFault => "MEMORY_FAULT",
        _ => r.ToString().ToUpperInvariant(),
    };

    private static JsonObject CaptureClock(X86Cpu cpu) => new()
    {
        ["mode"] = cpu.Clock == TscClock.Instructions ? "instructions" : "host",
        ["instructionsRetired"] = Hex64(cpu.InstructionsRetired),
        ["tscOffset"] = Hex64((ulong)cpu.TscOffset),
    };

    /// <summary>The TDP MMU's mappings as leaves (not table addresses, which are its own business)
    /// and its counters; null without nested paging.</summary>
    private static JsonObject? CaptureTdp(Hypervisor.Core.X86.Mmu.TdpMmu? mmu)
    {
        if (mmu == null)
            return null;
        var c = mmu.Counters;
        return new JsonObject
        {
            ["leaves"] = new JsonArray(mmu.ExportLeaves().Select(l => (JsonNode)new JsonObject
            {
                ["gpa"] = Hex64(l.Gpa), ["size"] = Hex64(l.Size), ["entry"] = Hex64(l.Entry),
            }).ToArray()),
            ["faultsHandled"] = c.FaultsHandled, ["mmioFaults"] = c.MmioFaults, ["smallPagesMapped"] = c.SmallPagesMapped,
            ["largePagesMapped"] = c.LargePagesMapped, ["zaps"] = c.Zaps,
        };
    }

    private static JsonObject CaptureExits(ExitStatistics stats)
    {
        var byReason = new JsonArray();
        foreach (var (r, n) in stats.ReasonCounts())
            byReason.Add(new JsonObject { ["reason"] = r, ["name"] = ExitName((KvmExitReason)r), ["count"] = n });
        var byVendor = new JsonArray();
        foreach (var (code, n) in stats.VendorCounts())
            byVendor.Add(new JsonObject { ["code"] = Hex64((ulong)code), ["name"] = stats.VendorNames?.Invoke(code) ?? "", ["count"] = n });
        return new JsonObject { ["byReason"] = byReason, ["byVendor"] = byVendor };
    }
}
