using Microsoft.Extensions.Logging;

namespace Hypervisor.Host.Devices;

/// <summary>
/// The port I/O address space (0..0xFFFF) and the devices that claim ranges of it. A port no
/// device claims behaves as on a PC with nothing there: reads float to all ones, writes vanish.
/// Those accesses are logged at debug level, since a guest probing for hardware does it on purpose.
/// </summary>
public sealed partial class IoBus
{
    private readonly IPortDevice?[] _ports = new IPortDevice?[0x10000];
    private readonly ILogger _log;

    public IoBus(ILogger<IoBus>? log = null) => _log = log ?? (ILogger)Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

    /// <summary>Number of accesses to ports no device claims.</summary>
    public long UnclaimedAccesses { get; private set; }

    public void Register(ushort first, int count, IPortDevice device)
    {
        if (count <= 0 || first + count > 0x10000)
            throw new ArgumentOutOfRangeException(nameof(count), $"ports 0x{first:x}+{count} do not fit the I/O space");
        for (int p = first; p < first + count; p++)
        {
            if (_ports[p] is { } other)
                throw new InvalidOperationException($"port 0x{p:x} is already claimed by {other.GetType().Name}");
        }
        for (int p = first; p < first + count; p++)
            _ports[p] = device;
    }

    public IPortDevice? DeviceAt(ushort port) => _ports[port];

    public uint Read(ushort port, int size)
    {
        var d = _ports[port];
        if (d != null && size <= d.AccessWidth && SameDevice(port, size, d))
            return d.Read(port, size) & Mask(size);
        // Split into byte accesses: each byte comes from whatever answers at its own port.
        uint value = 0;
        for (int k = 0; k < size; k++)
        {
            ushort p = (ushort)(port + k);
            var dk = _ports[p];
            uint b;
            if (dk == null)
            {
                UnclaimedAccesses++;
                LogUnclaimedRead(p);
                b = 0xFF;
            }
            else
            {
                b = dk.Read(p, 1) & 0xFF;
            }
            value |= b << (8 * k);
        }
        return value;
    }

    public void Write(ushort port, int size, uint value)
    {
        var d = _ports[port];
        if (d != null && size <= d.AccessWidth && SameDevice(port, size, d))
        {
            d.Write(port, size, value & Mask(size));
            return;
        }
        for (int k = 0; k < size; k++)
        {
            ushort p = (ushort)(port + k);
            byte b = (byte)(value >> (8 * k));
            var dk = _ports[p];
            if (dk == null)
            {
                UnclaimedAccesses++;
                LogUnclaimedWrite(p, b);
            }
            else
            {
                dk.Write(p, 1, b);
            }
        }
    }

    private bool SameDevice(ushort port, int size, IPortDevice d)
    {
        for (int k = 1; k < size; k++)
        {
            if (!ReferenceEquals(_ports[(ushort)(port + k)], d))
                return false;
        }
        return true;
    }

    private static uint Mask(int size) => size >= 4 ? uint.MaxValue : (1u << (size * 8)) - 1;

    [LoggerMessage(Level = LogLevel.Debug, Message = "Unclaimed port 0x{Port:x4} read: returns 0xff")]
    private partial void LogUnclaimedRead(ushort port);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Unclaimed port 0x{Port:x4} write 0x{Value:x2}: ignored")]
    private partial void LogUnclaimedWrite(ushort port, byte value);
}
