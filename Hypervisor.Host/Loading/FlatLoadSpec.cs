using System.Globalization;

namespace Hypervisor.Host.Loading;

/// <summary>
/// <c>--load flat:ADDR[,entry=ADDR][,mode=32|64]</c>: load the image file byte for byte at guest
/// physical ADDR and start it at the entry (default ADDR) in 32-bit protected mode (the default)
/// or 64-bit mode. Addresses are decimal or 0x-prefixed hexadecimal.
/// </summary>
public sealed record FlatLoadSpec(ulong Address, ulong Entry, int Mode)
{
    public const string Syntax = "flat:ADDR[,entry=ADDR][,mode=32|64]";

    public static bool TryParse(string text, out FlatLoadSpec? spec, out string error)
    {
        spec = null;
        const string prefix = "flat:";
        if (!text.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
        {
            error = $"'{text}' is not {Syntax} (flat is the only loader --load knows)";
            return false;
        }
        string[] parts = text[prefix.Length..].Split(',');
        if (!TryAddress(parts[0], out ulong address))
        {
            error = $"'{parts[0]}' is not an address (decimal, or hexadecimal with 0x): {Syntax}";
            return false;
        }
        ulong? entry = null;
        int mode = 32;
        foreach (string part in parts.Skip(1))
        {
            int eq = part.IndexOf('=');
            string key = eq < 0 ? part : part[..eq], value = eq < 0 ? "" : part[(eq + 1)..];
            switch (key.Trim().ToLowerInvariant())
            {
                case "entry" when TryAddress(value, out ulong e):
                    entry = e;
                    break;
                case "entry":
                    error = $"entry '{value}' is not an address (decimal, or hexadecimal with 0x)";
                    return false;
                case "mode" when value.Trim() is "32" or "64":
                    mode = int.Parse(value.Trim(), CultureInfo.InvariantCulture);
                    break;
                case "mode":
                    error = $"mode '{value}' is not 32 or 64";
                    return false;
                default:
                    error = $"unknown setting '{part}': {Syntax}";
                    return false;
            }
        }
        spec = new FlatLoadSpec(address, entry ?? address, mode);
        error = "";
        return true;
    }

    private static bool TryAddress(string text, out ulong value)
    {
        string t = text.Trim();
        if (t.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            return ulong.TryParse(t.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value) && t.Length > 2;
        return ulong.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"flat:0x{Address:x},entry=0x{Entry:x},mode={Mode}");
}
