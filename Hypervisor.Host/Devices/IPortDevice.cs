namespace Hypervisor.Host.Devices;

/// <summary>
/// A device on the I/O port bus. <see cref="AccessWidth"/> is the widest access the device
/// decodes at once; the bus splits wider accesses into consecutive narrower ones, little-endian,
/// as a PC's ISA bus does for an 8-bit device. Port numbers given to the device are absolute.
/// </summary>
public interface IPortDevice
{
    int AccessWidth { get; }
    uint Read(ushort port, int size);
    void Write(ushort port, int size, uint value);
}
