using Hypervisor.Core.Machine.Cpu;

namespace Hypervisor.Core.X86;

/// <summary>KVM_GET_REGS / KVM_SET_REGS (<c>struct kvm_regs</c>), plus APX's R16..R31 where present.</summary>
public struct KvmRegs
{
    public ulong Rax, Rbx, Rcx, Rdx, Rsi, Rdi, Rsp, Rbp;
    public ulong R8, R9, R10, R11, R12, R13, R14, R15;
    public ulong Rip, Rflags;

    /// <summary>APX's R16..R31 (16 values) when the guest's CPUID has APX_F, else null. KVM_SET_REGS
    /// with null leaves them as they are.</summary>
    public ulong[]? Egprs;
}

/// <summary>KVM_GET_SREGS / KVM_SET_SREGS (<c>struct kvm_sregs</c>).</summary>
public struct KvmSregs
{
    public Segment Cs, Ds, Es, Fs, Gs, Ss, Tr, Ldt;
    public DescriptorTable Gdt, Idt;
    public ulong Cr0, Cr2, Cr3, Cr4, Cr8, Efer, ApicBase;
}

public sealed partial class Vcpu
{
    public ulong ReadGpr(int gpr) => Regs.Read(VcpuRegs.FromGprIndex(gpr));
    public void WriteGpr(int gpr, ulong value) => Regs.Write(VcpuRegs.FromGprIndex(gpr), value);
    public ulong Rip { get => Regs.Read(VcpuReg.Rip); set => Regs.Write(VcpuReg.Rip, value); }
    public ulong Cr0 => Regs.Read(VcpuReg.Cr0);
    public ulong Cr3 => Regs.Read(VcpuReg.Cr3);
    public ulong Cr4 => Regs.Read(VcpuReg.Cr4);
    public ulong Rflags => Regs.Read(VcpuReg.Rflags);

    public bool IsLongMode => (Efer & Machine.Cpu.Efer.Lma) != 0;
    public bool IsPaging => (Cr0 & Machine.Cpu.Cr0.Pg) != 0;
    public bool IsPaePaging => IsPaging && (Cr4 & Machine.Cpu.Cr4.Pae) != 0 && !IsLongMode;
    public bool IsPcidEnabled => (Cr4 & Machine.Cpu.Cr4.Pcide) != 0;

    public KvmRegs GetRegs() => new()
    {
        Rax = ReadGpr(Gpr.Rax), Rbx = ReadGpr(Gpr.Rbx), Rcx = ReadGpr(Gpr.Rcx), Rdx = ReadGpr(Gpr.Rdx),
        Rsi = ReadGpr(Gpr.Rsi), Rdi = ReadGpr(Gpr.Rdi), Rsp = ReadGpr(Gpr.Rsp), Rbp = ReadGpr(Gpr.Rbp),
        R8 = ReadGpr(8), R9 = ReadGpr(9), R10 = ReadGpr(10), R11 = ReadGpr(11),
        R12 = ReadGpr(12), R13 = ReadGpr(13), R14 = ReadGpr(14), R15 = ReadGpr(15),
        Rip = Rip, Rflags = Rflags,
        Egprs = HasApx ? GetExtendedGprs() : null,
    };

    /// <summary>The guest may use APX: its CPUID (KVM_SET_CPUID2) has APX_F and the hypervisor supports it.</summary>
    public bool HasApx => GuestCaps.Has(Hypervisor.Core.X86.Cpuid.CpuFeatures.ApxF);

    private ulong[] GetExtendedGprs()
    {
        var values = new ulong[Gpr.ExtendedCount];
        for (int i = 0; i < values.Length; i++)
            values[i] = Regs.Read(VcpuReg.R16 + i);
        return values;
    }

    public void SetRegs(in KvmRegs r)
    {
        if (r.Egprs != null)
        {
            if (!HasApx)
                throw new KvmException("EINVAL", "KVM_SET_REGS with R16..R31, but the guest's CPUID has no APX_F (CPUID.(7,1):EDX[21])");
            if (r.Egprs.Length != Gpr.ExtendedCount)
                throw new KvmException("EINVAL", $"KVM_SET_REGS: R16..R31 are {Gpr.ExtendedCount} values, got {r.Egprs.Length}");
        }
        WriteGpr(Gpr.Rax, r.Rax); WriteGpr(Gpr.Rbx, r.Rbx); WriteGpr(Gpr.Rcx, r.Rcx); WriteGpr(Gpr.Rdx, r.Rdx);
        WriteGpr(Gpr.Rsi, r.Rsi); WriteGpr(Gpr.Rdi, r.Rdi); WriteGpr(Gpr.Rsp, r.Rsp); WriteGpr(Gpr.Rbp, r.Rbp);
        WriteGpr(8, r.R8); WriteGpr(9, r.R9); WriteGpr(10, r.R10); WriteGpr(11, r.R11);
        WriteGpr(12, r.R12); WriteGpr(13, r.R13); WriteGpr(14, r.R14); WriteGpr(15, r.R15);
        Rip = r.Rip;
        Regs.Write(VcpuReg.Rflags, (r.Rflags & RFlags.Defined) | RFlags.Fixed1);
        if (r.Egprs != null)
            for (int i = 0; i < Gpr.ExtendedCount; i++)
                Regs.Write(VcpuReg.R16 + i, r.Egprs[i]);
    }

    public KvmSregs GetSregs() => new()
    {
        Cs = Ops.GetSegment(this, SegReg.Cs), Ds = Ops.GetSegment(this, SegReg.Ds), Es = Ops.GetSegment(this, SegReg.Es),
        Fs = Ops.GetSegment(this, SegReg.Fs), Gs = Ops.GetSegment(this, SegReg.Gs), Ss = Ops.GetSegment(this, SegReg.Ss),
        Tr = Ops.GetSegment(this, SegReg.Tr), Ldt = Ops.GetSegment(this, SegReg.Ldtr),
        Gdt = Ops.GetGdt(this), Idt = Ops.GetIdt(this),
        Cr0 = Cr0, Cr2 = Cr2, Cr3 = Cr3, Cr4 = Cr4, Cr8 = Cr8, Efer = Efer, ApicBase = Cpu.Msr.ApicBase,
    };

    /// <summary>KVM_SET_SREGS: validated as a whole first (nothing is applied when any part is bad),
    /// then applied through the same paths as guest writes, so CR3 (and so ERAPS) becomes dirty.</summary>
    public void SetSregs(in KvmSregs s)
    {
        string? why = ControlRegisters.CheckSregs(this, s);
        if (why != null)
            throw new KvmException("EINVAL", $"KVM_SET_SREGS refused: {why}");
        Efer = s.Efer;
        Ops.SetEfer(this, s.Efer);
        Regs.Write(VcpuReg.Cr0, s.Cr0);
        Ops.SetCr0(this, s.Cr0);
        Regs.Write(VcpuReg.Cr4, s.Cr4);
        Ops.SetCr4(this, s.Cr4);
        Regs.Write(VcpuReg.Cr3, s.Cr3);
        Cr2 = s.Cr2;
        Cr8 = s.Cr8;
        Ops.SetSegment(this, SegReg.Cs, s.Cs); Ops.SetSegment(this, SegReg.Ds, s.Ds); Ops.SetSegment(this, SegReg.Es, s.Es);
        Ops.SetSegment(this, SegReg.Fs, s.Fs); Ops.SetSegment(this, SegReg.Gs, s.Gs); Ops.SetSegment(this, SegReg.Ss, s.Ss);
        Ops.SetSegment(this, SegReg.Tr, s.Tr); Ops.SetSegment(this, SegReg.Ldtr, s.Ldt);
        Ops.SetGdt(this, s.Gdt);
        Ops.SetIdt(this, s.Idt);
        MakeRequest(VcpuRequest.TlbFlush);
    }

    /// <summary>KVM_SET_CPUID2. After the first run only an identical table is accepted (KVM: EBUSY).</summary>
    public void SetCpuid(IReadOnlyList<Machine.Models.CpuidEntry> entries)
    {
        if (HasRun)
        {
            if (Cpuid != null && Cpuid.IsIdentical(entries))
                return;
            throw new Cpuid.CpuidException("EBUSY", "KVM_SET_CPUID2 after the vCPU has run: only the identical table is accepted");
        }
        Cpuid = Hypervisor.Core.X86.Cpuid.GuestCpuid.Create(entries, Vm.Kvm.SupportedCaps);
        Ops.AfterSetCpuid(this);
    }

    // ---- Completing what userspace was asked to do (kvm_run's complete_userspace_io) ----

    private enum PendingCompletionKind { None, PioOut, PioIn, MmioRead, StringOut, StringIn }

    private PendingCompletionKind _completion;
    private ulong _completionData;
    private (int Size, bool Rep, int AddressSize, int Segment) _string;

    /// <summary>Data for a KVM_EXIT_IO IN: written to RAX (the access size) on the next run.</summary>
    public void CompleteIo(ulong data)
    {
        if (_completion is not (PendingCompletionKind.PioIn or PendingCompletionKind.StringIn))
            throw new InvalidOperationException($"vCPU {Id}: no port input is waiting for data (last exit: {Exit})");
        _completionData = data;
    }

    /// <summary>Data for a KVM_EXIT_MMIO read: the instruction runs again and receives it.</summary>
    public void CompleteMmio(ulong data)
    {
        if (_completion != PendingCompletionKind.MmioRead)
            throw new InvalidOperationException($"vCPU {Id}: no MMIO read is waiting for data (last exit: {Exit})");
        _completionData = data;
    }

    /// <summary>Common code that exits for port I/O: the instruction completes on the next run.</summary>
    internal void ExpectPio(bool isIn) => _completion = isIn ? PendingCompletionKind.PioIn : PendingCompletionKind.PioOut;

    internal void ExpectMmioRead() => _completion = PendingCompletionKind.MmioRead;

    internal void ExpectStringPio(bool isIn, int size, bool rep, int addressSize, int segment)
    {
        _completion = isIn ? PendingCompletionKind.StringIn : PendingCompletionKind.StringOut;
        _string = (size, rep, addressSize, segment);
    }

    private void CompleteUserspaceExit()
    {
        var c = _completion;
        _completion = PendingCompletionKind.None;
        switch (c)
        {
            case PendingCompletionKind.PioIn:
                int size = Exit.IoSize;
                ulong rax = ReadGpr(Gpr.Rax);
                ulong merged = size == 4 ? (uint)_completionData : (rax & ~X86Cpu.SizeMask(size)) | (_completionData & X86Cpu.SizeMask(size));
                WriteGpr(Gpr.Rax, merged);
                Ops.SkipEmulatedInstruction(this);
                break;
            case PendingCompletionKind.PioOut:
                Ops.SkipEmulatedInstruction(this);
                break;
            case PendingCompletionKind.MmioRead:
                Cpu.CompleteMmioRead(Exit.MmioAddress, _completionData);
                break;
            case PendingCompletionKind.StringIn:
            {
                ulong amask = X86Cpu.SizeMask(_string.AddressSize);
                ulong di = ReadGpr(Gpr.Rdi) & amask;
                Span<byte> bytes = stackalloc byte[8];
                BitConverter.TryWriteBytes(bytes, _completionData);
                if (!GuestMemory.TryWrite(this, Emulation.Emulate.StringLinear(this, SegReg.Es, di), bytes[.._string.Size], out var pf))
                {
                    Cr2 = pf.Address;
                    Ops.InjectException(this, Vector.PF, true, pf.ErrorCode);
                    break;
                }
                AdvanceString(Gpr.Rdi);
                break;
            }
            case PendingCompletionKind.StringOut:
                AdvanceString(Gpr.Rsi);
                break;
        }
    }

    /// <summary>A register write in the address size: 16-bit merges, 32-bit zero-extends (SDM vol. 1 §3.4.1.1).</summary>
    private void WriteAddressSized(int reg, ulong value) =>
        WriteGpr(reg, _string.AddressSize == 2 ? (ReadGpr(reg) & ~0xFFFFUL) | value : value);

    /// <summary>One string element done: index ± size, rCX − 1 under REP; skip the instruction when
    /// no element is left (otherwise RIP stays and the next element exits again).</summary>
    private void AdvanceString(int indexReg)
    {
        ulong amask = X86Cpu.SizeMask(_string.AddressSize);
        long step = (Rflags & RFlags.Df) != 0 ? -_string.Size : _string.Size;
        ulong index = ((ReadGpr(indexReg) & amask) + (ulong)step) & amask;
        WriteAddressSized(indexReg, index);
        bool done = true;
        if (_string.Rep)
        {
            ulong count = ((ReadGpr(Gpr.Rcx) & amask) - 1) & amask;
            WriteAddressSized(Gpr.Rcx, count);
            done = count == 0;
        }
        if (done)
            Ops.SkipEmulatedInstruction(this);
    }
}

public sealed partial class Vcpu
{
    /// <summary>KVM_GET_MSRS for one MSR: false when the MSR does not exist for this vCPU.</summary>
    public bool TryGetMsr(uint msr, out ulong value) => Emulation.Emulate.GetMsr(this, msr, out value);

    /// <summary>KVM_SET_MSRS for one MSR (host-initiated): false when the MSR or the value is refused.</summary>
    public bool TrySetMsr(uint msr, ulong value) => Emulation.Emulate.SetMsr(this, msr, value);

    /// <summary>KVM_GET_XCRS: XCR0.</summary>
    public ulong GetXcr0() => Xcr0;

    /// <summary>KVM_SET_XCRS: XCR0 with the same validation as a guest XSETBV.</summary>
    public void SetXcr0(ulong value)
    {
        if (!Emulation.Emulate.IsValidXcr0(this, value))
            throw new KvmException("EINVAL", $"XCR0 0x{value:x} is not valid for this vCPU's CPUID (bit 0 set, only enumerated components, AVX with SSE, APX only with APX_F, MPX with neither APX nor half of MPX)");
        Xcr0 = value;
    }
}
