using Hypervisor.Core.Machine.Cpu;
using Hypervisor.Core.Tests.Support;
using Hypervisor.Core.Tests.Support.Data;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Core.Tests.Machine.Execution;

/// <summary>MOV, MOVZX/MOVSX/MOVSXD, LEA, XCHG, BSWAP, XLAT and the NOP forms (Exec.DataTransfer.cs).</summary>
public class DataTransferTests
{
    private const ulong Data = GuestMachine.DataBase;

    /// <summary>A named guest fragment, so table-driven cases read well in the test list.</summary>
    public sealed record Code(string Name, Action<Assembler> Emit)
    {
        public override string ToString() => Name;
    }

    private static byte[] Le(ulong v, int n)
    {
        var b = new byte[n];
        for (int k = 0; k < n; k++) b[k] = (byte)(v >> (8 * k));
        return b;
    }

    private static byte[] Cat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    /// <summary>The value a register holds after a write of <paramref name="size"/> bytes in 64-bit
    /// mode: 8- and 16-bit writes merge, 32-bit writes zero-extend (SDM vol. 1 §3.4.1.1).</summary>
    private static ulong Merge(ulong old, ulong value, int size) => size switch
    {
        1 => (old & ~0xFFUL) | (value & 0xFF),
        2 => (old & ~0xFFFFUL) | (value & 0xFFFF),
        4 => value & 0xFFFF_FFFF,
        _ => value,
    };

    // ---- MOV ---------------------------------------------------------------------------------

    private static byte[] MoffsOpcode(int size, bool store) => size switch
    {
        1 => new byte[] { store ? (byte)0xA2 : (byte)0xA0 },
        2 => new byte[] { 0x66, store ? (byte)0xA3 : (byte)0xA1 },
        4 => new byte[] { store ? (byte)0xA3 : (byte)0xA1 },
        _ => new byte[] { 0x48, store ? (byte)0xA3 : (byte)0xA1 },
    };

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(4)]
    [TestCase(8)]
    public void MovMoffs64_Load_MergesOrZeroExtendsAccumulator(int size)
    {
        const ulong init = 0x1122_3344_5566_7788, mem = 0xA1B2_C3D4_E5F6_0718;
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.WriteU64(Data, mem);
        m.RunToHlt(a =>
        {
            a.mov(rax, init);
            a.db(Cat(MoffsOpcode(size, store: false), Le(Data, 8))); // A0/A1 with a 64-bit offset
        });
        Assert.That(m.Rax, Is.EqualTo(Merge(init, mem, size)));
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(4)]
    [TestCase(8)]
    public void MovMoffs64_Store_WritesOperandSizeOnly(int size)
    {
        const ulong value = 0x1122_3344_5566_7788, mem = 0xA1B2_C3D4_E5F6_0718;
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.WriteU64(Data, mem);
        m.RunToHlt(a =>
        {
            a.mov(rax, value);
            a.db(Cat(MoffsOpcode(size, store: true), Le(Data, 8))); // A2/A3 with a 64-bit offset
        });
        ulong mask = size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;
        Assert.That(m.Memory.ReadU64(Data), Is.EqualTo((mem & ~mask) | (value & mask)));
    }

    [Test]
    public void MovMoffs32_AddressSizePrefixIn64BitMode_UsesFourByteOffset()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.WriteU64(Data, 0xCAFE_BABE_DEAD_BEEF);
        m.RunToHlt(a =>
        {
            a.mov(rax, ulong.MaxValue);
            a.db(Cat(new byte[] { 0x67, 0xA1 }, Le(Data, 4))); // mov eax, [moffs32]
            a.mov(rcx, rax);
            a.mov(rax, 0x1234_5678_9ABC_DEF0);
            a.db(Cat(new byte[] { 0x67, 0x48, 0xA3 }, Le(Data + 8, 4))); // mov [moffs32], rax
        });
        Assert.That(m.Cpu.GetGpr(Gpr.Rcx), Is.EqualTo(0xDEAD_BEEFUL));
        Assert.That(m.Memory.ReadU64(Data + 8), Is.EqualTo(0x1234_5678_9ABC_DEF0UL));
    }

    [Test]
    public void MovMoffs16_RealMode_AddsDataSegmentBase()
    {
        using var m = new GuestMachine(GuestMode.Real);
        m.Memory.WriteU32(0x2_1234, 0xBEEF);
        m.RunToHlt(a =>
        {
            a.mov(ax, 0x2000);
            a.mov(ds, ax);
            a.db(0xA1, 0x34, 0x12);       // mov ax, [0x1234]
            a.mov(bl, 0x5A);
            a.db(0x88, 0x1E, 0x36, 0x12); // mov [0x1236], bl
        });
        Assert.That(m.Rax & 0xFFFF, Is.EqualTo(0xBEEF));
        Assert.That(m.Memory.ReadU32(0x2_1234) >> 16, Is.EqualTo(0x5A));
    }

    [Test]
    public void MovImmediate_EveryForm_ExtendsAsEncoded()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.WriteU64(Data, 0x5555_5555_5555_5555);
        m.Memory.WriteU64(Data + 8, 0x5555_5555_5555_5555);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rax, 0x8000_0000_0000_0001);              // B8+r imm64
            a.mov(rbx, ulong.MaxValue);
            a.db(0xBB, 0x78, 0x56, 0x34, 0x12);             // mov ebx, imm32: zero-extends
            a.mov(rcx, ulong.MaxValue);
            a.db(0x66, 0xB9, 0x34, 0x12);                   // mov cx, imm16: merges
            a.mov(rdx, 0);
            a.db(0x48, 0xC7, 0xC2, 0xFE, 0xFF, 0xFF, 0xFF); // mov rdx, imm32 sign-extended
            a.db(0xB4, 0x12);                               // mov ah, 0x12
            a.mov(rdi, Data);
            a.db(0x48, 0xC7, 0x07, 0x00, 0x00, 0x00, 0x80); // mov qword [rdi], 0x80000000 sign-extended
            a.db(0xC7, 0x47, 0x08, 0x00, 0x00, 0x00, 0x80); // mov dword [rdi+8], 0x80000000
        });
        Assert.That(m.Rax, Is.EqualTo(0x8000_0000_0000_1201UL));
        Assert.That(cpu.GetGpr(Gpr.Rbx), Is.EqualTo(0x1234_5678UL));
        Assert.That(cpu.GetGpr(Gpr.Rcx), Is.EqualTo(0xFFFF_FFFF_FFFF_1234UL));
        Assert.That(cpu.GetGpr(Gpr.Rdx), Is.EqualTo(0xFFFF_FFFF_FFFF_FFFEUL));
        Assert.That(m.Memory.ReadU64(Data), Is.EqualTo(0xFFFF_FFFF_8000_0000UL));
        Assert.That(m.Memory.ReadU64(Data + 8), Is.EqualTo(0x5555_5555_8000_0000UL));
    }

    // ---- MOVZX / MOVSX / MOVSXD ------------------------------------------------------------

    /// <summary>Extension cases: destination RAX (its low dst bytes), source from RBX or from memory
    /// at RDX, which holds the same value as RBX.</summary>
    public sealed record Extension(string Name, Action<Assembler> Emit, int Dst, int Src, bool Signed, bool High8 = false)
    {
        public override string ToString() => Name;
    }

    public static IEnumerable<Extension> Extensions() => new[]
    {
        new Extension("movzx ax,bl", a => a.movzx(ax, bl), 2, 1, false),
        new Extension("movzx eax,bl", a => a.movzx(eax, bl), 4, 1, false),
        new Extension("movzx rax,bl", a => a.movzx(rax, bl), 8, 1, false),
        new Extension("movzx eax,bh", a => a.movzx(eax, bh), 4, 1, false, High8: true),
        new Extension("movzx ax,bx", a => a.db(0x66, 0x0F, 0xB7, 0xC3), 2, 2, false),
        new Extension("movzx eax,bx", a => a.movzx(eax, bx), 4, 2, false),
        new Extension("movzx rax,bx", a => a.movzx(rax, bx), 8, 2, false),
        new Extension("movzx eax,byte[rdx]", a => a.movzx(eax, __byte_ptr[rdx]), 4, 1, false),
        new Extension("movzx rax,word[rdx]", a => a.movzx(rax, __word_ptr[rdx]), 8, 2, false),
        new Extension("movsx ax,bl", a => a.movsx(ax, bl), 2, 1, true),
        new Extension("movsx eax,bl", a => a.movsx(eax, bl), 4, 1, true),
        new Extension("movsx rax,bl", a => a.movsx(rax, bl), 8, 1, true),
        new Extension("movsx ax,bh", a => a.movsx(ax, bh), 2, 1, true, High8: true),
        new Extension("movsx ax,bx", a => a.db(0x66, 0x0F, 0xBF, 0xC3), 2, 2, true),
        new Extension("movsx eax,bx", a => a.movsx(eax, bx), 4, 2, true),
        new Extension("movsx rax,bx", a => a.movsx(rax, bx), 8, 2, true),
        new Extension("movsx ax,byte[rdx]", a => a.movsx(ax, __byte_ptr[rdx]), 2, 1, true),
        new Extension("movsx rax,word[rdx]", a => a.movsx(rax, __word_ptr[rdx]), 8, 2, true),
        new Extension("movsxd rax,ebx", a => a.movsxd(rax, ebx), 8, 4, true),
        new Extension("movsxd rax,dword[rdx]", a => a.movsxd(rax, __dword_ptr[rdx]), 8, 4, true),
        new Extension("movsxd eax,ebx (no REX.W)", a => a.db(0x63, 0xC3), 4, 4, true),
        new Extension("movsxd ax,bx (66)", a => a.db(0x66, 0x63, 0xC3), 2, 2, true),
        new Extension("movsxd ax,word[rdx] (66)", a => a.db(0x66, 0x63, 0x02), 2, 2, true),
    };

    private static ulong Extend(ulong v, int size, bool signed) => !signed ? v : size switch
    {
        1 => (ulong)(sbyte)v,
        2 => (ulong)(short)v,
        4 => (ulong)(int)v,
        _ => v,
    };

    [Test]
    public void Extension_EverySizeAndSign_ExtendsSourceIntoDestination(
        [ValueSource(nameof(Extensions))] Extension c,
        [Values(0x0123_4567_89AB_CDEFUL, 0x7E5D_3C2B_1A09_6877UL)] ulong source)
    {
        const ulong init = 0xF0F0_F0F0_F0F0_F0F0;
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.WriteU64(Data, source);
        m.RunToHlt(a =>
        {
            a.mov(rax, init);
            a.mov(rbx, source);
            a.mov(rdx, Data);
            c.Emit(a);
        });
        ulong src = c.High8 ? (source >> 8) & 0xFF : source & RefFlags.Mask(c.Src);
        Assert.That(m.Rax, Is.EqualTo(Merge(init, Extend(src, c.Src, c.Signed), c.Dst)));
    }

    // ---- LEA -----------------------------------------------------------------------------------

    [Test]
    public void Lea_64BitForms_ComputeOffsetInAddressSizeThenFitOperandSize()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rbx, 0x1000_0000_0000);
            a.mov(rcx, 3);
            a.lea(rax, __[rbx + rcx * 4 + 8]);  // 64-bit address, 64-bit operand
            a.mov(rbx, 0xFFFF_FFFF_FFFF_FFF0);
            a.mov(rcx, 1);
            a.mov(rdx, ulong.MaxValue);
            a.lea(edx, __[rbx + rcx * 4 + 8]);  // 64-bit address truncated to 32, zero-extended
            a.mov(rsi, 0x1111_1111_1111_1111);
            a.lea(si, __[rbx + 0x20]);          // truncated to 16, upper 48 bits kept
            a.mov(rbx, 0xAAAA_AAAA_FFFF_FFFF);
            a.mov(rcx, 2);
            a.lea(rdi, __[ebx + ecx]);          // 67: 32-bit address wraps, zero-extended to 64
            a.mov(rbx, 0);
            a.lea(r8, __[rbx - 1]);             // negative displacement
        });
        Assert.That(m.Rax, Is.EqualTo(0x1000_0000_0014UL));
        Assert.That(cpu.GetGpr(Gpr.Rdx), Is.EqualTo(0xFFFF_FFFCUL));
        Assert.That(cpu.GetGpr(Gpr.Rsi), Is.EqualTo(0x1111_1111_1111_0010UL));
        Assert.That(cpu.GetGpr(Gpr.Rdi), Is.EqualTo(1UL));
        Assert.That(cpu.GetGpr(Gpr.R8), Is.EqualTo(ulong.MaxValue));
    }

    [Test]
    public void Lea_RipAndEipRelative_UseAddressOfNextInstruction()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        var cpu = m.RunToHlt(a =>
        {
            a.db(0x48, 0x8D, 0x05, 0xF9, 0xFF, 0xFF, 0xFF); // lea rax, [rip-7]: its own address
            a.db(0x67, 0x8D, 0x0D, 0x00, 0x00, 0xFE, 0xFF); // lea ecx, [eip-0x20000]: wraps at 32 bits
            a.mov(rdx, 0x7777_7777_7777_7777);
            a.db(0x66, 0x8D, 0x15, 0x00, 0x10, 0x00, 0x00); // lea dx, [rip+0x1000]
        });
        ulong second = GuestMachine.CodeBase + 7 + 7;       // RIP after the EIP-relative LEA
        ulong fourth = second + 10 + 7;                     // after mov rdx, imm64 and the last LEA
        Assert.That(m.Rax, Is.EqualTo(GuestMachine.CodeBase));
        Assert.That(cpu.GetGpr(Gpr.Rcx), Is.EqualTo((second - 0x20000) & 0xFFFF_FFFF));
        Assert.That(cpu.GetGpr(Gpr.Rdx), Is.EqualTo(0x7777_7777_7777_0000UL | ((fourth + 0x1000) & 0xFFFF)));
    }

    [Test]
    public void Lea_RealMode_16BitAddressWrapsAndFitsOperandSize()
    {
        using var m = new GuestMachine(GuestMode.Real);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(eax, 0xFFFF_FFFF);
            a.mov(bx, 3);
            a.xor(si, si);
            a.lea(ax, __[bx + si - 2]);          // 16-bit operand: EAX[31:16] kept
            a.mov(bx, 1);
            a.lea(di, __[bx + si - 2]);          // wraps to 0xFFFF
            a.mov(bp, 0xFFFF);
            a.mov(ecx, 0xFFFF_FFFF);
            a.lea(ecx, __[bp + di]);             // 66: 0xFFFF + 0xFFFF wraps to 0xFFFE, zero-extended
            a.mov(esi, 0x1234_5678);
            a.mov(edi, 0x10);
            a.mov(edx, 0xAAAA_0000);
            a.lea(dx, __[esi + edi * 2]);        // 67: 32-bit address, truncated to 16
        });
        Assert.That(m.Rax & 0xFFFF_FFFF, Is.EqualTo(0xFFFF_0001UL));
        Assert.That(cpu.GetGpr(Gpr.Rcx) & 0xFFFF_FFFF, Is.EqualTo(0xFFFEUL));
        Assert.That(cpu.GetGpr(Gpr.Rdx) & 0xFFFF_FFFF, Is.EqualTo(0xAAAA_5698UL));
    }

    [Test]
    public void Lea_ProtectedMode16BitAddressPrefix_Wraps()
    {
        using var m = new GuestMachine(GuestMode.Protected32);
        m.RunToHlt(a =>
        {
            a.mov(ebx, 0x1_FFFF);
            a.mov(esi, 1);
            a.mov(eax, 0xFFFF_FFFF);
            a.lea(eax, __[bx + si + 4]); // (0xFFFF + 1 + 4) mod 64K
        });
        Assert.That(m.Rax & 0xFFFF_FFFF, Is.EqualTo(4UL));
    }

    // ---- XCHG ----------------------------------------------------------------------------------

    public static IEnumerable<Code> RegisterExchanges() => new[]
    {
        new Code("xchg rax,rcx", a => a.xchg(rax, rcx)),
        new Code("xchg eax,ecx", a => a.xchg(eax, ecx)),
        new Code("xchg ax,cx", a => a.xchg(ax, cx)),
        new Code("xchg al,cl", a => a.xchg(al, cl)),
        new Code("xchg ah,ch", a => a.xchg(ah, ch)),
        new Code("xchg ecx,eax (91)", a => a.db(0x91)),
    };

    [TestCaseSource(nameof(RegisterExchanges))]
    public void Xchg_Registers_SwapOperandSizedParts(Code c)
    {
        const ulong x = 0x1111_2222_3333_4444, y = 0xAAAA_BBBB_CCCC_DDDD;
        using var m = new GuestMachine(GuestMode.Long64);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rax, x);
            a.mov(rcx, y);
            c.Emit(a);
        });
        (ulong ex, ulong ey) = c.Name switch
        {
            "xchg rax,rcx" => (y, x),
            "xchg ax,cx" => (Merge(x, y, 2), Merge(y, x, 2)),
            "xchg al,cl" => (Merge(x, y, 1), Merge(y, x, 1)),
            "xchg ah,ch" => ((x & ~0xFF00UL) | (y & 0xFF00), (y & ~0xFF00UL) | (x & 0xFF00)),
            _ => (y & 0xFFFF_FFFF, x & 0xFFFF_FFFF),
        };
        Assert.That(m.Rax, Is.EqualTo(ex));
        Assert.That(cpu.GetGpr(Gpr.Rcx), Is.EqualTo(ey));
    }

    [Test]
    public void Xchg_EaxEaxThroughModRm_ZeroExtendsButOneByteNopDoesNot()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rax, 0xFFFF_FFFF_1234_5678);
            a.db(0x90);             // NOP, not an exchange
            a.mov(rcx, rax);
            a.db(0x87, 0xC0);       // xchg eax, eax: a 32-bit write of EAX
            a.mov(r8, 0x8888_8888_0000_0008);
            a.mov(rdx, rax);
            a.mov(rax, 0x9999_9999_0000_0009);
            a.db(0x41, 0x90);       // xchg r8d, eax
        });
        Assert.That(cpu.GetGpr(Gpr.Rcx), Is.EqualTo(0xFFFF_FFFF_1234_5678UL));
        Assert.That(cpu.GetGpr(Gpr.Rdx), Is.EqualTo(0x1234_5678UL));
        Assert.That(m.Rax, Is.EqualTo(8UL));
        Assert.That(cpu.GetGpr(Gpr.R8), Is.EqualTo(9UL));
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(4)]
    [TestCase(8)]
    public void Xchg_Memory_SwapsRegisterAndMemory(int size)
    {
        const ulong mem = 0x0102_0304_0506_0708, reg = 0xF1F2_F3F4_F5F6_F7F8;
        using var m = new GuestMachine(GuestMode.Long64);
        m.Memory.WriteU64(Data, mem);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rbx, Data);
            a.mov(rcx, reg);
            switch (size)
            {
                case 1: a.xchg(__byte_ptr[rbx], cl); break;
                case 2: a.xchg(__word_ptr[rbx], cx); break;
                case 4: a.xchg(__dword_ptr[rbx], ecx); break;
                default: a.xchg(__qword_ptr[rbx], rcx); break;
            }
        });
        ulong mask = RefFlags.Mask(size);
        Assert.That(m.Memory.ReadU64(Data), Is.EqualTo((mem & ~mask) | (reg & mask)));
        Assert.That(cpu.GetGpr(Gpr.Rcx), Is.EqualTo(Merge(reg, mem, size)));
    }

    [Test]
    public void Xchg_ReadOnlyMemory_FaultsWithRegisterUnchanged()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        GuestPages.MakeFaultingRegions(m.Memory);
        ExceptionTrap.Install(m.Memory, m.Cpu);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rbx, GuestPages.ReadOnly);
            a.mov(rcx, 0x1234);
            a.xchg(__qword_ptr[rbx], rcx);
        });
        var caught = ExceptionTrap.Caught(m.Memory);
        Assert.That(caught?.Vector, Is.EqualTo(Vector.PF));
        Assert.That(caught?.ErrorCode, Is.EqualTo(3UL)); // present, write
        Assert.That(GuestPages.InstructionAt(m.Memory, caught!.Value.Rip).Mnemonic, Is.EqualTo(Mnemonic.Xchg));
        Assert.That(cpu.GetGpr(Gpr.Rcx), Is.EqualTo(0x1234UL));
        Assert.That(cpu.Cr2, Is.EqualTo(GuestPages.ReadOnly));
    }

    // ---- BSWAP ---------------------------------------------------------------------------------

    [Test]
    public void Bswap_32And64_ReverseBytes()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rax, 0x0102_0304_0506_0708);
            a.bswap(rax);
            a.mov(rcx, 0x0102_0304_0506_0708);
            a.bswap(ecx);
            a.mov(r9, 0x1122_3344_5566_7788);
            a.bswap(r9d);
        });
        Assert.That(m.Rax, Is.EqualTo(0x0807_0605_0403_0201UL));
        Assert.That(cpu.GetGpr(Gpr.Rcx), Is.EqualTo(0x0807_0605UL));
        Assert.That(cpu.GetGpr(Gpr.R9), Is.EqualTo(0x8877_6655UL));
    }

    [Test]
    public void Bswap_16BitOperand_SwapsLowDoublewordAsQemuDoes()
    {
        // The SDM leaves BSWAP r16 undefined; QEMU TCG executes it as BSWAP r32.
        using var m = new GuestMachine(GuestMode.Long64);
        m.RunToHlt(a =>
        {
            a.mov(rax, 0x0102_0304_0506_0708);
            a.db(0x66, 0x0F, 0xC8); // bswap ax
        });
        Assert.That(m.Rax, Is.EqualTo(0x0807_0605UL));
    }

    // ---- XLAT ----------------------------------------------------------------------------------

    private static byte TableByte(int k) => (byte)(k * 7 + 3);

    private static void WriteTable(GuestMachine m, ulong at)
    {
        var table = new byte[256];
        for (int k = 0; k < 256; k++) table[k] = TableByte(k);
        m.Memory.Write(at, table);
    }

    [Test]
    public void Xlat_64Bit_IndexesRbxWithUnsignedAl()
    {
        using var m = new GuestMachine(GuestMode.Long64);
        WriteTable(m, Data);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rbx, Data);
            a.mov(rax, 0x1234_5678_9ABC_DEFF); // AL = 0xFF: entry 255, not -1
            a.xlatb();
            a.mov(rcx, rax);
            a.mov(rbx, 0xFFFF_FFFF_0000_0000 | Data);
            a.mov(rax, 0x10);
            a.db(0x67, 0xD7);                  // xlat with EBX: upper half of RBX ignored
        });
        Assert.That(cpu.GetGpr(Gpr.Rcx), Is.EqualTo(0x1234_5678_9ABC_DE00UL | TableByte(255)));
        Assert.That(m.Rax, Is.EqualTo((ulong)TableByte(0x10)));
    }

    [Test]
    public void Xlat_RealMode_WrapsAt64KAndHonoursSegmentOverride()
    {
        using var m = new GuestMachine(GuestMode.Real);
        m.Memory.Write(0x2_0010, new byte[] { 0x5A });
        m.Memory.Write(0x3_0010, new byte[] { 0xA5 });
        var cpu = m.RunToHlt(a =>
        {
            a.mov(ax, 0x2000);
            a.mov(ds, ax);
            a.mov(ax, 0x3000);
            a.mov(es, ax);
            a.mov(bx, 0xFFF0);
            a.mov(al, 0x20);
            a.xlatb();               // DS:(0xFFF0 + 0x20) mod 64K = DS:0x0010
            a.mov(cl, al);
            a.mov(al, 0x20);
            a.db(0x26, 0xD7);        // es xlat
        });
        Assert.That(cpu.GetGpr(Gpr.Rcx) & 0xFF, Is.EqualTo(0x5AUL));
        Assert.That(m.Rax & 0xFF, Is.EqualTo(0xA5UL));
    }

    // ---- NOP forms -----------------------------------------------------------------------------

    public static IEnumerable<Code> NopForms() => new[]
    {
        new Code("nop (90)", a => a.db(0x90)),
        new Code("66 nop", a => a.db(0x66, 0x90)),
        new Code("pause", a => a.pause()),
        new Code("nop dword [rax] (0F 1F /0)", a => a.db(0x0F, 0x1F, 0x00)),
        new Code("nop word [rax+rax+0] (66 0F 1F 44)", a => a.db(0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00)),
        new Code("nop dword [rax+rax+disp32] (0F 1F 84)", a => a.db(0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00)),
        new Code("reserved nop 0F 19 /r", a => a.db(0x0F, 0x19, 0x00)),
        new Code("reserved nop 0F 1E /r", a => a.db(0x0F, 0x1E, 0x00)),
        new Code("endbr64", a => a.db(0xF3, 0x0F, 0x1E, 0xFA)),
        new Code("endbr32", a => a.db(0xF3, 0x0F, 0x1E, 0xFB)),
    };

    [TestCaseSource(nameof(NopForms))]
    public void Nop_EveryForm_ChangesNothingAndNeverTouchesMemory(Code c)
    {
        // RAX is non-canonical: any access through [rax] would raise #GP.
        const ulong flags = F.CF | F.ZF | F.OF | F.AF;
        using var m = new GuestMachine(GuestMode.Long64);
        var cpu = m.RunToHlt(a =>
        {
            a.mov(rax, 0x8000_0000_0000_0000);
            a.mov(rcx, 0x1234);
            RefFlags.Load(a, flags);
            c.Emit(a);
        });
        Assert.That(m.Rax, Is.EqualTo(0x8000_0000_0000_0000UL));
        Assert.That(cpu.GetGpr(Gpr.Rcx), Is.EqualTo(0x1234UL));
        Assert.That(m.Flags & F.Status, Is.EqualTo(flags));
    }
}
