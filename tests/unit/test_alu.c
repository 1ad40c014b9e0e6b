/*
 * monitor/alu.c, differentially against the host CPU (alu_host.h): the same
 * instruction runs natively and through alu_*, and the result and every flag
 * the SDM defines for it must agree.  Undefined flags are only tallied: each
 * test prints how often they match the host, which tells how far the chosen
 * (P6) behaviour is from the host's.
 *
 * BCD instructions do not exist in 64-bit mode and this host refuses 32-bit
 * code segments, so they are checked exhaustively against an independent
 * transcription of the SDM pseudo-code instead.
 *
 * Seeds are fixed: a failure reproduces exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "monitor/alu.h"
#include "monitor/cpu.h"
#include "tests/unit/alu_host.h"

enum { RANDOM_CASES = 4000, MAX_REPORTED = 8 };

static const int all_sizes[] = {1, 2, 4};
static const int wide_sizes[] = {2, 4};

/* ---- reproducible randomness ------------------------------------------- */

static uint64_t rng_state;

static void rng_seed(uint64_t seed) { rng_state = seed ? seed : 1; }

static uint32_t rng32(void)
{
    /* xorshift64*: fast and good enough to spread operands. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static uint32_t mask_of(int size) { return 0xffffffffu >> (32 - 8 * size); }

/* Values where carries, overflows and sign changes happen, for one size. */
static int edge_values(int size, uint32_t *out)
{
    uint32_t m = mask_of(size), smin = (m >> 1) + 1;
    uint32_t v[] = {0, 1, 2, 0x0f, 0x10, smin - 2, smin - 1, smin, smin + 1, m - 1, m,
                    0x55555555 & m, 0xaaaaaaaa & m};
    memcpy(out, v, sizeof v);
    return (int)(sizeof v / sizeof v[0]);
}

/* A random operand, an edge value one time in four. */
static uint32_t pick_operand(int size)
{
    uint32_t edges[16];
    int n = edge_values(size, edges);
    uint32_t r = rng32();
    if ((r & 3) == 0)
        return edges[(r >> 2) % n];
    /* Sparse and dense patterns as well as uniform ones. */
    switch ((r >> 2) & 3) {
    case 0: return rng32() & rng32() & mask_of(size);
    case 1: return (rng32() | rng32()) & mask_of(size);
    default: return rng32() & mask_of(size);
    }
}

/* Every EFLAGS bit a 32-bit CPU implements (bit 1 reads as 1, 3/5/15 as 0). */
#define EFLAGS_IMPLEMENTED 0x003f7fd5u

/* A guest EFLAGS value: random arithmetic flags plus random other bits,
 * which alu_* must leave alone. */
static uint32_t pick_flags(void)
{
    return (rng32() & ~FL_ARITH & EFLAGS_IMPLEMENTED) | 0x2 | (rng32() & FL_ARITH);
}

static uint32_t with_cf(uint32_t fl, int cf) { return (fl & ~FL_CF) | (cf ? FL_CF : 0); }

/* ---- comparison and tallies -------------------------------------------- */

static const uint32_t arith_flag[6] = {FL_CF, FL_PF, FL_AF, FL_ZF, FL_SF, FL_OF};
static const char *const arith_name[6] = {"CF", "PF", "AF", "ZF", "SF", "OF"};

struct tally {
    const char *family;
    const char *oracle;   /* NULL: the host CPU; else an oracle for defined behaviour only */
    unsigned long cases, failures;
    unsigned long undef_seen[6], undef_same[6];
    unsigned long undef_res_seen, undef_res_same;
};

/* What one implementation produced for a case. */
struct outcome {
    uint32_t res[2];
    uint32_t fl;
};

/* One case: what is compared, and what a failure message shows. */
struct probe {
    const char *op;
    int size;
    int nops;
    uint32_t ops[3];
    uint32_t fl_in;
    int nres;              /* results to compare: 0, 1 or 2 */
    uint32_t defined;      /* arithmetic flags the SDM defines here */
    bool res_defined;
};

static const char *flag_names(uint32_t fl, char *buf)
{
    buf[0] = 0;
    for (int i = 0; i < 6; i++)
        if (fl & arith_flag[i]) {
            strcat(buf, buf[0] ? " " : "");
            strcat(buf, arith_name[i]);
        }
    if (!buf[0])
        strcpy(buf, "-");
    return buf;
}

static void report_mismatch(const struct tally *t, const struct probe *p, const struct outcome *host,
                            const struct outcome *alu, const char *what)
{
    const char *oracle = t->oracle ? t->oracle : "host";
    char b1[32], b2[32], b3[32], b4[32];
    print_error("MISMATCH (%s) %s size %d:", what, p->op, p->size);
    for (int i = 0; i < p->nops; i++)
        print_error(" op%d=%#x", i, p->ops[i]);
    print_error(" flags in [%s] (eflags %#x)\n", flag_names(p->fl_in, b1), p->fl_in);
    print_error("   %-4s: res %#x:%#x flags [%s]\n   alu : res %#x:%#x flags [%s] (eflags %#x), defined [%s]\n",
                oracle, host->res[0], host->res[1], flag_names(host->fl, b2), alu->res[0], alu->res[1],
                flag_names(alu->fl, b3), alu->fl, flag_names(p->defined, b4));
}

static void compare(struct tally *t, const struct probe *p, const struct outcome *host, const struct outcome *alu)
{
    const char *bad = NULL;
    bool res_same = true;
    for (int i = 0; i < p->nres; i++)
        res_same &= host->res[i] == alu->res[i];

    t->cases++;
    if ((alu->fl ^ p->fl_in) & ~FL_ARITH)
        bad = "non-arithmetic EFLAGS bits changed";
    else if ((host->fl ^ alu->fl) & p->defined & FL_ARITH)
        bad = "defined flag";
    else if (p->res_defined && !res_same)
        bad = "result";
    if (bad) {
        if (t->failures++ < MAX_REPORTED)
            report_mismatch(t, p, host, alu, bad);
        return;
    }
    if (t->oracle)
        return;
    if (!p->res_defined && p->nres) {
        t->undef_res_seen++;
        t->undef_res_same += res_same;
    }
    for (int i = 0; i < 6; i++)
        if (!(p->defined & arith_flag[i])) {
            t->undef_seen[i]++;
            t->undef_same[i] += !((host->fl ^ alu->fl) & arith_flag[i]);
        }
}

/* Prints the agreement with the host on undefined flags, then fails the test
 * if any defined behaviour differed. */
static void finish(const struct tally *t)
{
    char line[256];
    int n = snprintf(line, sizeof line, "[ alu ] %-14s %8lu cases", t->family, t->cases);
    unsigned long seen = 0, same = 0;
    for (int i = 0; i < 6; i++) {
        if (!t->undef_seen[i])
            continue;
        seen += t->undef_seen[i];
        same += t->undef_same[i];
        n += snprintf(line + n, sizeof line - n, " %s %.1f%%", arith_name[i],
                      100.0 * t->undef_same[i] / t->undef_seen[i]);
    }
    if (t->oracle)
        n += snprintf(line + n, sizeof line - n, " (oracle: %s; defined flags only)", t->oracle);
    if (seen)
        n += snprintf(line + n, sizeof line - n, " | undefined flags agree %.1f%%", 100.0 * same / seen);
    if (t->undef_res_seen)
        snprintf(line + n, sizeof line - n, " | undefined result agrees %.1f%%",
                 100.0 * t->undef_res_same / t->undef_res_seen);
    print_message("%s\n", line);
    if (t->failures)
        fail_msg("%s: %lu of %lu cases differ from the host", t->family, t->failures, t->cases);
}

/* ---- ADD OR ADC SBB AND SUB XOR CMP ------------------------------------ */

static const char *const binop_name[8] = {"ADD", "OR", "ADC", "SBB", "AND", "SUB", "XOR", "CMP"};

static bool is_logic(int op) { return op == ALU_OR || op == ALU_AND || op == ALU_XOR; }

static void check_binop(struct tally *t, int op, uint32_t a, uint32_t b, uint32_t fl, int size)
{
    struct probe p = {binop_name[op], size, 2, {a, b}, fl, 1,
                      is_logic(op) ? FL_ARITH & ~FL_AF : FL_ARITH, true};
    struct outcome host = {{0}, fl}, alu = {{0}, fl};
    host.res[0] = host_binop(&host.fl, op, a, b, size);
    alu.res[0] = alu_binop(&alu.fl, op, a, b, size);
    compare(t, &p, &host, &alu);
}

static void test_binop(void **state)
{
    struct tally t = {.family = "ADD..CMP"};
    rng_seed(0x1001);
    for (int op = ALU_ADD; op <= ALU_CMP; op++) {
        /* Bytes: every operand pair with both carry-in values. */
        for (uint32_t a = 0; a < 256; a++)
            for (uint32_t b = 0; b < 256; b++)
                for (int cf = 0; cf < 2; cf++)
                    check_binop(&t, op, a, b, with_cf(pick_flags(), cf), 1);
        for (int s = 1; s < 3; s++) {
            int size = all_sizes[s];
            uint32_t e[16];
            int n = edge_values(size, e);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    for (int cf = 0; cf < 2; cf++)
                        check_binop(&t, op, e[i], e[j], with_cf(pick_flags(), cf), size);
            for (int i = 0; i < RANDOM_CASES; i++)
                check_binop(&t, op, pick_operand(size), pick_operand(size), pick_flags(), size);
        }
    }
    finish(&t);
}

/* ---- INC DEC NEG -------------------------------------------------------- */

typedef uint32_t (*unary_fn)(uint32_t *, uint32_t, int);

static void check_unary(struct tally *t, const char *name, unary_fn hostf, unary_fn aluf, uint32_t v,
                        uint32_t fl, int size)
{
    struct probe p = {name, size, 1, {v}, fl, 1, FL_ARITH, true};
    struct outcome host = {{0}, fl}, alu = {{0}, fl};
    host.res[0] = hostf(&host.fl, v, size);
    alu.res[0] = aluf(&alu.fl, v, size);
    compare(t, &p, &host, &alu);
}

static void test_inc_dec_neg(void **state)
{
    static const struct { const char *name; unary_fn host, alu; } ops[] = {
        {"INC", host_inc, alu_inc}, {"DEC", host_dec, alu_dec}, {"NEG", host_neg, alu_neg},
    };
    struct tally t = {.family = "INC/DEC/NEG"};
    rng_seed(0x1002);
    for (int k = 0; k < 3; k++)
        for (int s = 0; s < 3; s++) {
            int size = all_sizes[s];
            uint32_t e[16];
            int n = edge_values(size, e);
            for (int i = 0; i < n; i++)
                for (int cf = 0; cf < 2; cf++)
                    check_unary(&t, ops[k].name, ops[k].host, ops[k].alu, e[i], with_cf(pick_flags(), cf), size);
            int count = size == 1 ? 256 * 4 : RANDOM_CASES;
            for (int i = 0; i < count; i++) {
                uint32_t v = size == 1 ? (uint32_t)i / 4 : pick_operand(size);
                check_unary(&t, ops[k].name, ops[k].host, ops[k].alu, v, pick_flags(), size);
            }
        }
    finish(&t);
}

/* ---- ROL ROR RCL RCR SHL SHR SAL SAR ------------------------------------ */

static const char *const shift_name[8] = {"ROL", "ROR", "RCL", "RCR", "SHL", "SHR", "SAL", "SAR"};

/* Per SDM: a masked count of 0 affects nothing; rotates touch only CF/OF
 * (an RCL/RCR count that wraps to 0 leaves CF too) and define OF only for
 * a count of 1; shifts leave AF undefined, OF defined for a count of 1, and
 * SHL/SHR leave CF undefined once the count reaches the operand width. */
static uint32_t shift_defined(int op, uint32_t count, int size)
{
    unsigned n = count & 31, bits = 8 * size;
    if (n == 0)
        return FL_ARITH;
    uint32_t defined = FL_ARITH;
    if (n != 1)
        defined &= ~FL_OF;
    if (op <= SH_RCR)
        return defined;
    defined &= ~FL_AF;
    if (op != SH_SAR && n >= bits)
        defined &= ~FL_CF;
    return defined;
}

static void check_shift(struct tally *t, int op, uint32_t v, uint32_t count, uint32_t fl, int size)
{
    struct probe p = {shift_name[op], size, 2, {v, count}, fl, 1, shift_defined(op, count, size), true};
    struct outcome host = {{0}, fl}, alu = {{0}, fl};
    host.res[0] = host_shift(&host.fl, op, v, count, size);
    alu.res[0] = alu_shift(&alu.fl, op, v, count, size);
    compare(t, &p, &host, &alu);
}

/* Counts 0..33 cover every masked count and its wrap; above that, random. */
static uint32_t pick_count(void)
{
    uint32_t r = rng32();
    return (r & 1) ? (r >> 1) % 34 : (r >> 1) & 0xff;
}

static void test_shift(void **state)
{
    struct tally t = {.family = "shift/rotate"};
    rng_seed(0x1003);
    for (int op = SH_ROL; op <= SH_SAR; op++)
        for (int s = 0; s < 3; s++) {
            int size = all_sizes[s];
            uint32_t e[16];
            int n = edge_values(size, e);
            if (size == 1) {
                for (uint32_t v = 0; v < 256; v++)
                    for (uint32_t c = 0; c < 34; c++)
                        for (int cf = 0; cf < 2; cf++)
                            check_shift(&t, op, v, c, with_cf(pick_flags(), cf), size);
            } else {
                for (int i = 0; i < n; i++)
                    for (uint32_t c = 0; c < 34; c++)
                        for (int cf = 0; cf < 2; cf++)
                            check_shift(&t, op, e[i], c, with_cf(pick_flags(), cf), size);
            }
            for (int i = 0; i < RANDOM_CASES; i++)
                check_shift(&t, op, pick_operand(size), pick_count(), pick_flags(), size);
        }
    finish(&t);
}

/* ---- SHLD SHRD ----------------------------------------------------------- */

typedef uint32_t (*dshift_fn)(uint32_t *, uint32_t, uint32_t, uint32_t, int);

/* A 16-bit count above 16 leaves result and flags undefined (alu.c follows P6). */
static uint32_t dshift_defined(uint32_t count, int size)
{
    unsigned n = count & 31;
    if (n == 0)
        return FL_ARITH;
    if (n > 8u * size)
        return 0;
    return FL_CF | FL_PF | FL_ZF | FL_SF | (n == 1 ? FL_OF : 0);
}

static void check_dshift(struct tally *t, const char *name, dshift_fn hostf, dshift_fn aluf, uint32_t d,
                         uint32_t s, uint32_t count, uint32_t fl, int size)
{
    uint32_t defined = dshift_defined(count, size);
    struct probe p = {name, size, 3, {d, s, count}, fl, 1, defined, (count & 31) <= 8u * size};
    struct outcome host = {{0}, fl}, alu = {{0}, fl};
    host.res[0] = hostf(&host.fl, d, s, count, size);
    alu.res[0] = aluf(&alu.fl, d, s, count, size);
    compare(t, &p, &host, &alu);
}

static void test_shld_shrd(void **state)
{
    static const struct { const char *name; dshift_fn host, alu; } ops[] = {
        {"SHLD", host_shld, alu_shld}, {"SHRD", host_shrd, alu_shrd},
    };
    struct tally t = {.family = "SHLD/SHRD"};
    rng_seed(0x1004);
    for (int k = 0; k < 2; k++)
        for (int s = 0; s < 2; s++) {
            int size = wide_sizes[s];
            uint32_t e[16];
            int n = edge_values(size, e);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    for (uint32_t c = 0; c < 34; c++)
                        check_dshift(&t, ops[k].name, ops[k].host, ops[k].alu, e[i], e[j], c, pick_flags(), size);
            for (int i = 0; i < RANDOM_CASES; i++)
                check_dshift(&t, ops[k].name, ops[k].host, ops[k].alu, pick_operand(size), pick_operand(size),
                             pick_count(), pick_flags(), size);
        }
    finish(&t);
}

/* ---- MUL IMUL ------------------------------------------------------------ */

typedef void (*widen_fn)(uint32_t *, uint32_t, uint32_t, int, uint32_t *, uint32_t *);

static void check_widening(struct tally *t, const char *name, widen_fn hostf, widen_fn aluf, uint32_t a,
                           uint32_t b, uint32_t fl, int size)
{
    struct probe p = {name, size, 2, {a, b}, fl, 2, FL_CF | FL_OF, true};
    struct outcome host = {{0}, fl}, alu = {{0}, fl};
    hostf(&host.fl, a, b, size, &host.res[0], &host.res[1]);
    aluf(&alu.fl, a, b, size, &alu.res[0], &alu.res[1]);
    compare(t, &p, &host, &alu);
}

static void check_imul_trunc(struct tally *t, uint32_t a, uint32_t b, uint32_t fl, int size)
{
    struct probe p = {"IMUL r,r/m", size, 2, {a, b}, fl, 1, FL_CF | FL_OF, true};
    struct outcome host = {{0}, fl}, alu = {{0}, fl};
    host.res[0] = host_imul_trunc(&host.fl, a, b, size);
    alu.res[0] = alu_imul_trunc(&alu.fl, a, b, size);
    compare(t, &p, &host, &alu);
}

static void test_mul(void **state)
{
    struct tally t = {.family = "MUL/IMUL"};
    rng_seed(0x1005);
    for (uint32_t a = 0; a < 256; a++)
        for (uint32_t b = 0; b < 256; b++) {
            check_widening(&t, "MUL", host_mul, alu_mul, a, b, pick_flags(), 1);
            check_widening(&t, "IMUL", host_imul, alu_imul, a, b, pick_flags(), 1);
            check_imul_trunc(&t, a, b, pick_flags(), 1);
        }
    for (int s = 0; s < 2; s++) {
        int size = wide_sizes[s];
        uint32_t e[16];
        int n = edge_values(size, e);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                check_widening(&t, "MUL", host_mul, alu_mul, e[i], e[j], pick_flags(), size);
                check_widening(&t, "IMUL", host_imul, alu_imul, e[i], e[j], pick_flags(), size);
                check_imul_trunc(&t, e[i], e[j], pick_flags(), size);
            }
        for (int i = 0; i < RANDOM_CASES; i++) {
            uint32_t a = pick_operand(size), b = pick_operand(size);
            check_widening(&t, "MUL", host_mul, alu_mul, a, b, pick_flags(), size);
            check_widening(&t, "IMUL", host_imul, alu_imul, a, b, pick_flags(), size);
            check_imul_trunc(&t, a, b, pick_flags(), size);
        }
    }
    finish(&t);
}

/* ---- DIV IDIV ------------------------------------------------------------ */

/* The #DE predicate, computed independently of alu.c with 128-bit arithmetic. */
static bool div_faults(bool is_signed, uint32_t lo, uint32_t hi, uint32_t divisor, int size)
{
    unsigned bits = 8 * size;
    uint32_t m = mask_of(size);
    if (!(divisor & m))
        return true;
    if (!is_signed) {
        unsigned __int128 q = ((((unsigned __int128)(hi & m)) << bits) | (lo & m)) / (divisor & m);
        return q > m;
    }
    __int128 n = ((__int128)(int64_t)(((uint64_t)(hi & m) << bits | (lo & m)) << (64 - 2 * bits)))
                 >> (64 - 2 * bits);
    __int128 d = (int32_t)(divisor << (32 - bits)) >> (32 - bits);
    __int128 q = n / d, limit = (__int128)1 << (bits - 1);
    return q >= limit || q < -limit;
}

typedef bool (*div_fn)(uint32_t *, uint32_t, uint32_t, uint32_t, int, uint32_t *, uint32_t *);
typedef void (*host_div_fn)(uint32_t *, uint32_t, uint32_t, uint32_t, int, uint32_t *, uint32_t *);

static void check_div(struct tally *t, bool is_signed, uint32_t lo, uint32_t hi, uint32_t divisor, uint32_t fl,
                      int size)
{
    const char *name = is_signed ? "IDIV" : "DIV";
    div_fn aluf = is_signed ? alu_idiv : alu_div;
    host_div_fn hostf = is_signed ? host_idiv : host_div;
    struct probe p = {name, size, 3, {lo, hi, divisor}, fl, 2, 0, true};
    struct outcome host = {{0}, fl}, alu = {{0}, fl};
    bool fault = div_faults(is_signed, lo, hi, divisor, size);
    bool ok = aluf(&alu.fl, lo, hi, divisor, size, &alu.res[0], &alu.res[1]);
    if (ok == fault) {
        t->cases++;
        if (t->failures++ < MAX_REPORTED)
            print_error("MISMATCH %s size %d: %#x:%#x / %#x: alu says %s, expected %s\n", name, size, hi, lo,
                        divisor, ok ? "ok" : "#DE", fault ? "#DE" : "ok");
        return;
    }
    if (fault) {
        /* #DE must leave the flags alone: the instruction did not complete. */
        p.defined = FL_ARITH;
        p.nres = 0;
        host.fl = fl;
    } else {
        hostf(&host.fl, lo, hi, divisor, size, &host.res[0], &host.res[1]);
    }
    compare(t, &p, &host, &alu);
}

/* Builds a dividend that does not fault, from a quotient and remainder in range. */
static void pick_fitting_dividend(bool is_signed, int size, uint32_t divisor, uint32_t *lo, uint32_t *hi)
{
    unsigned bits = 8 * size;
    uint32_t m = mask_of(size);
    uint64_t u;
    if (is_signed) {
        int64_t d = (int32_t)(divisor << (32 - bits)) >> (32 - bits);
        int64_t q = (int32_t)(pick_operand(size) << (32 - bits)) >> (32 - bits);
        int64_t mag = d < 0 ? -d : d;
        int64_t r = mag > 1 ? (int64_t)(rng32() % (uint64_t)mag) : 0;
        /* The remainder takes the dividend's sign; keep it consistent with q*d. */
        int64_t n = q * d;
        n += (n < 0 || (n == 0 && (rng32() & 1))) ? -r : r;
        u = (uint64_t)n;
    } else {
        uint64_t d = divisor & m;
        u = (uint64_t)pick_operand(size) * d + (d > 1 ? rng32() % d : 0);
    }
    *lo = (uint32_t)u & m;
    *hi = (uint32_t)(u >> bits) & m;
}

static void test_div(void **state)
{
    struct tally t = {.family = "DIV/IDIV"};
    rng_seed(0x1006);
    for (int sg = 0; sg < 2; sg++) {
        /* Bytes: every dividend over a spread of divisors. */
        for (uint32_t ax = 0; ax < 65536; ax += 7)
            for (uint32_t dv = 0; dv < 256; dv += 5)
                check_div(&t, sg, ax & 0xff, ax >> 8, dv, pick_flags(), 1);
        for (int s = 0; s < 3; s++) {
            int size = all_sizes[s];
            uint32_t e[16], m = mask_of(size);
            int n = edge_values(size, e);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    for (int k = 0; k < n; k++)
                        check_div(&t, sg, e[i], e[j], e[k], pick_flags(), size);
            for (int i = 0; i < RANDOM_CASES; i++) {
                uint32_t dv = pick_operand(size), lo, hi;
                if (i & 1) {
                    pick_fitting_dividend(sg, size, dv, &lo, &hi);
                } else {
                    lo = pick_operand(size);
                    hi = pick_operand(size);
                }
                check_div(&t, sg, lo, hi, dv, pick_flags(), size);
            }
            /* The one signed overflow with an in-range dividend: -2^(n-1) / -1. */
            uint32_t smin = (m >> 1) + 1;
            check_div(&t, sg, smin, m, m, pick_flags(), size);
            check_div(&t, sg, 0, smin, m, pick_flags(), size);
            check_div(&t, sg, smin, m, 1, pick_flags(), size);
        }
    }
    finish(&t);
}

/* ---- BSF BSR ------------------------------------------------------------- */

typedef uint32_t (*scan_fn)(uint32_t *, uint32_t, uint32_t, int);

static void check_scan(struct tally *t, const char *name, scan_fn hostf, scan_fn aluf, uint32_t dst, uint32_t src,
                       uint32_t fl, int size)
{
    /* Only ZF is defined; so is the destination, unless the source is 0. */
    struct probe p = {name, size, 2, {dst, src}, fl, 1, FL_ZF, (src & mask_of(size)) != 0};
    struct outcome host = {{0}, fl}, alu = {{0}, fl};
    host.res[0] = hostf(&host.fl, dst, src, size);
    alu.res[0] = aluf(&alu.fl, dst, src, size);
    compare(t, &p, &host, &alu);
}

static void test_bitscan(void **state)
{
    static const struct { const char *name; scan_fn host, alu; } ops[] = {
        {"BSF", host_bsf, alu_bsf}, {"BSR", host_bsr, alu_bsr},
    };
    struct tally t = {.family = "BSF/BSR"};
    rng_seed(0x1007);
    for (int k = 0; k < 2; k++)
        for (int s = 0; s < 2; s++) {
            int size = wide_sizes[s];
            for (unsigned bit = 0; bit < 8u * size; bit++)
                check_scan(&t, ops[k].name, ops[k].host, ops[k].alu, pick_operand(size), 1u << bit, pick_flags(), size);
            for (int i = 0; i < RANDOM_CASES; i++) {
                uint32_t src = (i % 8 == 0) ? 0 : pick_operand(size);
                check_scan(&t, ops[k].name, ops[k].host, ops[k].alu, pick_operand(size), src, pick_flags(), size);
            }
        }
    finish(&t);
}

/* ---- BT BTS BTR BTC ------------------------------------------------------ */

static void test_bit(void **state)
{
    static const char *const name[4] = {"BT", "BTS", "BTR", "BTC"};
    struct tally t = {.family = "BT/BTS/BTR/BTC"};
    rng_seed(0x1008);
    for (int op = 0; op < 4; op++)
        for (int s = 0; s < 2; s++) {
            int size = wide_sizes[s];
            for (int i = 0; i < RANDOM_CASES; i++) {
                uint32_t v = pick_operand(size), fl = pick_flags();
                uint32_t bit = rng32() % (8u * size);
                /* CF is defined and ZF is unaffected; OF/SF/AF/PF are undefined. */
                struct probe p = {name[op], size, 2, {v, bit}, fl, 1, FL_CF | FL_ZF, true};
                struct outcome host = {{0}, fl}, alu = {{0}, fl};
                host.res[0] = host_bit(&host.fl, op, v, bit, size);
                alu.res[0] = alu_bit(&alu.fl, op, v, bit, size);
                compare(&t, &p, &host, &alu);
            }
        }
    finish(&t);
}

/* ---- flags_logic, condition codes ---------------------------------------- */

static void test_flags_logic(void **state)
{
    struct tally t = {.family = "flags_logic"};
    rng_seed(0x1009);
    for (int s = 0; s < 3; s++) {
        int size = all_sizes[s];
        for (int i = 0; i < RANDOM_CASES; i++) {
            uint32_t v = pick_operand(size), fl = pick_flags();
            struct probe p = {"TEST", size, 1, {v}, fl, 0, FL_ARITH & ~FL_AF, true};
            struct outcome host = {{0}, fl}, alu = {{0}, fl};
            host_flags_logic(&host.fl, v, size);
            alu_flags_logic(&alu.fl, v, size);
            compare(&t, &p, &host, &alu);
        }
    }
    finish(&t);
}

static void test_cond(void **state)
{
    static const char *const cc_name[16] = {"O", "NO", "B", "AE", "E", "NE", "BE", "A",
                                            "S", "NS", "P", "NP", "L", "GE", "LE", "G"};
    unsigned long failures = 0;
    rng_seed(0x100a);
    /* Every combination of the six arithmetic flags, for every condition. */
    for (unsigned combo = 0; combo < 64; combo++) {
        uint32_t fl = pick_flags() & ~FL_ARITH;
        for (int i = 0; i < 6; i++)
            if (combo & (1u << i))
                fl |= arith_flag[i];
        for (int cc = 0; cc < 16; cc++) {
            bool host = host_cond(fl, cc), alu = alu_cond(fl, cc);
            if (host != alu && failures++ < MAX_REPORTED) {
                char b[32];
                print_error("MISMATCH cond %s flags [%s]: host %d alu %d\n", cc_name[cc], flag_names(fl, b), host, alu);
            }
        }
    }
    print_message("[ alu ] %-14s %8d cases\n", "cond", 64 * 16);
    assert_int_equal(failures, 0);
}

/* ---- BCD: the SDM pseudo-code as the oracle ------------------------------ */

/* Naive on purpose: shares nothing with alu.c's parity table. */
static uint32_t sdm_szp(uint8_t v)
{
    int ones = 0;
    for (int i = 0; i < 8; i++)
        ones += (v >> i) & 1;
    return (v & 0x80 ? FL_SF : 0) | (v == 0 ? FL_ZF : 0) | (ones % 2 == 0 ? FL_PF : 0);
}

/* The oracle state: AX plus the two flags the BCD ops read. */
struct bcd_state {
    uint8_t AL, AH;
    int CF, AF;
};

static void sdm_daa(struct bcd_state *s)
{
    uint8_t old_AL = s->AL;
    int old_CF = s->CF;
    s->CF = 0;
    if ((s->AL & 0x0F) > 9 || s->AF == 1) {
        int carry = s->AL + 6 > 0xFF;
        s->AL = s->AL + 6;
        s->CF = old_CF || carry;
        s->AF = 1;
    } else {
        s->AF = 0;
    }
    if (old_AL > 0x99 || old_CF == 1) {
        s->AL = s->AL + 0x60;
        s->CF = 1;
    } else {
        s->CF = 0;
    }
}

static void sdm_das(struct bcd_state *s)
{
    uint8_t old_AL = s->AL;
    int old_CF = s->CF;
    s->CF = 0;
    if ((s->AL & 0x0F) > 9 || s->AF == 1) {
        int borrow = s->AL < 6;
        s->AL = s->AL - 6;
        s->CF = old_CF || borrow;
        s->AF = 1;
    } else {
        s->AF = 0;
    }
    if (old_AL > 0x99 || old_CF == 1) {
        s->AL = s->AL - 0x60;
        s->CF = 1;
    }
}

static void sdm_aaa(struct bcd_state *s)
{
    if ((s->AL & 0x0F) > 9 || s->AF == 1) {
        uint16_t AX = (uint16_t)(s->AH << 8 | s->AL);
        AX = AX + 0x106;
        s->AL = (uint8_t)AX;
        s->AH = (uint8_t)(AX >> 8);
        s->AF = 1;
        s->CF = 1;
    } else {
        s->AF = 0;
        s->CF = 0;
    }
    s->AL = s->AL & 0x0F;
}

static void sdm_aas(struct bcd_state *s)
{
    if ((s->AL & 0x0F) > 9 || s->AF == 1) {
        uint16_t AX = (uint16_t)(s->AH << 8 | s->AL);
        AX = AX - 6;
        s->AL = (uint8_t)AX;
        s->AH = (uint8_t)(AX >> 8);
        s->AH = s->AH - 1;
        s->AF = 1;
        s->CF = 1;
        s->AL = s->AL & 0x0F;
    } else {
        s->CF = 0;
        s->AF = 0;
        s->AL = s->AL & 0x0F;
    }
}

static void sdm_aam(struct bcd_state *s, uint8_t imm8)
{
    uint8_t tempAL = s->AL;
    s->AH = tempAL / imm8;
    s->AL = tempAL % imm8;
}

static void sdm_aad(struct bcd_state *s, uint8_t imm8)
{
    uint8_t tempAL = s->AL, tempAH = s->AH;
    s->AL = (uint8_t)((tempAL + (tempAH * imm8)) & 0xFF);
    s->AH = 0;
}

static uint32_t bcd_eflags(uint32_t base, const struct bcd_state *s)
{
    return (base & ~(FL_CF | FL_AF)) | (s->CF ? FL_CF : 0) | (s->AF ? FL_AF : 0);
}

/* Compares alu's AX and flags with the oracle's, over the defined flags. */
static void compare_bcd(struct tally *t, const char *name, uint16_t ax_in, uint32_t fl_in, const struct bcd_state *want,
                        uint16_t ax_got, uint32_t fl_got, uint32_t defined)
{
    struct probe p = {name, 1, 1, {ax_in}, fl_in, 1, defined, true};
    struct outcome oracle = {{(uint32_t)(want->AH << 8 | want->AL)}, 0}, alu = {{ax_got}, fl_got};
    uint32_t szp = sdm_szp(want->AL);
    oracle.fl = (bcd_eflags(fl_in, want) & ~(FL_SF | FL_ZF | FL_PF)) | szp;
    compare(t, &p, &oracle, &alu);
}

static struct bcd_state bcd_in(uint16_t ax, uint32_t fl)
{
    struct bcd_state s = {(uint8_t)ax, (uint8_t)(ax >> 8), !!(fl & FL_CF), !!(fl & FL_AF)};
    return s;
}

static void test_bcd_adjust(void **state)
{
    struct tally t = {.family = "DAA/DAS/AAA/AAS", .oracle = "SDM"};
    rng_seed(0x100b);
    for (uint32_t ax = 0; ax < 65536; ax++)
        for (int cfaf = 0; cfaf < 4; cfaf++) {
            uint32_t fl = (pick_flags() & ~(FL_CF | FL_AF)) | (cfaf & 1 ? FL_CF : 0) | (cfaf & 2 ? FL_AF : 0);
            if ((ax >> 8) == 0x12) {
                /* DAA/DAS read AL only: one AH value covers them. */
                uint8_t al = (uint8_t)ax;
                uint32_t f = fl;
                struct bcd_state s = bcd_in((uint16_t)ax, fl);
                sdm_daa(&s);
                alu_daa(&f, &al);
                compare_bcd(&t, "DAA", (uint16_t)ax, fl, &s, (uint16_t)((ax & 0xff00) | al), f,
                            FL_ARITH & ~FL_OF);
                al = (uint8_t)ax;
                f = fl;
                s = bcd_in((uint16_t)ax, fl);
                sdm_das(&s);
                alu_das(&f, &al);
                compare_bcd(&t, "DAS", (uint16_t)ax, fl, &s, (uint16_t)((ax & 0xff00) | al), f,
                            FL_ARITH & ~FL_OF);
            }
            uint16_t v = (uint16_t)ax;
            uint32_t f = fl;
            struct bcd_state s = bcd_in(v, fl);
            sdm_aaa(&s);
            alu_aaa(&f, &v);
            compare_bcd(&t, "AAA", (uint16_t)ax, fl, &s, v, f, FL_CF | FL_AF);
            v = (uint16_t)ax;
            f = fl;
            s = bcd_in(v, fl);
            sdm_aas(&s);
            alu_aas(&f, &v);
            compare_bcd(&t, "AAS", (uint16_t)ax, fl, &s, v, f, FL_CF | FL_AF);
        }
    finish(&t);
}

static void test_aam_aad(void **state)
{
    struct tally t = {.family = "AAM/AAD", .oracle = "SDM"};
    const uint32_t szp = FL_SF | FL_ZF | FL_PF;
    rng_seed(0x100c);
    for (uint32_t al = 0; al < 256; al++)
        for (uint32_t imm = 0; imm < 256; imm++) {
            uint16_t ax = (uint16_t)((rng32() & 0xff00) | al), v = ax;
            uint32_t fl = pick_flags(), f = fl;
            bool ok = alu_aam(&f, &v, (uint8_t)imm);
            if (imm == 0) {
                /* #DE: nothing may change. */
                struct probe p = {"AAM 0", 1, 1, {ax}, fl, 1, FL_ARITH, true};
                struct outcome want = {{ax}, fl}, got = {{ok ? ~0u : v}, f};
                compare(&t, &p, &want, &got);
                continue;
            }
            struct bcd_state s = bcd_in(ax, fl);
            sdm_aam(&s, (uint8_t)imm);
            compare_bcd(&t, "AAM", ax, fl, &s, v, f, szp);
        }
    static const uint8_t imms[] = {10, 0, 1, 2, 7, 16, 255};
    for (uint32_t ax = 0; ax < 65536; ax++)
        for (unsigned k = 0; k < sizeof imms + 1; k++) {
            uint8_t imm = k < sizeof imms ? imms[k] : (uint8_t)rng32();
            uint16_t v = (uint16_t)ax;
            uint32_t fl = pick_flags(), f = fl;
            struct bcd_state s = bcd_in(v, fl);
            sdm_aad(&s, imm);
            alu_aad(&f, &v, imm);
            compare_bcd(&t, "AAD", (uint16_t)ax, fl, &s, v, f, szp);
        }
    finish(&t);
}

/* Real 386 results (test386.asm, POST 0xEE) for the BCD lines, whose flags
 * have no host oracle here.  Read from ../shared, never copied in. */
#define TEST386_EE_REFERENCE "../shared/testsuites/test386/test386-EE-reference.txt"

/* Runs one reference line through alu; returns false if it is not a BCD line. */
static bool run_bcd_line(const char *op, uint16_t *ax, uint32_t *fl, uint32_t *defined)
{
    uint8_t al = (uint8_t)*ax;
    if (!strcmp(op, "daa") || !strcmp(op, "das")) {
        (op[2] == 'a' ? alu_daa : alu_das)(fl, &al);
        *ax = (uint16_t)((*ax & 0xff00) | al);
        *defined = FL_ARITH & ~FL_OF;
    } else if (!strcmp(op, "aaa") || !strcmp(op, "aas")) {
        (op[2] == 'a' ? alu_aaa : alu_aas)(fl, ax);
        *defined = FL_CF | FL_AF;
    } else if (!strcmp(op, "aam")) {
        alu_aam(fl, ax, 10);
        *defined = FL_SF | FL_ZF | FL_PF;
    } else if (!strcmp(op, "aad")) {
        alu_aad(fl, ax, 10);
        *defined = FL_SF | FL_ZF | FL_PF;
    } else {
        return false;
    }
    return true;
}

static void test_bcd_test386_reference(void **state)
{
    FILE *f = fopen(TEST386_EE_REFERENCE, "r");
    if (!f) {
        print_message("[ alu ] %s not found (run from the repository root): skipped\n", TEST386_EE_REFERENCE);
        skip();
    }
    struct tally t = {.family = "BCD vs 386", .oracle = "real 386"};
    char line[256], op[8];
    unsigned eax, ps, eax_out, ps_out;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%7s EAX=%x PS=%x EAX=%x PS=%x", op, &eax, &ps, &eax_out, &ps_out) != 5)
            continue;
        uint16_t ax = (uint16_t)eax;
        uint32_t fl = ps, defined;
        if (!run_bcd_line(op, &ax, &fl, &defined))
            continue;
        struct probe p = {op, 1, 1, {eax}, ps, 1, defined, true};
        struct outcome want = {{eax_out & 0xffff}, ps_out}, got = {{ax}, fl};
        compare(&t, &p, &want, &got);
    }
    fclose(f);
    finish(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binop),       cmocka_unit_test(test_inc_dec_neg), cmocka_unit_test(test_shift),
        cmocka_unit_test(test_shld_shrd),   cmocka_unit_test(test_mul),         cmocka_unit_test(test_div),
        cmocka_unit_test(test_bitscan),     cmocka_unit_test(test_bit),         cmocka_unit_test(test_flags_logic),
        cmocka_unit_test(test_cond),        cmocka_unit_test(test_bcd_adjust),  cmocka_unit_test(test_aam_aad),
        cmocka_unit_test(test_bcd_test386_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
