using Hypervisor.Host.Devices;

namespace Hypervisor.Host.Tests.Devices;

public class Uart16550Tests
{
    private const ushort Base = Uart16550.Com1Base;
    private const int Thr = 0, Ier = 1, Iir = 2, Fcr = 2, Lcr = 3, Mcr = 4, Lsr = 5, Msr = 6, Scr = 7;

    private MemoryStream _out = null!;
    private Uart16550 _uart = null!;

    [SetUp]
    public void SetUp()
    {
        _out = new MemoryStream();
        _uart = new Uart16550(_out);
    }

    private byte R(int reg) => (byte)_uart.Read((ushort)(Base + reg), 1);
    private void W(int reg, byte v) => _uart.Write((ushort)(Base + reg), 1, v);

    [Test]
    public void Reset_RegistersHoldDataSheetValues()
    {
        Assert.That(R(Ier), Is.EqualTo(0x00));
        Assert.That(R(Iir), Is.EqualTo(0x01), "no interrupt pending, FIFOs off");
        Assert.That(R(Lcr), Is.EqualTo(0x00));
        Assert.That(R(Mcr), Is.EqualTo(0x00));
        Assert.That(R(Lsr), Is.EqualTo(0x60), "THRE | TEMT");
        Assert.That(R(Msr), Is.EqualTo(0xB0), "a connected terminal: DCD, DSR, CTS");
    }

    [Test]
    public void Thr_Write_GoesToOutputAndLsrStaysEmpty()
    {
        foreach (char c in "hi\n")
            W(Thr, (byte)c);
        Assert.That(_out.ToArray(), Is.EqualTo("hi\n"u8.ToArray()));
        Assert.That(R(Lsr) & 0x60, Is.EqualTo(0x60));
        Assert.That(_uart.BytesTransmitted, Is.EqualTo(3));
    }

    [Test]
    public void Dlab_RedirectsOffsets0And1ToDivisorLatch()
    {
        W(Lcr, 0x83);
        W(0, 0x01);
        W(1, 0x02);
        Assert.That((R(0), R(1)), Is.EqualTo(((byte)0x01, (byte)0x02)));
        Assert.That(_out.Length, Is.EqualTo(0), "a DLL write is not a transmission");
        W(Lcr, 0x03);
        Assert.That(R(Ier), Is.EqualTo(0x00), "IER untouched by the DLM write");
        Assert.That(R(Lcr), Is.EqualTo(0x03));
    }

    [Test]
    public void Ier_KeepsOnlyLowFourBits()
    {
        W(Ier, 0xFF);
        Assert.That(R(Ier), Is.EqualTo(0x0F));
    }

    [Test]
    public void Scr_HoldsAnyByte()
    {
        W(Scr, 0xA5);
        Assert.That(R(Scr), Is.EqualTo(0xA5));
    }

    [Test]
    public void Fcr_EnableSetsIirFifoBits_DisableClears()
    {
        W(Fcr, 0xC7);
        Assert.That(R(Iir), Is.EqualTo(0xC1));
        W(Fcr, 0x00);
        Assert.That(R(Iir), Is.EqualTo(0x01));
    }

    [Test]
    public void ThreInterrupt_RaisedWhenEnabled_AcknowledgedByIirRead_RaisedAgainByTransmit()
    {
        W(Ier, 0x02);
        Assert.That(R(Iir), Is.EqualTo(0x02));
        Assert.That(R(Iir), Is.EqualTo(0x01), "reading IIR acknowledged it");
        W(Thr, (byte)'x');
        Assert.That(R(Iir), Is.EqualTo(0x02), "THR emptied again");
    }

    [Test]
    public void InterruptPending_NeedsOut2()
    {
        W(Ier, 0x02);
        Assert.That(_uart.InterruptPending, Is.False);
        W(Mcr, 0x08);
        Assert.That(_uart.InterruptPending, Is.True);
    }

    [Test]
    public void Loopback_TransmittedByteIsReceived_NotOutput()
    {
        W(Mcr, 0x10);
        W(Thr, 0xAE);
        Assert.That(_out.Length, Is.EqualTo(0));
        Assert.That(R(Lsr), Is.EqualTo(0x61));
        Assert.That(R(Thr), Is.EqualTo(0xAE));
        Assert.That(R(Lsr), Is.EqualTo(0x60));
    }

    [Test]
    public void Loopback_ModemInputsFollowOutputs()
    {
        W(Mcr, 0x10);
        R(Msr); // clear the deltas of entering loopback
        W(Mcr, 0x10 | 0x01); // DTR → DSR
        Assert.That(R(Msr), Is.EqualTo(0x20 | 0x02), "DSR with its delta");
        W(Mcr, 0x10 | 0x02 | 0x04 | 0x08); // RTS → CTS, OUT1 → RI, OUT2 → DCD; DTR dropped
        Assert.That(R(Msr), Is.EqualTo(0x10 | 0x40 | 0x80 | 0x01 | 0x02 | 0x08));
        Assert.That(R(Msr), Is.EqualTo(0xD0), "reading MSR cleared the deltas");
    }

    [Test]
    public void Loopback_RiTrailingEdgeSetsTeri()
    {
        W(Mcr, 0x10 | 0x04);
        R(Msr);
        W(Mcr, 0x10);
        Assert.That(R(Msr) & 0x0F, Is.EqualTo(0x04));
    }

    [Test]
    public void ModemStatusInterrupt_ReportedWhenEnabled()
    {
        W(Ier, 0x08);
        W(Mcr, 0x10); // entering loopback changes the inputs
        Assert.That(R(Iir), Is.EqualTo(0x00));
        R(Msr);
        Assert.That(R(Iir), Is.EqualTo(0x01));
    }

    [Test]
    public void Receive_WithoutFifo_OverrunSetsOeAndKeepsNewest()
    {
        _uart.Receive(1);
        _uart.Receive(2);
        Assert.That(R(Lsr), Is.EqualTo(0x63), "DR | OE | THRE | TEMT");
        Assert.That(R(Lsr), Is.EqualTo(0x61), "reading LSR cleared OE");
        Assert.That(R(Thr), Is.EqualTo(2));
    }

    [Test]
    public void Receive_WithFifo_QueuesSixteenThenOverruns()
    {
        W(Fcr, 0x01);
        for (int k = 0; k < 17; k++)
            _uart.Receive((byte)k);
        Assert.That(R(Lsr) & 0x03, Is.EqualTo(0x03));
        for (int k = 0; k < 16; k++)
            Assert.That(R(Thr), Is.EqualTo(k));
        Assert.That(R(Lsr) & 0x01, Is.EqualTo(0));
    }

    [Test]
    public void Fcr_ClearReceiveFifo_DropsData()
    {
        W(Fcr, 0x01);
        _uart.Receive(9);
        W(Fcr, 0x03);
        Assert.That(R(Lsr) & 0x01, Is.EqualTo(0));
    }

    [Test]
    public void ReceiveInterrupts_PriorityAndTriggerLevel()
    {
        W(Ier, 0x07); // RLS, RDA, THRE
        _uart.Receive(1);
        Assert.That(R(Iir), Is.EqualTo(0x04), "received data outranks THRE");
        _uart.Receive(2);
        Assert.That(R(Iir), Is.EqualTo(0x06), "the overrun's line status outranks received data");
        R(Lsr);
        R(Thr);
        Assert.That(R(Iir), Is.EqualTo(0x02), "then THRE");

        W(Fcr, 0x41); // FIFO, trigger level 4
        _uart.Receive(1);
        Assert.That(R(Iir), Is.EqualTo(0xCC), "below the trigger: character timeout");
        for (int k = 0; k < 3; k++)
            _uart.Receive(1);
        Assert.That(R(Iir), Is.EqualTo(0xC4), "at the trigger level: received data available");
    }

    [Test]
    public void Output_FlushedAtNewline()
    {
        var sink = new CountingStream();
        var uart = new Uart16550(sink);
        uart.Write(Base, 1, (byte)'a');
        Assert.That(sink.Flushes, Is.EqualTo(0));
        uart.Write(Base, 1, (byte)'\n');
        Assert.That(sink.Flushes, Is.EqualTo(1));
    }

    private sealed class CountingStream : MemoryStream
    {
        public int Flushes;
        public override void Flush() => Flushes++;
    }
}
