using System.Globalization;
using System.Text;
using System.Text.Json;
using Hypervisor.Core.Machine.Models;
using Hypervisor.Core.X86.Cpuid;

namespace Hypervisor.Host.Cli;

/// <summary>
/// CPUID tables as people and programs read them: a table with the names of the feature bits
/// each entry sets (from <see cref="CpuFeatures"/>), or JSON shaped like KVM's
/// <c>struct kvm_cpuid_entry2</c> (function, index, flags, eax, ebx, ecx, edx as numbers).
/// </summary>
public static class CpuidFormat
{
    /// <summary>EBX[23:16] of leaf 0x80000021: the RAP size ERAPS enumerates (KVM-FACTS §2).</summary>
    private const uint ErapsLeaf = 0x80000021;

    public static void WriteTable(TextWriter w, IReadOnlyList<CpuidEntry> entries)
    {
        var c = CultureInfo.InvariantCulture;
        w.WriteLine($"{"leaf",-10}  {"subleaf",-7}  {"eax",-10}  {"ebx",-10}  {"ecx",-10}  {"edx",-10}  features");
        foreach (var e in entries)
        {
            bool indexed = (e.Flags & CpuidEntry.SignificantIndex) != 0;
            string sub = indexed ? e.Index.ToString(c) : "-";
            string line = string.Create(c, $"0x{e.Function:x8}  {sub,-7}  0x{e.Eax:x8}  0x{e.Ebx:x8}  0x{e.Ecx:x8}  0x{e.Edx:x8}  {Describe(e)}");
            w.WriteLine(line.TrimEnd());
        }
    }

    /// <summary>The feature bits <paramref name="e"/> sets, by register: "edx: fpu pse; ecx: pcid".
    /// Leaf 0x80000021 also shows the RAP size that goes with ERAPS.</summary>
    public static string Describe(CpuidEntry e)
    {
        var parts = new List<string>();
        foreach (var reg in new[] { CpuidReg.Eax, CpuidReg.Ebx, CpuidReg.Ecx, CpuidReg.Edx })
        {
            var names = FeaturesSet(e, reg).Select(f => f.Name).ToList();
            if (e.Function == ErapsLeaf && reg == CpuidReg.Ebx && (e.Ebx & 0x00FF_0000) != 0)
                names.Add(string.Create(CultureInfo.InvariantCulture, $"rap_size={(e.Ebx >> 16) & 0xFF}"));
            if (names.Count > 0)
                parts.Add($"{reg.ToString().ToLowerInvariant()}: {string.Join(' ', names)}");
        }
        return string.Join("; ", parts);
    }

    /// <summary>The named features whose bit is set in register <paramref name="reg"/> of <paramref name="e"/>.</summary>
    public static IEnumerable<CpuFeature> FeaturesSet(CpuidEntry e, CpuidReg reg)
    {
        bool indexed = (e.Flags & CpuidEntry.SignificantIndex) != 0;
        foreach (var f in CpuFeatures.All)
        {
            if (f.Function != e.Function || f.Reg != reg || f.Index != (indexed ? e.Index : 0))
                continue;
            if ((CpuCaps.Register(e, reg) & f.Mask) != 0)
                yield return f;
        }
    }

    public static void WriteJson(TextWriter w, IReadOnlyList<CpuidEntry> entries)
    {
        w.WriteLine(ToJson(entries));
    }

    public static string ToJson(IReadOnlyList<CpuidEntry> entries)
    {
        using var stream = new MemoryStream();
        using (var j = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            j.WriteStartArray();
            foreach (var e in entries)
            {
                j.WriteStartObject();
                j.WriteNumber("function", e.Function);
                j.WriteNumber("index", e.Index);
                j.WriteNumber("flags", e.Flags);
                j.WriteNumber("eax", e.Eax);
                j.WriteNumber("ebx", e.Ebx);
                j.WriteNumber("ecx", e.Ecx);
                j.WriteNumber("edx", e.Edx);
                j.WriteEndObject();
            }
            j.WriteEndArray();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
