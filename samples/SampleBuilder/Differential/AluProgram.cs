using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace Hypervisor.Samples.Differential;

/// <summary>
/// Differential program for the integer ALU: every operation, every operand size, over a table
/// of edge values (and CF = 0 and 1 where it is an input). Each line prints a hash of the
/// results and of the flags the SDM defines for that operation (undefined flags are masked out,
/// since only defined behaviour is comparable between implementations).
/// </summary>
public static class AluProgram
{
    private const ulong Cf = 1, Pf = 4, Af = 0x10, Zf = 0x40, Sf = 0x80, Of = 0x800;
    private const ulong Arith = Cf | Pf | Af | Zf | Sf | Of;
    private const ulong Logic = Cf | Pf | Zf | Sf | Of;

    private static readonly ulong[] Values =
    {
        0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
        0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 0x1234_5678_9ABC_DEF0, 0xFEDC_BA98_7654_3211, 0x0F0F_F0F0_00FF_FF01,
    };

    private record Op(string Name, ulong FlagMask, Action<Assembler, int> Emit, bool CarryIn = false, bool SourceNonZero = false);

    private static AssemblerRegister64 R64(int i) => i == 0 ? rax : rcx;

    /// <summary>Operands: destination RAX (sized), source RCX (sized). Count operations use CL.</summary>
    private static IEnumerable<Op> Ops()
    {
        yield return new("add", Arith, (a, s) => Bin(a, s, (x, y) => a.add(x, y), (x, y) => a.add(x, y), (x, y) => a.add(x, y), (x, y) => a.add(x, y)));
        yield return new("adc", Arith, (a, s) => Bin(a, s, (x, y) => a.adc(x, y), (x, y) => a.adc(x, y), (x, y) => a.adc(x, y), (x, y) => a.adc(x, y)), CarryIn: true);
        yield return new("sub", Arith, (a, s) => Bin(a, s, (x, y) => a.sub(x, y), (x, y) => a.sub(x, y), (x, y) => a.sub(x, y), (x, y) => a.sub(x, y)));
        yield return new("sbb", Arith, (a, s) => Bin(a, s, (x, y) => a.sbb(x, y), (x, y) => a.sbb(x, y), (x, y) => a.sbb(x, y), (x, y) => a.sbb(x, y)), CarryIn: true);
        yield return new("cmp", Arith, (a, s) => Bin(a, s, (x, y) => a.cmp(x, y), (x, y) => a.cmp(x, y), (x, y) => a.cmp(x, y), (x, y) => a.cmp(x, y)));
        yield return new("and", Logic, (a, s) => Bin(a, s, (x, y) => a.and(x, y), (x, y) => a.and(x, y), (x, y) => a.and(x, y), (x, y) => a.and(x, y)));
        yield return new("or", Logic, (a, s) => Bin(a, s, (x, y) => a.or(x, y), (x, y) => a.or(x, y), (x, y) => a.or(x, y), (x, y) => a.or(x, y)));
        yield return new("xor", Logic, (a, s) => Bin(a, s, (x, y) => a.xor(x, y), (x, y) => a.xor(x, y), (x, y) => a.xor(x, y), (x, y) => a.xor(x, y)));
        yield return new("test", Logic, (a, s) => Bin(a, s, (x, y) => a.test(x, y), (x, y) => a.test(x, y), (x, y) => a.test(x, y), (x, y) => a.test(x, y)));
        yield return new("inc", Arith, (a, s) => Un(a, s, r => a.inc(r), r => a.inc(r), r => a.inc(r), r => a.inc(r)), CarryIn: true);
        yield return new("dec", Arith, (a, s) => Un(a, s, r => a.dec(r), r => a.dec(r), r => a.dec(r), r => a.dec(r)), CarryIn: true);
        yield return new("neg", Arith, (a, s) => Un(a, s, r => a.neg(r), r => a.neg(r), r => a.neg(r), r => a.neg(r)));
        yield return new("not", Arith, (a, s) => Un(a, s, r => a.not(r), r => a.not(r), r => a.not(r), r => a.not(r)), CarryIn: true);
        yield return new("mul", Cf | Of, (a, s) => Un(a, s, r => a.mul(cl), r => a.mul(cx), r => a.mul(ecx), r => a.mul(rcx)));
        yield return new("imul1", Cf | Of, (a, s) => Un(a, s, r => a.imul(cl), r => a.imul(cx), r => a.imul(ecx), r => a.imul(rcx)));
        yield return new("imul2", Cf | Of, (a, s) => { if (s == 1) a.imul(ax, cx); else Bin(a, s, null, (x, y) => a.imul(x, y), (x, y) => a.imul(x, y), (x, y) => a.imul(x, y)); });
        yield return new("imul3", Cf | Of, (a, s) => { switch (s) { case 1: case 2: a.imul(ax, cx, -3); break; case 4: a.imul(eax, ecx, 0x12345); break; default: a.imul(rax, rcx, -0x7654321); break; } });
        yield return new("div", 0, (a, s) => Un(a, s, r => a.div(cl), r => a.div(cx), r => a.div(ecx), r => a.div(rcx)), SourceNonZero: true);
        yield return new("idiv", 0, (a, s) => Un(a, s, r => a.idiv(cl), r => a.idiv(cx), r => a.idiv(ecx), r => a.idiv(rcx)), SourceNonZero: true);
        foreach (int count in new[] { 0, 1, 3, 7 })
        {
            ulong m = count == 0 ? Arith : count == 1 ? Cf | Of | Sf | Zf | Pf : Cf | Sf | Zf | Pf;
            ulong rm = count == 1 ? Cf | Of : count == 0 ? Arith : Cf;
            int c = count;
            yield return new($"shl{c}", m, (a, s) => Sh(a, s, c, (r, n) => a.shl(r, n), (r, n) => a.shl(r, n), (r, n) => a.shl(r, n), (r, n) => a.shl(r, n)));
            yield return new($"shr{c}", m, (a, s) => Sh(a, s, c, (r, n) => a.shr(r, n), (r, n) => a.shr(r, n), (r, n) => a.shr(r, n), (r, n) => a.shr(r, n)));
            yield return new($"sar{c}", m, (a, s) => Sh(a, s, c, (r, n) => a.sar(r, n), (r, n) => a.sar(r, n), (r, n) => a.sar(r, n), (r, n) => a.sar(r, n)));
            yield return new($"rol{c}", rm, (a, s) => Sh(a, s, c, (r, n) => a.rol(r, n), (r, n) => a.rol(r, n), (r, n) => a.rol(r, n), (r, n) => a.rol(r, n)), CarryIn: true);
            yield return new($"ror{c}", rm, (a, s) => Sh(a, s, c, (r, n) => a.ror(r, n), (r, n) => a.ror(r, n), (r, n) => a.ror(r, n), (r, n) => a.ror(r, n)), CarryIn: true);
            yield return new($"rcl{c}", rm, (a, s) => Sh(a, s, c, (r, n) => a.rcl(r, n), (r, n) => a.rcl(r, n), (r, n) => a.rcl(r, n), (r, n) => a.rcl(r, n)), CarryIn: true);
            yield return new($"rcr{c}", rm, (a, s) => Sh(a, s, c, (r, n) => a.rcr(r, n), (r, n) => a.rcr(r, n), (r, n) => a.rcr(r, n), (r, n) => a.rcr(r, n)), CarryIn: true);
        }
        yield return new("shl_cl", Cf | Sf | Zf | Pf, (a, s) => { a.and(ecx, (s * 8) - 1); a.or(ecx, 1); a.cmp(ecx, 1); var l = a.CreateLabel(); a.jne(l); a.inc(ecx); a.Label(ref l); Un(a, s, r => a.shl(al, cl), r => a.shl(ax, cl), r => a.shl(eax, cl), r => a.shl(rax, cl)); });
        yield return new("bt", Cf, (a, s) => { if (s == 1) return; Bin(a, s, null, (x, y) => a.bt(x, y), (x, y) => a.bt(x, y), (x, y) => a.bt(x, y)); });
        yield return new("bts", Cf, (a, s) => { if (s == 1) return; Bin(a, s, null, (x, y) => a.bts(x, y), (x, y) => a.bts(x, y), (x, y) => a.bts(x, y)); });
        yield return new("btr", Cf, (a, s) => { if (s == 1) return; Bin(a, s, null, (x, y) => a.btr(x, y), (x, y) => a.btr(x, y), (x, y) => a.btr(x, y)); });
        yield return new("btc", Cf, (a, s) => { if (s == 1) return; Bin(a, s, null, (x, y) => a.btc(x, y), (x, y) => a.btc(x, y), (x, y) => a.btc(x, y)); });
        yield return new("bsf", Zf, (a, s) => { if (s == 1) return; Bin(a, s, null, (x, y) => a.bsf(x, y), (x, y) => a.bsf(x, y), (x, y) => a.bsf(x, y)); }, SourceNonZero: true);
        yield return new("bsr", Zf, (a, s) => { if (s == 1) return; Bin(a, s, null, (x, y) => a.bsr(x, y), (x, y) => a.bsr(x, y), (x, y) => a.bsr(x, y)); }, SourceNonZero: true);
        yield return new("popcnt", Arith, (a, s) => { if (s == 1) return; Bin(a, s, null, (x, y) => a.popcnt(x, y), (x, y) => a.popcnt(x, y), (x, y) => a.popcnt(x, y)); });
        yield return new("lzcnt", Cf | Zf, (a, s) => { if (s == 1) return; Bin(a, s, null, (x, y) => a.lzcnt(x, y), (x, y) => a.lzcnt(x, y), (x, y) => a.lzcnt(x, y)); });
        yield return new("tzcnt", Cf | Zf, (a, s) => { if (s == 1) return; Bin(a, s, null, (x, y) => a.tzcnt(x, y), (x, y) => a.tzcnt(x, y), (x, y) => a.tzcnt(x, y)); });
        yield return new("shld", Cf | Sf | Zf | Pf, (a, s) => { switch (s) { case 1: return; case 2: a.shld(ax, cx, 5); break; case 4: a.shld(eax, ecx, 13); break; default: a.shld(rax, rcx, 29); break; } });
        yield return new("shrd", Cf | Sf | Zf | Pf, (a, s) => { switch (s) { case 1: return; case 2: a.shrd(ax, cx, 5); break; case 4: a.shrd(eax, ecx, 13); break; default: a.shrd(rax, rcx, 29); break; } });
        yield return new("xadd", Arith, (a, s) => Bin(a, s, (x, y) => a.xadd(x, y), (x, y) => a.xadd(x, y), (x, y) => a.xadd(x, y), (x, y) => a.xadd(x, y)));
        yield return new("cmpxchg", Arith, (a, s) => { a.mov(rdx, rax); a.xor(rdx, rcx); Bin(a, s, (x, y) => a.cmpxchg(dl, y), (x, y) => a.cmpxchg(dx, y), (x, y) => a.cmpxchg(edx, y), (x, y) => a.cmpxchg(rdx, y)); a.xor(rax, rdx); });
        yield return new("bswap", 0, (a, s) => { if (s < 4) return; if (s == 4) a.bswap(eax); else a.bswap(rax); });
        yield return new("movsx", 0, (a, s) => { switch (s) { case 1: a.movsx(ax, cl); break; case 2: a.movsx(eax, cx); break; case 4: a.movsxd(rax, ecx); break; default: a.movsx(rax, cl); break; } });
        yield return new("movzx", 0, (a, s) => { switch (s) { case 1: a.movzx(ax, cl); break; case 2: a.movzx(eax, cx); break; case 4: a.movzx(rax, cx); break; default: a.movzx(rax, cl); break; } });
        yield return new("cbw", 0, (a, s) => { switch (s) { case 1: a.cbw(); break; case 2: a.cwd(); break; case 4: a.cdq(); break; default: a.cqo(); break; } });
        yield return new("setcc", 0, (a, s) => { Bin(a, s, (x, y) => a.cmp(x, y), (x, y) => a.cmp(x, y), (x, y) => a.cmp(x, y), (x, y) => a.cmp(x, y)); a.setl(dl); a.setbe(dh); a.seto(bl); a.setp(bh); });
        yield return new("cmov", 0, (a, s) => { if (s == 1) return; a.cmp(rcx, rax); a.mov(rdx, 0x5555); Bin(a, s, null, (x, y) => a.cmovg(x, y), (x, y) => a.cmovb(x, y), (x, y) => a.cmovno(x, y)); });
    }


    private static void Bin(Assembler a, int s, Action<AssemblerRegister8, AssemblerRegister8>? b8, Action<AssemblerRegister16, AssemblerRegister16> b16,
        Action<AssemblerRegister32, AssemblerRegister32> b32, Action<AssemblerRegister64, AssemblerRegister64> b64)
    {
        switch (s)
        {
            case 1: b8?.Invoke(al, cl); break;
            case 2: b16(ax, cx); break;
            case 4: b32(eax, ecx); break;
            default: b64(rax, rcx); break;
        }
    }

    private static void Un(Assembler a, int s, Action<AssemblerRegister8> u8, Action<AssemblerRegister16> u16, Action<AssemblerRegister32> u32, Action<AssemblerRegister64> u64)
    {
        switch (s)
        {
            case 1: u8(al); break;
            case 2: u16(ax); break;
            case 4: u32(eax); break;
            default: u64(rax); break;
        }
    }

    private static void Sh(Assembler a, int s, int n, Action<AssemblerRegister8, byte> s8, Action<AssemblerRegister16, byte> s16, Action<AssemblerRegister32, byte> s32, Action<AssemblerRegister64, byte> s64)
    {
        switch (s)
        {
            case 1: s8(al, (byte)n); break;
            case 2: s16(ax, (byte)n); break;
            case 4: s32(eax, (byte)n); break;
            default: s64(rax, (byte)n); break;
        }
    }

    public static byte[] Build() => DiffImage.Build64((a, lib) =>
    {
        var table = a.CreateLabel();
        var skipTable = a.CreateLabel();
        a.jmp(skipTable);
        a.Label(ref table);
        foreach (var v in Values) a.dq(v);
        a.Label(ref skipTable);
        lib.Print("alu differential\n");
        foreach (var op in Ops())
        {
            foreach (int size in new[] { 1, 2, 4, 8 })
            {
                var body = new Assembler(64);
                op.Emit(body, size);
                if (body.Instructions.Count == 0) continue;
                // r15 = hash, r12 = i, r13 = j, r14 = carry-in pass
                var li = a.CreateLabel(); var lj = a.CreateLabel(); var lc = a.CreateLabel(); var skip = a.CreateLabel();
                a.xor(r15d, r15d);
                a.xor(r14d, r14d);
                a.Label(ref lc);
                a.xor(r12d, r12d);
                a.Label(ref li);
                a.xor(r13d, r13d);
                a.Label(ref lj);
                a.lea(rbx, __[table]);
                a.mov(rax, __qword_ptr[rbx + r12 * 8]);
                a.mov(rcx, __qword_ptr[rbx + r13 * 8]);
                a.mov(rdx, 0x1122334455667788);
                if (op.SourceNonZero)
                    a.or(rcx, 1);
                if (op.Name == "div")
                {
                    // High half of the dividend zero: the quotient always fits.
                    if (size == 1) a.movzx(eax, al); else a.xor(edx, edx);
                }
                else if (op.Name == "idiv")
                {
                    // Dividend = sign-extended low half, divisor positive and odd: no overflow.
                    switch (size)
                    {
                        case 1: a.and(ecx, 0x7F); a.or(ecx, 1); a.cbw(); break;
                        case 2: a.and(ecx, 0x7FFF); a.or(ecx, 1); a.cwd(); break;
                        case 4: a.and(ecx, 0x7FFFFFFF); a.or(ecx, 1); a.cdq(); break;
                        default: a.btr(rcx, 63); a.or(rcx, 1); a.cqo(); break;
                    }
                }
                // Flags in: pass 0 all status flags clear, pass 1 all set (CF is the carry-in).
                a.mov(rbx, r14);
                a.neg(rbx);
                a.and(ebx, 0x8D5);
                a.or(ebx, 2);
                a.push(rbx);
                a.popfq();
                a.mov(ebx, 0);
                op.Emit(a, size);
                a.pushfq();
                a.pop(rbx);
                a.and(rbx, (int)op.FlagMask);
                a.imul(r15, r15, 1000003); a.add(r15, rax);
                a.imul(r15, r15, 1000003); a.add(r15, rbx);
                a.imul(r15, r15, 1000003); a.add(r15, rcx);
                a.imul(r15, r15, 1000003); a.add(r15, rdx);
                a.inc(r13d);
                a.cmp(r13d, Values.Length);
                a.jb(lj);
                a.inc(r12d);
                a.cmp(r12d, Values.Length);
                a.jb(li);
                a.inc(r14d);
                a.cmp(r14d, op.CarryIn ? 2 : 1);
                a.jb(lc);
                lib.Print($"{op.Name}/{size * 8} ");
                lib.Hex(r15);
                lib.Print("\n");
            }
        }
        lib.Print("done\n");
    });
}
