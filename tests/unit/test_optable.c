/*
 * The opcode table (monitor/decode.c) answers what the scattered predicates
 * it replaced answered, for every opcode x ModRM.reg x mod (memory or
 * register) x operand size x LOCK prefix, decoded from real bytes.
 *
 * The references below are copies of the code as it was before the table
 * (commit 9f484ba): the decoder's two shape arrays, interp.c's
 * insn_lock_allowed and bt.c's ends_block.  Any difference fails.  One
 * change made beside the table is in the reference too: the XMM data moves
 * 0F 10/11/28/29/6F/7F are defined (kvm-unit-tests' emulator test runs them).
 *
 * Also checked: every defined opcode (and group member) has an interpreter
 * handler, a row's undefined flags are among those it writes, and the flags
 * bt/native.c says an instruction always writes or reads are in its row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "monitor/cpu.h"
#include "monitor/decode.h"
#include "monitor/interp.h"

/* ==== pre-table reference (copied from 9f484ba, do not "fix") ==== */

enum {
    M = 0x01, X = 0x02, FORCE_REG = 0x04,
    I_B = 0x10, I_W = 0x20, I_Z = 0x30, I_A = 0x40, I_P = 0x50, I_WB = 0x60, I_G3 = 0x70,
};

static const uint8_t ref_one_byte[256] = {
    /* 00 */ M, M, M, M, I_B, I_Z, 0, 0, M, M, M, M, I_B, I_Z, 0, 0,
    /* 10 */ M, M, M, M, I_B, I_Z, 0, 0, M, M, M, M, I_B, I_Z, 0, 0,
    /* 20 */ M, M, M, M, I_B, I_Z, 0, 0, M, M, M, M, I_B, I_Z, 0, 0,
    /* 30 */ M, M, M, M, I_B, I_Z, 0, 0, M, M, M, M, I_B, I_Z, 0, 0,
    /* 40 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 50 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 60 */ 0, 0, M, M, 0, 0, 0, 0, I_Z, M | I_Z, I_B, M | I_B, 0, 0, 0, 0,
    /* 70 */ I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B,
    /* 80 */ M | I_B, M | I_Z, M | I_B, M | I_B, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 90 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, I_P, 0, 0, 0, 0, 0,
    /* A0 */ I_A, I_A, I_A, I_A, 0, 0, 0, 0, I_B, I_Z, 0, 0, 0, 0, 0, 0,
    /* B0 */ I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z,
    /* C0 */ M | I_B, M | I_B, I_W, 0, M, M, M | I_B, M | I_Z, I_WB, 0, I_W, 0, 0, I_B, 0, 0,
    /* D0 */ M, M, M, M, I_B, I_B, 0, 0, M, M, M, M, M, M, M, M,
    /* E0 */ I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_Z, I_Z, I_P, I_B, 0, 0, 0, 0,
    /* F0 */ 0, 0, 0, 0, 0, 0, M | I_G3, M | I_G3, 0, 0, 0, 0, 0, 0, M, M,
};

#define MX (M | X)
static const uint8_t ref_two_byte[256] = {
    /* 00 */ M, M, M, M, X, X, 0, X, 0, 0, X, 0, X, MX, X, MX | I_B,
    /* 10 */ M, M, MX, MX, MX, MX, MX, MX, M, M, M, M, M, M, M, M,
    /* 20 */ M | FORCE_REG, M | FORCE_REG, M | FORCE_REG, M | FORCE_REG,
             MX | FORCE_REG, X, MX | FORCE_REG, X, M, M, MX, MX, MX, MX, MX, MX,
    /* 30 */ 0, 0, 0, 0, 0, 0, X, X, X, X, X, X, X, X, X, X,
    /* 40 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 50 */ MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX,
    /* 60 */ MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, M,
    /* 70 */ MX | I_B, MX | I_B, MX | I_B, MX | I_B, MX, MX, MX, X, MX, MX, X, X, MX, MX, MX, M,
    /* 80 */ I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z,
    /* 90 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* A0 */ 0, 0, 0, M, M | I_B, M, MX, MX, 0, 0, X, M, M | I_B, M, M, M,
    /* B0 */ M, M, M, M, M, M, M, M, MX, MX, M | I_B, M, M, M, M, M,
    /* C0 */ M, M, MX | I_B, MX, MX | I_B, MX | I_B, MX | I_B, M, 0, 0, 0, 0, 0, 0, 0, 0,
    /* D0 */ MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX,
    /* E0 */ MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX,
    /* F0 */ MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX,
};

/* monitor/interp.c, insn_lock_allowed */
static bool ref_lock_allowed(const struct insn *in)
{
    if (!insn_is_mem(in))
        return false;
    int op = in->op;
    if ((op < 0x38 && (op & 7) < 2 && (op & 0x38) != 0x38) || op == 0x86 || op == 0x87)
        return true;
    if ((op >= 0x80 && op <= 0x83) && in->reg != 7)
        return true;
    if ((op == 0xf6 || op == 0xf7) && (in->reg == 2 || in->reg == 3))
        return true;
    if ((op == 0xfe || op == 0xff) && in->reg < 2)
        return true;
    if (op == 0x1ab || op == 0x1b3 || op == 0x1bb || op == 0x1b0 || op == 0x1b1 || op == 0x1c0 || op == 0x1c1)
        return true;
    if (op == 0x1ba && in->reg >= 5)
        return true;
    if (op == 0x1c7 && in->reg == 1)
        return true;
    return false;
}

/* bt/native.h, insn_is_jcc, and bt/bt.c, ends_block */
static bool ref_is_jcc(const struct insn *in)
{
    return (in->op >= 0x70 && in->op <= 0x7f) || (in->op >= 0x180 && in->op <= 0x18f);
}

static bool ref_ends_block(const struct insn *in)
{
    int op = in->op;
    if (ref_is_jcc(in) || (op >= 0xe0 && op <= 0xe3))
        return true;
    switch (op) {
    case 0x9a: case 0x9d: case 0xc2: case 0xc3: case 0xca: case 0xcb: case 0xcc: case 0xcd:
    case 0xce: case 0xcf: case 0xe8: case 0xe9: case 0xea: case 0xeb: case 0xf1: case 0xf4:
    case 0x100: case 0x101: case 0x106: case 0x10b: case 0x120: case 0x121: case 0x122: case 0x123:
    case 0x130: case 0x134: case 0x135:
        return true;
    case 0xff:
        return in->reg >= 2 && in->reg <= 5;
    }
    return in->invalid;
}

/* ==== end of the pre-table reference ==== */

static bool is_prefix(int b)
{
    return b == 0x26 || b == 0x2e || b == 0x36 || b == 0x3e || b == 0x64 || b == 0x65 || b == 0x66 ||
           b == 0x67 || b == 0xf0 || b == 0xf2 || b == 0xf3;
}

/* Decode op (0x000-0x1ff) with the given ModRM fields and prefixes in 32-bit code. */
static int decode_form(int op, int reg, bool mem, bool opsize, bool lock, struct insn *in)
{
    uint8_t buf[32] = { 0 };
    int n = 0;
    if (lock)
        buf[n++] = 0xf0;
    if (opsize)
        buf[n++] = 0x66;
    if (op >= 0x100)
        buf[n++] = 0x0f;
    buf[n++] = op & 0xff;
    if (op == 0x138 || op == 0x13a)
        buf[n++] = 0x00;                      /* the three-byte maps' opcode byte */
    /* mod 00 rm 000: [EAX]; mod 11 rm 000: EAX */
    buf[n++] = (mem ? 0x00 : 0xc0) | reg << 3;
    memset(buf + n, 0x01, sizeof(buf) - n);   /* immediates 1: shift counts that shift */
    return decode(buf, sizeof(buf), true, in);
}

static void test_shapes_match_the_old_arrays(void **state)
{
    for (int op = 0; op < 0x200; op++) {
        uint8_t ref = op < 0x100 ? ref_one_byte[op] : ref_two_byte[op & 0xff];
        if (opinfo_table[op].shape != ref)
            fail_msg("opcode %03x: shape %02x, was %02x", op, opinfo_table[op].shape, ref);
    }
}

/* Every form of every opcode: the table's answers equal the old functions'. */
static void test_predicates_match_the_old_functions(void **state)
{
    int forms = 0, lockable = 0, ending = 0;
    for (int op = 0; op < 0x200; op++) {
        if (op < 0x100 && (op == 0x0f || is_prefix(op)))
            continue;
        for (int reg = 0; reg < 8; reg++)
            for (int mem = 0; mem < 2; mem++)
                for (int osz = 0; osz < 2; osz++)
                    for (int lock = 0; lock < 2; lock++) {
                        struct insn in;
                        int len = decode_form(op, reg, mem, osz, lock, &in);
                        assert_true(len > 0);
                        assert_int_equal(in.op, op);
                        bool want_lock = ref_lock_allowed(&in), got_lock = insn_lock_allowed(&in);
                        bool want_end = ref_ends_block(&in), got_end = insn_ends_block(&in);
                        if (want_lock != got_lock || got_lock != insn_lockable(&in))
                            fail_msg("opcode %03x /%d %s o%d: lockable %d, was %d", op, reg,
                                     mem ? "mem" : "reg", osz ? 16 : 32, got_lock, want_lock);
                        if (want_end != got_end)
                            fail_msg("opcode %03x /%d %s o%d: ends a block %d, was %d", op, reg,
                                     mem ? "mem" : "reg", osz ? 16 : 32, got_end, want_end);
                        forms++;
                        lockable += got_lock;
                        ending += got_end;
                    }
    }
    print_message("optable: %d forms compared, %d lockable, %d end a block: all as before\n", forms,
                  lockable, ending);
    assert_true(lockable > 0 && ending > 0);
}

/* Rows are consistent: a defined opcode has a handler (or is a group whose
 * members raise #UD themselves), undefined flags are written flags. */
static void test_rows_are_consistent(void **state)
{
    for (int op = 0; op < 0x200; op++) {
        const struct opinfo *row = &opinfo_table[op];
        bool prefix = op < 0x100 && (op == 0x0f || is_prefix(op));
        for (int reg = 0; reg < 8; reg++) {
            const struct opinfo *oi = row->group ? &row->group[reg] : row;
            if (!(row->shape & X) && !prefix && op != 0x133 && oi->handler == H_unimpl)
                fail_msg("opcode %03x /%d: defined but no handler", op, reg);
            if (oi->fl_undef & ~oi->fl_written)
                fail_msg("opcode %03x /%d: undefined flags %x not written", op, reg, oi->fl_undef);
            if ((oi->attr & OPA_LOCK) && !(row->shape & M))
                fail_msg("opcode %03x /%d: lockable without a memory operand", op, reg);
        }
    }
}

/* bt/select.c's answers, now lookups of the table's translator columns
 * (test_bt_select compares them with the switch statements they replaced). */
bool native_supported(const struct insn *in);
uint32_t native_flags_written(const struct insn *in);
uint32_t native_flags_read(const struct insn *in);

/* Where the translator says an instruction it runs natively always writes
 * or reads a flag, the table says it may. */
static void test_flags_cover_the_translators(void **state)
{
    int compared = 0;
    for (int op = 0; op < 0x200; op++) {
        if (op < 0x100 && (op == 0x0f || is_prefix(op)))
            continue;
        for (int reg = 0; reg < 8; reg++)
            for (int mem = 0; mem < 2; mem++)
                for (int osz = 0; osz < 2; osz++) {
                    struct insn in;
                    assert_true(decode_form(op, reg, mem, osz, false, &in) > 0);
                    /* Threaded forms are the interpreter's: the translator
                     * asks about their flags only to mark them dead. */
                    if (in.invalid || !native_supported(&in))
                        continue;
                    uint32_t w = native_flags_written(&in), r = native_flags_read(&in);
                    if (w & ~insn_flags_written(&in))
                        fail_msg("opcode %03x /%d: the translator writes %x, the table says %x", op, reg, w,
                                 insn_flags_written(&in));
                    /* FL_ARITH from native_flags_read means "threaded, or a side exit": not a read */
                    if (r != FL_ARITH && (r & ~insn_flags_read(&in)))
                        fail_msg("opcode %03x /%d: the translator reads %x, the table says %x", op, reg, r,
                                 insn_flags_read(&in));
                    compared++;
                }
    }
    print_message("optable: flags of %d forms cover the translator's\n", compared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_match_the_old_arrays),
        cmocka_unit_test(test_predicates_match_the_old_functions),
        cmocka_unit_test(test_rows_are_consistent),
        cmocka_unit_test(test_flags_cover_the_translators),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
