using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.X86.Cpuid;

namespace Hypervisor.Core.X86;

/// <summary>Work the common layer must do before the next guest entry (KVM_REQ_*).</summary>
[Flags]
public enum VcpuRequest
{
    None = 0,
    /// <summary>KVM_REQ_TLB_FLUSH: every translation of this vCPU.</summary>
    TlbFlush = 1,
    /// <summary>KVM_REQ_TLB_FLUSH_CURRENT: the current context's translations.</summary>
    TlbFlushCurrent = 2,
    /// <summary>KVM_REQ_TLB_FLUSH_GUEST: what the guest could have cached (its own flush requests).</summary>
    TlbFlushGuest = 4,
}

/// <summary>
/// A virtual CPU (KVM's <c>struct kvm_vcpu</c> with its <c>vcpu-&gt;arch</c>): the register cache,
/// the state kept outside the vendor's control structure, the guest CPUID and caps, requests,
/// the last exit and exit statistics. <see cref="Cpu"/> is the (software) processor it runs on.
/// </summary>
public sealed partial class Vcpu : IDisposable, IRegisterSource
{
    internal Vcpu(Vm vm, int id)
    {
        Vm = vm;
        Id = id;
        Cpu = new X86Cpu(vm.Memory, vm.Kvm.Model);
        Regs = new RegisterCache { Source = this };
        Ops.VcpuCreate(this);
        Reset(initEvent: false);
    }

    public Vm Vm { get; }
    public int Id { get; }
    public IX86Ops Ops => Vm.Ops;

    /// <summary>The software processor this vCPU runs on (the "hardware").</summary>
    public X86Cpu Cpu { get; }

    public RegisterCache Regs { get; }

    /// <summary>The vendor's per-vCPU state (vcpu_svm / vcpu_vmx).</summary>
    public object? VendorState { get; set; }

    /// <summary>The table from KVM_SET_CPUID2, or null before userspace set one.</summary>
    public GuestCpuid? Cpuid { get; private set; }

    /// <summary>Guest caps = guest CPUID ∩ supported caps; feature checks ask these, never the raw table.</summary>
    public CpuCaps GuestCaps => Cpuid?.Caps ?? Empty;
    private static readonly CpuCaps Empty = new();

    public bool HasRun { get; private set; }

    /// <summary>Guest instructions the next <see cref="Run"/> may retire before it returns with
    /// KVM_EXIT_INTR (the host's way to bound a run, like a signal to the vCPU thread). It covers
    /// the whole run, however many exits the hypervisor handles inside it.</summary>
    public ulong InstructionBudget { get; set; } = ulong.MaxValue;

    private ulong _runStartRetired;

    /// <summary>What is left of <see cref="InstructionBudget"/> in the current run: vendors pass it
    /// to each guest entry.</summary>
    public ulong RemainingInstructionBudget
    {
        get
        {
            if (InstructionBudget == ulong.MaxValue) return ulong.MaxValue;
            ulong used = Cpu.InstructionsRetired - _runStartRetired;
            return used >= InstructionBudget ? 0 : InstructionBudget - used;
        }
    }

    /// <summary>The exit <see cref="Run"/> returned last.</summary>
    public VcpuExit Exit;

    public ExitStatistics Stats { get; } = new();

    // State kept in vcpu->arch rather than in the register cache.
    /// <summary>The guest's EFER as it sees it. Common code validates writes (Emulate.SetEfer); a
    /// vendor sets it directly only when it switches between L1 and L2 state on a nested VMRUN or
    /// #VMEXIT, as KVM's nested code loads vcpu->arch.efer from vmcb12 / vmcb01.</summary>
    public ulong Efer { get; set; }
    public ulong Cr2 { get; set; }
    public ulong Cr8 { get; set; }
    public ulong Xcr0 { get; internal set; } = 1;
    public ulong Dr6 { get; set; } = 0xFFFF0FF0;
    public ulong Dr7 { get; set; } = 0x400;

    private ulong _hostXcr0 = 1;

    /// <summary>kvm_load_guest_xsave_state: right before entry the processor gets the guest's XCR0
    /// (XSETBV always exits, so <see cref="Xcr0"/> is the guest's value); the host's is kept.
    /// Guest XGETBV and XCR0-gated instructions (REX2 with XCR0[19]) then see the guest's value.</summary>
    public void LoadGuestXsaveState()
    {
        _hostXcr0 = Cpu.Xcr0;
        if (_hostXcr0 != Xcr0)
            Cpu.SwitchXcr0(Xcr0);
    }

    /// <summary>kvm_load_host_xsave_state: right after the exit the host's XCR0 is back.</summary>
    public void LoadHostXsaveState()
    {
        if (Cpu.Xcr0 != _hostXcr0)
            Cpu.SwitchXcr0(_hostXcr0);
    }

    private VcpuRequest _requests;
    public VcpuRequest PendingRequests => _requests;

    public void MakeRequest(VcpuRequest r) => _requests |= r;

    void IRegisterSource.CacheReg(RegisterCache cache, VcpuReg reg) => Ops.CacheReg(this, reg);

    /// <summary>RESET or INIT: registers to their architectural initial values, then the vendor.</summary>
    public void Reset(bool initEvent)
    {
        for (int r = 0; r < VcpuRegs.Count; r++)
            if (r != (int)VcpuReg.Pdptr && r != (int)VcpuReg.Segments)
                Regs.Write((VcpuReg)r, 0);
        Regs.Write(VcpuReg.Rdx, Vm.Kvm.Model.ResetEdx);
        Regs.Write(VcpuReg.Rip, 0xFFF0);
        Regs.Write(VcpuReg.Rflags, RFlags.Fixed1);
        Regs.Write(VcpuReg.Cr0, Machine.Cpu.Cr0.Et | Machine.Cpu.Cr0.Cd | Machine.Cpu.Cr0.Nw);
        Efer = 0;
        Cr2 = Cr8 = 0;
        Xcr0 = 1;
        Dr6 = 0xFFFF0FF0;
        Dr7 = 0x400;
        Ops.VcpuReset(this, initEvent);
    }

    /// <summary>KVM_RUN: services requests, enters the guest through the vendor, handles exits in
    /// the kernel until one needs userspace, and returns it.</summary>
    public VcpuExit Run()
    {
        HasRun = true;
        CompleteUserspaceExit();
        Exit = default;
        _runStartRetired = Cpu.InstructionsRetired;
        while (true)
        {
            ServiceRequests();
            var fastpath = Ops.Run(this);
            int r = Ops.HandleExit(this, fastpath);
            if (r <= 0)
            {
                Stats.Count(Exit.Reason);
                return Exit;
            }
        }
    }

    /// <summary>Requests are serviced in KVM's order: full flush supersedes the others.</summary>
    private void ServiceRequests()
    {
        var r = _requests;
        if (r == VcpuRequest.None)
            return;
        _requests = VcpuRequest.None;
        if ((r & VcpuRequest.TlbFlush) != 0)
        {
            Ops.FlushTlbAll(this);
            return; // a full flush covers the current context and the guest's own entries
        }
        if ((r & VcpuRequest.TlbFlushCurrent) != 0)
            Ops.FlushTlbCurrent(this);
        if ((r & VcpuRequest.TlbFlushGuest) != 0)
            Ops.FlushTlbGuest(this);
    }

    public void Dispose()
    {
        Ops.VcpuFree(this);
        Cpu.Dispose();
    }
}

/// <summary>Exits by KVM reason (to userspace) and by vendor exit code (every exit). Counting is
/// an array increment; names are produced only when someone reads them.</summary>
public sealed class ExitStatistics
{
    private const int VendorCodes = 0x500, VendorOffset = 8; // codes -8 .. 0x4F7
    private readonly long[] _byReason = new long[64];
    private readonly long[] _byVendor = new long[VendorCodes];

    /// <summary>How the vendor names its exit codes (SVM exit codes, VMX exit reasons).</summary>
    public Func<long, string>? VendorNames { get; set; }

    public void Count(KvmExitReason r) => _byReason[(int)r & 63]++;

    /// <summary>Counts one vendor exit.</summary>
    public void CountVendor(long code)
    {
        long i = code + VendorOffset;
        if ((ulong)i < VendorCodes)
            _byVendor[i]++;
    }

    public long this[KvmExitReason r] => _byReason[(int)r & 63];

    public long VendorCount(long code)
    {
        long i = code + VendorOffset;
        return (ulong)i < VendorCodes ? _byVendor[i] : 0;
    }

    /// <summary>Non-zero vendor exit counts by name.</summary>
    public IReadOnlyDictionary<string, long> ByVendorExit
    {
        get
        {
            var d = new SortedDictionary<string, long>(StringComparer.Ordinal);
            for (int i = 0; i < VendorCodes; i++)
                if (_byVendor[i] != 0)
                    d[VendorNames?.Invoke(i - VendorOffset) ?? $"0x{i - VendorOffset:x}"] = _byVendor[i];
            return d;
        }
    }

    public long TotalVendorExits => _byVendor.Sum();

    /// <summary>Exits to userspace so far (every return from <see cref="Vcpu.Run"/>).</summary>
    public long TotalExits => _byReason.Sum();

    /// <summary>Non-zero counts by KVM reason number, ascending (snapshots).</summary>
    public IEnumerable<(int Reason, long Count)> ReasonCounts()
    {
        for (int i = 0; i < _byReason.Length; i++)
            if (_byReason[i] != 0)
                yield return (i, _byReason[i]);
    }

    /// <summary>Non-zero counts by vendor exit code, ascending (snapshots).</summary>
    public IEnumerable<(long Code, long Count)> VendorCounts()
    {
        for (int i = 0; i < VendorCodes; i++)
            if (_byVendor[i] != 0)
                yield return (i - VendorOffset, _byVendor[i]);
    }

    /// <summary>Whether a vendor exit code can be counted here.</summary>
    public static bool IsCountableVendorCode(long code) => (ulong)(code + VendorOffset) < VendorCodes;

    /// <summary>Snapshot restore: the counters become exactly these (everything else zero).</summary>
    public void Restore(IEnumerable<(int Reason, long Count)> reasons, IEnumerable<(long Code, long Count)> vendor)
    {
        Array.Clear(_byReason);
        Array.Clear(_byVendor);
        foreach (var (r, n) in reasons)
            _byReason[r & 63] = n;
        foreach (var (c, n) in vendor)
            if (IsCountableVendorCode(c))
                _byVendor[c + VendorOffset] = n;
    }
}
