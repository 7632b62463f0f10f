namespace Hypervisor.Host.Devices;

/// <summary>
/// A 16550A UART (National Semiconductor PC16550D data sheet) as COM1 at 0x3F8, transmitting to
/// a host stream. Transmission is instantaneous: THR is empty again as soon as it is written, so
/// LSR always shows THRE|TEMT and a polling driver never waits. Receive is fed by loopback
/// (MCR bit 4) or by <see cref="Receive"/>. The modem inputs show a connected terminal (CTS, DSR
/// and DCD asserted). Interrupt conditions are computed exactly (IIR, <see cref="InterruptPending"/>)
/// although no interrupt controller listens yet.
/// </summary>
public sealed partial class Uart16550 : IPortDevice
{
    public const ushort Com1Base = 0x3F8;
    public const int PortCount = 8;

    // Register offsets.
    private const int RbrThrDll = 0, IerDlm = 1, IirFcr = 2, LcrReg = 3, McrReg = 4, LsrReg = 5, MsrReg = 6, ScrReg = 7;

    // LSR bits.
    public const byte LsrDr = 0x01, LsrOe = 0x02, LsrPe = 0x04, LsrFe = 0x08, LsrBi = 0x10, LsrThre = 0x20, LsrTemt = 0x40, LsrFifoError = 0x80;
    // IER bits.
    private const byte IerRda = 0x01, IerThre = 0x02, IerRls = 0x04, IerMsi = 0x08;
    // IIR identifications (bit 0 clear = pending).
    private const byte IirNone = 0x01, IirMsi = 0x00, IirThre = 0x02, IirRda = 0x04, IirRls = 0x06, IirTimeout = 0x0C, IirFifos = 0xC0;
    // MCR bits.
    private const byte McrDtr = 0x01, McrRts = 0x02, McrOut1 = 0x04, McrOut2 = 0x08, McrLoop = 0x10;
    // MSR bits: deltas in 3:0, line states in 7:4.
    private const byte MsrDcts = 0x01, MsrDdsr = 0x02, MsrTeri = 0x04, MsrDdcd = 0x08, MsrCts = 0x10, MsrDsr = 0x20, MsrRi = 0x40, MsrDcd = 0x80;
    private const byte LcrDlab = 0x80;
    private const int FifoSize = 16;

    private readonly Stream _output;
    private readonly ushort _base;

    private byte _ier, _lcr, _mcr, _lsr, _msrDeltas, _scr, _fcr, _dll, _dlm;
    private byte _rbr;
    private bool _thrInterrupt;
    private readonly byte[] _rxFifo = new byte[FifoSize];
    private int _rxHead, _rxCount;

    public Uart16550(Stream output, ushort basePort = Com1Base)
    {
        _output = output;
        _base = basePort;
        Reset();
    }

    public int AccessWidth => 1;

    /// <summary>Bytes the guest transmitted to the host stream.</summary>
    public long BytesTransmitted { get; private set; }

    /// <summary>Master reset (data sheet table IV): every register but the divisor latch and scratch cleared.</summary>
    public void Reset()
    {
        _ier = _lcr = _mcr = _fcr = 0;
        _lsr = LsrThre | LsrTemt;
        _msrDeltas = 0;
        _rbr = 0;
        _rxHead = _rxCount = 0;
        _thrInterrupt = false;
        // The divisor is undefined after reset; 0x000C (9600 baud) is what a PC BIOS leaves.
        _dll = 0x0C;
        _dlm = 0;
    }

    private bool FifoEnabled => (_fcr & 0x01) != 0;
    private bool Dlab => (_lcr & LcrDlab) != 0;
    private bool Loopback => (_mcr & McrLoop) != 0;

    public uint Read(ushort port, int size)
    {
        switch (port - _base)
        {
            case RbrThrDll:
                return Dlab ? _dll : ReadRbr();
            case IerDlm:
                return Dlab ? _dlm : _ier;
            case IirFcr:
                return ReadIir();
            case LcrReg:
                return _lcr;
            case McrReg:
                return _mcr;
            case LsrReg:
            {
                byte v = _lsr;
                // Reading LSR clears the error indications (OE, PE, FE, BI and the FIFO error bit).
                _lsr &= unchecked((byte)~(LsrOe | LsrPe | LsrFe | LsrBi | LsrFifoError));
                return v;
            }
            case MsrReg:
            {
                byte v = (byte)(ModemInputs() | _msrDeltas);
                _msrDeltas = 0; // reading MSR clears the delta bits
                return v;
            }
            case ScrReg:
                return _scr;
            default:
                return 0xFF;
        }
    }

    public void Write(ushort port, int size, uint value)
    {
        byte v = (byte)value;
        switch (port - _base)
        {
            case RbrThrDll:
                if (Dlab) _dll = v;
                else Transmit(v);
                break;
            case IerDlm:
                if (Dlab)
                {
                    _dlm = v;
                }
                else
                {
                    byte old = _ier;
                    _ier = (byte)(v & 0x0F);
                    // Enabling the THRE interrupt while THR is empty raises it at once.
                    if ((old & IerThre) == 0 && (_ier & IerThre) != 0 && (_lsr & LsrThre) != 0)
                        _thrInterrupt = true;
                }
                break;
            case IirFcr:
                WriteFcr(v);
                break;
            case LcrReg:
                _lcr = v;
                break;
            case McrReg:
            {
                byte oldInputs = ModemInputs();
                _mcr = (byte)(v & 0x1F);
                NoteModemChange(oldInputs, ModemInputs());
                break;
            }
            case ScrReg:
                _scr = v;
                break;
            // LSR and MSR are read-only: writes have no effect.
        }
    }

    /// <summary>A byte arriving on the receive line (from the host, or from loopback).</summary>
    public void Receive(byte b)
    {
        if (FifoEnabled)
        {
            if (_rxCount == FifoSize)
            {
                _lsr |= LsrOe; // the FIFO keeps its contents; the new character is lost
                return;
            }
            _rxFifo[(_rxHead + _rxCount) % FifoSize] = b;
            _rxCount++;
        }
        else
        {
            if ((_lsr & LsrDr) != 0)
                _lsr |= LsrOe; // the unread character is overwritten
            _rbr = b;
        }
        _lsr |= LsrDr;
    }

    /// <summary>The interrupt output: true when IIR reports a pending interrupt and OUT2 gates it
    /// onto the PC's IRQ line.</summary>
    public bool InterruptPending => (CurrentInterrupt() & 1) == 0 && (_mcr & McrOut2) != 0;

    /// <summary>Pushes buffered transmitted bytes to the host stream.</summary>
    public void Flush() => _output.Flush();

    private void Transmit(byte b)
    {
        _thrInterrupt = false; // writing THR clears the THRE interrupt ...
        if (Loopback)
        {
            Receive(b);
        }
        else
        {
            _output.WriteByte(b);
            BytesTransmitted++;
            if (b == (byte)'\n')
                _output.Flush(); // line-buffered, like a terminal: output survives an abrupt end
        }
        // ... and the instantaneous transmitter empties THR again, which raises it anew.
        _thrInterrupt = true;
    }

    private byte ReadRbr()
    {
        byte v;
        if (FifoEnabled)
        {
            if (_rxCount == 0)
                return _rbr;
            v = _rxFifo[_rxHead];
            _rxHead = (_rxHead + 1) % FifoSize;
            _rxCount--;
            _rbr = v;
            if (_rxCount == 0)
                _lsr &= unchecked((byte)~LsrDr);
            return v;
        }
        _lsr &= unchecked((byte)~LsrDr);
        return _rbr;
    }

    private void WriteFcr(byte v)
    {
        bool wasEnabled = FifoEnabled;
        bool enable = (v & 0x01) != 0;
        // Changing the FIFO mode resets both FIFOs; bits 1 and 2 reset them explicitly.
        if (enable != wasEnabled || (v & 0x02) != 0)
        {
            _rxHead = _rxCount = 0;
            _lsr &= unchecked((byte)~LsrDr);
        }
        _fcr = enable ? (byte)(v & 0xC9) : (byte)0;
    }

    private int RxTriggerLevel => (_fcr >> 6) switch { 0 => 1, 1 => 4, 2 => 8, _ => 14 };

    /// <summary>IIR, highest priority first (data sheet table IV). Reading it acknowledges a THRE
    /// interrupt when that is the one reported.</summary>
    private byte ReadIir()
    {
        byte id = CurrentInterrupt();
        if (id == IirThre)
            _thrInterrupt = false;
        return (byte)(id | (FifoEnabled ? IirFifos : 0));
    }

    private byte CurrentInterrupt()
    {
        if ((_ier & IerRls) != 0 && (_lsr & (LsrOe | LsrPe | LsrFe | LsrBi)) != 0)
            return IirRls;
        if ((_ier & IerRda) != 0 && (_lsr & LsrDr) != 0)
        {
            // No time passes between characters here, so a FIFO below its trigger level reports
            // the character timeout at once instead of after four character times.
            if (!FifoEnabled || _rxCount >= RxTriggerLevel)
                return IirRda;
            return IirTimeout;
        }
        if ((_ier & IerThre) != 0 && _thrInterrupt)
            return IirThre;
        if ((_ier & IerMsi) != 0 && _msrDeltas != 0)
            return IirMsi;
        return IirNone;
    }

    /// <summary>MSR bits 7:4. In loopback the modem control outputs drive them (DTR→DSR, RTS→CTS,
    /// OUT1→RI, OUT2→DCD); otherwise a connected terminal asserts CTS, DSR and DCD.</summary>
    private byte ModemInputs()
    {
        if (!Loopback)
            return MsrCts | MsrDsr | MsrDcd;
        byte v = 0;
        if ((_mcr & McrRts) != 0) v |= MsrCts;
        if ((_mcr & McrDtr) != 0) v |= MsrDsr;
        if ((_mcr & McrOut1) != 0) v |= MsrRi;
        if ((_mcr & McrOut2) != 0) v |= MsrDcd;
        return v;
    }

    private void NoteModemChange(byte before, byte after)
    {
        byte changed = (byte)(before ^ after);
        if ((changed & MsrCts) != 0) _msrDeltas |= MsrDcts;
        if ((changed & MsrDsr) != 0) _msrDeltas |= MsrDdsr;
        if ((changed & MsrDcd) != 0) _msrDeltas |= MsrDdcd;
        if ((before & MsrRi) != 0 && (after & MsrRi) == 0) _msrDeltas |= MsrTeri; // trailing edge only
    }
}
