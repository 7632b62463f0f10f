using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.X86.Cpuid;

namespace Hypervisor.Core.X86.Emulation;

/// <summary>
/// Architectural work both vendors share, called from their exit handlers. Each returns KVM's
/// handler convention: 1 to resume the guest, 0 to return to userspace with <see cref="Vcpu.Exit"/>
/// filled. Faults are injected into the guest, never thrown.
/// </summary>
public static partial class Emulate
{
    public static int InjectGp(Vcpu v)
    {
        v.Ops.InjectException(v, Vector.GP, true, 0);
        return 1;
    }

    public static int InjectUd(Vcpu v)
    {
        v.Ops.InjectException(v, Vector.UD, false, 0);
        return 1;
    }

    private static int Skip(Vcpu v) => v.Ops.SkipEmulatedInstruction(v) ? 1 : 0;

    /// <summary>CPUID from the guest's table (KVM_SET_CPUID2) with the bits that follow guest state.</summary>
    public static int Cpuid(Vcpu v)
    {
        uint function = (uint)v.ReadGpr(Gpr.Rax), index = (uint)v.ReadGpr(Gpr.Rcx);
        var e = v.Cpuid?.Lookup(function, index) ?? default;
        uint eax = e.Eax, ebx = e.Ebx, ecx = e.Ecx, edx = e.Edx;
        switch (e.Function)
        {
            case 1:
                ecx = (ecx & ~CpuFeatures.Osxsave.Mask) | ((v.Cr4 & Cr4.Osxsave) != 0 && (ecx & CpuFeatures.Xsave.Mask) != 0 ? CpuFeatures.Osxsave.Mask : 0);
                ebx = (ebx & 0x00FF_FFFF) | ((uint)v.Id << 24); // initial APIC id
                break;
            case 0xD when e.Index == 0:
                ebx = XsaveAreaSize(v, v.Xcr0); // the area XSAVE needs for what XCR0 enables now
                break;
        }
        v.WriteGpr(Gpr.Rax, eax);
        v.WriteGpr(Gpr.Rbx, ebx);
        v.WriteGpr(Gpr.Rcx, ecx);
        v.WriteGpr(Gpr.Rdx, edx);
        return Skip(v);
    }

    /// <summary>HLT with the interrupt controller in userspace: KVM_EXIT_HLT after the instruction.</summary>
    public static int Hlt(Vcpu v)
    {
        if (!v.Ops.SkipEmulatedInstruction(v)) return 0;
        v.Exit = new VcpuExit { Reason = KvmExitReason.Hlt };
        return 0;
    }

    /// <summary>IN/OUT to userspace (KVM_EXIT_IO, count 1). The instruction completes on the next
    /// run: OUT is skipped then, IN also receives the data userspace supplied.</summary>
    public static int Pio(Vcpu v, ushort port, int size, bool isIn, bool isString,
        bool isRep = false, int addressSize = 8, int segment = SegReg.Ds)
    {
        if (isString)
            return StringPio(v, port, size, isIn, isRep, addressSize, segment);
        v.Exit = new VcpuExit
        {
            Reason = KvmExitReason.Io,
            IoIn = isIn,
            IoSize = (byte)size,
            IoPort = port,
            IoCount = 1,
            IoData = isIn ? 0 : v.ReadGpr(Gpr.Rax) & X86Cpu.SizeMask(size),
        };
        v.ExpectPio(isIn);
        return 0;
    }

    /// <summary>
    /// INS/OUTS, one element per exit as KVM's emulator can do it: OUTS reads [seg:rSI] from guest
    /// memory and exits with it; INS exits for the port's value and stores it at ES:rDI. On the next
    /// run rSI/rDI advance by the element size (backwards with DF), rCX counts down under REP, and
    /// the instruction is skipped only when the count reaches zero (else it runs, and exits, again).
    /// </summary>
    private static int StringPio(Vcpu v, ushort port, int size, bool isIn, bool isRep, int addressSize, int segment)
    {
        ulong amask = X86Cpu.SizeMask(addressSize);
        if (isRep && (v.ReadGpr(Gpr.Rcx) & amask) == 0)
            return Skip(v);
        if (isIn)
        {
            v.Exit = new VcpuExit { Reason = KvmExitReason.Io, IoIn = true, IoSize = (byte)size, IoPort = port, IoCount = 1 };
            v.ExpectStringPio(isIn: true, size, isRep, addressSize, SegReg.Es);
            return 0;
        }
        ulong linear = StringLinear(v, segment, v.ReadGpr(Gpr.Rsi) & amask);
        Span<byte> data = stackalloc byte[8];
        if (!GuestMemory.TryRead(v, linear, data[..size], out var pf))
        {
            v.Cr2 = pf.Address;
            v.Ops.InjectException(v, Vector.PF, true, pf.ErrorCode);
            return 1;
        }
        v.Exit = new VcpuExit { Reason = KvmExitReason.Io, IoIn = false, IoSize = (byte)size, IoPort = port, IoCount = 1, IoData = BitConverter.ToUInt64(data) & X86Cpu.SizeMask(size) };
        v.ExpectStringPio(isIn: false, size, isRep, addressSize, segment);
        return 0;
    }

    /// <summary>Segment base + offset; 32-bit wrap outside 64-bit mode.</summary>
    internal static ulong StringLinear(Vcpu v, int segment, ulong offset)
    {
        bool long64 = v.IsLongMode && v.Ops.GetSegment(v, SegReg.Cs).Long;
        ulong baseAddr = long64 && segment < SegReg.Fs ? 0 : v.Ops.GetSegment(v, segment).Base;
        ulong linear = baseAddr + offset;
        return long64 ? linear : (uint)linear;
    }

    /// <summary>An access to guest physical memory no slot backs: KVM_EXIT_MMIO. A read is completed
    /// by the instruction running again with the value userspace supplied.</summary>
    public static int Mmio(Vcpu v, ulong gpa, int size, bool isWrite, ulong data)
    {
        v.Exit = new VcpuExit { Reason = KvmExitReason.Mmio, MmioAddress = gpa, MmioLength = (byte)size, MmioIsWrite = isWrite, MmioData = data };
        if (!isWrite)
            v.ExpectMmioRead();
        return 0;
    }

    /// <summary>MOV to CR0/CR3/CR4/CR8 (write intercepts) through the common policies.</summary>
    public static int SetCr(Vcpu v, int cr, ulong value)
    {
        bool ok = cr switch
        {
            0 => SetCr0(v, value),
            3 => ControlRegisters.SetCr3(v, value),
            4 => SetCr4(v, value),
            8 => SetCr8(v, value),
            _ => false,
        };
        return ok ? Skip(v) : InjectGp(v);
    }

    public static bool SetCr0(Vcpu v, ulong cr0)
    {
        cr0 |= Cr0.Et;
        if ((cr0 >> 32) != 0) return false;
        if ((cr0 & Cr0.Pg) != 0 && (cr0 & Cr0.Pe) == 0) return false;
        if ((cr0 & Cr0.Nw) != 0 && (cr0 & Cr0.Cd) == 0) return false;
        ulong old = v.Cr0;
        bool enablePg = (old & Cr0.Pg) == 0 && (cr0 & Cr0.Pg) != 0;
        if (enablePg && (v.Efer & Efer.Lme) != 0)
        {
            if ((v.Cr4 & Cr4.Pae) == 0) return false;
            if (v.Ops.GetSegment(v, SegReg.Cs).Long) return false;
            v.Efer |= Efer.Lma;
            v.Ops.SetEfer(v, v.Efer);
        }
        else if (enablePg && (v.Cr4 & Cr4.Pae) != 0 && !ControlRegisters.LoadPdptrs(v, v.Cr3))
        {
            return false;
        }
        if ((old & Cr0.Pg) != 0 && (cr0 & Cr0.Pg) == 0 && (v.Efer & Efer.Lma) != 0)
        {
            v.Efer &= ~Efer.Lma;
            v.Ops.SetEfer(v, v.Efer);
        }
        v.Regs.Write(VcpuReg.Cr0, cr0);
        v.Ops.SetCr0(v, cr0);
        if (((old ^ cr0) & (Cr0.Pg | Cr0.Wp)) != 0)
            v.MakeRequest(VcpuRequest.TlbFlushGuest);
        return true;
    }

    public static bool SetCr4(Vcpu v, ulong cr4)
    {
        if (!ControlRegisters.IsValidCr4(v, cr4)) return false;
        ulong old = v.Cr4;
        if (v.IsLongMode && (cr4 & Cr4.Pae) == 0) return false;
        if ((cr4 & Cr4.Pcide) != 0 && (old & Cr4.Pcide) == 0 && (!v.IsLongMode || (v.Cr3 & Cr3Bits.PcidMask) != 0)) return false;
        if (v.IsPaging && !v.IsLongMode && (cr4 & Cr4.Pae) != 0 && ((old ^ cr4) & (Cr4.Pae | Cr4.Pge | Cr4.Pse | Cr4.Smep)) != 0
            && !ControlRegisters.LoadPdptrs(v, v.Cr3))
            return false;
        v.Regs.Write(VcpuReg.Cr4, cr4);
        v.Ops.SetCr4(v, cr4);
        if (((old ^ cr4) & (Cr4.Pge | Cr4.Pae | Cr4.Pse | Cr4.Smep | Cr4.Smap | Cr4.Pcide)) != 0)
            v.MakeRequest(VcpuRequest.TlbFlushGuest);
        return true;
    }

    private static bool SetCr8(Vcpu v, ulong value)
    {
        if ((value & ~0xFUL) != 0) return false;
        v.Cr8 = value;
        return true;
    }

    /// <summary>XSETBV (KVM's __kvm_set_xcr): only XCR0; bit 0 set; only bits the guest's CPUID
    /// enumerates in leaf 0xD; AVX needs SSE; MPX's two bits together; APX only for a guest with
    /// APX_F; MPX and APX never together (their state shares offset 960 of the XSAVE area).</summary>
    public static int Xsetbv(Vcpu v, uint index, ulong value)
    {
        if (index != 0 || !IsValidXcr0(v, value))
            return InjectGp(v);
        v.Xcr0 = value;
        return Skip(v);
    }

    /// <summary>KVM's xstate_required_size for the standard format: the legacy region and header,
    /// then each enabled extended component at the offset the guest's CPUID gives it.</summary>
    internal static uint XsaveAreaSize(Vcpu v, ulong xcr0)
    {
        uint size = 512 + 64;
        for (int bit = 2; bit < 63; bit++)
        {
            if ((xcr0 & (1UL << bit)) == 0) continue;
            var c = v.Cpuid?.Lookup(0xD, (uint)bit) ?? default;
            size = Math.Max(size, c.Ebx + c.Eax);
        }
        return size;
    }

    public static bool IsValidXcr0(Vcpu v, ulong xcr0)
    {
        var leaf = v.Cpuid?.Lookup(0xD, 0) ?? default;
        ulong supported = leaf.Eax | ((ulong)leaf.Edx << 32) | 1;
        if ((xcr0 & 1) == 0 || (xcr0 & ~supported) != 0) return false;
        if ((xcr0 & 4) != 0 && (xcr0 & 2) == 0) return false;                 // AVX without SSE
        if (((xcr0 >> 3) & 3) is 1 or 2) return false;                          // BNDREGS and BNDCSR together
        if ((xcr0 & Xcr0Bits.Apx) != 0 && !v.HasApx) return false;              // APX needs CPUID.(7,1):EDX[21] in the guest caps
        if ((xcr0 & Xcr0Bits.Mpx) != 0 && (xcr0 & Xcr0Bits.Apx) != 0) return false; // MPX with APX (KVM-FACTS §2)
        if ((xcr0 & 0xE0) != 0 && (xcr0 & 0xE0) != 0xE0) return false;         // AVX-512 state all or none
        if ((xcr0 & 0xE0) != 0 && (xcr0 & 4) == 0) return false;
        return true;
    }
}
