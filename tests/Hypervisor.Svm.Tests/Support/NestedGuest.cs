using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.X86;
using Hypervisor.Svm.Hardware;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Svm.Tests.Support;

/// <summary>
/// An L1 hypervisor for nested SVM tests, on top of <see cref="SvmGuest"/>: L1 code that enables
/// EFER.SVME, writes a vmcb12 (its page image computed here, stored qword by qword by L1's own
/// MOVs) and runs L2 with VMRUN. L2 shares L1's page tables, GDT and address space.
/// </summary>
public static class NestedGuest
{
    public const ulong Vmcb12 = 0x300000;
    public const ulong L1Iopm = 0x304000;
    public const ulong L1Msrpm = 0x308000;
    public const ulong L2Code = 0x30000;
    public const ulong L2StackTop = 0x48000;
    /// <summary>L1 reports vmcb12's EXITCODE (low 32 bits) with a 32-bit OUT here.</summary>
    public const ushort ReportPort = 0x81;

    /// <summary>vmcb12 for a 64-bit L2 at <see cref="L2Code"/>: CPUID, VMRUN and VMMCALL intercepted,
    /// IOIO_PROT and MSR_PROT on with L1's (empty) maps.</summary>
    public static byte[] Vmcb12Image(Action<Vmcb>? edit = null)
    {
        using var v = new Vmcb();
        v.SetIntercept(SvmIntercept.Cpuid);
        v.SetIntercept(SvmIntercept.Vmrun);
        v.SetIntercept(SvmIntercept.Vmmcall);
        v.SetIntercept(SvmIntercept.IoioProt);
        v.SetIntercept(SvmIntercept.MsrProt);
        v.SetIntercept(SvmIntercept.Shutdown);
        v.IopmBasePa = L1Iopm;
        v.MsrpmBasePa = L1Msrpm;
        v.GuestAsid = 1;
        var data = new Segment { Selector = 0x10, Limit = 0xFFFFFFFF, Attributes = 0xC093 };
        v.Cs = new Segment { Selector = 0x08, Limit = 0xFFFFFFFF, Attributes = 0xA09B };
        v.Ds = v.Es = v.Ss = data;
        v.Gdtr = new DescriptorTable { Base = 0x1000, Limit = 0x17 };
        v.Efer = Efer.Lme | Efer.Lma | Efer.Nxe | Efer.Sce | Efer.Svme;
        v.Cr0 = Cr0.Pe | Cr0.Et | Cr0.Pg | Cr0.Wp;
        v.Cr3 = 0x100000;
        v.Cr4 = Cr4.Pae;
        v.Dr6 = 0xFFFF0FF0;
        v.Dr7 = 0x400;
        v.Rflags = RFlags.Fixed1;
        v.Rip = L2Code;
        v.Rsp = L2StackTop;
        v.GPat = 0x0007_0406_0007_0406;
        edit?.Invoke(v);
        return v.Bytes.ToArray();
    }

    /// <summary>L1: EFER.SVME on, vmcb12 written, then <paramref name="runs"/> times: VMRUN, report
    /// EXITCODE on <see cref="ReportPort"/>, RIP = NRIP. Then HLT.</summary>
    public static void LoadL1(SvmGuest g, byte[] vmcb12, int runs, Action<Assembler> l2)
    {
        var b = new Assembler(64);
        l2(b);
        var ms = new MemoryStream();
        b.Assemble(new StreamCodeWriter(ms), L2Code);
        g.Vm.Memory.Write(L2Code, ms.ToArray());

        g.Load(a =>
        {
            a.mov(ecx, 0xC0000080);
            a.rdmsr();
            a.bts(eax, 12);
            a.wrmsr();
            a.mov(rbx, Vmcb12);
            for (int off = 0; off < vmcb12.Length; off += 8)
            {
                ulong q = BitConverter.ToUInt64(vmcb12, off);
                if (q == 0) continue;
                a.mov(rax, q);
                a.mov(__qword_ptr[rbx + off], rax);
            }
            for (int k = 0; k < runs; k++)
            {
                a.mov(rax, Vmcb12);
                a.vmrun();
                // Only RAX/RSP/RIP/RFLAGS are L1's again after #VMEXIT; the other GPRs are L2's.
                a.mov(rbx, Vmcb12);
                a.mov(eax, __dword_ptr[rbx + VmcbOffset.ExitCode]);
                a.mov(edx, ReportPort);
                a.@out(dx, eax);
                a.mov(rax, __qword_ptr[rbx + VmcbOffset.NRip]);
                a.mov(__qword_ptr[rbx + VmcbOffset.Rip], rax);
            }
            a.hlt();
        });
    }

    /// <summary>Runs to the next exit and checks it is L1's report; returns the exit code it reported.</summary>
    public static uint RunToReport(SvmGuest g)
    {
        var exit = g.Run();
        Assert.That((exit.Reason, exit.IoPort), Is.EqualTo((KvmExitReason.Io, ReportPort)), $"expected L1's report, got {exit}");
        Assert.That(g.Svm.IsGuestMode, Is.False, "L1 reports from L1");
        return (uint)exit.IoData;
    }

    /// <summary>Runs to the next exit and checks it is L2's 8-bit OUT to port 0x80, which L1 does not
    /// intercept: L0 handles it for L2, and L2 stays the running guest.</summary>
    public static void RunToL2Marker(SvmGuest g)
    {
        var exit = g.Run();
        Assert.That((exit.Reason, exit.IoPort), Is.EqualTo((KvmExitReason.Io, (ushort)0x80)), $"expected L2's marker, got {exit}");
        Assert.That(g.Svm.IsGuestMode, Is.True, "L0 handled L2's OUT; L2 still runs");
    }
}
