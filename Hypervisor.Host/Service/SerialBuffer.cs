namespace Hypervisor.Host.Service;

/// <summary>
/// One VM's COM1 output, kept in memory for <c>GET /vms/{id}/serial</c>: a write-only stream the
/// UART writes to from the VM's thread while the API reads a copy from another. It keeps the most
/// recent <see cref="Capacity"/> bytes, as a console scrollback does, and counts what it dropped.
/// </summary>
public sealed class SerialBuffer : Stream
{
    private readonly object _gate = new();
    private readonly byte[] _ring;
    private long _written;

    public SerialBuffer(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _ring = new byte[capacity];
    }

    public int Capacity => _ring.Length;

    /// <summary>Every byte the guest has written, including those no longer kept.</summary>
    public long TotalWritten
    {
        get { lock (_gate) return _written; }
    }

    /// <summary>Bytes written but no longer kept (older than the last <see cref="Capacity"/>).</summary>
    public long Dropped
    {
        get { lock (_gate) return Math.Max(0, _written - _ring.Length); }
    }

    /// <summary>The bytes kept, oldest first.</summary>
    public byte[] ToArray()
    {
        lock (_gate)
        {
            int kept = (int)Math.Min(_written, _ring.Length);
            var copy = new byte[kept];
            int start = (int)((_written - kept) % _ring.Length);
            int first = Math.Min(kept, _ring.Length - start);
            Array.Copy(_ring, start, copy, 0, first);
            Array.Copy(_ring, 0, copy, first, kept - first);
            return copy;
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        lock (_gate)
        {
            // Only the tail of an oversized write can survive.
            if (buffer.Length > _ring.Length)
            {
                _written += buffer.Length - _ring.Length;
                buffer = buffer[^_ring.Length..];
            }
            int at = (int)(_written % _ring.Length);
            int first = Math.Min(buffer.Length, _ring.Length - at);
            buffer[..first].CopyTo(_ring.AsSpan(at));
            buffer[first..].CopyTo(_ring);
            _written += buffer.Length;
        }
    }

    public override void WriteByte(byte value) => Write([value]);

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
