/*
 * monitor/fpu.c, differentially against the host's own x87.
 *
 * Every case runs the same instructions on both sides:
 *
 *     FRSTOR [esi]   ; a generated 108-byte state image
 *     <insn> [eax]   ; the instruction under test, memory operand at EAX
 *     FNSAVE [edi]   ; the state it produced
 *
 * The guest runs them through interp_step in flat 32-bit protected mode; the
 * host runs the very same bytes natively (in 64-bit mode ModRM [eax]/[esi]/
 * [edi] mean [rax]/[rsi]/[rdi], and FRSTOR/FNSAVE keep the 32-bit layout) from
 * executable memory.  Compared: the saved control, status and tag words, the
 * eight registers bit for bit, the whole operand buffer (stores, FNSTENV,
 * FNSAVE, FXSAVE images), the arithmetic EFLAGS and, for FNSTSW AX, AX.
 *
 * Not compared: the instruction and data pointers (FIP/FCS/FDP/FDS) and the
 * opcode (FOP), in the saved state and in stored images.  The host executes
 * from another address in a 64-bit code segment with other data segments,
 * and processors differ in when they record these at all (AMD's FXSAVE
 * stores them only with an exception pending; recent Intel parts deprecate
 * FCS/FDS), so they have no counterpart to agree with.  The guest's values
 * are checked on their own, after the differential tests, together with
 * what has no host counterpart either: #MF and FERR# delivery, #NM, real-mode
 * layouts, FXSAVE's faults.
 *
 * A few places where the host (an AMD part) and Intel's documented behaviour,
 * which the guest follows, part ways are steered around; each is flagged in
 * the template table.
 *
 * Seeds are fixed: a failure message names the template and case index, and
 * prints the whole input, so it reproduces exactly (RV_FPU_ONLY=name runs
 * just the templates whose name contains name).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hosted-driver/execmem.h"
#include "monitor/cpu.h"
#include "monitor/interp.h"
#include "monitor/machine.h"
#include "monitor/physmem.h"

/* Detailed reports: a few per template, a bounded number in all. */
enum { MAX_REPORTED_PER_TEMPLATE = 2, MAX_REPORTED = 40 };

/* Guest-physical layout (flat segments: linear = physical = offset). */
enum {
    CODE_ADDR = 0x1000,
    IMG_IN_ADDR = 0x2000,
    IMG_OUT_ADDR = 0x2200,
    DATA_ADDR = 0x3000,
    IMG_SIZE = 108,
    DATA_SIZE = 512,
};

/* Status and control word bits used by the checks. */
#define SW_ES 0x0080u
#define SW_B 0x8000u
#define ZE 0x0004u        /* divide-by-zero: the flag in SW, the mask in CW */

/* ---- reproducible randomness ------------------------------------------- */

static uint64_t rng_state;

static void rng_seed(uint64_t seed) { rng_state = seed ? seed : 1; }

static uint64_t rng64(void)
{
    /* xorshift64*: fast and good enough to spread operands. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static uint32_t rng32(void) { return (uint32_t)(rng64() >> 32); }
static unsigned rng_below(unsigned n) { return rng32() % n; }
static bool one_in(unsigned n) { return rng_below(n) == 0; }

static void put16(uint8_t *b, uint16_t v) { memcpy(b, &v, 2); }
static uint16_t get16(const uint8_t *b) { uint16_t v; memcpy(&v, b, 2); return v; }

/* ---- operand generators -------------------------------------------------- */

/* An 80-bit register value: 64-bit significand (bit 63 explicit) and sign/exponent. */
struct f80 {
    uint64_t mant;
    uint16_t se;
};

static struct f80 f80_of(int sign, unsigned exp, uint64_t mant)
{
    return (struct f80){mant, (uint16_t)((sign ? 0x8000 : 0) | (exp & 0x7fff))};
}

#define BIAS 0x3fff
#define J_BIT (1ull << 63)

static uint64_t random_mantissa(void)
{
    /* Rounding edges live in runs of ones and zeros; uniform bits miss them. */
    switch (rng_below(4)) {
    case 0: return rng64() | (rng64() & rng64());
    case 1: return rng64() & rng64() & rng64();
    case 2: return ~0ull << rng_below(64);
    default: return rng64();
    }
}

static struct f80 normal_near(int exp_center, int spread)
{
    int e = exp_center + (int)rng_below(2 * spread + 1) - spread;
    return f80_of(rng32() & 1, (unsigned)e, random_mantissa() | J_BIT);
}

static struct f80 integer_valued(void)
{
    int bits = 1 + (int)rng_below(64);
    uint64_t v = rng64() >> (64 - bits);
    long double x = (long double)v;
    if (one_in(3))
        x += (long double)rng_below(4) / 4;      /* halves and quarters: rounding ties */
    struct f80 r;
    uint8_t b[16] = {0};
    memcpy(b, &x, 10);
    memcpy(&r.mant, b, 8);
    memcpy(&r.se, b + 8, 2);
    r.se |= (rng32() & 1) << 15;
    return r;
}

/* Values at the edges of the memory formats: float/double/int ranges. */
static struct f80 format_edge(void)
{
    static const int offsets[] = {127, 128, -126, -127, -149, -150, 1023, 1024, -1022, -1023, -1074, -1075,
                                  14, 15, 16, 30, 31, 32, 62, 63, 64, 59, 60, 0, -1};
    int e = BIAS + offsets[rng_below(sizeof offsets / sizeof offsets[0])];
    uint64_t m = one_in(2) ? J_BIT | (rng64() >> rng_below(64)) : ~0ull << rng_below(12);
    return f80_of(rng32() & 1, (unsigned)e, m | J_BIT);
}

static struct f80 gen_f80(void)
{
    unsigned r = rng_below(100);
    int s = rng32() & 1;
    if (r < 22) return normal_near(BIAS, 64);
    if (r < 30) return integer_valued();
    if (r < 34) return f80_of(s, 0, 0);                                          /* ±0 */
    if (r < 38) return f80_of(s, 0x7fff, J_BIT);                                 /* ±inf */
    if (r < 42) return f80_of(s, 0x7fff, J_BIT | (1ull << 62) | (rng64() >> 2)); /* QNaN */
    if (r < 46) return f80_of(s, 0x7fff, J_BIT | ((rng64() >> 2) | 1));          /* SNaN */
    if (r < 50) return f80_of(s, 0, (rng64() >> 1) | 1);                         /* denormal */
    if (r < 52) return f80_of(s, 0, J_BIT | (rng64() >> 1));                     /* pseudo-denormal */
    if (r < 55) return f80_of(s, 1 + rng_below(0x7ffe), rng64() >> 1);           /* unnormal */
    if (r < 57) return f80_of(s, 0x7fff, rng64() >> 1);                          /* pseudo-NaN/inf */
    if (r < 61) return f80_of(s, 0x7ffe - rng_below(16), random_mantissa() | J_BIT); /* huge */
    if (r < 65) return f80_of(s, 1 + rng_below(16), random_mantissa() | J_BIT);      /* tiny */
    if (r < 71) return format_edge();
    if (r < 77) return normal_near(BIAS - 36, 35);                               /* |x| < 1 */
    if (r < 81) return f80_of(s, BIAS - (r & 1), one_in(2) ? ~0ull << rng_below(8) : J_BIT | rng_below(4)); /* ~1 */
    if (r < 85) return normal_near(BIAS + 63, 3);                                /* trig range edge */
    if (r < 91) return (struct f80){rng64(), (uint16_t)rng32()};                 /* anything */
    if (r < 93) return f80_of(1, 0x7fff, 0xc000000000000000ull);                 /* indefinite */
    return normal_near(BIAS + 2, 4);                                             /* a few multiples of pi */
}

static void put_f80(uint8_t *b, struct f80 v)
{
    memcpy(b, &v.mant, 8);
    memcpy(b + 8, &v.se, 2);
}

static uint32_t gen_f32(void)
{
    static const uint32_t special[] = {0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000,
                                       0x7f800001, 0x7fa00000, 0x00000001, 0x007fffff, 0x00800000,
                                       0x7f7fffff, 0x3f800000, 0xbf800000, 0x4f000000, 0xdf000000};
    uint32_t s = rng32() & 0x80000000u;
    switch (rng_below(8)) {
    case 0: return special[rng_below(sizeof special / sizeof special[0])];
    case 1: return s | (rng32() & 0x007fffffu);                                 /* denormal */
    case 2: return rng32();
    case 3: { float f = (float)(int32_t)(rng32() >> rng_below(32)); uint32_t u; memcpy(&u, &f, 4); return u | s; }
    default: return s | ((127 - 40 + rng_below(81)) << 23) | (rng32() & 0x007fffffu);
    }
}

static uint64_t gen_f64(void)
{
    static const uint64_t special[] = {0, 0x8000000000000000ull, 0x7ff0000000000000ull, 0xfff0000000000000ull,
                                       0x7ff8000000000000ull, 0xfff8000000000000ull, 0x7ff0000000000001ull,
                                       0x7ff4000000000000ull, 1, 0x000fffffffffffffull, 0x0010000000000000ull,
                                       0x7fefffffffffffffull, 0x3ff0000000000000ull, 0x43e0000000000000ull};
    uint64_t s = rng64() & 0x8000000000000000ull;
    switch (rng_below(8)) {
    case 0: return special[rng_below(sizeof special / sizeof special[0])];
    case 1: return s | (rng64() & 0x000fffffffffffffull);
    case 2: return rng64();
    case 3: { double d = (double)(int64_t)(rng64() >> rng_below(64)); uint64_t u; memcpy(&u, &d, 8); return u | s; }
    default: return s | ((uint64_t)(1023 - 300 + rng_below(601)) << 52) | (rng64() & 0x000fffffffffffffull);
    }
}

static uint64_t gen_int(int bits)
{
    uint64_t min = 1ull << (bits - 1);
    uint64_t edges[] = {0, 1, ~0ull, min, min - 1, min + 1, -(min - 1), 2, ~1ull};
    if (one_in(4))
        return edges[rng_below(sizeof edges / sizeof edges[0])];
    uint64_t v = rng64() >> rng_below(64);
    return one_in(2) ? -v : v;
}

/* Packed BCD: 18 digits and a sign byte; now and then an invalid digit. */
static void gen_bcd(uint8_t *b)
{
    int digits = 1 + (int)rng_below(18);
    memset(b, 0, 10);
    for (int d = 0; d < digits; d++)
        b[d / 2] |= (uint8_t)(rng_below(10) << (4 * (d & 1)));
    if (one_in(20))
        b[rng_below(9)] |= 0xa0;
    b[9] = (rng32() & 1) ? 0x80 : 0;
    if (one_in(10))
        b[9] |= rng32() & 0x7f;                 /* ignored bits */
}

/* ---- x87 state images ------------------------------------------------------ */

/* The 32-bit protected-mode layout of FNSAVE/FRSTOR; the 16-bit one has
 * 2-byte fields and registers at 14. */
struct layout {
    int cw, sw, tw, ptr_lo, ptr_hi, regs;
};
static const struct layout layout32 = {0, 4, 8, 12, 28, 28};
static const struct layout layout16 = {0, 2, 4, 6, 14, 14};

/* A control word: any rounding and precision control; exceptions masked
 * unless the case asks for unmasked ones; now and then reserved bits. */
static uint16_t gen_cw(bool unmasked)
{
    uint16_t cw = (uint16_t)(rng32() & 0x0f00) | 0x3f | 0x40;
    if (unmasked)
        cw &= ~(uint16_t)(rng32() & 0x3f);
    if (one_in(8))
        cw ^= rng32() & 0xf0c0;
    return cw;
}

/* A status word holding only flags the control word masks, so no exception
 * is pending (the host would take it at the next waiting instruction). */
static uint16_t gen_sw(uint16_t cw)
{
    uint16_t exc = one_in(2) ? 0 : (rng32() & 0x7f);
    exc &= (cw & 0x3f) | 0x40;
    uint16_t cc = rng32() & 0x4700, top = (rng32() & 7) << 11;
    return exc | cc | top;
}

/* The tag word: all empty, all full, or a mix; non-empty registers carry an
 * arbitrary tag since FRSTOR only honours "empty". */
static uint16_t gen_tw(void)
{
    unsigned mode = rng_below(10);
    uint16_t tw = 0;
    for (int p = 0; p < 8; p++) {
        unsigned t = mode == 0 ? 3 : mode == 1 ? rng_below(3) : one_in(4) ? 3 : rng_below(3);
        tw |= t << (2 * p);
    }
    return tw;
}

static void gen_image(uint8_t *img, const struct layout *l, bool unmasked)
{
    uint16_t cw = gen_cw(unmasked);
    int regs_end = l->regs + 80;
    for (int k = 0; k < regs_end; k++)
        img[k] = (uint8_t)rng32();              /* pointers and reserved words: anything */
    put16(img + l->cw, cw);
    put16(img + l->sw, gen_sw(cw));
    put16(img + l->tw, gen_tw());
    for (int i = 0; i < 8; i++)
        put_f80(img + l->regs + 10 * i, gen_f80());
}

/* Abridged tag byte of FXSAVE: one bit per physical register, 1 = valid. */
static void gen_fx_image(uint8_t *b, bool unmasked)
{
    uint16_t cw = gen_cw(unmasked);
    for (int k = 0; k < DATA_SIZE; k++)
        b[k] = (uint8_t)rng32();
    put16(b + 0, cw);
    put16(b + 2, gen_sw(cw));
    b[4] = (uint8_t)(one_in(8) ? 0 : one_in(8) ? 0xff : rng32());
    uint32_t mxcsr = 0x1f80;                    /* the host refuses reserved MXCSR bits */
    memcpy(b + 24, &mxcsr, 4);
    for (int i = 0; i < 8; i++)
        put_f80(b + 32 + 16 * i, gen_f80());
}

/* ---- templates: the instruction under test --------------------------------- */

enum kind {
    K_NONE, K_F32, K_F64, K_F80, K_I16, K_I32, K_I64, K_BCD, K_CW,
    K_ENV16, K_ENV32, K_SAVE16, K_SAVE32, K_FX_IMAGE,
};

/* Template flags. */
#define F_AX 0x01          /* writes AX (FNSTSW AX) */
#define F_PTR16 0x02       /* the operand receives a 16-bit environment: skip its pointers */
#define F_PTR32 0x04       /* ... a 32-bit environment */
#define F_FXPTR 0x08       /* ... an FXSAVE image: skip its pointers and MXCSR */
#define F_FXXMM 0x100      /* ... and its XMM registers, which the host really has
                            * (XMM8-15 too, at 288: the host runs in 64-bit mode) */
#define F_UNMASK 0x10      /* also run cases with unmasked exceptions */
#define F_ST0_FULL 0x20    /* ST(0) is never empty: the host is not a reference there */
#define F_C1_INTEL 0x40    /* C1 not compared: Intel clears it, AMD hosts keep it */
#define F_DENORMAL_LOAD 0x80 /* a denormal operand is loaded with DE masked */

struct family {
    const char *name;
    uint8_t prefix;        /* 0: none */
    uint8_t op, modrm;     /* modrm of the first form; mod 0 rm 0 is [eax] */
    int forms;             /* register forms modrm, modrm+1, ... */
    enum kind kind;
    unsigned flags;
};

#define MEM(name, op, reg, kind, flags) {name, 0, op, (reg) << 3, 1, kind, flags}
#define REG(name, op, modrm, forms) {name, 0, op, modrm, forms, K_NONE, F_UNMASK}
#define ARITH_MEM(op, kind, sfx)                                                                    \
    MEM("fadd " sfx, op, 0, kind, F_UNMASK), MEM("fmul " sfx, op, 1, kind, F_UNMASK),              \
    MEM("fcom " sfx, op, 2, kind, F_UNMASK), MEM("fcomp " sfx, op, 3, kind, F_UNMASK),             \
    MEM("fsub " sfx, op, 4, kind, F_UNMASK), MEM("fsubr " sfx, op, 5, kind, F_UNMASK),             \
    MEM("fdiv " sfx, op, 6, kind, F_UNMASK), MEM("fdivr " sfx, op, 7, kind, F_UNMASK)

static const struct family families[] = {
    ARITH_MEM(0xd8, K_F32, "m32fp"),
    ARITH_MEM(0xdc, K_F64, "m64fp"),
    ARITH_MEM(0xda, K_I32, "m32int"),
    ARITH_MEM(0xde, K_I16, "m16int"),
    /* FLD of a denormal m32/m64 with DE unmasked: Intel stops before the
     * push (SDM vol. 1, 8.5.2; the guest follows), AMD hosts push. */
    MEM("fld m32fp", 0xd9, 0, K_F32, F_UNMASK | F_DENORMAL_LOAD),
    MEM("fst m32fp", 0xd9, 2, K_F32, F_UNMASK),
    MEM("fstp m32fp", 0xd9, 3, K_F32, F_UNMASK),
    MEM("fldenv m32", 0xd9, 4, K_ENV32, 0),
    MEM("fldcw", 0xd9, 5, K_CW, F_UNMASK),
    MEM("fnstenv m32", 0xd9, 6, K_ENV32, F_PTR32 | F_UNMASK),
    MEM("fnstcw", 0xd9, 7, K_CW, F_UNMASK),
    {"fldenv m16", 0x66, 0xd9, 4 << 3, 1, K_ENV16, 0},
    {"fnstenv m16", 0x66, 0xd9, 6 << 3, 1, K_ENV16, F_PTR16},
    MEM("fild m32int", 0xdb, 0, K_I32, F_UNMASK),
    MEM("fist m32int", 0xdb, 2, K_I32, F_UNMASK),
    MEM("fistp m32int", 0xdb, 3, K_I32, F_UNMASK),
    MEM("fld m80fp", 0xdb, 5, K_F80, F_UNMASK),
    MEM("fstp m80fp", 0xdb, 7, K_F80, F_UNMASK),
    MEM("fld m64fp", 0xdd, 0, K_F64, F_UNMASK | F_DENORMAL_LOAD),
    MEM("fst m64fp", 0xdd, 2, K_F64, F_UNMASK),
    MEM("fstp m64fp", 0xdd, 3, K_F64, F_UNMASK),
    MEM("frstor m32", 0xdd, 4, K_SAVE32, 0),
    MEM("fnsave m32", 0xdd, 6, K_SAVE32, F_PTR32 | F_UNMASK),
    MEM("fnstsw m16", 0xdd, 7, K_CW, F_UNMASK),
    {"frstor m16", 0x66, 0xdd, 4 << 3, 1, K_SAVE16, 0},
    {"fnsave m16", 0x66, 0xdd, 6 << 3, 1, K_SAVE16, F_PTR16},
    MEM("fild m16int", 0xdf, 0, K_I16, F_UNMASK),
    MEM("fist m16int", 0xdf, 2, K_I16, F_UNMASK),
    MEM("fistp m16int", 0xdf, 3, K_I16, F_UNMASK),
    MEM("fbld", 0xdf, 4, K_BCD, F_UNMASK),
    MEM("fild m64int", 0xdf, 5, K_I64, F_UNMASK),
    MEM("fbstp", 0xdf, 6, K_BCD, F_UNMASK),
    MEM("fistp m64int", 0xdf, 7, K_I64, F_UNMASK),

    REG("fadd st,st(i)", 0xd8, 0xc0, 8), REG("fmul st,st(i)", 0xd8, 0xc8, 8),
    REG("fcom st(i)", 0xd8, 0xd0, 8), REG("fcomp st(i)", 0xd8, 0xd8, 8),
    REG("fsub st,st(i)", 0xd8, 0xe0, 8), REG("fsubr st,st(i)", 0xd8, 0xe8, 8),
    REG("fdiv st,st(i)", 0xd8, 0xf0, 8), REG("fdivr st,st(i)", 0xd8, 0xf8, 8),
    REG("fld st(i)", 0xd9, 0xc0, 8), REG("fxch st(i)", 0xd9, 0xc8, 8), REG("fnop", 0xd9, 0xd0, 1),
    /* FSTP1 from an empty ST(0): AMD hosts pop without signalling; Intel
     * parts, which the guest follows, run it as FSTP (stack underflow). */
    {"fstp1 st(i)", 0, 0xd9, 0xd8, 8, K_NONE, F_UNMASK | F_ST0_FULL}, REG("fchs", 0xd9, 0xe0, 1), REG("fabs", 0xd9, 0xe1, 1),
    REG("ftst", 0xd9, 0xe4, 1), REG("fxam", 0xd9, 0xe5, 1),
    REG("fld1", 0xd9, 0xe8, 1), REG("fldl2t", 0xd9, 0xe9, 1), REG("fldl2e", 0xd9, 0xea, 1),
    REG("fldpi", 0xd9, 0xeb, 1), REG("fldlg2", 0xd9, 0xec, 1), REG("fldln2", 0xd9, 0xed, 1),
    REG("fldz", 0xd9, 0xee, 1),
    REG("f2xm1", 0xd9, 0xf0, 1), REG("fyl2x", 0xd9, 0xf1, 1), REG("fptan", 0xd9, 0xf2, 1),
    REG("fpatan", 0xd9, 0xf3, 1), REG("fxtract", 0xd9, 0xf4, 1), REG("fprem1", 0xd9, 0xf5, 1),
    REG("fdecstp", 0xd9, 0xf6, 1), REG("fincstp", 0xd9, 0xf7, 1), REG("fprem", 0xd9, 0xf8, 1),
    REG("fyl2xp1", 0xd9, 0xf9, 1), REG("fsqrt", 0xd9, 0xfa, 1), REG("fsincos", 0xd9, 0xfb, 1),
    REG("frndint", 0xd9, 0xfc, 1), REG("fscale", 0xd9, 0xfd, 1), REG("fsin", 0xd9, 0xfe, 1),
    REG("fcos", 0xd9, 0xff, 1),
    REG("fcmovb", 0xda, 0xc0, 8), REG("fcmove", 0xda, 0xc8, 8), REG("fcmovbe", 0xda, 0xd0, 8),
    REG("fcmovu", 0xda, 0xd8, 8), REG("fucompp", 0xda, 0xe9, 1),
    REG("fcmovnb", 0xdb, 0xc0, 8), REG("fcmovne", 0xdb, 0xc8, 8), REG("fcmovnbe", 0xdb, 0xd0, 8),
    REG("fcmovnu", 0xdb, 0xd8, 8), REG("feni", 0xdb, 0xe0, 1), REG("fdisi", 0xdb, 0xe1, 1),
    REG("fnclex", 0xdb, 0xe2, 1), REG("fninit", 0xdb, 0xe3, 1), REG("fsetpm", 0xdb, 0xe4, 1),
    /* FCOMI and friends: Intel documents C1 as cleared (and the guest does
     * so); AMD hosts leave it unchanged. */
    {"fucomi st,st(i)", 0, 0xdb, 0xe8, 8, K_NONE, F_UNMASK | F_C1_INTEL},
    {"fcomi st,st(i)", 0, 0xdb, 0xf0, 8, K_NONE, F_UNMASK | F_C1_INTEL},
    REG("fadd st(i),st", 0xdc, 0xc0, 8), REG("fmul st(i),st", 0xdc, 0xc8, 8),
    REG("fcom2 st(i)", 0xdc, 0xd0, 8), REG("fcomp3 st(i)", 0xdc, 0xd8, 8),
    REG("fsubr st(i),st", 0xdc, 0xe0, 8), REG("fsub st(i),st", 0xdc, 0xe8, 8),
    REG("fdivr st(i),st", 0xdc, 0xf0, 8), REG("fdiv st(i),st", 0xdc, 0xf8, 8),
    REG("ffree st(i)", 0xdd, 0xc0, 8), REG("fxch4 st(i)", 0xdd, 0xc8, 8),
    REG("fst st(i)", 0xdd, 0xd0, 8), REG("fstp st(i)", 0xdd, 0xd8, 8),
    REG("fucom st(i)", 0xdd, 0xe0, 8), REG("fucomp st(i)", 0xdd, 0xe8, 8),
    REG("faddp st(i),st", 0xde, 0xc0, 8), REG("fmulp st(i),st", 0xde, 0xc8, 8),
    REG("fcomp5 st(i)", 0xde, 0xd0, 8), REG("fcompp", 0xde, 0xd9, 1),
    REG("fsubrp st(i),st", 0xde, 0xe0, 8), REG("fsubp st(i),st", 0xde, 0xe8, 8),
    REG("fdivrp st(i),st", 0xde, 0xf0, 8), REG("fdivp st(i),st", 0xde, 0xf8, 8),
    REG("ffreep st(i)", 0xdf, 0xc0, 8), REG("fxch7 st(i)", 0xdf, 0xc8, 8),
    REG("fstp8 st(i)", 0xdf, 0xd0, 8), REG("fstp9 st(i)", 0xdf, 0xd8, 8),
    {"fnstsw ax", 0, 0xdf, 0xe0, 1, K_NONE, F_AX | F_UNMASK},
    {"fucomip st,st(i)", 0, 0xdf, 0xe8, 8, K_NONE, F_UNMASK | F_C1_INTEL},
    {"fcomip st,st(i)", 0, 0xdf, 0xf0, 8, K_NONE, F_UNMASK | F_C1_INTEL},
};

/* FXSAVE/FXRSTOR (0F AE /0, /1) against the host's own; the round trip
 * FXRSTOR then FXSAVE brings the XMM area back on both sides. */
static const struct family fx_families[] = {
    {"fxsave", 0x0f, 0xae, 0 << 3, 1, K_FX_IMAGE, F_FXPTR | F_FXXMM | F_UNMASK},
    {"fxrstor", 0x0f, 0xae, 1 << 3, 1, K_FX_IMAGE, F_UNMASK},
};
static const uint8_t fx_round_trip[] = {0x0f, 0xae, 0x08, 0x0f, 0xae, 0x00};

struct tmpl {
    char name[48];
    uint8_t code[12];
    int len;
    int ninsn;             /* instructions in code */
    enum kind kind;
    unsigned flags;
};

static struct tmpl tmpl_of(const struct family *f, int form)
{
    struct tmpl t = {.ninsn = 1, .kind = f->kind, .flags = f->flags};
    if (f->forms > 1)
        snprintf(t.name, sizeof t.name, "%s i=%d", f->name, form);
    else
        snprintf(t.name, sizeof t.name, "%s", f->name);
    if (f->prefix)
        t.code[t.len++] = f->prefix;
    t.code[t.len++] = f->op;
    t.code[t.len++] = (uint8_t)(f->modrm + form);
    return t;
}

/* ---- the two runners ----------------------------------------------------- */

/* One case: the initial state image, operand buffer and flags. */
struct fcase {
    const struct tmpl *t;
    unsigned long index;
    uint64_t seed;
    uint8_t img[IMG_SIZE];
    uint8_t data[DATA_SIZE];
    uint32_t eflags;
};

/* What one side produced. */
struct result {
    uint8_t img[IMG_SIZE];
    uint8_t data[DATA_SIZE];
    uint32_t eflags;
    uint16_t ax;
    int fault;             /* -1: none, else the exception vector (host: 16 for SIGFPE) */
};

static struct machine *m;
static uint8_t *stub;
enum { STUB_SIZE = 4096 };

/* The host side's registers and buffers; data first, for FXSAVE's alignment. */
struct host_ctx {
    uint8_t data[DATA_SIZE];
    uint8_t img_in[IMG_SIZE];
    uint8_t pad[4];
    uint8_t img_out[IMG_SIZE];
    uint64_t flags_in, flags_out, rax_out;
} __attribute__((aligned(64)));

static struct host_ctx hctx;
static sigjmp_buf host_trap;

static void on_sigfpe(int sig)
{
    siglongjmp(host_trap, 1);
}

static uint8_t *emit(uint8_t *p, const void *bytes, int n)
{
    memcpy(p, bytes, n);
    return p + n;
}

static uint8_t *emit_disp32(uint8_t *p, const uint8_t *op, int n, size_t disp)
{
    uint32_t d = (uint32_t)disp;
    p = emit(p, op, n);
    return emit(p, &d, 4);
}

/*
 *   push rbx; mov rbx, rdi           ; rdi = &hctx
 *   push [rbx+flags_in]; popfq
 *   lea rsi/rdi/rax, [rbx+...]
 *   <the case's code bytes, FRSTOR [rsi] ... FNSAVE [rdi]>
 *   pushfq; pop [rbx+flags_out]; mov [rbx+rax_out], rax
 *   pop rbx; ret
 */
static void build_stub(const uint8_t *code, int len)
{
    uint8_t *p = stub;
    p = emit(p, "\x53\x48\x89\xfb", 4);
    p = emit_disp32(p, (const uint8_t *)"\xff\xb3", 2, offsetof(struct host_ctx, flags_in));
    p = emit(p, "\x9d", 1);
    p = emit_disp32(p, (const uint8_t *)"\x48\x8d\xb3", 3, offsetof(struct host_ctx, img_in));
    p = emit_disp32(p, (const uint8_t *)"\x48\x8d\xbb", 3, offsetof(struct host_ctx, img_out));
    p = emit_disp32(p, (const uint8_t *)"\x48\x8d\x83", 3, offsetof(struct host_ctx, data));
    p = emit(p, code, len);
    p = emit(p, "\x9c", 1);
    p = emit_disp32(p, (const uint8_t *)"\x8f\x83", 2, offsetof(struct host_ctx, flags_out));
    p = emit_disp32(p, (const uint8_t *)"\x48\x89\x83", 3, offsetof(struct host_ctx, rax_out));
    emit(p, "\x5b\xc3", 2);
}

static int case_code(const struct fcase *k, uint8_t *code)
{
    int n = 0;
    code[n++] = 0xdd;                           /* FRSTOR [esi] */
    code[n++] = 0x26;
    memcpy(code + n, k->t->code, k->t->len);
    n += k->t->len;
    code[n++] = 0xdd;                           /* FNSAVE [edi] */
    code[n++] = 0x37;
    return n;
}

static void run_host(const struct fcase *k, struct result *r)
{
    uint8_t code[32];
    build_stub(code, case_code(k, code));
    memcpy(hctx.data, k->data, DATA_SIZE);
    memcpy(hctx.img_in, k->img, IMG_SIZE);
    memset(hctx.img_out, 0, IMG_SIZE);
    hctx.flags_in = 0x202 | (k->eflags & FL_ARITH);
    r->fault = -1;
    if (sigsetjmp(host_trap, 1)) {
        __asm__ volatile("fninit");
        r->fault = EXC_MF;
        return;
    }
    ((void (*)(struct host_ctx *))(void *)stub)(&hctx);
    memcpy(r->img, hctx.img_out, IMG_SIZE);
    memcpy(r->data, hctx.data, DATA_SIZE);
    r->eflags = (uint32_t)hctx.flags_out & FL_ARITH;
    r->ax = (uint16_t)hctx.rax_out;
}

/* Flat 32-bit protected mode at CPL 0, no paging. */
static void guest_flat32(struct cpu *c, uint32_t cr0)
{
    const struct seg code = {0x08, 0x9b | SEG_ATTR_DB | SEG_ATTR_G, 0, 0xffffffffu};
    const struct seg data = {0x10, 0x93 | SEG_ATTR_DB | SEG_ATTR_G, 0, 0xffffffffu};
    c->cr0 = CR0_PE | CR0_ET | cr0;
    c->cpl = 0;
    for (int s = 0; s < SEG_COUNT; s++)
        c->seg[s] = data;
    c->seg[SEG_CS] = code;
    c->halted = false;
    c->fault_depth = 0;
}

/* One instruction; returns the exception vector it raised, or -1. */
static int guest_step(struct cpu *c)
{
    if (setjmp(c->fault_jmp)) {
        c->fault_depth = 0;
        c->eip = c->eip_start;
        c->r[R_ESP] = c->esp_start;
        return c->exc_vector;
    }
    interp_step(c);
    return -1;
}

static void guest_load(const void *code, int len, const struct fcase *k)
{
    physmem_copy_to(m->pm, CODE_ADDR, code, len);
    physmem_copy_to(m->pm, IMG_IN_ADDR, k->img, IMG_SIZE);
    physmem_copy_to(m->pm, IMG_OUT_ADDR, (uint8_t[IMG_SIZE]){0}, IMG_SIZE);
    physmem_copy_to(m->pm, DATA_ADDR, k->data, DATA_SIZE);
    struct cpu *c = &m->cpu;
    c->r[R_EAX] = DATA_ADDR;
    c->r[R_ESI] = IMG_IN_ADDR;
    c->r[R_EDI] = IMG_OUT_ADDR;
    c->r[R_ESP] = 0x8000;
    c->eip = CODE_ADDR;
    c->eflags = 0x2 | (k->eflags & FL_ARITH);
}

static void run_guest(const struct fcase *k, struct result *r)
{
    struct cpu *c = &m->cpu;
    uint8_t code[32];
    guest_flat32(c, CR0_NE);
    guest_load(code, case_code(k, code), k);
    r->fault = guest_step(c);
    for (int i = 0; i < k->t->ninsn && r->fault < 0; i++)
        r->fault = guest_step(c);
    r->eflags = c->eflags & FL_ARITH;
    r->ax = (uint16_t)c->r[R_EAX];
    if (r->fault < 0)
        r->fault = guest_step(c);
    physmem_copy_from(m->pm, IMG_OUT_ADDR, r->img, IMG_SIZE);
    physmem_copy_from(m->pm, DATA_ADDR, r->data, DATA_SIZE);
}

/* ---- comparison and reporting -------------------------------------------- */

struct tally {
    const char *what;
    unsigned long cases, failures, reported;
    unsigned long template_failures;
};

/* Byte ranges of the operand buffer that hold pointers (or MXCSR). */
static bool data_byte_skipped(const struct tmpl *t, int k)
{
    if (t->flags & F_PTR32)
        return k >= layout32.ptr_lo && k < layout32.ptr_hi;
    if (t->flags & F_PTR16)
        return k >= layout16.ptr_lo && k < layout16.ptr_hi;
    if ((t->flags & F_FXXMM) && k >= 160 && k < 416)
        return true;
    if (t->flags & F_FXPTR)
        return k >= 6 && k < 32;                /* FOP, FIP/FCS, FDP/FDS, MXCSR, MXCSR_MASK */
    return false;
}

static bool img_byte_compared(int k) { return k < layout32.ptr_lo || k >= layout32.ptr_hi; }

/* The bits of saved-image byte k that the template defines. */
static uint8_t img_byte_mask(const struct tmpl *t, int k)
{
    if ((t->flags & F_C1_INTEL) && k == layout32.sw + 1)
        return (uint8_t)~(0x0200 >> 8);
    return 0xff;
}

static const char *first_difference(const struct fcase *k, const struct result *h, const struct result *g)
{
    if (h->fault != g->fault)
        return "exception";
    for (int b = 0; b < IMG_SIZE; b++)
        if (img_byte_compared(b) && ((h->img[b] ^ g->img[b]) & img_byte_mask(k->t, b)))
            return b < 4 ? "control word" : b < 8 ? "status word" : b < 12 ? "tag word" : "registers";
    for (int b = 0; b < DATA_SIZE; b++)
        if (!data_byte_skipped(k->t, b) && h->data[b] != g->data[b])
            return "memory";
    if (h->eflags != g->eflags)
        return "EFLAGS";
    if ((k->t->flags & F_AX) && h->ax != g->ax)
        return "AX";
    return NULL;
}

static void print_image(const char *who, const uint8_t *img)
{
    print_error("   %-5s cw %04x sw %04x tw %04x |", who, get16(img), get16(img + 4), get16(img + 8));
    for (int i = 0; i < 8; i++) {
        const uint8_t *r = img + 28 + 10 * i;
        uint64_t mant;
        memcpy(&mant, r, 8);
        print_error(" %d:%04x.%016llx", i, get16(r + 8), (unsigned long long)mant);
    }
    print_error("\n");
}

static int operand_size(enum kind kind)
{
    static const int size[] = {[K_NONE] = 0, [K_F32] = 4, [K_F64] = 8, [K_F80] = 10, [K_I16] = 2,
                               [K_I32] = 4, [K_I64] = 8, [K_BCD] = 10, [K_CW] = 2, [K_ENV16] = 14,
                               [K_ENV32] = 28, [K_SAVE16] = 94, [K_SAVE32] = 108, [K_FX_IMAGE] = 288};
    return size[kind];
}

static void print_bytes(const char *who, const uint8_t *b, int n)
{
    print_error("   %-5s mem", who);
    for (int i = 0; i < n; i++)
        print_error("%s%02x", i % 16 ? " " : (i ? "\n             " : " "), b[i]);
    print_error("\n");
}

/* The operand bytes that differ (and are compared), as offset:host/guest. */
static void print_memory_difference(const struct tmpl *t, const uint8_t *h, const uint8_t *g)
{
    int shown = 0;
    print_error("   memory differs at");
    for (int b = 0; b < DATA_SIZE && shown < 24; b++)
        if (h[b] != g[b] && !data_byte_skipped(t, b)) {
            print_error(" %d:%02x/%02x", b, h[b], g[b]);
            shown++;
        }
    print_error(" (offset:host/guest)\n");
}

static void report(const struct fcase *k, const struct result *h, const struct result *g, const char *what)
{
    print_error("MISMATCH (%s) %s [", what, k->t->name);
    for (int i = 0; i < k->t->len; i++)
        print_error("%s%02x", i ? " " : "", k->t->code[i]);
    print_error("] case %lu (seed %#llx) eflags %#x\n", k->index, (unsigned long long)k->seed, k->eflags);
    print_image("in", k->img);
    int n = operand_size(k->t->kind);
    if (n)
        print_bytes("in", k->data, n);
    print_image("host", h->img);
    print_image("guest", g->img);
    if (memcmp(h->data, g->data, DATA_SIZE))
        print_memory_difference(k->t, h->data, g->data);
    print_error("   host: fault %d eflags %#x ax %#x | guest: fault %d eflags %#x ax %#x\n", h->fault, h->eflags,
                h->ax, g->fault, g->eflags, g->ax);
}

static void check_case(struct tally *t, const struct fcase *k)
{
    struct result h, g;
    run_host(k, &h);
    run_guest(k, &g);
    t->cases++;
    const char *bad = first_difference(k, &h, &g);
    if (!bad)
        return;
    t->failures++;
    if (t->template_failures++ < MAX_REPORTED_PER_TEMPLATE && t->reported++ < MAX_REPORTED)
        report(k, &h, &g, bad);
}

static void finish(const struct tally *t)
{
    print_message("[ fpu ] %-22s %7lu cases, %lu mismatches\n", t->what, t->cases, t->failures);
    if (t->failures)
        fail_msg("%lu of %lu cases differ from the host x87", t->failures, t->cases);
}

/* ---- case generation --------------------------------------------------------- */

static void gen_operand(uint8_t *data, enum kind kind, bool unmasked)
{
    for (int k = 0; k < DATA_SIZE; k++)
        data[k] = (uint8_t)rng32();
    switch (kind) {
    case K_F32: { uint32_t v = gen_f32(); memcpy(data, &v, 4); break; }
    case K_F64: { uint64_t v = gen_f64(); memcpy(data, &v, 8); break; }
    case K_F80: put_f80(data, gen_f80()); break;
    case K_I16: { uint16_t v = (uint16_t)gen_int(16); memcpy(data, &v, 2); break; }
    case K_I32: { uint32_t v = (uint32_t)gen_int(32); memcpy(data, &v, 4); break; }
    case K_I64: { uint64_t v = gen_int(64); memcpy(data, &v, 8); break; }
    case K_BCD: gen_bcd(data); break;
    case K_CW: put16(data, gen_cw(unmasked || one_in(2))); break;
    case K_ENV16: case K_SAVE16: gen_image(data, &layout16, unmasked); break;
    case K_ENV32: case K_SAVE32: gen_image(data, &layout32, unmasked); break;
    case K_FX_IMAGE: gen_fx_image(data, unmasked); break;
    case K_NONE: break;
    }
}

static void make_st0_full(uint8_t *img)
{
    int top = (get16(img + layout32.sw) >> 11) & 7;
    put16(img + layout32.tw, get16(img + layout32.tw) & ~(3u << (2 * top)));
}

static bool denormal_operand(enum kind kind, const uint8_t *data)
{
    uint32_t f;
    uint64_t d;
    memcpy(&f, data, 4);
    memcpy(&d, data, 8);
    if (kind == K_F32)
        return !(f & 0x7f800000u) && (f & 0x007fffffu);
    return kind == K_F64 && !(d & 0x7ff0000000000000ull) && (d & 0x000fffffffffffffull);
}

static void mask_denormal_exception(uint8_t *img)
{
    put16(img + layout32.cw, get16(img + layout32.cw) | 0x0002);
}

static void gen_case(struct fcase *k, const struct tmpl *t, unsigned long index, uint64_t seed)
{
    rng_seed(seed);
    k->t = t;
    k->index = index;
    k->seed = seed;
    bool unmasked = (t->flags & F_UNMASK) && one_in(4);
    gen_image(k->img, &layout32, unmasked);
    if (t->flags & F_ST0_FULL)
        make_st0_full(k->img);
    gen_operand(k->data, t->kind, unmasked);
    if ((t->flags & F_DENORMAL_LOAD) && denormal_operand(t->kind, k->data))
        mask_denormal_exception(k->img);
    k->eflags = rng32() & FL_ARITH;
}

/* Each case has its own seed, derived from the template and index, so one
 * failing case can be regenerated alone. */
static uint64_t case_seed(const struct tmpl *t, unsigned long index)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *s = t->name; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h ^ (index * 0x9e3779b97f4a7c15ull);
}

/* RV_FPU_ONLY=text runs only the templates whose name contains text. */
static bool selected(const struct tmpl *t)
{
    const char *only = getenv("RV_FPU_ONLY");
    return !only || strstr(t->name, only);
}

static void run_template(struct tally *tally, const struct tmpl *t, int cases)
{
    if (!selected(t))
        return;
    tally->template_failures = 0;
    for (int i = 0; i < cases; i++) {
        struct fcase k;
        gen_case(&k, t, (unsigned long)i, case_seed(t, (unsigned long)i));
        check_case(tally, &k);
    }
    if (tally->template_failures)
        print_error("[ fpu ] %-22s %lu of %d cases differ\n", t->name, tally->template_failures, cases);
}

static void run_family(struct tally *tally, const struct family *f, int cases_per_form)
{
    for (int form = 0; form < f->forms; form++) {
        struct tmpl t = tmpl_of(f, form);
        run_template(tally, &t, cases_per_form);
    }
}

static void run_families(const char *what, const struct family *fs, size_t n, bool memory)
{
    struct tally tally = {.what = what};
    for (size_t i = 0; i < n; i++) {
        bool is_mem = fs[i].kind != K_NONE;
        if (is_mem == memory)
            run_family(&tally, &fs[i], is_mem ? 600 : 300 / fs[i].forms + 40);
    }
    finish(&tally);
}

static void test_memory_forms(void **state)
{
    run_families("memory operands", families, sizeof families / sizeof families[0], true);
}

static void test_register_forms(void **state)
{
    run_families("register forms", families, sizeof families / sizeof families[0], false);
}

static void test_fxsave_fxrstor(void **state)
{
    struct tally tally = {.what = "fxsave/fxrstor"};
    for (size_t i = 0; i < sizeof fx_families / sizeof fx_families[0]; i++)
        run_family(&tally, &fx_families[i], 2000);
    struct tmpl t = {.name = "fxrstor; fxsave", .ninsn = 2, .kind = K_FX_IMAGE, .flags = F_FXPTR | F_UNMASK};
    memcpy(t.code, fx_round_trip, sizeof fx_round_trip);
    t.len = sizeof fx_round_trip;
    run_template(&tally, &t, 2000);
    finish(&tally);
}

/* ---- architectural checks without a host counterpart ------------------------------ */

/* A straight-line guest program at CODE_ADDR in flat 32-bit mode, EAX
 * pointing at DATA_ADDR, the x87 initialized, FERR# deasserted. */
static struct cpu *guest_program(uint32_t cr0, const uint8_t *code, int len)
{
    struct cpu *c = &m->cpu;
    guest_flat32(c, cr0);
    physmem_copy_to(m->pm, CODE_ADDR, code, len);
    c->eip = CODE_ADDR;
    c->r[R_EAX] = DATA_ADDR;
    c->r[R_ESP] = 0x8000;
    c->eflags = 0x2;
    fpu_reset_init(c);
    return c;
}

static void steps_complete(struct cpu *c, int n)
{
    for (int i = 0; i < n; i++) {
        uint32_t eip = c->eip;
        int v = guest_step(c);
        if (v >= 0)
            fail_msg("instruction at %#x raised vector %d", eip, v);
    }
}

static void step_faults(struct cpu *c, uint32_t at, int vector)
{
    c->eip = at;
    assert_int_equal(guest_step(c), vector);
    assert_int_equal(c->eip, at);               /* a fault restarts the instruction */
}

static void put_data16(uint32_t off, uint16_t v) { physmem_copy_to(m->pm, DATA_ADDR + off, &v, 2); }

static uint16_t st0_exponent(const struct cpu *c)
{
    uint8_t b[16];
    memcpy(b, &c->fpu.st[c->fpu.top & 7], sizeof c->fpu.st[0]);
    return get16(b + 8);
}

/* FNINIT; FLDCW [eax] (ZE unmasked); FLDZ; FLD1; FDIV ST,ST(1): 1/0 leaves
 * an unmasked divide-by-zero pending, and ST(0) as it was. */
static const uint8_t divide_by_zero_pending[] = {
    0xdb, 0xe3, 0xd9, 0x28, 0xd9, 0xee, 0xd9, 0xe8, 0xd8, 0xf1,
    0xd9, 0xe8,         /* +10 FLD1: waits, so it reports the exception */
    0x9b,               /* +12 FWAIT */
    0xdf, 0xe0,         /* +13 FNSTSW AX: no wait */
    0xd9, 0x38,         /* +15 FNSTCW [eax]: no wait */
    0xdb, 0xe2,         /* +17 FNCLEX */
    0xd9, 0xe8,         /* +19 FLD1 */
};
enum { PENDING_STEPS = 5, AT_FLD1 = 10, AT_FWAIT = 12, AT_FNSTSW = 13, AT_FNCLEX = 17 };

static struct cpu *run_to_pending_exception(uint32_t cr0)
{
    put_data16(0, 0x037b);
    struct cpu *c = guest_program(cr0, divide_by_zero_pending, sizeof divide_by_zero_pending);
    steps_complete(c, PENDING_STEPS);
    uint16_t sw = fpu_status_word(c);
    assert_int_equal(sw & (SW_ES | SW_B | ZE), SW_ES | SW_B | ZE);
    assert_int_equal((sw >> 11) & 7, 6);
    assert_int_equal(st0_exponent(c), 0x3fff);  /* 1.0: the destination was left alone */
    return c;
}

static void test_pending_exception_raises_mf(void **state)
{
    struct cpu *c = run_to_pending_exception(CR0_NE);
    step_faults(c, CODE_ADDR + AT_FLD1, EXC_MF);
    assert_int_equal((fpu_status_word(c) >> 11) & 7, 6);   /* FLD1 did not run */
    step_faults(c, CODE_ADDR + AT_FWAIT, EXC_MF);
    c->eip = CODE_ADDR + AT_FNSTSW;
    steps_complete(c, 3);                       /* FNSTSW, FNSTCW, FNCLEX never wait */
    assert_int_equal(c->r[R_EAX] & (SW_ES | SW_B | ZE), SW_ES | SW_B | ZE);
    assert_int_equal(fpu_status_word(c) & (SW_ES | SW_B | 0x3f), 0);
    steps_complete(c, 1);
    assert_false(m->ferr);
}

static void test_pending_exception_asserts_ferr(void **state)
{
    struct cpu *c = run_to_pending_exception(0);
    assert_false(m->ferr);
    c->eip = CODE_ADDR + AT_FLD1;
    steps_complete(c, 1);                       /* CR0.NE=0: no #MF, FERR# instead */
    assert_true(m->ferr);
    machine_io_write(m, 0xf0, 0, 1);            /* the IRQ13 handler's acknowledgement */
    assert_false(m->ferr);
    c->eip = CODE_ADDR + AT_FWAIT;
    steps_complete(c, 1);
    assert_true(m->ferr);
    c->eip = CODE_ADDR + AT_FNCLEX;
    steps_complete(c, 1);
    assert_false(m->ferr);
}

/* FNINIT; FLDZ; FLD1; FDIV ST,ST(1) with ZE masked; FLDCW [eax] unmasking
 * it; FLD1. */
static void test_fldcw_unmasking_a_flag_makes_it_pending(void **state)
{
    static const uint8_t code[] = {0xdb, 0xe3, 0xd9, 0xee, 0xd9, 0xe8, 0xd8, 0xf1, 0xd9, 0x28, 0xd9, 0xe8};
    put_data16(0, 0x037b);
    struct cpu *c = guest_program(CR0_NE, code, sizeof code);
    steps_complete(c, 4);
    assert_int_equal(fpu_status_word(c) & (SW_ES | SW_B | ZE), ZE);
    steps_complete(c, 1);
    assert_int_equal(fpu_status_word(c) & (SW_ES | SW_B), SW_ES | SW_B);
    step_faults(c, CODE_ADDR + 10, EXC_MF);
}

static void test_device_not_available(void **state)
{
    static const uint8_t fld1[] = {0xd9, 0xe8}, fwait[] = {0x9b};
    struct cpu *c = guest_program(CR0_NE | CR0_TS, fld1, sizeof fld1);
    step_faults(c, CODE_ADDR, EXC_NM);
    c = guest_program(CR0_NE | CR0_EM, fld1, sizeof fld1);
    step_faults(c, CODE_ADDR, EXC_NM);
    c = guest_program(CR0_NE | CR0_MP | CR0_TS, fwait, sizeof fwait);
    step_faults(c, CODE_ADDR, EXC_NM);
    c = guest_program(CR0_NE | CR0_TS, fwait, sizeof fwait);    /* WAIT ignores TS without MP */
    steps_complete(c, 1);
    c = guest_program(CR0_NE | CR0_EM, fwait, sizeof fwait);    /* ... and EM */
    steps_complete(c, 1);
}

static uint32_t get32(const uint8_t *b) { uint32_t v; memcpy(&v, b, 4); return v; }

/* FIP/FCS/FOP/FDP/FDS: what the differential test cannot compare. */
static void test_instruction_and_data_pointers(void **state)
{
    static const uint8_t code[] = {
        0xdb, 0xe3,                 /* FNINIT */
        0xd9, 0x40, 0x10,           /* +2 FLD dword [eax+0x10] */
        0xd9, 0x38,                 /* +5 FNSTCW [eax]: control instructions keep the pointers */
        0xd9, 0x36,                 /* +7 FNSTENV [esi] */
    };
    struct cpu *c = guest_program(CR0_NE, code, sizeof code);
    c->r[R_ESI] = IMG_OUT_ADDR;
    steps_complete(c, 4);
    assert_int_equal(c->fpu.fip, CODE_ADDR + 2);
    assert_int_equal(c->fpu.fcs, 0x08);
    assert_int_equal(c->fpu.fop, 0x140);
    assert_int_equal(c->fpu.fdp, DATA_ADDR + 0x10);
    assert_int_equal(c->fpu.fds, 0x10);
    uint8_t env[28];
    physmem_copy_from(m->pm, IMG_OUT_ADDR, env, sizeof env);
    assert_int_equal(get32(env + 12), CODE_ADDR + 2);
    assert_int_equal(get32(env + 16), 0x08 | (0x140u << 16));
    assert_int_equal(get32(env + 20), DATA_ADDR + 0x10);
    assert_int_equal(get32(env + 24), 0xffff0010u);
}

/* Real mode, CS=0x9100 DS=0x8000: the environment holds 20-bit linear
 * pointers split across its fields; FLDENV takes them back. */
static void guest_real(struct cpu *c, uint16_t cs, uint16_t ds)
{
    c->cr0 = CR0_ET | CR0_NE;
    c->cpl = 0;
    for (int s = 0; s < SEG_COUNT; s++)
        c->seg[s] = (struct seg){ds, 0x93, (uint32_t)ds << 4, 0xffff};
    c->seg[SEG_CS] = (struct seg){cs, 0x9b, (uint32_t)cs << 4, 0xffff};
    c->eflags = 0x2;
    c->fault_depth = 0;
}

static void test_real_mode_environment(void **state)
{
    static const uint8_t code[] = {
        0xdb, 0xe3,                 /* FNINIT */
        0xd9, 0x04,                 /* +2 FLD dword [si] */
        0x66, 0xd9, 0x35,           /* +4 FNSTENV [di] (32-bit layout) */
        0xd9, 0x75, 0x20,           /* +7 FNSTENV [di+0x20] (16-bit layout) */
        0xdb, 0xe3,                 /* +10 FNINIT */
        0x66, 0xd9, 0x25,           /* +12 FLDENV [di] */
        0x66, 0xd9, 0x75, 0x40,     /* +15 FNSTENV [di+0x40] */
    };
    struct cpu *c = &m->cpu;
    guest_real(c, 0x9100, 0x8000);
    physmem_copy_to(m->pm, 0x91000, code, sizeof code);
    c->eip = 0;
    c->r[R_ESI] = 0x10;
    c->r[R_EDI] = 0x100;
    c->r[R_ESP] = 0x8000;
    steps_complete(c, 7);
    uint8_t e32[28], e16[14], again[28];
    physmem_copy_from(m->pm, 0x80100, e32, sizeof e32);
    physmem_copy_from(m->pm, 0x80120, e16, sizeof e16);
    physmem_copy_from(m->pm, 0x80140, again, sizeof again);
    assert_int_equal(get16(e32 + 12), 0x1002);                /* IP 0x91002, low half */
    assert_int_equal(get32(e32 + 16), (0x9u << 12) | 0x104);  /* IP bits 16-19, FOP */
    assert_int_equal(get16(e32 + 20), 0x0010);                /* DP 0x80010, low half */
    assert_int_equal(get32(e32 + 24), 0x8u << 12);
    assert_int_equal(get16(e16 + 6), 0x1002);
    assert_int_equal(get16(e16 + 8), (0x9u << 12) | 0x104);
    assert_int_equal(get16(e16 + 10), 0x0010);
    assert_int_equal(get16(e16 + 12), 0x8u << 12);
    assert_memory_equal(again, e32, sizeof e32);
}

static const uint8_t fxsave_eax[] = {0x0f, 0xae, 0x00}, fxrstor_eax[] = {0x0f, 0xae, 0x08};

static void test_fxsave_faults(void **state)
{
    static const uint8_t register_form[] = {0x0f, 0xae, 0xc0}, ldmxcsr[] = {0x0f, 0xae, 0x10},
                         lfence[] = {0x0f, 0xae, 0xe8}, clflush[] = {0x0f, 0xae, 0x38};
    struct cpu *c = guest_program(CR0_NE, fxsave_eax, sizeof fxsave_eax);
    c->r[R_EAX] = DATA_ADDR + 8;                /* not 16-byte aligned */
    step_faults(c, CODE_ADDR, EXC_GP);
    c = guest_program(CR0_NE, fxrstor_eax, sizeof fxrstor_eax);
    c->r[R_EAX] = DATA_ADDR + 4;
    step_faults(c, CODE_ADDR, EXC_GP);
    c = guest_program(CR0_NE | CR0_TS, fxsave_eax, sizeof fxsave_eax);
    step_faults(c, CODE_ADDR, EXC_NM);
    c = guest_program(CR0_NE | CR0_EM, fxrstor_eax, sizeof fxrstor_eax);
    step_faults(c, CODE_ADDR, EXC_NM);
    /* The rest of the group is SSE/SSE2, which this CPU lacks: #UD even with TS set. */
    const uint8_t *ud[] = {register_form, ldmxcsr, lfence, clflush};
    for (size_t i = 0; i < sizeof ud / sizeof ud[0]; i++) {
        c = guest_program(CR0_NE | CR0_TS, ud[i], 3);
        step_faults(c, CODE_ADDR, EXC_UD);
    }
}

/* FXSAVE does not wait for a pending exception, nor reinitialize like FNSAVE;
 * FXRSTOR of that image brings the pending exception back. */
static void test_fxsave_keeps_state_and_pending_exception(void **state)
{
    struct cpu *c = run_to_pending_exception(CR0_NE);
    struct fpu before = c->fpu;
    uint16_t sw_before = fpu_status_word(c);
    physmem_copy_to(m->pm, CODE_ADDR + 0x40, fxsave_eax, sizeof fxsave_eax);
    c->eip = CODE_ADDR + 0x40;
    c->r[R_EAX] = DATA_ADDR;
    steps_complete(c, 1);
    assert_int_equal(c->fpu.sw, before.sw);
    assert_int_equal(c->fpu.top, before.top);
    assert_int_equal(c->fpu.tw, before.tw);
    fpu_reset_init(c);
    physmem_copy_to(m->pm, CODE_ADDR + 0x40, fxrstor_eax, sizeof fxrstor_eax);
    c->eip = CODE_ADDR + 0x40;
    steps_complete(c, 1);
    assert_int_equal(fpu_status_word(c), sw_before);
    step_faults(c, CODE_ADDR + AT_FLD1, EXC_MF);
}

/* CPUID.1:EDX.FXSR, and CR4.OSFXSR, which an OS sets before using FXSAVE. */
static void test_fxsr_is_advertised(void **state)
{
    static const uint8_t code[] = {
        0x0f, 0xa2,                 /* CPUID */
        0x0f, 0x20, 0xe0,           /* MOV EAX, CR4 */
        0x0d, 0x00, 0x02, 0x00, 0x00, /* OR EAX, CR4.OSFXSR */
        0x0f, 0x22, 0xe0,           /* MOV CR4, EAX */
    };
    struct cpu *c = guest_program(CR0_NE, code, sizeof code);
    c->r[R_EAX] = 1;
    steps_complete(c, 1);
    assert_true(c->r[R_EDX] & (1u << 24));
    assert_true(c->r[R_EDX] & 1u);
    steps_complete(c, 3);
    assert_true(c->cr4 & CR4_OSFXSR);
    c->cr4 = 0;
}

/* The XMM data moves: #UD without CR4.OSFXSR or with CR0.EM, #NM with TS,
 * #GP for an aligned form on an unaligned address, scalar loads zero the
 * upper part, and the MMX form (no prefix on 0F 6F) stays undefined. */
static void test_xmm_moves(void **state)
{
    static const uint8_t code[] = {
        0x0f, 0x11, 0x00,               /* MOVUPS [EAX], XMM0 */
        0x0f, 0x28, 0x08,               /* MOVAPS XMM1, [EAX] */
        0x66, 0x0f, 0x7f, 0x10,         /* MOVDQA [EAX], XMM2 */
        0xf3, 0x0f, 0x10, 0x18,         /* MOVSS XMM3, [EAX] */
        0x0f, 0x6f, 0x00,               /* MOVQ MM0, [EAX]: MMX */
    };
    enum { MOVUPS = CODE_ADDR, MOVAPS = CODE_ADDR + 3, MOVDQA = CODE_ADDR + 6, MOVSS = CODE_ADDR + 10,
           MOVQ = CODE_ADDR + 14 };
    uint8_t pattern[16], got[16];
    for (int k = 0; k < 16; k++)
        pattern[k] = (uint8_t)(0x11 * k + 3);
    struct cpu *c = guest_program(CR0_NE, code, sizeof code);
    memcpy(c->sse.xmm[0], pattern, 16);
    step_faults(c, MOVUPS, EXC_UD);             /* CR4.OSFXSR clear */
    c->cr4 = CR4_OSFXSR;
    c->cr0 |= CR0_TS;
    step_faults(c, MOVUPS, EXC_NM);
    c->cr0 = (c->cr0 & ~CR0_TS) | CR0_EM;
    step_faults(c, MOVUPS, EXC_UD);
    c->cr0 &= ~CR0_EM;
    c->r[R_EAX] = DATA_ADDR + 4;                /* unaligned: fine for MOVUPS */
    c->eip = MOVUPS;
    steps_complete(c, 1);
    physmem_copy_from(m->pm, DATA_ADDR + 4, got, 16);
    assert_memory_equal(got, pattern, 16);
    step_faults(c, MOVAPS, EXC_GP);             /* ... not for MOVAPS */
    physmem_copy_to(m->pm, DATA_ADDR, pattern, 16);
    c->r[R_EAX] = DATA_ADDR;
    steps_complete(c, 1);
    assert_memory_equal(c->sse.xmm[1], pattern, 16);
    memset(c->sse.xmm[2], 0x5a, 16);
    c->r[R_EAX] = DATA_ADDR + 32;
    steps_complete(c, 1);
    physmem_copy_from(m->pm, DATA_ADDR + 32, got, 16);
    assert_memory_equal(got, c->sse.xmm[2], 16);
    memset(c->sse.xmm[3], 0xff, 16);
    c->r[R_EAX] = DATA_ADDR;
    steps_complete(c, 1);
    assert_memory_equal(c->sse.xmm[3], pattern, 4);
    static const uint8_t zeros[12];
    assert_memory_equal(c->sse.xmm[3] + 4, zeros, 12);
    step_faults(c, MOVQ, EXC_UD);
    c->cr4 = 0;
}

/* ---- setup -------------------------------------------------------------------- */

static int setup(void **state)
{
    struct machine_config cfg = {.ram_mb = 16};
    m = machine_new(&cfg);
    if (!m)
        return -1;
    stub = execmem_alloc(STUB_SIZE);
    struct sigaction sa = {.sa_handler = on_sigfpe};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGFPE, &sa, NULL);
    return 0;
}

static int teardown(void **state)
{
    execmem_free(stub, STUB_SIZE);
    machine_free(m);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_forms),
        cmocka_unit_test(test_register_forms),
        cmocka_unit_test(test_fxsave_fxrstor),
        cmocka_unit_test(test_pending_exception_raises_mf),
        cmocka_unit_test(test_pending_exception_asserts_ferr),
        cmocka_unit_test(test_fldcw_unmasking_a_flag_makes_it_pending),
        cmocka_unit_test(test_device_not_available),
        cmocka_unit_test(test_instruction_and_data_pointers),
        cmocka_unit_test(test_real_mode_environment),
        cmocka_unit_test(test_fxsave_faults),
        cmocka_unit_test(test_fxsave_keeps_state_and_pending_exception),
        cmocka_unit_test(test_fxsr_is_advertised),
        cmocka_unit_test(test_xmm_moves),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
