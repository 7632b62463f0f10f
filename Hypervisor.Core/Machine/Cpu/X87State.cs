namespace Hypervisor.Core.Machine.Cpu;

/// <summary>
/// The x87 FPU state (XSAVE state component 0) as the legacy region of an XSAVE area holds it
/// (SDM vol. 1 §10.5.1, §13.5.1): control, status and abridged tag words, last opcode, last
/// instruction and data pointers, and ST0..ST7 as 80-bit values. This CPU does not execute x87
/// instructions; it keeps the state so XSAVE and XRSTOR save and restore it faithfully.
/// </summary>
public sealed class X87State
{
    public const int StBytes = 8 * 10;

    public ushort Fcw, Fsw, Fop, Fcs, Fds;
    /// <summary>Abridged tag word: bit i set when physical register i is valid (FXSAVE/XSAVE form).</summary>
    public byte Ftw;
    public ulong Fip, Fdp;
    /// <summary>ST0..ST7, 10 bytes each, in register order.</summary>
    public readonly byte[] St = new byte[StBytes];

    /// <summary>FCW after RESET (SDM vol. 3 table 10-1: 0040H); the other fields are zero.</summary>
    public void Reset()
    {
        Init();
        Fcw = 0x0040;
    }

    /// <summary>The init configuration XRSTOR loads for a component whose XSTATE_BV bit is clear
    /// (SDM vol. 1 §13.6): FCW 037FH, everything else zero, every register empty.</summary>
    public void Init()
    {
        Fcw = 0x037F;
        Fsw = Fop = Fcs = Fds = 0;
        Ftw = 0;
        Fip = Fdp = 0;
        Array.Clear(St);
    }

    /// <summary>True when the state is the init configuration (what XINUSE[0] = 0 means).</summary>
    public bool IsInit
    {
        get
        {
            if (Fcw != 0x037F || Fsw != 0 || Ftw != 0 || Fop != 0 || Fcs != 0 || Fds != 0 || Fip != 0 || Fdp != 0)
                return false;
            foreach (byte b in St)
                if (b != 0) return false;
            return true;
        }
    }
}
