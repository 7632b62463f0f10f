using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Hypervisor.Core.Machine.Memory;
using static Hypervisor.Core.Snapshots.SnapshotFormat;

namespace Hypervisor.Core.Snapshots;

/// <summary>One memory slot's place in the raw memory file.</summary>
public readonly record struct MemoryImageSlot(int Slot, ulong GuestBase, ulong Size, ulong FileOffset);

/// <summary>
/// Guest memory of a snapshot: the slots' bytes one after the other, in a raw file the snapshot
/// references by name, size and SHA-256. Every 1 MiB chunk also has a fast hash (XXH3-64), or "0"
/// when the chunk is all zero: zero chunks are left as holes in the file and skipped on restore
/// (a fresh VM's memory is zero already), and a restore verifies each chunk it copies with its
/// XXH3 hash instead of hashing the whole file with SHA-256, which is what keeps it fast.
/// </summary>
public sealed class MemoryImage
{
    public const int ChunkSize = 1 << 20;
    public const string ZeroChunk = "0";

    private readonly CapturedChunks? _data;  // captured in this process: a copy of each non-zero chunk
    private readonly string? _path;     // or read from this file

    private MemoryImage(IReadOnlyList<MemoryImageSlot> slots, ulong size, string sha256, string[] chunks, CapturedChunks? data, string? path)
    {
        Slots = slots;
        Size = size;
        Sha256 = sha256;
        Chunks = chunks;
        _data = data;
        _path = path;
    }

    public IReadOnlyList<MemoryImageSlot> Slots { get; }
    public ulong Size { get; }
    /// <summary>SHA-256 of the whole raw file (what <c>sha256sum</c> prints for it).</summary>
    public string Sha256 { get; }
    /// <summary>Per 1 MiB chunk of the file: its XXH3-64 as 16 hex digits, or "0" when all zero.</summary>
    public IReadOnlyList<string> Chunks { get; }

    public int ZeroChunks => Chunks.Count(c => c == ZeroChunk);

    private static readonly byte[] Zeros = new byte[ChunkSize];

    /// <summary>Copies every non-zero chunk of <paramref name="memory"/>'s user slots and hashes
    /// them; all-zero chunks are neither copied nor stored (most of a large guest's memory).</summary>
    public static MemoryImage Capture(PhysicalMemory memory)
    {
        var userSlots = UserSlots(memory);
        var slots = new List<MemoryImageSlot>();
        var chunks = new List<string>();
        ulong total = 0;
        int chunkCount = 0;
        foreach (var s in userSlots)
        {
            if (s.Size > int.MaxValue)
                throw new SnapshotException($"memory slot {s.Id} is {s.Size >> 20} MiB: snapshots hold slots of up to 2 GiB");
            total += s.Size;
            chunkCount += (int)((s.Size + ChunkSize - 1) / ChunkSize);
        }
        var data = new CapturedChunks(total, chunkCount);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        ulong offset = 0;
        foreach (var s in userSlots)
        {
            for (ulong at = 0; at < s.Size; at += ChunkSize)
            {
                int length = (int)Math.Min(ChunkSize, s.Size - at);
                var bytes = s.AsSpan(at, length);
                if (!bytes.ContainsAnyExcept((byte)0))
                {
                    sha.AppendData(Zeros, 0, length);
                    chunks.Add(ZeroChunk);
                    continue;
                }
                var copy = data.Add(chunks.Count, bytes);
                sha.AppendData(copy);
                chunks.Add(XxHash3.HashToUInt64(copy).ToString("x16"));
            }
            slots.Add(new MemoryImageSlot(s.Id, s.GuestBase, s.Size, offset));
            offset += s.Size;
        }
        return new MemoryImage(slots, offset, Convert.ToHexStringLower(sha.GetHashAndReset()), chunks.ToArray(), data, null);
    }

    /// <summary>Guest RAM: the user slots, not the hypervisor's private ones (the TDP MMU's tables,
    /// which the "tdp" section describes).</summary>
    private static List<MemorySlot> UserSlots(PhysicalMemory memory) =>
        memory.Slots.Where(s => s.Id < Hypervisor.Core.X86.Mmu.TdpMmu.PrivateSlotIdBase).OrderBy(s => s.GuestBase).ToList();

    private static string ChunkHash(ReadOnlySpan<byte> chunk) =>
        chunk.ContainsAnyExcept((byte)0) ? XxHash3.HashToUInt64(chunk).ToString("x16") : ZeroChunk;

    /// <summary>The "memory" section: the file by name (null while the snapshot is only in memory),
    /// size, SHA-256, the slot layout and the chunk hashes.</summary>
    public JsonObject Describe(string? fileName) => new()
    {
        ["file"] = fileName,
        ["size"] = Hex64(Size),
        ["sha256"] = Sha256,
        ["slots"] = new JsonArray(Slots.Select(s => (JsonNode)new JsonObject
        {
            ["slot"] = s.Slot, ["base"] = Hex64(s.GuestBase), ["size"] = Hex64(s.Size), ["fileOffset"] = Hex64(s.FileOffset),
        }).ToArray()),
        ["chunkSize"] = ChunkSize,
        ["chunkHash"] = "xxh3-64",
        ["chunks"] = new JsonArray(Chunks.Select(c => (JsonNode)c).ToArray()),
    };

    /// <summary>Writes the raw file: non-zero chunks only, zero chunks left as holes.</summary>
    public void WriteFile(string path)
    {
        var data = _data ?? throw new InvalidOperationException("only a captured memory image is written");
        using var handle = File.OpenHandle(path, FileMode.Create, FileAccess.Write);
        RandomAccess.SetLength(handle, (long)Size);
        ForEachChunk((c, fileOffset, length) =>
        {
            if (data.TryGet(c, out var bytes))
                RandomAccess.Write(handle, bytes, fileOffset);
        });
        GC.KeepAlive(data); // its buffer is native memory, freed when it is collected
    }

    /// <summary>Reads a "memory" section; the file is looked for beside the snapshot and must have
    /// the recorded size. Its contents are verified chunk by chunk when restored.</summary>
    public static MemoryImage Read(SnapshotReader r, string directory)
    {
        string file = r.String("file");
        if (file.Length == 0 || file != Path.GetFileName(file))
            throw new SnapshotException($"memory.file: \"{file}\" must be a plain file name (the file sits beside the snapshot)");
        string path = Path.Combine(directory, file);
        ulong size = r.Hex("size");
        string sha = r.String("sha256");
        long chunkSize = r.Number("chunkSize");
        if (chunkSize != ChunkSize || r.String("chunkHash") != "xxh3-64")
            throw new SnapshotException($"memory: chunks of {chunkSize} bytes hashed with {r.String("chunkHash")} are not supported (1048576 and xxh3-64 are)");
        var slotsNode = r.Array("slots");
        var slots = new List<MemoryImageSlot>();
        ulong expect = 0;
        int expectChunks = 0;
        for (int i = 0; i < slotsNode.Count; i++)
        {
            var e = SnapshotReader.Element(slotsNode, i, "memory.slots");
            var s = new MemoryImageSlot((int)e.Number("slot"), e.Hex("base"), e.Hex("size"), e.Hex("fileOffset"));
            if (s.FileOffset != expect || s.Size == 0 || s.Size > int.MaxValue)
                throw new SnapshotException($"memory.slots[{i}]: slot {s.Slot} at file offset 0x{s.FileOffset:x} size 0x{s.Size:x} does not follow the previous slot");
            expect += s.Size;
            expectChunks += (int)((s.Size + ChunkSize - 1) / ChunkSize);
            slots.Add(s);
        }
        if (expect != size)
            throw new SnapshotException($"memory.size: 0x{size:x} is not the slots' total 0x{expect:x}");
        var chunksNode = r.Array("chunks");
        if (chunksNode.Count != expectChunks)
            throw new SnapshotException($"memory.chunks: {chunksNode.Count} hashes where the slots have {expectChunks} chunks");
        var chunks = new string[expectChunks];
        for (int i = 0; i < expectChunks; i++)
        {
            string c = chunksNode[i]?.ToString() ?? "";
            if (c != ZeroChunk && (c.Length != 16 || !c.All(char.IsAsciiHexDigit)))
                throw new SnapshotException($"memory.chunks[{i}]: \"{c}\" is neither \"0\" nor 16 hex digits");
            chunks[i] = c;
        }
        if (!File.Exists(path))
            throw new SnapshotException($"memory file {path} does not exist (the snapshot references it by name; keep it beside the snapshot)");
        long actual = new FileInfo(path).Length;
        if ((ulong)actual != size)
            throw new SnapshotException($"memory file {path} has {actual} bytes; the snapshot says {size} (truncated or replaced)");
        return new MemoryImage(slots, size, sha, chunks, null, path);
    }

    /// <summary>Checks the slot layout against <paramref name="memory"/> (changing nothing).</summary>
    public void CheckLayout(PhysicalMemory memory)
    {
        var target = UserSlots(memory);
        if (target.Count != Slots.Count)
            throw new SnapshotException($"memory: the snapshot has {Slots.Count} memory slots, this VM {target.Count}");
        for (int i = 0; i < target.Count; i++)
            if (target[i].Id != Slots[i].Slot || target[i].GuestBase != Slots[i].GuestBase || target[i].Size != Slots[i].Size)
                throw new SnapshotException($"memory.slots[{i}]: slot {Slots[i].Slot} at 0x{Slots[i].GuestBase:x} size 0x{Slots[i].Size:x} does not match this VM's slot {target[i].Id} at 0x{target[i].GuestBase:x} size 0x{target[i].Size:x}");
    }

    /// <summary>Verifies every chunk of the file against its hash without restoring anything, so a
    /// corrupted memory file is refused before any state changes. Zero chunks that are holes in
    /// the file are known to be zero without reading them.</summary>
    public void Verify()
    {
        if (_path == null)
            return;
        using var handle = File.OpenHandle(_path, FileMode.Open, FileAccess.Read);
        var buffer = GC.AllocateUninitializedArray<byte>(ChunkSize);
        ForEachChunk((chunk, fileOffset, length) =>
        {
            if (Chunks[chunk] == ZeroChunk && IsHole(handle, fileOffset, length))
                return;
            var span = buffer.AsSpan(0, length);
            ReadExactly(handle, span, fileOffset);
            CheckChunk(chunk, fileOffset, span);
        });
    }

    /// <summary>Copies the image into <paramref name="memory"/> (laid out as <see cref="CheckLayout"/>
    /// checked). With <paramref name="targetIsZero"/> (a VM created for this restore, discarded if it
    /// fails) zero chunks are not touched and a file is read straight into guest memory, each chunk
    /// checked as it arrives. Otherwise the file's chunks are all read and verified into a staging
    /// copy first, so a corrupted file changes nothing, and then copied in (each read and hashed
    /// once); zero chunks clear only memory that is not zero already, so untouched guest memory
    /// stays uncommitted.</summary>
    public void RestoreInto(PhysicalMemory memory, bool targetIsZero)
    {
        using var staged = _data == null && _path != null && !targetIsZero ? Stage() : null;
        var source = _data ?? staged;
        var slots = UserSlots(memory);
        using var handle = _path != null && source == null ? File.OpenHandle(_path, FileMode.Open, FileAccess.Read) : null;
        int chunk = 0;
        for (int s = 0; s < slots.Count; s++)
        {
            var slot = slots[s];
            for (ulong at = 0; at < slot.Size; at += ChunkSize, chunk++)
            {
                int length = (int)Math.Min(ChunkSize, slot.Size - at);
                var target = slot.AsSpan(at, length);
                if (Chunks[chunk] == ZeroChunk)
                {
                    if (!targetIsZero && target.ContainsAnyExcept((byte)0))
                        target.Clear();
                    continue;
                }
                if (source != null)
                {
                    if (!source.TryGet(chunk, out var copy))
                        throw new InvalidOperationException($"chunk {chunk} has a hash but no copy");
                    copy.CopyTo(target);
                    continue;
                }
                long fileOffset = (long)(Slots[s].FileOffset + at);
                ReadExactly(handle!, target, fileOffset);
                CheckChunk(chunk, fileOffset, target);
            }
        }
        GC.KeepAlive(_data); // the copies are native memory, freed when it is collected
    }

    /// <summary>Reads every non-zero chunk of the file into a staging copy, verifying each, and
    /// checks the zero chunks that are not holes; throws before anything is restored.</summary>
    private CapturedChunks Stage()
    {
        var stage = new CapturedChunks((ulong)(Chunks.Count - ZeroChunks) * ChunkSize, Chunks.Count);
        try
        {
            using var handle = File.OpenHandle(_path!, FileMode.Open, FileAccess.Read);
            byte[]? scratch = null;
            ForEachChunk((chunk, fileOffset, length) =>
            {
                Span<byte> target;
                if (Chunks[chunk] == ZeroChunk)
                {
                    if (IsHole(handle, fileOffset, length))
                        return;
                    scratch ??= GC.AllocateUninitializedArray<byte>(ChunkSize);
                    target = scratch.AsSpan(0, length);
                }
                else
                {
                    target = stage.Reserve(chunk, length);
                }
                ReadExactly(handle, target, fileOffset);
                CheckChunk(chunk, fileOffset, target);
            });
            return stage;
        }
        catch
        {
            stage.Dispose();
            throw;
        }
    }

    private void ForEachChunk(Action<int, long, int> visit)
    {
        int chunk = 0;
        foreach (var s in Slots)
            for (ulong at = 0; at < s.Size; at += ChunkSize, chunk++)
                visit(chunk, (long)(s.FileOffset + at), (int)Math.Min(ChunkSize, s.Size - at));
    }

    private void CheckChunk(int chunk, long fileOffset, ReadOnlySpan<byte> bytes)
    {
        if (ChunkHash(bytes) != Chunks[chunk])
            throw new SnapshotException($"memory file {_path}: the 1 MiB chunk at offset 0x{fileOffset:x} does not match its hash (corrupted)");
    }

    private static void ReadExactly(Microsoft.Win32.SafeHandles.SafeFileHandle handle, Span<byte> target, long offset)
    {
        int done = 0;
        while (done < target.Length)
        {
            int n = RandomAccess.Read(handle, target[done..], offset + done);
            if (n == 0)
                throw new SnapshotException($"memory file ends at offset 0x{offset + done:x} (truncated)");
            done += n;
        }
    }

    private const int SeekData = 3;

    [DllImport("libc", SetLastError = true, EntryPoint = "lseek")]
    private static extern long LSeek(int fd, long offset, int whence);

    /// <summary>True when the file has no data in [offset, offset+length) (a hole reads as zeros).
    /// False whenever that cannot be told (no SEEK_DATA), so the caller reads the range instead.</summary>
    private static bool IsHole(Microsoft.Win32.SafeHandles.SafeFileHandle handle, long offset, int length)
    {
        if (!OperatingSystem.IsLinux())
            return false;
        try
        {
            long next = LSeek((int)handle.DangerousGetHandle(), offset, SeekData);
            if (next < 0)
                return Marshal.GetLastPInvokeError() == 6; // ENXIO: no data after offset
            return next >= offset + length;
        }
        catch (EntryPointNotFoundException)
        {
            return false;
        }
        catch (DllNotFoundException)
        {
            return false;
        }
    }
}
