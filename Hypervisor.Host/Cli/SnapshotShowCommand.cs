using System.CommandLine;
using System.Text.Json.Nodes;
using Hypervisor.Core.Snapshots;

namespace Hypervisor.Host.Cli;

/// <summary><c>hv snapshot show FILE</c>: a checked snapshot as readable tables (registers,
/// segments, control and debug registers, MSRs, register cache, RAP, exits, devices, memory).
/// The vendor section is listed field by field with only non-zero fields.</summary>
public sealed class SnapshotShowCommand : Command
{
    private readonly HostConsole _console;

    public Argument<FileInfo> File { get; } = new("FILE") { Description = "A snapshot file" };

    public SnapshotShowCommand(HostConsole console)
        : base("show", "Show a snapshot as tables (after checking its checksum and version)")
    {
        _console = console;
        Arguments.Add(File);
        SetAction(parse => Run(parse.GetValue(File)!.FullName));
    }

    public int Run(string path)
    {
        MachineSnapshot snap;
        try
        {
            snap = MachineSnapshot.Load(path);
        }
        catch (SnapshotException e)
        {
            _console.Error.WriteLine($"hv: snapshot show: {e.Message}");
            return ExitCodes.UsageOrImageError;
        }
        Write(_console.Out, snap.Content);
        return 0;
    }

    private static string S(JsonNode? n) => n switch
    {
        null => "-",
        JsonValue v when v.TryGetValue(out string? s) => s,
        _ => n.ToJsonString(),
    };

    public static void Write(TextWriter o, JsonObject c)
    {
        o.WriteLine($"hv snapshot v{S(c["version"])}  vendor {S(c["vendor"])}  host CPU {S(c["hostCpu"])}  checksum ok");
        o.WriteLine();
        o.WriteLine("Registers");
        var regs = c["regs"]!.AsObject().ToList();
        for (int i = 0; i < regs.Count; i += 3)
            o.WriteLine("  " + string.Join("   ", regs.Skip(i).Take(3).Select(kv => $"{kv.Key,-6} {S(kv.Value)}")));
        var sregs = c["sregs"]!.AsObject();
        o.WriteLine();
        o.WriteLine("Segments      selector  base                limit       attributes");
        foreach (var name in new[] { "cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt" })
        {
            var s = sregs[name]!;
            o.WriteLine($"  {name,-10}  {S(s["selector"]),-8}  {S(s["base"]),-18}  {S(s["limit"]),-10}  {S(s["attributes"])}");
        }
        foreach (var name in new[] { "gdt", "idt" })
            o.WriteLine($"  {name,-10}            {S(sregs[name]!["base"]),-18}  {S(sregs[name]!["limit"])}");
        o.WriteLine();
        o.WriteLine($"Control       cpl {S(sregs["cpl"])}");
        foreach (var row in new[] { new[] { "cr0", "cr2", "cr3" }, ["cr4", "cr8", "efer"], ["dr0", "dr1", "dr2"], ["dr3", "dr6", "dr7"] })
            o.WriteLine("  " + string.Join("   ", row.Select(k => $"{k,-5} {S(sregs[k])}")));
        o.WriteLine($"  xcr0  {S(c["xcr0"])}   apicBase {S(sregs["apicBase"])}");
        if (c["xsave"]?["x87"] is JsonObject x87)
            o.WriteLine($"  x87   fcw {S(x87["fcw"])}  fsw {S(x87["fsw"])}  ftw {S(x87["ftw"])}  fip {S(x87["fip"])}  fdp {S(x87["fdp"])}");
        o.WriteLine();
        o.WriteLine("MSRs");
        foreach (var (k, v) in c["msrs"]!.AsObject())
            if (k != "processor")
                o.WriteLine($"  {k,-18} {S(v)}");
        var cache = c["regCache"]!;
        o.WriteLine();
        o.WriteLine("Register cache");
        o.WriteLine($"  avail {S(cache["avail"])}  {S(cache["availNames"])}");
        o.WriteLine($"  dirty {S(cache["dirty"])}  {S(cache["dirtyNames"])}");
        var rap = c["rap"]!;
        var entries = rap["entries"]!.AsArray();
        o.WriteLine();
        o.WriteLine($"RAP           {entries.Count} of {S(rap["capacity"])} entries used ({S(rap["physicalEntries"])} physical, tagged {S(rap["tagged"])})");
        o.WriteLine($"  calls {S(rap["calls"])}  returns {S(rap["returns"])}  predictions {S(rap["predictions"])}  mispredictions {S(rap["mispredictions"])}  underflows {S(rap["underflows"])}");
        o.WriteLine($"  cross-domain uses {S(rap["crossDomainUses"])}  reverse-domain uses {S(rap["reverseDomainUses"])}  clears {S(rap["clears"])}  tag mismatches {S(rap["tagMismatches"])}");
        for (int i = entries.Count - 1; i >= 0; i--)
            o.WriteLine($"  [{entries.Count - 1 - i,2}] {S(entries[i]!["returnAddress"])}  {S(entries[i]!["domain"])}{(i == entries.Count - 1 ? "  (newest)" : "")}");
        string vendorKey = c.ContainsKey("vmcb") ? "vmcb" : "vmcs";
        if (c[vendorKey] is JsonObject vendor)
        {
            o.WriteLine();
            o.WriteLine($"{vendorKey.ToUpperInvariant()} (non-zero fields)");
            foreach (var (area, fields) in vendor)
            {
                if (fields is not JsonObject f)
                    continue;
                foreach (var (k, v) in f)
                    if (S(v).Trim('0', 'x').Length > 0 && S(v) != "false")
                        o.WriteLine($"  {area}.{k,-28} {S(v)}");
            }
        }
        var ev = c["events"]!;
        o.WriteLine();
        o.WriteLine($"Events        last exit {S(ev["lastExit"]!["name"])}  pending completion {S(ev["completion"]!["kind"])}  requests {S(ev["requests"])}");
        var clock = c["clock"]!;
        o.WriteLine($"Clock         {S(clock["mode"])}  instructions retired {Convert.ToUInt64(S(clock["instructionsRetired"]), 16)}  TSC offset {S(clock["tscOffset"])}");
        o.WriteLine();
        o.WriteLine("Exits to userspace");
        foreach (var e in c["exits"]!["byReason"]!.AsArray())
            o.WriteLine($"  {S(e!["name"]),-28} {S(e["count"]),10}");
        o.WriteLine("Vendor exits");
        foreach (var e in c["exits"]!["byVendor"]!.AsArray())
            o.WriteLine($"  {S(e!["name"]),-28} {S(e["count"]),10}");
        if (c["tdp"] is JsonObject tdp)
            o.WriteLine($"TDP MMU       {tdp["leaves"]!.AsArray().Count} leaves  faults handled {S(tdp["faultsHandled"])}  MMIO faults {S(tdp["mmioFaults"])}");
        o.WriteLine();
        o.WriteLine("Devices");
        foreach (var (name, state) in c["devices"]!.AsObject())
            o.WriteLine($"  {name,-10} {string.Join("  ", state!.AsObject().Select(kv => $"{kv.Key}={S(kv.Value)}"))}");
        if (c["memory"] is JsonObject mem)
        {
            var chunks = mem["chunks"]!.AsArray();
            int zero = chunks.Count(x => S(x) == MemoryImage.ZeroChunk);
            o.WriteLine();
            o.WriteLine($"Memory        {S(mem["file"])}  {Convert.ToUInt64(S(mem["size"]), 16) >> 20} MiB  sha256 {S(mem["sha256"])}");
            o.WriteLine($"  {chunks.Count} chunks of 1 MiB, {zero} all zero (holes in the file)");
        }
    }
}
