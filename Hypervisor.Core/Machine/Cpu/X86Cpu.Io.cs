namespace Hypervisor.Core.Machine.Cpu;

public sealed unsafe partial class X86Cpu
{
    /// <summary>I/O permission (SDM vol. 1 §19.5): in protected mode with CPL > IOPL (or in
    /// virtual-8086 mode) every byte of the access must be allowed by the TSS I/O bitmap, else #GP(0).</summary>
    internal bool CheckIoPermission(ushort port, int size)
    {
        if (!IsProtectedMode)
            return true;
        int iopl = (int)((_rflags >> 12) & 3);
        if (!IsV86Mode && Cpl <= iopl)
            return true;
        ref var tr = ref Segs[SegReg.Tr];
        // Only a 32/64-bit TSS has a bitmap; its offset is the word at 0x66.
        if ((tr.Type & 8) == 0 || tr.Limit < 0x67)
        {
            RaiseGp0();
            return false;
        }
        ulong mapBase = ReadSystem(tr.Base + 0x66, 2);
        if (_abort) return false;
        ulong byteOff = mapBase + (ulong)(port >> 3);
        if (byteOff + 1 > tr.Limit)
        {
            RaiseGp0();
            return false;
        }
        ulong bits = ReadSystem(tr.Base + byteOff, 2);
        if (_abort) return false;
        ulong mask = ((1UL << size) - 1) << (port & 7);
        if ((bits & mask) != 0)
        {
            RaiseGp0();
            return false;
        }
        return true;
    }
}
