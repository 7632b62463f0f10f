using System.Text;
using Hypervisor.Core.Machine.Decoding;
using Iced.Intel;

namespace Hypervisor.Core.Machine.Cpu;

public sealed unsafe partial class X86Cpu
{
    /// <summary>"unimplemented instruction 'fsin' (d9 fe) at cs:rip 0008:0000000000100034 (64-bit)"-style text.</summary>
    internal string DescribeInstruction(ref DecodedInsn i)
    {
        ulong linear = Segs[SegReg.Cs].Base + i.Ip;
        var bytes = new byte[i.Length];
        var hex = new StringBuilder();
        bool ok = true;
        for (int k = 0; k < i.Length; k++)
        {
            // Read without side effects on the fault state.
            if (!Translate(linear + (ulong)k, AccessType.Execute, false, out ulong phys, out _))
            {
                _abort = false;
                _pendingVector = -1;
                ok = false;
                break;
            }
            byte* p = Memory.HostPointer(phys, out _);
            bytes[k] = p == null ? (byte)0xFF : *p;
            hex.Append(k == 0 ? "" : " ").Append(bytes[k].ToString("x2"));
        }
        string text = i.Mnemonic.ToString().ToLowerInvariant();
        if (ok)
        {
            var dec = Iced.Intel.Decoder.Create(CodeBits, new ByteArrayCodeReader(bytes), i.Ip);
            dec.Decode(out var ins);
            var fmt = new NasmFormatter();
            var output = new StringOutput();
            fmt.Format(ins, output);
            text = output.ToStringAndReset();
        }
        return $"unimplemented instruction '{text}' ({hex}) at cs:rip {Segs[SegReg.Cs].Selector:x4}:{i.Ip:x16} ({CodeBits}-bit)";
    }
}
