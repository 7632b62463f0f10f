using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Machine.Decoding;
using Hypervisor.Core.Machine.Memory;
using Hypervisor.Core.Machine.Models;
using Iced.Intel;

namespace Hypervisor.Core.Tests.Support.Data;

/// <summary>
/// A 64-bit machine like <see cref="GuestMachine"/> (same addresses, identity paging of the first
/// 4 GiB) but on a CPU model the test chooses, for instructions whose behaviour depends on a
/// CPUID feature of the hardware (TZCNT without BMI1 is BSF, for instance). GuestMachine always
/// builds the default model.
/// </summary>
public sealed class ModelMachine : IDisposable
{
    public PhysicalMemory Memory { get; } = new();
    public X86Cpu Cpu { get; }

    public ModelMachine(HostCpuModel model)
    {
        Memory.AddSlot(0, 0, GuestMachine.RamSize);
        Cpu = new X86Cpu(Memory, model);
        // GDT: null, 0x08 code64 (L), 0x10 flat writable data.
        Memory.WriteU64(GuestMachine.GdtBase + 0x08, 0x00AF9B000000FFFFUL);
        Memory.WriteU64(GuestMachine.GdtBase + 0x10, 0x00CF93000000FFFFUL);
        Cpu.Gdtr = new DescriptorTable { Base = GuestMachine.GdtBase, Limit = 0x17 };
        ulong pml4 = GuestMachine.Pml4Base;
        Memory.WriteU64(pml4, (pml4 + 0x1000) | 7);
        for (ulong g = 0; g < 4; g++)
        {
            ulong pd = pml4 + 0x2000 + g * 0x1000;
            Memory.WriteU64(pml4 + 0x1000 + g * 8, pd | 7);
            for (ulong e = 0; e < 512; e++)
                Memory.WriteU64(pd + e * 8, ((g << 30) + (e << 21)) | 0x87);
        }
        Cpu.WriteCr4(Cr4.Pae);
        Cpu.WriteCr3(pml4);
        Cpu.WriteEfer(Efer.Lme | Efer.Nxe);
        Cpu.WriteCr0(Cr0.Pe | Cr0.Et | Cr0.Pg | Cr0.Wp);
        var data = new Segment { Selector = 0x10, Limit = 0xFFFFFFFF, Attributes = 0xC093 };
        Cpu.SetSegment(SegReg.Cs, new Segment { Selector = 0x08, Limit = 0xFFFFFFFF, Attributes = 0xA09B });
        foreach (int s in new[] { SegReg.Ds, SegReg.Es, SegReg.Ss, SegReg.Fs, SegReg.Gs })
            Cpu.SetSegment(s, data);
        Cpu.SetGpr(Gpr.Rsp, GuestMachine.StackTop);
        ExceptionTrap.Install(Memory, Cpu);
    }

    /// <summary>The default model with one CPUID feature bit forced on or off.</summary>
    public static HostCpuModel DefaultWith(uint leaf, char register, int bit, bool present)
    {
        var d = HostCpuModel.Default;
        var table = d.Cpuid.Clone();
        var e = table.Lookup(leaf, 0);
        uint m = 1u << bit;
        uint Apply(uint r) => present ? r | m : r & ~m;
        table.Set(e with
        {
            Eax = register == 'a' ? Apply(e.Eax) : e.Eax,
            Ebx = register == 'b' ? Apply(e.Ebx) : e.Ebx,
            Ecx = register == 'c' ? Apply(e.Ecx) : e.Ecx,
            Edx = register == 'd' ? Apply(e.Edx) : e.Edx,
        });
        return new HostCpuModel(d.Name + "-test", d.Description, d.Vendor, table, d.MaxPhysAddrBits, d.RapEntries, d.ResetEdx);
    }

    /// <summary>Assembles at <see cref="GuestMachine.CodeBase"/>, appends HLT, runs until an exit.</summary>
    public CpuExit Run(Action<Assembler> build)
    {
        var a = new Assembler(64);
        build(a);
        a.hlt();
        var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), GuestMachine.CodeBase);
        Memory.Write(GuestMachine.CodeBase, stream.ToArray());
        Cpu.Rip = GuestMachine.CodeBase;
        return Cpu.Run(1_000_000);
    }

    public CaughtException? Caught => ExceptionTrap.Caught(Memory);

    public void Dispose()
    {
        Cpu.Dispose();
        Memory.Dispose();
    }
}
