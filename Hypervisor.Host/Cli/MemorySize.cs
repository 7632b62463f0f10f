using System.Globalization;

namespace Hypervisor.Host.Cli;

/// <summary>
/// Parses guest memory sizes: a number of bytes, or a number with a binary suffix K, M, G or T
/// (256M, 1G, 65536K; case-insensitive, "KiB"/"MB" style spellings accepted). The result must be
/// a multiple of 4 KiB and at least 1 MiB. Shown back in the same form (help shows "256M").
/// </summary>
public readonly record struct MemorySize(ulong Bytes)
{
    public const ulong DefaultBytes = 256UL << 20;
    public const ulong Minimum = 1UL << 20;
    public const ulong Granule = 4096;

    public static MemorySize Default => new(DefaultBytes);

    public override string ToString()
    {
        foreach (var (shift, unit) in new[] { (40, "T"), (30, "G"), (20, "M"), (10, "K") })
        {
            if (Bytes != 0 && Bytes % (1UL << shift) == 0)
                return $"{Bytes >> shift}{unit}";
        }
        return Bytes.ToString(CultureInfo.InvariantCulture);
    }

    public static bool TryParse(string text, out ulong bytes, out string error)
    {
        bytes = 0;
        string s = text.Trim();
        int digits = 0;
        while (digits < s.Length && char.IsAsciiDigit(s[digits]))
            digits++;
        if (digits == 0)
        {
            error = $"'{text}' is not a memory size (examples: 256M, 1G, 65536K, 16777216)";
            return false;
        }
        if (!ulong.TryParse(s.AsSpan(0, digits), NumberStyles.None, CultureInfo.InvariantCulture, out ulong n))
        {
            error = $"'{text}' is too large";
            return false;
        }
        string suffix = s[digits..].ToUpperInvariant();
        int shift = suffix switch
        {
            "" or "B" => 0,
            "K" or "KB" or "KIB" => 10,
            "M" or "MB" or "MIB" => 20,
            "G" or "GB" or "GIB" => 30,
            "T" or "TB" or "TIB" => 40,
            _ => -1,
        };
        if (shift < 0)
        {
            error = $"'{text}' has an unknown unit '{s[digits..]}' (use K, M, G or T)";
            return false;
        }
        if (shift > 0 && n > ulong.MaxValue >> shift)
        {
            error = $"'{text}' is too large";
            return false;
        }
        bytes = n << shift;
        if (bytes < Minimum)
        {
            error = $"'{text}' is less than the minimum of 1 MiB";
            return false;
        }
        if (bytes % Granule != 0)
        {
            error = $"'{text}' is not a multiple of 4 KiB";
            return false;
        }
        error = "";
        return true;
    }
}
