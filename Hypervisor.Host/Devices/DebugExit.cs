namespace Hypervisor.Host.Devices;

/// <summary>
/// QEMU's isa-debug-exit device (iobase 0xF4, iosize 4): a write of any size of value v ends the
/// run, and hv exits with status (v &lt;&lt; 1) | 1, so a guest test can report pass/fail without
/// ever colliding with 0 (clean halt). Reads return 0, as QEMU's device does.
/// </summary>
public sealed partial class DebugExit : IPortDevice
{
    public const ushort BasePort = 0xF4;
    public const int PortCount = 4;

    public int AccessWidth => 4;

    /// <summary>The value written, once the guest has written one.</summary>
    public uint? Value { get; private set; }

    public uint Read(ushort port, int size) => 0;

    public void Write(ushort port, int size, uint value) => Value ??= value;

    public void Reset() => Value = null;

    /// <summary>The process exit status QEMU gives for a written value (the shell sees the low 8 bits).</summary>
    public static int StatusFor(uint value) => (int)((value << 1) | 1);
}
