using System.Runtime.CompilerServices;
using Hypervisor.Core.Machine.Cpu;

namespace Hypervisor.Svm.Hardware;

/// <summary>The state save area, VMCB offsets 400h-FFFh (AMD APM vol. 2 table B-2, which numbers it from 000h).</summary>
public sealed partial class Vmcb
{
    // ---- Segment records: 16 bytes each from 400h (selector, attrib, limit, base) ----

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ushort GetSegmentSelector(VmcbSegment s) => _page.Read16(VmcbSegmentAttrib.Offset(s) + VmcbOffset.SegmentSelector);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetSegmentSelector(VmcbSegment s, ushort value) => _page.Write16(VmcbSegmentAttrib.Offset(s) + VmcbOffset.SegmentSelector, value);

    /// <summary>The attribute in the VMCB's packed 12-bit form (<see cref="VmcbSegmentAttrib"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ushort GetSegmentAttrib(VmcbSegment s) => _page.Read16(VmcbSegmentAttrib.Offset(s) + VmcbOffset.SegmentAttrib);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetSegmentAttrib(VmcbSegment s, ushort value) => _page.Write16(VmcbSegmentAttrib.Offset(s) + VmcbOffset.SegmentAttrib, value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint GetSegmentLimit(VmcbSegment s) => _page.Read32(VmcbSegmentAttrib.Offset(s) + VmcbOffset.SegmentLimit);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetSegmentLimit(VmcbSegment s, uint value) => _page.Write32(VmcbSegmentAttrib.Offset(s) + VmcbOffset.SegmentLimit, value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong GetSegmentBase(VmcbSegment s) => _page.Read64(VmcbSegmentAttrib.Offset(s) + VmcbOffset.SegmentBase);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetSegmentBase(VmcbSegment s, ulong value) => _page.Write64(VmcbSegmentAttrib.Offset(s) + VmcbOffset.SegmentBase, value);

    /// <summary>A segment record as the CPU holds it (attributes converted to the access-rights layout).</summary>
    public Segment GetSegment(VmcbSegment s)
    {
        int o = VmcbSegmentAttrib.Offset(s);
        return new Segment
        {
            Selector = _page.Read16(o + VmcbOffset.SegmentSelector),
            Attributes = VmcbSegmentAttrib.ToAccessRights(_page.Read16(o + VmcbOffset.SegmentAttrib)),
            Limit = _page.Read32(o + VmcbOffset.SegmentLimit),
            Base = _page.Read64(o + VmcbOffset.SegmentBase),
        };
    }

    /// <summary>Stores a CPU segment (attributes converted to the VMCB's packed form).</summary>
    public void SetSegment(VmcbSegment s, in Segment segment)
    {
        int o = VmcbSegmentAttrib.Offset(s);
        _page.Write16(o + VmcbOffset.SegmentSelector, segment.Selector);
        _page.Write16(o + VmcbOffset.SegmentAttrib, VmcbSegmentAttrib.FromAccessRights(segment.Attributes));
        _page.Write32(o + VmcbOffset.SegmentLimit, segment.Limit);
        _page.Write64(o + VmcbOffset.SegmentBase, segment.Base);
    }

    public Segment Es { get => GetSegment(VmcbSegment.Es); set => SetSegment(VmcbSegment.Es, value); }
    public Segment Cs { get => GetSegment(VmcbSegment.Cs); set => SetSegment(VmcbSegment.Cs, value); }
    public Segment Ss { get => GetSegment(VmcbSegment.Ss); set => SetSegment(VmcbSegment.Ss, value); }
    public Segment Ds { get => GetSegment(VmcbSegment.Ds); set => SetSegment(VmcbSegment.Ds, value); }
    public Segment Fs { get => GetSegment(VmcbSegment.Fs); set => SetSegment(VmcbSegment.Fs, value); }
    public Segment Gs { get => GetSegment(VmcbSegment.Gs); set => SetSegment(VmcbSegment.Gs, value); }
    public Segment Ldtr { get => GetSegment(VmcbSegment.Ldtr); set => SetSegment(VmcbSegment.Ldtr, value); }
    public Segment Tr { get => GetSegment(VmcbSegment.Tr); set => SetSegment(VmcbSegment.Tr, value); }

    /// <summary>460h: GDTR; the limit is bits 15:0 of the limit field, selector and attrib are unused.</summary>
    public DescriptorTable Gdtr { get => GetDescriptorTable(VmcbSegment.Gdtr); set => SetDescriptorTable(VmcbSegment.Gdtr, value); }

    /// <summary>480h: IDTR; the limit is bits 15:0 of the limit field, selector and attrib are unused.</summary>
    public DescriptorTable Idtr { get => GetDescriptorTable(VmcbSegment.Idtr); set => SetDescriptorTable(VmcbSegment.Idtr, value); }

    private DescriptorTable GetDescriptorTable(VmcbSegment s) =>
        new() { Limit = (ushort)GetSegmentLimit(s), Base = GetSegmentBase(s) };

    private void SetDescriptorTable(VmcbSegment s, DescriptorTable table)
    {
        SetSegmentLimit(s, table.Limit);
        SetSegmentBase(s, table.Base);
    }

    // ---- Registers ----

    /// <summary>4CAh: VMPL (SEV-SNP).</summary>
    public byte Vmpl { get => _page.Read8(VmcbOffset.Vmpl); set => _page.Write8(VmcbOffset.Vmpl, value); }

    /// <summary>4CBh: CPL. VMRUN forces 0 in real mode and 3 in virtual-8086 mode.</summary>
    public byte Cpl { get => _page.Read8(VmcbOffset.Cpl); set => _page.Write8(VmcbOffset.Cpl, value); }

    public ulong Efer { get => _page.Read64(VmcbOffset.Efer); set => _page.Write64(VmcbOffset.Efer, value); }
    public ulong Cr4 { get => _page.Read64(VmcbOffset.Cr4); set => _page.Write64(VmcbOffset.Cr4, value); }
    public ulong Cr3 { get => _page.Read64(VmcbOffset.Cr3); set => _page.Write64(VmcbOffset.Cr3, value); }
    public ulong Cr0 { get => _page.Read64(VmcbOffset.Cr0); set => _page.Write64(VmcbOffset.Cr0, value); }
    public ulong Dr7 { get => _page.Read64(VmcbOffset.Dr7); set => _page.Write64(VmcbOffset.Dr7, value); }
    public ulong Dr6 { get => _page.Read64(VmcbOffset.Dr6); set => _page.Write64(VmcbOffset.Dr6, value); }
    public ulong Rflags { get => _page.Read64(VmcbOffset.Rflags); set => _page.Write64(VmcbOffset.Rflags, value); }
    public ulong Rip { get => _page.Read64(VmcbOffset.Rip); set => _page.Write64(VmcbOffset.Rip, value); }
    public ulong Rsp { get => _page.Read64(VmcbOffset.Rsp); set => _page.Write64(VmcbOffset.Rsp, value); }

    /// <summary>5E0h: S_CET (supervisor CET MSR).</summary>
    public ulong SCet { get => _page.Read64(VmcbOffset.SCet); set => _page.Write64(VmcbOffset.SCet, value); }
    /// <summary>5E8h: SSP (shadow stack pointer).</summary>
    public ulong Ssp { get => _page.Read64(VmcbOffset.Ssp); set => _page.Write64(VmcbOffset.Ssp, value); }
    /// <summary>5F0h: ISST_ADDR (interrupt SSP table address).</summary>
    public ulong IsstAddr { get => _page.Read64(VmcbOffset.IsstAddr); set => _page.Write64(VmcbOffset.IsstAddr, value); }

    public ulong Rax { get => _page.Read64(VmcbOffset.Rax); set => _page.Write64(VmcbOffset.Rax, value); }
    public ulong Star { get => _page.Read64(VmcbOffset.Star); set => _page.Write64(VmcbOffset.Star, value); }
    public ulong Lstar { get => _page.Read64(VmcbOffset.Lstar); set => _page.Write64(VmcbOffset.Lstar, value); }
    public ulong Cstar { get => _page.Read64(VmcbOffset.Cstar); set => _page.Write64(VmcbOffset.Cstar, value); }
    public ulong Sfmask { get => _page.Read64(VmcbOffset.Sfmask); set => _page.Write64(VmcbOffset.Sfmask, value); }
    public ulong KernelGsBase { get => _page.Read64(VmcbOffset.KernelGsBase); set => _page.Write64(VmcbOffset.KernelGsBase, value); }
    public ulong SysenterCs { get => _page.Read64(VmcbOffset.SysenterCs); set => _page.Write64(VmcbOffset.SysenterCs, value); }
    public ulong SysenterEsp { get => _page.Read64(VmcbOffset.SysenterEsp); set => _page.Write64(VmcbOffset.SysenterEsp, value); }
    public ulong SysenterEip { get => _page.Read64(VmcbOffset.SysenterEip); set => _page.Write64(VmcbOffset.SysenterEip, value); }
    public ulong Cr2 { get => _page.Read64(VmcbOffset.Cr2); set => _page.Write64(VmcbOffset.Cr2, value); }

    /// <summary>668h: G_PAT, the guest PAT used with nested paging.</summary>
    public ulong GPat { get => _page.Read64(VmcbOffset.GPat); set => _page.Write64(VmcbOffset.GPat, value); }

    /// <summary>670h: DBGCTL (guest DebugCtl MSR; swapped only with LBR virtualization).</summary>
    public ulong DbgCtl { get => _page.Read64(VmcbOffset.DbgCtl); set => _page.Write64(VmcbOffset.DbgCtl, value); }
    /// <summary>678h: BR_FROM (LastBranchFromIP).</summary>
    public ulong BrFrom { get => _page.Read64(VmcbOffset.BrFrom); set => _page.Write64(VmcbOffset.BrFrom, value); }
    /// <summary>680h: BR_TO (LastBranchToIP).</summary>
    public ulong BrTo { get => _page.Read64(VmcbOffset.BrTo); set => _page.Write64(VmcbOffset.BrTo, value); }
    /// <summary>688h: LASTEXCPFROM (LastIntFromIP).</summary>
    public ulong LastExcpFrom { get => _page.Read64(VmcbOffset.LastExcpFrom); set => _page.Write64(VmcbOffset.LastExcpFrom, value); }
    /// <summary>690h: LASTEXCPTO (LastIntToIP).</summary>
    public ulong LastExcpTo { get => _page.Read64(VmcbOffset.LastExcpTo); set => _page.Write64(VmcbOffset.LastExcpTo, value); }

    /// <summary>6E0h: SPEC_CTRL (guest value, with V_SPEC_CTRL).</summary>
    public ulong SpecCtrl { get => _page.Read64(VmcbOffset.SpecCtrl); set => _page.Write64(VmcbOffset.SpecCtrl, value); }
}
