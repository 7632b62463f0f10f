using Hypervisor.Svm.Hardware;

namespace Hypervisor.Svm.Tests.Support;

/// <summary>
/// One VMCB field for the offset tests: its APM offset and width written as literals here (never
/// taken from <see cref="VmcbOffset"/>, so a wrong constant cannot hide), and how to set and get
/// it through the typed accessor.
/// </summary>
public sealed record FieldCase(string Name, int Offset, int Width, Action<Vmcb, ulong> Set, Func<Vmcb, ulong> Get)
{
    public override string ToString() => $"{Name}@0x{Offset:x3}";

    /// <summary>A value whose bytes are all different and non-zero (11h, 22h, ...), cut to the field width.</summary>
    public ulong Pattern => Width == 8 ? 0x8877_6655_4433_2211UL : 0x8877_6655_4433_2211UL & ((1UL << (Width * 8)) - 1);
}

public static class VmcbAssert
{
    /// <summary>Writes the pattern through the accessor and checks that exactly the field's bytes
    /// changed, little-endian at the APM offset; then writes raw bytes and reads them back.</summary>
    public static void FieldAt(FieldCase f)
    {
        using var vmcb = new Vmcb();
        ulong v = f.Pattern;
        f.Set(vmcb, v);
        var bytes = vmcb.Bytes.ToArray();
        Assert.Multiple(() =>
        {
            for (int i = 0; i < f.Width; i++)
                Assert.That(bytes[f.Offset + i], Is.EqualTo((byte)(v >> (8 * i))), $"{f.Name}: byte {i} at 0x{f.Offset + i:x}");
            int changed = bytes.Count(b => b != 0);
            Assert.That(changed, Is.EqualTo(f.Width), $"{f.Name}: bytes outside the field changed");
        });

        vmcb.Clear();
        ulong w = ~v & (f.Width == 8 ? ulong.MaxValue : (1UL << (f.Width * 8)) - 1);
        for (int i = 0; i < f.Width; i++)
            vmcb.Bytes[f.Offset + i] = (byte)(w >> (8 * i));
        Assert.That(f.Get(vmcb), Is.EqualTo(w), $"{f.Name}: getter reads the bytes at 0x{f.Offset:x}");
    }
}
