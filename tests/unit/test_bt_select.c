/*
 * bt/select.c's per-opcode predicates are lookups of the one opcode table
 * (monitor/decode.c): native or threaded, plain when threaded, flags
 * written and read, shifts by CL, implicit registers.  The references
 * below are the switch statements they replaced (bt/select.c before the
 * table answered them), compared with the lookups for every opcode x
 * ModRM.reg x register or memory operand (r/m EAX, ECX, ESP, EDI; [EAX])
 * x operand size x address size x LOCK x REP/REPNE x imm8 (shift counts
 * 1, 0, 32, 33), decoded from real bytes.
 *
 * Deliberate disagreements, each counted and listed here:
 *  - flags written by a threaded form: the old function answered for
 *    native instructions only (0 elsewhere); the translator asks about a
 *    threaded one only to mark its flags dead, which a threaded
 *    instruction's code never consults.  Among them RCL/RCR: the old
 *    function said all six arithmetic flags, the table says CF and OF,
 *    which is the SDM's "Flags Affected" for RCL/RCR (OF undefined for
 *    counts above 1, the others unaffected).  0F BA /0-/3 and 0F C7 other
 *    than /1 are #UD: the old function said CF, resp. ZF; the table nothing.
 *  - flags read by a threaded form (RCL/RCR's CF, LOOPE's ZF, ...): the
 *    translator asks native_flags_read, which says "all" for those.
 *  - implicit registers of JMP near r/m (FF /4): the old function counted
 *    ESP as used and written (it took FF /2-/7 together); JMP does not touch
 *    the stack, and the table says so.  The fuzzer's statistics for a fixed
 *    seed are the same either way.
 * Every other form must agree exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "bt/native_internal.h"
#include "monitor/cpu.h"
#include "monitor/decode.h"
#include "monitor/interp.h"

/* ==== the predicates before the table (bt/select.c at 8e6628d; do not "fix") ==== */

#define FLAGS_ALL 0x8d5u

/* Registers a native instruction uses without naming them in ModRM. */
static unsigned ref_implicit_regs(const struct insn *in, bool written)
{
    int op = in->op;
    const unsigned A = 1u << R_EAX, C = 1u << R_ECX, D = 1u << R_EDX, SP = 1u << R_ESP,
                   BP = 1u << R_EBP, SI = 1u << R_ESI, DI = 1u << R_EDI;
    if ((op >= 0x40 && op <= 0x4f) || (op >= 0xb0 && op <= 0xbf) || (op >= 0x1c8 && op <= 0x1cf))
        return 1u << (op & 7) | 1u << (op & 3);
    if (op >= 0x50 && op <= 0x57)
        return SP | (written ? 0 : 1u << (op & 7));
    if (op >= 0x58 && op <= 0x5f)
        return SP | 1u << (op & 7);
    if (alu_family(op) && (op & 7) >= 4)
        return written && (op >> 3) == 7 ? 0 : A;
    switch (op) {
    case 0x98: return A;
    case 0x99: return written ? D : A | D;
    case 0x1b0: case 0x1b1: return A;
    case 0xa8: case 0xa9: return written ? 0 : A;
    case 0xa0: case 0xa1: case 0xa2: case 0xa3: return written && op >= 0xa2 ? 0 : A;
    case 0xaa: case 0xab: return DI | (written ? 0 : A) | (in->prefixes & (PFX_REP | PFX_REPNE) ? C : 0);
    case 0xac: case 0xad: return SI | A;
    case 0xa4: case 0xa5: return SI | DI | C;
    case 0xd2: case 0xd3: case 0x1a5: case 0x1ad: return written ? 0 : C;
    case 0x1c7: return A | D | (written ? 0 : C | 1u << R_EBX);
    case 0xc9: return SP | BP;
    case 0x68: case 0x6a: case 0xe8: case 0xc2: case 0xc3: case 0x9c: return SP;
    case 0xff: return in->reg >= 2 ? SP : 0;
    case 0xf7:
        /* MUL: EDX:EAX = EAX * r/m; DIV: EDX:EAX / r/m.  EDX counts as
         * used by MUL too: a stub's resume reloads the registers used. */
        return in->reg == 4 || in->reg == 6 ? A | D : 0;
    }
    return 0;
}

static bool ref_native_supported(const struct insn *in)
{
    int op = in->op;
    if (in->invalid || high_byte_regs(in) < 0)
        return false;
    /* With one virtual CPU a locked read-modify-write is the plain one; where
     * LOCK is not allowed the interpreter raises the #UD. */
    if ((in->prefixes & PFX_LOCK) && !insn_lock_allowed(in))
        return false;
    if (in->has_modrm && in->mod != 3 && !in->addr32)
        return false;                          /* 16-bit addressing: threaded */
    if (alu_family(op))
        return true;
    switch (op) {
    case 0x80: case 0x81: case 0x83:
    case 0x84: case 0x85: case 0x86: case 0x87:
    case 0x88: case 0x89: case 0x8a: case 0x8b:
    case 0xa8: case 0xa9:
    case 0x90: case 0xeb: case 0xe9:
        return true;
    case 0xc6: case 0xc7:
        return in->reg == 0;                   /* C6/C7 /1-/7 are #UD (the interpreter raises it) */
    case 0x8d:
        return in->mod != 3 && in->addr32;
    case 0x98: case 0x99:
        return in->op32;
    case 0xf6: case 0xf7:
        if (op == 0xf7 && (in->reg == 4 || in->reg == 6))
            return in->op32;                   /* mul, div r/m32 */
        return in->reg == 0 || in->reg == 2 || in->reg == 3;
    case 0xfe:
        return in->reg <= 1;
    case 0xff:
        if (in->reg <= 1)
            return true;                       /* inc/dec r/m */
        break;
    case 0x68: case 0x6a: case 0xe8: case 0xc3: case 0xc2:
        return in->op32;
    case 0x1b6: case 0x1b7: case 0x1be: case 0x1bf:
    case 0x1af: case 0x69: case 0x6b:
    case 0x1c0: case 0x1c1:                    /* XADD */
        return true;
    case 0x1b0: case 0x1b1:
        /* CMPXCHG goes through the host's EAX: not with EAX as its register
         * r/m, nor naming AH..BH next to the AL it compares. */
        return !(in->mod == 3 && in->rm == R_EAX) && (op == 0x1b1 || !high_byte_regs(in));
    case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0xd2: case 0xd3:
        return in->reg != 2 && in->reg != 3;   /* RCL/RCR stay threaded */
    case 0x1ba:
        return in->reg >= 4;                   /* BT/BTS/BTR/BTC r/m, imm8 */
    case 0x1a3: case 0x1ab: case 0x1b3: case 0x1bb:
        return in->mod == 3 || in->op32;       /* BT/BTS/BTR/BTC r/m, reg */
    case 0x1a4: case 0x1a5: case 0x1ac: case 0x1ad:
        return in->op32;                       /* SHLD, SHRD: 16-bit counts above 16 are undefined on the host */
    case 0x1c7:
        return in->reg == 1 && in->mod != 3;   /* CMPXCHG8B */
    case 0xa0: case 0xa1: case 0xa2: case 0xa3:
        return in->addr32;                     /* MOV with a direct offset */
    case 0xaa: case 0xab:
        return in->addr32;                     /* STOS, REP STOS (F2 repeats it too) */
    case 0xac: case 0xad:
        return in->addr32 && !(in->prefixes & (PFX_REP | PFX_REPNE));   /* one LODS */
    case 0xa4: case 0xa5:
        return in->addr32 && (in->prefixes & (PFX_REP | PFX_REPNE));    /* REP MOVS */
    case 0xc9: case 0x9c:
        return in->op32;                       /* LEAVE, PUSHF */
    case 0xfa: case 0xfc: case 0xfd:           /* CLI (at CPL 0; else the stub), CLD, STD */
        return true;
    case 0xfb:                                 /* STI (at CPL 0, nothing pending; else the stub) */
        return true;
    }
    if (op == 0xff && (in->reg == 2 || in->reg == 4 || in->reg == 6))
        return in->op32;
    if (op >= 0x1c8 && op <= 0x1cf)
        return in->op32;
    if (op >= 0x40 && op <= 0x4f)
        return true;
    if (op >= 0x50 && op <= 0x5f)
        return in->op32;
    if (op >= 0xb0 && op <= 0xbf)
        return true;
    if ((op >= 0x70 && op <= 0x7f) || (op >= 0x180 && op <= 0x18f) || (op >= 0x190 && op <= 0x19f))
        return true;
    if (op >= 0x140 && op <= 0x14f)
        return in->op32;
    return false;
}

static bool ref_native_threaded_is_plain(const struct insn *in)
{
    int op = in->op;
    if (in->invalid)
        return false;
    if (op >= 0xd8 && op <= 0xdf)
        return true;                           /* x87 */
    if (op == 0x8e)
        return in->reg != SEG_SS;              /* MOV Sreg (SS shadows interrupts; CS is #UD) */
    if (alu_family(op) || (op >= 0x40 && op <= 0x61) || (op >= 0x68 && op <= 0x6b) ||
        (op >= 0x80 && op <= 0x99) || (op >= 0x9b && op <= 0xbf) || (op >= 0xc0 && op <= 0xc1) ||
        (op >= 0xc6 && op <= 0xc9) || (op >= 0xd0 && op <= 0xd7) || (op >= 0xf5 && op <= 0xf7) ||
        (op >= 0xf8 && op <= 0xfe))
        return true;
    if (op == 0xff)
        return in->reg <= 1 || in->reg == 6;
    if (op == 0x100)
        return in->reg <= 1 || in->reg == 4 || in->reg == 5;   /* SLDT, STR, VERR, VERW */
    if ((op >= 0x140 && op <= 0x14f) || (op >= 0x190 && op <= 0x19f) || (op >= 0x1a3 && op <= 0x1a5) ||
        (op >= 0x1ab && op <= 0x1ad) || (op >= 0x1af && op <= 0x1b1) || (op >= 0x1b3 && op <= 0x1b7) ||
        (op >= 0x1ba && op <= 0x1c1) || (op >= 0x1c8 && op <= 0x1cf))
        return op != 0x1b2 && op != 0x1b4 && op != 0x1b5;   /* LSS/LFS/LGS */
    switch (op) {
    case 0x06: case 0x0e: case 0x16: case 0x1e: case 0x1a0: case 0x1a8:    /* PUSH Sreg */
    case 0x07: case 0x1f: case 0x1a1: case 0x1a9:                          /* POP ES/DS/FS/GS */
    case 0x120: case 0x121:                                                /* MOV r32, CRn/DRn */
    case 0x1a2: case 0x131: case 0x1c7:                                    /* CPUID, RDTSC, CMPXCHG8B */
        return true;
    }
    return false;
}

/* Shifts, rotates and double shifts by CL, whose zero count changes nothing. */
static bool ref_shifts_by_cl(const struct insn *in)
{
    return in->op == 0xd2 || in->op == 0xd3 || in->op == 0x1a5 || in->op == 0x1ad;
}

/* Arithmetic flags a native instruction always writes (0: none, or not always). */
static uint32_t ref_native_flags_written(const struct insn *in)
{
    int op = in->op;
    if (alu_family(op))
        return FLAGS_ALL;
    switch (op) {
    case 0x80: case 0x81: case 0x83: case 0x84: case 0x85: case 0xa8: case 0xa9:
    case 0x1af: case 0x69: case 0x6b: case 0x1b0: case 0x1b1: case 0x1c0: case 0x1c1:
        return FLAGS_ALL;
    case 0xf6: case 0xf7:
        return in->reg == 0 || in->reg == 3 || in->reg == 4 ? FLAGS_ALL : 0;
    case 0xfe: case 0xff:
        return in->reg <= 1 ? FLAGS_INCDEC : 0;
    case 0xc0: case 0xc1: case 0xd0: case 0xd1:
        if (op <= 0xc1 && !(in->imm & 31))
            return 0;
        return in->reg <= 1 ? 0x801 : FLAGS_ALL;
    case 0x1ba: case 0x1a3: case 0x1ab: case 0x1b3: case 0x1bb:
        return 0x1;
    case 0x1a4: case 0x1ac:
        return in->imm & 31 ? FLAGS_ARITH : 0;
    case 0x1c7:
        return 0x40;
    }
    if (op >= 0x40 && op <= 0x4f)
        return FLAGS_INCDEC;
    return 0;
}

/* The arithmetic flags a native instruction reads. */
static uint32_t ref_flags_read(const struct insn *in)
{
    int op = in->op;
    if ((op >= 0x70 && op <= 0x7f) || (op >= 0x180 && op <= 0x19f) || (op >= 0x140 && op <= 0x14f))
        return cond_flags(op & 0xf);
    if (alu_family(op))
        return (op >> 3) == 2 || (op >> 3) == 3 ? 0x1 : 0;   /* ADC, SBB */
    if (op == 0x9c)
        return FLAGS_ALL;                                      /* PUSHF */
    return (op == 0x80 || op == 0x81 || op == 0x83) && (in->reg == 2 || in->reg == 3) ? 0x1 : 0;
}

/* ==== end of the reference ==== */

static bool is_prefix(int b)
{
    return b == 0x26 || b == 0x2e || b == 0x36 || b == 0x3e || b == 0x64 || b == 0x65 || b == 0x66 ||
           b == 0x67 || b == 0xf0 || b == 0xf2 || b == 0xf3;
}

struct form {
    int op, reg, rm;             /* rm < 0: the memory operand [EAX] */
    bool opsize, adsize, lock;
    int rep;                     /* 0, F3 or F2 */
    uint8_t imm;
};

/* Decode the form in 32-bit code. */
static void decode_form(const struct form *f, struct insn *in)
{
    uint8_t buf[32];
    int n = 0;
    if (f->lock)
        buf[n++] = 0xf0;
    if (f->rep)
        buf[n++] = (uint8_t)f->rep;
    if (f->opsize)
        buf[n++] = 0x66;
    if (f->adsize)
        buf[n++] = 0x67;
    if (f->op >= 0x100)
        buf[n++] = 0x0f;
    buf[n++] = f->op & 0xff;
    if (f->op == 0x138 || f->op == 0x13a)
        buf[n++] = 0x00;
    /* mod 00 rm 000: [EAX] ([BX+SI] with 16-bit addressing); mod 11: a register */
    buf[n++] = (uint8_t)((f->rm < 0 ? 0x00 : 0xc0 | f->rm) | f->reg << 3);
    memset(buf + n, f->imm, sizeof(buf) - n);
    int len = decode(buf, sizeof(buf), true, in);
    assert_true(len > 0);
    assert_int_equal(in->op, f->op);
}

static void print_form(const char *what, const struct form *f, uint32_t got, uint32_t want)
{
    print_error("%03x /%d %s%d o%d a%d%s%s imm %02x: %s %x, was %x\n", f->op, f->reg, f->rm < 0 ? "mem" : "r",
                f->rm < 0 ? 0 : f->rm, f->opsize ? 16 : 32, f->adsize ? 16 : 32, f->lock ? " lock" : "",
                f->rep == 0xf3 ? " rep" : f->rep == 0xf2 ? " repne" : "", f->imm, what, got, want);
}

/* Threaded forms whose flags written the table answers otherwise, on purpose
 * (see the note at the top). */
static bool known_written_disagreement(const struct insn *in, uint32_t got, uint32_t want)
{
    bool rotate_through_cf = (in->op == 0xc0 || in->op == 0xc1 || (in->op >= 0xd0 && in->op <= 0xd3)) &&
                             (in->reg == 2 || in->reg == 3);
    if (rotate_through_cf)
        return want == FL_ARITH && got == (FL_CF | FL_OF);
    if ((in->op == 0x1ba && in->reg < 4) || (in->op == 0x1c7 && in->reg != 1))
        return got == 0;
    return want == 0;
}

struct tally {
    long forms, native, plain, by_cl, written_differ, read_differ, rcl_rcr;
};

static void compare_form(const struct form *f, struct tally *t)
{
    struct insn in;
    decode_form(f, &in);
    bool nat = native_supported(&in), ref_nat = ref_native_supported(&in);
    t->forms++;
    if (nat != ref_nat) {
        print_form("native", f, nat, ref_nat);
        fail();
    }
    if (native_threaded_is_plain(&in) != ref_native_threaded_is_plain(&in)) {
        print_form("plain", f, native_threaded_is_plain(&in), ref_native_threaded_is_plain(&in));
        fail();
    }
    if (native_shifts_by_cl(&in) != ref_shifts_by_cl(&in)) {
        print_form("shifts by CL", f, native_shifts_by_cl(&in), ref_shifts_by_cl(&in));
        fail();
    }
    t->native += nat;
    t->plain += native_threaded_is_plain(&in);
    t->by_cl += native_shifts_by_cl(&in);
    uint32_t w = native_flags_written(&in), ref_w = ref_native_flags_written(&in);
    uint32_t r = flags_read(&in), ref_r = ref_flags_read(&in);
    if (nat) {
        if (w != ref_w) {
            print_form("flags written", f, w, ref_w);
            fail();
        }
        if (r != ref_r) {
            print_form("flags read", f, r, ref_r);
            fail();
        }
        bool jmp_rm = in.op == 0xff && in.reg == 4;
        for (int written = 0; written < 2; written++) {
            unsigned im = native_implicit_regs(&in, written), ref_im = ref_implicit_regs(&in, written);
            if (jmp_rm ? im != (ref_im & ~(1u << R_ESP)) : im != ref_im) {
                print_form(written ? "implicit registers written" : "implicit registers used", f, im, ref_im);
                fail();
            }
        }
        return;
    }
    if (w != ref_w) {
        if (!known_written_disagreement(&in, w, ref_w)) {
            print_form("flags written (threaded)", f, w, ref_w);
            fail();
        }
        t->written_differ++;
        t->rcl_rcr += ref_w == FL_ARITH && w == (FL_CF | FL_OF);
    }
    t->read_differ += r != ref_r;
}

static void test_lookups_match_the_old_predicates(void **state)
{
    static const int rms[] = { -1, R_EAX, R_ECX, R_ESP, R_EDI };
    static const uint8_t imms[] = { 0x01, 0x00, 0x20, 0x21 };
    static const int reps[] = { 0, 0xf3, 0xf2 };
    struct tally t = { 0 };
    for (int op = 0; op < 0x200; op++) {
        if (op < 0x100 && (op == 0x0f || is_prefix(op)))
            continue;
        for (int reg = 0; reg < 8; reg++)
            for (unsigned k = 0; k < sizeof(rms) / sizeof(rms[0]); k++)
                for (int sizes = 0; sizes < 4; sizes++)
                    for (int lock = 0; lock < 2; lock++)
                        for (int rp = 0; rp < 3; rp++)
                            for (int i = 0; i < 4; i++) {
                                struct form f = { op, reg, rms[k], sizes & 1, sizes >> 1, lock, reps[rp], imms[i] };
                                compare_form(&f, &t);
                            }
    }
    print_message("bt select: %ld forms, %ld native, %ld plain, %ld shift by CL: as before; threaded forms whose "
                  "flags written differ on purpose: %ld (RCL/RCR %ld), flags read: %ld\n",
                  t.forms, t.native, t.plain, t.by_cl, t.written_differ, t.rcl_rcr, t.read_differ);
    assert_true(t.native > 0 && t.plain > 0 && t.by_cl > 0 && t.rcl_rcr > 0);
}

/* The table's own consistency for the translator's columns. */
static void test_translator_columns_are_consistent(void **state)
{
    for (int op = 0; op < 0x200; op++) {
        const struct opinfo *row = &opinfo_table[op];
        for (int reg = 0; reg < 8; reg++) {
            const struct opinfo *oi = row->group ? &row->group[reg] : row;
            if (oi->implicit_w & ~oi->implicit)
                fail_msg("%03x /%d: writes implicit registers %x it does not use", op, reg, oi->implicit_w);
            if ((oi->native & NAT_YES) && (oi->attr & OPA_ENDS) && !(oi->form == OPF_REL || oi->form == OPF_RM ||
                                                                    oi->handler == H_ret_near))
                fail_msg("%03x /%d: a native block end that is no branch", op, reg);
            if ((oi->native & ~NAT_YES) && !(oi->native & NAT_YES))
                fail_msg("%03x /%d: native conditions without NAT_YES", op, reg);
            if ((oi->attr & OPA_UNDEF_KEPT) && !oi->fl_undef)
                fail_msg("%03x /%d: keeps undefined flags it has none of", op, reg);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookups_match_the_old_predicates),
        cmocka_unit_test(test_translator_columns_are_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
