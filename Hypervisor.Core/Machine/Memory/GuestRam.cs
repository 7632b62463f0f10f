using System.Runtime.InteropServices;

namespace Hypervisor.Core.Machine.Memory;

/// <summary>
/// Host memory behind guest RAM. On Linux an anonymous mapping aligned to 2 MiB and advised for
/// transparent huge pages (MADV_HUGEPAGE): the kernel then commits guest memory 2 MiB at a time
/// on first touch instead of one 4 KiB page fault at a time. Restoring a snapshot writes every
/// touched megabyte at once, and with 4 KiB pages the faults were most of its cost (about 200 ms
/// of kernel time for 64 MiB here, against 5 ms with huge pages). Untouched memory still costs
/// nothing; a touched byte commits its 2 MiB. Elsewhere, or when the mapping is refused, zeroed
/// heap memory (committed lazily by the OS as well).
/// </summary>
internal static unsafe class GuestRam
{
    private const ulong HugePage = 2UL << 20;

    private const int ProtRead = 1, ProtWrite = 2;
    private const int MapPrivate = 0x02, MapAnonymous = 0x20, MapNoReserve = 0x4000;
    private const int MadvHugePage = 14;

    /// <summary>Zeroed host memory of <paramref name="size"/> bytes; <paramref name="mapped"/>
    /// says whether <see cref="Free"/> must unmap it.</summary>
    public static byte* Allocate(ulong size, out bool mapped)
    {
        if (OperatingSystem.IsLinux() && size >= HugePage)
        {
            byte* p = TryMapAligned(size);
            if (p != null)
            {
                mapped = true;
                return p;
            }
        }
        mapped = false;
        return (byte*)NativeMemory.AllocZeroed((nuint)size);
    }

    public static void Free(byte* host, ulong size, bool mapped)
    {
        if (mapped)
            Munmap(host, (nuint)size);
        else
            NativeMemory.Free(host);
    }

    /// <summary>Maps size + 2 MiB and trims it to a 2 MiB-aligned range of exactly
    /// <paramref name="size"/> bytes (rounded to pages), so huge pages can back all of it.</summary>
    private static byte* TryMapAligned(ulong size)
    {
        try
        {
            ulong length = size + HugePage;
            byte* raw = (byte*)Mmap(null, (nuint)length, ProtRead | ProtWrite, MapPrivate | MapAnonymous | MapNoReserve, -1, 0);
            if (raw == (byte*)-1 || raw == null)
                return null;
            ulong start = ((ulong)raw + HugePage - 1) & ~(HugePage - 1);
            ulong end = (ulong)raw + length;
            ulong used = (size + 4095) & ~4095UL;
            if (start > (ulong)raw)
                Munmap(raw, (nuint)(start - (ulong)raw));
            if (end > start + used)
                Munmap((byte*)(start + used), (nuint)(end - start - used));
            // Advice only: without THP (or with it disabled) the mapping works with small pages.
            Madvise((byte*)start, (nuint)used, MadvHugePage);
            return (byte*)start;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    [DllImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static extern void* Mmap(void* address, nuint length, int prot, int flags, int fd, long offset);

    [DllImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static extern int Munmap(void* address, nuint length);

    [DllImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static extern int Madvise(void* address, nuint length, int advice);
}
