using System.Text.Json.Nodes;
using Hypervisor.Core.Snapshots;
using static Hypervisor.Core.Snapshots.SnapshotFormat;

namespace Hypervisor.Host.Devices;

/// <summary>The UART's registers and receive FIFO in a snapshot (what was transmitted already
/// went to the output and is not part of the device).</summary>
public sealed partial class Uart16550 : ISnapshotDevice
{
    public string SnapshotName => "com1";

    public JsonObject CaptureSnapshot() => new()
    {
        ["ier"] = Hex8(_ier), ["lcr"] = Hex8(_lcr), ["mcr"] = Hex8(_mcr), ["lsr"] = Hex8(_lsr), ["msrDeltas"] = Hex8(_msrDeltas),
        ["scr"] = Hex8(_scr), ["fcr"] = Hex8(_fcr), ["dll"] = Hex8(_dll), ["dlm"] = Hex8(_dlm), ["rbr"] = Hex8(_rbr),
        ["thrInterrupt"] = _thrInterrupt,
        ["rxFifo"] = Convert.ToHexStringLower(Enumerable.Range(0, _rxCount).Select(i => _rxFifo[(_rxHead + i) % FifoSize]).ToArray()),
        ["bytesTransmitted"] = BytesTransmitted,
    };

    public Action ReadSnapshot(SnapshotReader r)
    {
        byte B(string key)
        {
            ulong v = r.Hex(key);
            return v <= 0xFF ? (byte)v : throw new SnapshotException($"{r.Path}.{key}: 0x{v:x} is not a byte");
        }
        var regs = (B("ier"), B("lcr"), B("mcr"), B("lsr"), B("msrDeltas"), B("scr"), B("fcr"), B("dll"), B("dlm"), B("rbr"));
        bool thr = r.Bool("thrInterrupt");
        string fifo = r.String("rxFifo");
        if (fifo.Length % 2 != 0 || fifo.Length / 2 > FifoSize || !fifo.All(char.IsAsciiHexDigit))
            throw new SnapshotException($"{r.Path}.rxFifo: expected at most {FifoSize} bytes as hex digits");
        byte[] rx = Convert.FromHexString(fifo);
        long sent = r.Number("bytesTransmitted");
        return () =>
        {
            (_ier, _lcr, _mcr, _lsr, _msrDeltas, _scr, _fcr, _dll, _dlm, _rbr) = regs;
            _thrInterrupt = thr;
            Array.Clear(_rxFifo);
            rx.CopyTo(_rxFifo, 0);
            _rxHead = 0;
            _rxCount = rx.Length;
            BytesTransmitted = sent;
        };
    }
}
