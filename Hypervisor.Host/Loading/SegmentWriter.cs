using Hypervisor.Core.Machine.Memory;

namespace Hypervisor.Host.Loading;

/// <summary>Copies checked segments of a file into guest memory and zeroes their bss.</summary>
internal static class SegmentWriter
{
    public static void Write(PhysicalMemory memory, byte[] file, IReadOnlyList<LoadSegment> segments)
    {
        Span<byte> zeros = stackalloc byte[4096];
        foreach (var s in segments)
        {
            memory.Write(s.Address, file.AsSpan((int)s.FileOffset, (int)s.FileSize));
            // Zero the bss even though fresh guest memory is zero: the loader must not depend on it.
            for (ulong a = s.FileEnd; a < s.End; a += (ulong)zeros.Length)
                memory.Write(a, zeros[..(int)Math.Min((ulong)zeros.Length, s.End - a)]);
        }
    }
}
