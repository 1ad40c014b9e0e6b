/*
 * The x87 floating-point unit (387-compatible, with the P6 additions FCMOVcc,
 * FCOMI/FUCOMI, and FXSAVE/FXRSTOR).
 *
 * The guest's register file, tags and pointers live in struct fpu; the
 * arithmetic itself runs on the host's own x87 unit, which has the same
 * 80-bit format, rounding and precision control, special-value rules and
 * transcendental microcode as the guests expect.  Every operation loads the
 * guest's control word (invalid-operation, denormal and divide-by-zero kept
 * masked, see host_cw), executes one host instruction and reads back the
 * host status word: the exception flags and condition codes it reports are
 * folded into the guest's status word, and the guest's own exception masks
 * decide what happens next.  So results are bit-exact by construction and
 * the remaining work here is the architectural bookkeeping: the register
 * stack and its faults, exception precedence, tags, pending-exception
 * delivery (#MF or FERR#/IRQ13), and the environment/save image formats.
 * tests/unit/test_fpu.c checks all of it against the host's x87.
 */
#include "monitor/interp.h"
#include "monitor/trace.h"

#include <math.h>
#include <string.h>

bool fpu_implemented(void) { return true; }

/* Status word bits. */
#define SW_IE 0x0001u
#define SW_DE 0x0002u
#define SW_ZE 0x0004u
#define SW_OE 0x0008u
#define SW_UE 0x0010u
#define SW_PE 0x0020u
#define SW_SF 0x0040u
#define SW_ES 0x0080u
#define SW_C0 0x0100u
#define SW_C1 0x0200u
#define SW_C2 0x0400u
#define SW_TOP 0x3800u
#define SW_C3 0x4000u
#define SW_B  0x8000u
#define SW_EXC 0x003fu
#define SW_CC (SW_C0 | SW_C1 | SW_C2 | SW_C3)

#define TAG_VALID 0
#define TAG_ZERO 1
#define TAG_SPECIAL 2
#define TAG_EMPTY 3

/* ---- the host unit ---- */

/* Run one host x87 instruction under the guest's rounding and precision
 * control; the host status word comes back in sw, and is cleared before the
 * host's control word returns, so nothing is left pending on the host. */
#define HX_PRO "fnstcw %[old]\n\tfldcw %[cw]\n\tfnclex\n\t"
#define HX_EPI "\n\tfnstsw %[sw]\n\tfnclex\n\tfldcw %[old]"
#define HX_CTL [sw] "=m"(*sw), [old] "=m"(old)
#define HX_CW(cw) [cw] "m"(cw)

/* Invalid-operation, denormal and divide-by-zero stay masked on the host: an
 * unmasked one would leave the destination alone and skip pops and pushes
 * behind the compiler's back.  Overflow, underflow and precision keep the
 * guest's masks, so an unmasked one delivers the hardware's re-biased result;
 * instructions complete normally after those. */
static inline uint16_t host_cw(const struct cpu *c) { return c->fpu.cw | SW_IE | SW_DE | SW_ZE; }
/* For the popping integer and BCD stores, whose unmasked exceptions store nothing. */
static inline uint16_t host_cw_masked(const struct cpu *c) { return c->fpu.cw | SW_EXC; }

#define HX_UNARY(name, insn)                                                        \
    static long double name(long double a, uint16_t cw, uint16_t *sw)              \
    {                                                                               \
        long double r;                                                              \
        uint16_t old;                                                               \
        __asm__ volatile(HX_PRO insn HX_EPI : "=t"(r), HX_CTL : "0"(a), HX_CW(cw)); \
        return r;                                                                   \
    }
HX_UNARY(hx_sqrt, "fsqrt")
HX_UNARY(hx_rndint, "frndint")
HX_UNARY(hx_sin, "fsin")
HX_UNARY(hx_cos, "fcos")
HX_UNARY(hx_f2xm1, "f2xm1")

/* st(0) = st(0) op st(1), with a = st(0), b = st(1); b stays and the compiler pops it. */
#define HX_BINARY(name, insn)                                                                  \
    static long double name(long double a, long double b, uint16_t cw, uint16_t *sw)          \
    {                                                                                          \
        long double r;                                                                         \
        uint16_t old;                                                                          \
        __asm__ volatile(HX_PRO insn HX_EPI : "=t"(r), HX_CTL : "0"(a), "u"(b), HX_CW(cw));    \
        return r;                                                                              \
    }
HX_BINARY(hx_add, "fadd %%st(1), %%st")
HX_BINARY(hx_mul, "fmul %%st(1), %%st")
HX_BINARY(hx_sub, "fsub %%st(1), %%st")
HX_BINARY(hx_subr, "fsubr %%st(1), %%st")
HX_BINARY(hx_div, "fdiv %%st(1), %%st")
HX_BINARY(hx_divr, "fdivr %%st(1), %%st")
HX_BINARY(hx_scale, "fscale")
HX_BINARY(hx_prem, "fprem")
HX_BINARY(hx_prem1, "fprem1")

/* st(1) op st(0), popping: a = st(0), b = st(1); the result replaces st(1). */
#define HX_BINARY_POP(name, insn)                                                                     \
    static long double name(long double a, long double b, uint16_t cw, uint16_t *sw)                 \
    {                                                                                                 \
        long double r;                                                                                \
        uint16_t old;                                                                                 \
        __asm__ volatile(HX_PRO insn HX_EPI : "=t"(r), HX_CTL : "0"(a), "u"(b), HX_CW(cw) : "st(1)"); \
        return r;                                                                                     \
    }
HX_BINARY_POP(hx_yl2x, "fyl2x")
HX_BINARY_POP(hx_yl2xp1, "fyl2xp1")
HX_BINARY_POP(hx_patan, "fpatan")

/* One operand in, two out: *r0 is the new st(0), *r1 the value below it. */
#define HX_SPLIT(name, insn)                                                                       \
    static void name(long double a, long double *r0, long double *r1, uint16_t cw, uint16_t *sw)   \
    {                                                                                              \
        uint16_t old;                                                                              \
        __asm__ volatile(HX_PRO insn HX_EPI : "=t"(*r0), "=u"(*r1), HX_CTL : "0"(a), HX_CW(cw));   \
    }
HX_SPLIT(hx_tan, "fptan")
HX_SPLIT(hx_sincos, "fsincos")
HX_SPLIT(hx_xtract, "fxtract")

/* Comparisons and classification: only the condition codes come back. */
#define HX_TEST2(name, insn)                                                        \
    static void name(long double a, long double b, uint16_t cw, uint16_t *sw)      \
    {                                                                               \
        uint16_t old;                                                               \
        __asm__ volatile(HX_PRO insn HX_EPI : HX_CTL : "t"(a), "u"(b), HX_CW(cw));  \
    }
HX_TEST2(hx_com, "fcom %%st(1)")
HX_TEST2(hx_ucom, "fucom %%st(1)")

#define HX_TEST1(name, insn)                                               \
    static void name(long double a, uint16_t cw, uint16_t *sw)            \
    {                                                                      \
        uint16_t old;                                                      \
        __asm__ volatile(HX_PRO insn HX_EPI : HX_CTL : "t"(a), HX_CW(cw)); \
    }
HX_TEST1(hx_tst, "ftst")
HX_TEST1(hx_xam, "fxam")

#define HX_CONST(name, insn)                                            \
    static long double name(uint16_t cw, uint16_t *sw)                 \
    {                                                                   \
        long double r;                                                  \
        uint16_t old;                                                   \
        __asm__ volatile(HX_PRO insn HX_EPI : "=t"(r), HX_CTL : HX_CW(cw)); \
        return r;                                                       \
    }
HX_CONST(hx_ld1, "fld1")
HX_CONST(hx_ldl2t, "fldl2t")
HX_CONST(hx_ldl2e, "fldl2e")
HX_CONST(hx_ldpi, "fldpi")
HX_CONST(hx_ldlg2, "fldlg2")
HX_CONST(hx_ldln2, "fldln2")
HX_CONST(hx_ldz, "fldz")

/* Conversions between memory formats and the register format. */
#define HX_LOAD(name, type, insn)                                                   \
    static long double name(type m, uint16_t cw, uint16_t *sw)                     \
    {                                                                               \
        long double r;                                                              \
        uint16_t old;                                                               \
        __asm__ volatile(HX_PRO insn " %[m]" HX_EPI : "=t"(r), HX_CTL : [m] "m"(m), HX_CW(cw)); \
        return r;                                                                   \
    }
HX_LOAD(hx_ld_f32, float, "flds")
HX_LOAD(hx_ld_f64, double, "fldl")

#define HX_STORE(name, type, insn)                                                          \
    static type name(long double a, uint16_t cw, uint16_t *sw)                             \
    {                                                                                       \
        type m;                                                                             \
        uint16_t old;                                                                       \
        __asm__ volatile(HX_PRO insn " %[m]" HX_EPI : [m] "=m"(m), HX_CTL : "t"(a), HX_CW(cw) : "st"); \
        return m;                                                                           \
    }
/* Floating-point stores do not pop on the host, so they can run with an
 * unmasked overflow or underflow, which stores nothing. */
#define HX_STORE_NOPOP(name, type, insn)                                                    \
    static type name(long double a, uint16_t cw, uint16_t *sw)                             \
    {                                                                                       \
        type m = 0;                                                                         \
        uint16_t old;                                                                       \
        __asm__ volatile(HX_PRO insn " %[m]" HX_EPI : [m] "+m"(m), HX_CTL : "t"(a), HX_CW(cw)); \
        return m;                                                                           \
    }
HX_STORE_NOPOP(hx_st_f32, float, "fsts")
HX_STORE_NOPOP(hx_st_f64, double, "fstl")
HX_STORE(hx_st_i16, int16_t, "fistps")
HX_STORE(hx_st_i32, int32_t, "fistpl")
HX_STORE(hx_st_i64, int64_t, "fistpll")

struct bcd { uint8_t b[10]; };
static long double hx_ld_bcd(struct bcd m, uint16_t cw, uint16_t *sw)
{
    long double r;
    uint16_t old;
    __asm__ volatile(HX_PRO "fbld %[m]" HX_EPI : "=t"(r), HX_CTL : [m] "m"(m), HX_CW(cw));
    return r;
}
static struct bcd hx_st_bcd(long double a, uint16_t cw, uint16_t *sw)
{
    struct bcd m;
    uint16_t old;
    __asm__ volatile(HX_PRO "fbstp %[m]" HX_EPI : [m] "=m"(m), HX_CTL : "t"(a), HX_CW(cw) : "st");
    return m;
}

/* ---- register file ---- */

static long double indefinite(void)
{
    /* The "real indefinite" QNaN: sign 1, exponent all ones, mantissa 1100...0. */
    uint8_t b[16] = {0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff};
    long double v;
    memcpy(&v, b, sizeof(v));
    return v;
}

static int phys_of(const struct fpu *f, int i) { return (f->top + i) & 7; }
static int tag_of(const struct fpu *f, int phys) { return (f->tw >> (2 * phys)) & 3; }
static void set_tag(struct fpu *f, int phys, int tag)
{
    f->tw = (f->tw & ~(3u << (2 * phys))) | (tag << (2 * phys));
}
static bool st_empty(const struct fpu *f, int i) { return tag_of(f, phys_of(f, i)) == TAG_EMPTY; }

/* The tag the hardware reports for a value (FSTENV/FSAVE recompute it). */
static int tag_for(long double v)
{
    uint8_t b[16];
    memcpy(b, &v, sizeof(v));
    unsigned exp = (b[8] | (b[9] << 8)) & 0x7fff;
    uint64_t mant;
    memcpy(&mant, b, 8);
    if (exp == 0)
        return mant ? TAG_SPECIAL : TAG_ZERO;
    if (exp == 0x7fff || !(mant >> 63))
        return TAG_SPECIAL;
    return TAG_VALID;
}

uint16_t fpu_status_word(const struct cpu *c)
{
    return (c->fpu.sw & ~SW_TOP) | ((c->fpu.top & 7) << 11);
}

static uint16_t full_tag_word(const struct fpu *f)
{
    uint16_t tw = 0;
    for (int p = 0; p < 8; p++) {
        int t = tag_of(f, p) == TAG_EMPTY ? TAG_EMPTY : tag_for(f->st[p]);
        tw |= t << (2 * p);
    }
    return tw;
}

/* ---- exceptions ---- */

static bool exc_unmasked(const struct cpu *c, uint16_t flags) { return flags & ~c->fpu.cw & SW_EXC; }

/* A control word as loaded: bits 7 and 13-15 do not exist and read as zero,
 * bit 6 reads as one; bit 12 (the 287's infinity control) is kept. */
static uint16_t cw_loaded(uint16_t cw) { return (cw & 0x1f3f) | 0x40; }

static void update_es(struct cpu *c)
{
    if (exc_unmasked(c, c->fpu.sw))
        c->fpu.sw |= SW_ES | SW_B;
    else
        c->fpu.sw &= ~(SW_ES | SW_B);
}

/* Invalid operation, denormal operand and divide-by-zero are detected before
 * the operation runs; an unmasked one stops it. */
#define SW_PRE (SW_IE | SW_DE | SW_ZE)

/* Fold exception flags raised by an operation into SW.  Returns false when an
 * unmasked pre-operation exception means the destination must be left alone;
 * then the flags the (masked) operation raised afterwards did not happen. */
static bool raise_flags(struct cpu *c, uint16_t flags)
{
    flags &= SW_EXC | SW_SF;
    bool stopped = flags & SW_PRE & ~c->fpu.cw;
    if (stopped)
        flags &= SW_PRE | SW_SF;
    c->fpu.sw |= flags;
    if (exc_unmasked(c, flags))
        c->fpu.sw |= SW_ES | SW_B;
    return !stopped;
}

/* An arithmetic result: exception flags plus C1 (rounded up), which is clear
 * when the operation was stopped; C0/C2/C3 keep their values. */
static bool arith_flags(struct cpu *c, uint16_t hsw)
{
    bool delivered = raise_flags(c, hsw);
    c->fpu.sw = (c->fpu.sw & ~SW_C1) | (delivered ? hsw & SW_C1 : 0);
    return delivered;
}

/* A store to memory: an unmasked overflow or underflow stores nothing and
 * pops nothing (the host ran it with the guest's masks and says which). */
static bool store_flags(struct cpu *c, uint16_t hsw)
{
    bool delivered = arith_flags(c, hsw);
    return delivered && !(hsw & (SW_OE | SW_UE) & ~c->fpu.cw);
}

/* An operation that defines all four condition codes. */
static bool cc_flags(struct cpu *c, uint16_t hsw)
{
    c->fpu.sw = (c->fpu.sw & ~SW_CC) | (hsw & SW_CC);
    return raise_flags(c, hsw);
}

/* Stack overflow (push onto a full register) or underflow (read of an empty one). */
static bool stack_fault(struct cpu *c, bool overflow)
{
    c->fpu.sw = (c->fpu.sw & ~SW_C1) | (overflow ? SW_C1 : 0);
    return raise_flags(c, SW_IE | SW_SF);
}

/* ST(i) as an operand; false (after signalling) when it is empty and the
 * invalid-operation exception is unmasked. */
static bool fetch(struct cpu *c, int i, long double *v)
{
    if (!st_empty(&c->fpu, i)) {
        *v = c->fpu.st[phys_of(&c->fpu, i)];
        return true;
    }
    if (!stack_fault(c, false))
        return false;
    *v = indefinite();
    return true;
}

static void store_st(struct cpu *c, int i, long double v)
{
    int p = phys_of(&c->fpu, i);
    c->fpu.st[p] = v;
    set_tag(&c->fpu, p, TAG_VALID);
}

static void st_pop(struct cpu *c)
{
    set_tag(&c->fpu, c->fpu.top, TAG_EMPTY);
    c->fpu.top = (c->fpu.top + 1) & 7;
}

static bool ie_masked(const struct cpu *c) { return c->fpu.cw & SW_IE; }

/* ST(i) and ST(j) as the operands of an operation.  An empty register is a
 * stack underflow and the operation does not run, so nothing else (say DE
 * from the other operand) is reported; the caller then delivers the masked
 * response, if the invalid-operation exception is masked. */
static bool operands(struct cpu *c, int i, int j, long double *a, long double *b)
{
    if (st_empty(&c->fpu, i) || st_empty(&c->fpu, j)) {
        stack_fault(c, false);
        return false;
    }
    *a = c->fpu.st[phys_of(&c->fpu, i)];
    *b = c->fpu.st[phys_of(&c->fpu, j)];
    return true;
}

static bool operand(struct cpu *c, int i, long double *a)
{
    long double unused;
    return operands(c, i, i, a, &unused);
}

/* The masked response to an underflow: the destination ST(i) becomes the indefinite. */
static void underflow_result(struct cpu *c, int i, bool pop_after)
{
    if (!ie_masked(c))
        return;
    store_st(c, i, indefinite());
    if (pop_after)
        st_pop(c);
}

/* A comparison with an empty operand reports "unordered" even when the
 * exception is unmasked; only the masked response pops. */
static void underflow_unordered(struct cpu *c, int pops)
{
    c->fpu.sw |= SW_C0 | SW_C2 | SW_C3;
    if (ie_masked(c))
        while (pops-- > 0)
            st_pop(c);
}

/* A push that overwrites whatever the new ST(0) held. */
static void push_unchecked(struct cpu *c, long double v)
{
    c->fpu.top = (c->fpu.top - 1) & 7;
    store_st(c, 0, v);
}

/* Push a value; a full stack signals overflow and (masked) pushes the indefinite. */
static void push_value(struct cpu *c, long double v)
{
    int p = (c->fpu.top - 1) & 7;
    if (tag_of(&c->fpu, p) != TAG_EMPTY) {
        if (!stack_fault(c, true))
            return;
        v = indefinite();
    }
    c->fpu.top = p;
    c->fpu.st[p] = v;
    set_tag(&c->fpu, p, TAG_VALID);
}

/* A load's push: C1 is cleared, unless the push overflows, which sets it. */
static void push_loaded(struct cpu *c, long double v)
{
    c->fpu.sw &= ~SW_C1;
    push_value(c, v);
}

/* A push onto a full stack: true after the overflow response (the indefinite
 * pushed if masked).  Checked before the operand is converted, so a full stack
 * reports no conversion exceptions. */
static bool push_overflows(struct cpu *c)
{
    if (st_empty(&c->fpu, 7))
        return false;
    if (stack_fault(c, true))
        push_unchecked(c, indefinite());
    return true;
}

/* A pending unmasked exception is reported at the next waiting instruction:
 * #MF in native mode (CR0.NE), otherwise through FERR# on IRQ13 as on a PC. */
static void report_pending(struct cpu *c)
{
    if (!(c->fpu.sw & SW_ES))
        return;
    if (c->cr0 & CR0_NE)
        cpu_raise_noerr(c, EXC_MF);
    machine_fpu_ferr(c->m, true);
}

/* ---- memory operands ---- */

static uint32_t ea_at(struct cpu *c, const struct insn *in, uint32_t delta)
{
    uint32_t off = insn_ea_offset(c, in) + delta;
    return in->addr32 ? off : (off & 0xffff);
}

static void mem_get(struct cpu *c, const struct insn *in, uint32_t delta, void *buf, int n)
{
    uint8_t *b = buf;
    uint32_t off = ea_at(c, in, 0);
    seg_lin(c, in->ea_seg, off, n, false);
    for (int k = 0; k < n;) {
        int chunk = n - k >= 4 ? 4 : n - k >= 2 ? 2 : 1;
        uint32_t v = vm_read(c, in->ea_seg, ea_at(c, in, delta + k), chunk);
        memcpy(b + k, &v, chunk);
        k += chunk;
    }
}

/* All n bytes are checked writable before the first one is written, so a
 * fault leaves memory and the FPU as they were. */
static void mem_put(struct cpu *c, const struct insn *in, uint32_t delta, const void *buf, int n)
{
    const uint8_t *b = buf;
    uint32_t lin = seg_lin(c, in->ea_seg, ea_at(c, in, delta), n, true);
    mem_probe_write(c, lin, n, mmu_user(c));
    for (int k = 0; k < n;) {
        int chunk = n - k >= 4 ? 4 : n - k >= 2 ? 2 : 1;
        uint32_t v = 0;
        memcpy(&v, b + k, chunk);
        vm_write(c, in->ea_seg, ea_at(c, in, delta + k), chunk, v);
        k += chunk;
    }
}

static void probe_put(struct cpu *c, const struct insn *in, int n)
{
    uint32_t lin = seg_lin(c, in->ea_seg, ea_at(c, in, 0), n, true);
    mem_probe_write(c, lin, n, mmu_user(c));
}

/* The memory operand of D8-DF /r.  kind: 0 m32real, 1 m32int, 2 m64real,
 * 3 m16int (the opcode's bits 1-2). */
static void read_operand(struct cpu *c, const struct insn *in, int kind, uint8_t raw[8])
{
    static const int size[4] = {4, 4, 8, 2};
    mem_get(c, in, 0, raw, size[kind]);
}

/* A signaling NaN in m32real/m64real form, widened bit for bit: the
 * operation itself must see it signaling, since the x87 picks the QNaN
 * operand over a SNaN one, and converting first would quiet it. */
static bool widen_snan(uint64_t bits, int mant_bits, int exp_bits, long double *out)
{
    uint64_t mant = bits & ((1ull << mant_bits) - 1);
    uint64_t exp = (bits >> mant_bits) & ((1u << exp_bits) - 1);
    bool quiet = mant >> (mant_bits - 1);
    if (exp != (1u << exp_bits) - 1 || !mant || quiet)
        return false;
    uint8_t b[16] = {0};
    uint64_t m80 = (1ull << 63) | (mant << (63 - mant_bits));
    uint16_t se = 0x7fff | ((bits >> (mant_bits + exp_bits)) ? 0x8000 : 0);
    memcpy(b, &m80, 8);
    memcpy(b + 8, &se, 2);
    memcpy(out, b, sizeof(*out));
    return true;
}

static long double convert_operand(struct cpu *c, int kind, const uint8_t raw[8], uint16_t *hsw)
{
    float f;
    double d;
    int32_t i32;
    int16_t i16;
    uint32_t u32;
    uint64_t u64;
    long double r;
    *hsw = 0;
    switch (kind) {
    case 0:
        memcpy(&u32, raw, 4);
        if (widen_snan(u32, 23, 8, &r))
            return r;
        memcpy(&f, raw, 4);
        return hx_ld_f32(f, host_cw(c), hsw);
    case 1: memcpy(&i32, raw, 4); return i32;
    case 2:
        memcpy(&u64, raw, 8);
        if (widen_snan(u64, 52, 11, &r))
            return r;
        memcpy(&d, raw, 8);
        return hx_ld_f64(d, host_cw(c), hsw);
    default: memcpy(&i16, raw, 2); return i16;
    }
}

/* ---- arithmetic ---- */

/* The eight D8-style operations by ModRM reg: a is the destination's value. */
static long double arith(struct cpu *c, int reg, long double a, long double b, uint16_t *hsw)
{
    uint16_t cw = host_cw(c);
    switch (reg) {
    case 0: return hx_add(a, b, cw, hsw);
    case 1: return hx_mul(a, b, cw, hsw);
    case 4: return hx_sub(a, b, cw, hsw);
    case 5: return hx_subr(a, b, cw, hsw);
    case 6: return hx_div(a, b, cw, hsw);
    default: return hx_divr(a, b, cw, hsw);
    }
}

static uint16_t compare_host(struct cpu *c, long double a, long double b, bool unordered_ok)
{
    uint16_t hsw = 0;
    if (unordered_ok)
        hx_ucom(a, b, host_cw(c), &hsw);
    else
        hx_com(a, b, host_cw(c), &hsw);
    return hsw;
}

/* C0/C2/C3 and the flags of a comparison; then `pops` pops, unless an
 * unmasked exception stops the instruction. */
static void compare_result(struct cpu *c, uint16_t hsw, int pops)
{
    if (cc_flags(c, hsw & ~SW_C1))
        while (pops-- > 0)
            st_pop(c);
}

static void compare(struct cpu *c, long double a, long double b, bool unordered_ok, int pops)
{
    compare_result(c, compare_host(c, a, b, unordered_ok), pops);
}

/* The flags of converting a memory operand, to be reported with those of
 * the operation (op_flags) that used it.  The hardware does both in one
 * step, where an invalid operation, a division by zero or a NaN operand
 * takes precedence over the denormal-operand exception. */
static uint16_t conversion_flags(uint16_t lsw, uint16_t op_flags, bool nan_involved)
{
    lsw &= SW_EXC;
    if (nan_involved || ((lsw | op_flags) & (SW_IE | SW_ZE)))
        lsw &= ~SW_DE;
    return lsw;
}

static bool is_compare(const struct insn *in) { return in->reg == 2 || in->reg == 3; }

/* D8 / DC / DA / DE with a memory operand: ST(0) op= mem. */
static void arith_mem(struct cpu *c, const struct insn *in)
{
    static const int kind_of[8] = {[0] = 0, [2] = 1, [4] = 2, [6] = 3};
    int kind = kind_of[in->op & 6];
    uint8_t raw[8];
    read_operand(c, in, kind, raw);
    long double a;
    if (!operand(c, 0, &a)) {
        if (is_compare(in))
            underflow_unordered(c, in->reg == 3);
        else
            underflow_result(c, 0, false);
        return;
    }
    uint16_t lsw;
    long double m = convert_operand(c, kind, raw, &lsw);
    if (is_compare(in)) {
        uint16_t hsw = compare_host(c, a, m, false);
        compare_result(c, hsw | conversion_flags(lsw, hsw, isnan(a) || isnan(m)), in->reg == 3);
        return;
    }
    uint16_t hsw = 0;
    long double r = arith(c, in->reg, a, m, &hsw);
    if (arith_flags(c, hsw | conversion_flags(lsw, hsw, isnan(r))))
        store_st(c, 0, r);
}

/* Register forms of D8 (ST(0) op= ST(i)) and DC/DE (ST(i) op= ST(0), DE pops). */
static void arith_reg(struct cpu *c, const struct insn *in)
{
    int i = in->rm;
    bool to_sti = in->op != 0xd8;
    long double st0, sti;
    if (is_compare(in)) {                       /* FCOM/FCOMP (and their DC/DE aliases) */
        int pops = in->reg == 3 || in->op == 0xde;
        if (operands(c, 0, i, &st0, &sti))
            compare(c, st0, sti, false, pops);
        else
            underflow_unordered(c, pops);
        return;
    }
    if (!operands(c, 0, i, &st0, &sti)) {
        underflow_result(c, to_sti ? i : 0, in->op == 0xde);
        return;
    }
    uint16_t hsw = 0;
    long double r;
    if (to_sti) {
        /* DC/DE name sub/div from ST(i)'s side: reg 4 is ST(i) = ST(0) - ST(i). */
        int reg = in->reg >= 4 ? in->reg ^ 1 : in->reg;
        r = arith(c, reg, sti, st0, &hsw);
    } else {
        r = arith(c, in->reg, st0, sti, &hsw);
    }
    if (!arith_flags(c, hsw))
        return;
    store_st(c, to_sti ? i : 0, r);
    if (in->op == 0xde)
        st_pop(c);
}

/* ---- environment and save images ---- */

static bool real_format(const struct cpu *c) { return !cpu_protected(c) || cpu_v86(c); }

static void put16(uint8_t *b, int off, uint16_t v) { b[off] = v; b[off + 1] = v >> 8; }
static void put32(uint8_t *b, int off, uint32_t v) { put16(b, off, v); put16(b, off + 2, v >> 16); }
static uint16_t get16(const uint8_t *b, int off) { return b[off] | (b[off + 1] << 8); }
static uint32_t get32(const uint8_t *b, int off) { return get16(b, off) | ((uint32_t)get16(b, off + 2) << 16); }

/* Build the 14- or 28-byte environment; returns its size. */
static int env_image(struct cpu *c, bool op32, uint8_t *b)
{
    struct fpu *f = &c->fpu;
    uint16_t sw = fpu_status_word(c), tw = full_tag_word(f);
    if (op32) {
        /* The upper halves of the 32-bit slots are reserved; the hardware stores ones there. */
        memset(b, 0xff, 28);
        put16(b, 0, f->cw);
        put16(b, 4, sw);
        put16(b, 8, tw);
        if (real_format(c)) {
            uint32_t ip = f->fip + ((uint32_t)f->fcs << 4), dp = f->fdp + ((uint32_t)f->fds << 4);
            put16(b, 12, ip);
            put32(b, 16, ((ip >> 16) << 12) | (f->fop & 0x7ff));
            put16(b, 20, dp);
            put32(b, 24, (dp >> 16) << 12);
        } else {
            put32(b, 12, f->fip);
            put32(b, 16, f->fcs | ((uint32_t)(f->fop & 0x7ff) << 16));
            put32(b, 20, f->fdp);
            put16(b, 24, f->fds);
        }
        return 28;
    }
    put16(b, 0, f->cw);
    put16(b, 2, sw);
    put16(b, 4, tw);
    if (real_format(c)) {
        uint32_t ip = f->fip + ((uint32_t)f->fcs << 4), dp = f->fdp + ((uint32_t)f->fds << 4);
        put16(b, 6, ip);
        put16(b, 8, (((ip >> 16) & 0xf) << 12) | (f->fop & 0x7ff));
        put16(b, 10, dp);
        put16(b, 12, ((dp >> 16) & 0xf) << 12);
    } else {
        put16(b, 6, f->fip);
        put16(b, 8, f->fcs);
        put16(b, 10, f->fdp);
        put16(b, 12, f->fds);
    }
    return 14;
}

/* Control and status words and the registers in use (bit p: physical
 * register p), as FLDENV, FRSTOR and FXRSTOR load them.  Only "empty or not"
 * survives a load; the unit recomputes the other tags from the contents. */
static void load_control(struct cpu *c, uint16_t cw, uint16_t sw, uint8_t in_use)
{
    struct fpu *f = &c->fpu;
    f->cw = cw_loaded(cw);
    f->sw = sw & ~SW_TOP;
    f->top = (sw >> 11) & 7;
    f->tw = 0;
    for (int p = 0; p < 8; p++)
        set_tag(f, p, (in_use >> p) & 1 ? TAG_VALID : TAG_EMPTY);
    update_es(c);
    if (!(f->sw & SW_ES))
        machine_fpu_ferr(c->m, false);
}

static void load_env_image(struct cpu *c, bool op32, const uint8_t *b)
{
    struct fpu *f = &c->fpu;
    uint16_t cw, sw, tw;
    if (op32) {
        cw = get16(b, 0); sw = get16(b, 4); tw = get16(b, 8);
        if (real_format(c)) {
            f->fcs = f->fds = 0;
            f->fip = get16(b, 12) | ((get32(b, 16) >> 12) << 16);
            f->fop = get32(b, 16) & 0x7ff;
            f->fdp = get16(b, 20) | ((get32(b, 24) >> 12) << 16);
        } else {
            f->fip = get32(b, 12);
            f->fcs = get16(b, 16);
            f->fop = (get32(b, 16) >> 16) & 0x7ff;
            f->fdp = get32(b, 20);
            f->fds = get16(b, 24);
        }
    } else {
        cw = get16(b, 0); sw = get16(b, 2); tw = get16(b, 4);
        if (real_format(c)) {
            f->fcs = f->fds = 0;
            f->fip = get16(b, 6) | ((uint32_t)(get16(b, 8) >> 12) << 16);
            f->fop = get16(b, 8) & 0x7ff;
            f->fdp = get16(b, 10) | ((uint32_t)(get16(b, 12) >> 12) << 16);
        } else {
            f->fip = get16(b, 6);
            f->fcs = get16(b, 8);
            f->fdp = get16(b, 10);
            f->fds = get16(b, 12);
        }
    }
    uint8_t in_use = 0;
    for (int p = 0; p < 8; p++)
        if (((tw >> (2 * p)) & 3) != TAG_EMPTY)
            in_use |= 1u << p;
    load_control(c, cw, sw, in_use);
}

static void fnstenv(struct cpu *c, const struct insn *in)
{
    uint8_t b[28];
    int n = env_image(c, in->op32, b);
    mem_put(c, in, 0, b, n);
    c->fpu.cw |= SW_EXC;                /* FSTENV masks every exception afterwards */
    update_es(c);
}

static void fldenv(struct cpu *c, const struct insn *in)
{
    uint8_t b[28];
    mem_get(c, in, 0, b, in->op32 ? 28 : 14);
    load_env_image(c, in->op32, b);
}

static void fnsave(struct cpu *c, const struct insn *in)
{
    uint8_t b[108];
    int n = env_image(c, in->op32, b);
    for (int i = 0; i < 8; i++)
        memcpy(b + n + 10 * i, &c->fpu.st[phys_of(&c->fpu, i)], 10);
    mem_put(c, in, 0, b, n + 80);
    fpu_reset_init(c);
}

static void frstor(struct cpu *c, const struct insn *in)
{
    uint8_t b[108];
    int n = in->op32 ? 28 : 14;
    mem_get(c, in, 0, b, n + 80);
    load_env_image(c, in->op32, b);
    for (int i = 0; i < 8; i++) {
        long double v = 0;
        memcpy(&v, b + n + 10 * i, 10);
        c->fpu.st[phys_of(&c->fpu, i)] = v;
    }
}

/* ---- FXSAVE / FXRSTOR ---- */

/* The 512-byte image (legacy layout): 32 bytes of control state, ST0-7 in
 * 16-byte slots, XMM0-7; the rest is reserved or free for software, and
 * neither instruction touches it. */
enum { FX_SIZE = 512, FX_USED = 288, FX_REGS = 32, FX_XMM = 160 };
#define FX_MXCSR 0x1f80u            /* no SSE: MXCSR stays at its reset value */

/* Abridged tag word: bit p set when physical register p is in use. */
static uint8_t abridged_tags(const struct fpu *f)
{
    uint8_t t = 0;
    for (int p = 0; p < 8; p++)
        if (tag_of(f, p) != TAG_EMPTY)
            t |= 1u << p;
    return t;
}

static void fx_image(struct cpu *c, uint8_t *b)
{
    struct fpu *f = &c->fpu;
    memset(b, 0, FX_USED);
    put16(b, 0, f->cw);
    put16(b, 2, fpu_status_word(c));
    b[4] = abridged_tags(f);
    put16(b, 6, f->fop & 0x7ff);
    put32(b, 8, f->fip);
    put16(b, 12, f->fcs);
    put32(b, 16, f->fdp);
    put16(b, 20, f->fds);
    put32(b, 24, FX_MXCSR);
    put32(b, 28, 0);                    /* MXCSR_MASK 0: "the default mask", there being no SSE */
    for (int i = 0; i < 8; i++)
        memcpy(b + FX_REGS + 16 * i, &f->st[phys_of(f, i)], 10);
    memcpy(b + FX_XMM, c->sse.xmm, sizeof(c->sse.xmm));
}

static void load_fx_image(struct cpu *c, const uint8_t *b)
{
    struct fpu *f = &c->fpu;
    load_control(c, get16(b, 0), get16(b, 2), b[4]);
    f->fop = get16(b, 6) & 0x7ff;
    f->fip = get32(b, 8);
    f->fcs = get16(b, 12);
    f->fdp = get32(b, 16);
    f->fds = get16(b, 20);
    for (int i = 0; i < 8; i++) {
        long double v = 0;
        memcpy(&v, b + FX_REGS + 16 * i, 10);
        f->st[phys_of(f, i)] = v;
    }
    memcpy(c->sse.xmm, b + FX_XMM, sizeof(c->sse.xmm));
}

/* 0F AE /0 FXSAVE, /1 FXRSTOR.  The other members of the group are SSE
 * instructions this CPU does not have.  Neither waits for a pending x87
 * exception, and neither changes the x87 pointers. */
static void fx_group(struct cpu *c, const struct insn *in)
{
    if (!insn_is_mem(in) || in->reg > 1)
        cpu_raise_noerr(c, EXC_UD);
    if (c->cr0 & (CR0_EM | CR0_TS))
        cpu_raise_noerr(c, EXC_NM);
    bool save = in->reg == 0;
    uint32_t lin = seg_lin(c, in->ea_seg, ea_at(c, in, 0), FX_SIZE, save);
    if (lin & 15)
        cpu_raise(c, EXC_GP, 0);
    uint8_t b[FX_USED];
    if (save) {
        fx_image(c, b);
        mem_put(c, in, 0, b, FX_USED);
    } else {
        mem_get(c, in, 0, b, FX_USED);
        load_fx_image(c, b);
    }
}

/* ---- SSE data moves ---- */

/*
 * The 128-bit and scalar register moves of SSE/SSE2 (MOVUPS/MOVUPD,
 * MOVSS/MOVSD, MOVAPS/MOVAPD, MOVDQA/MOVDQU) on the XMM registers FXSAVE
 * keeps.  CPUID still announces no SSE: there is no SSE arithmetic, and an
 * OS must not think there is.  Code that moves XMM data regardless
 * (kvm-unit-tests' emulator test: MMIO operands, alignment and page-split
 * faults) gets the architectural behaviour.  With CR4.OSFXSR clear, or
 * CR0.EM set, they are #UD, as on a part that has them.
 */
void fpu_sse_move(struct cpu *c, const struct insn *in)
{
    int op = in->op & 0xff;
    bool p66 = in->prefixes & PFX_OPSIZE, f3 = in->prefixes & PFX_REP, f2 = in->prefixes & PFX_REPNE;
    int size = 16;
    bool aligned = false;
    switch (op) {
    case 0x10: case 0x11:                  /* MOVUPS/MOVUPD, MOVSS (F3), MOVSD (F2) */
        size = f3 ? 4 : f2 ? 8 : 16;
        break;
    case 0x28: case 0x29:                  /* MOVAPS, MOVAPD (66) */
        aligned = true;
        if (f3 || f2)
            goto undefined;
        break;
    case 0x6f: case 0x7f:                  /* MOVDQA (66), MOVDQU (F3); no prefix is MMX */
        if (p66 == f3 || f2)
            goto undefined;
        aligned = p66;
        break;
    default:
        goto undefined;
    }
    if ((c->cr0 & CR0_EM) || !(c->cr4 & CR4_OSFXSR))
        cpu_raise_noerr(c, EXC_UD);
    if (c->cr0 & CR0_TS)
        cpu_raise_noerr(c, EXC_NM);
    bool store = op == 0x11 || op == 0x29 || op == 0x7f;
    uint8_t *reg = c->sse.xmm[in->reg & 7];
    if (!insn_is_mem(in)) {
        uint8_t *other = c->sse.xmm[in->rm & 7];
        uint8_t *dst = store ? other : reg, *src = store ? reg : other;
        memmove(dst, src, size);           /* a scalar register move keeps the upper part */
        return;
    }
    uint32_t lin = seg_lin(c, in->ea_seg, ea_at(c, in, 0), size, store);
    if (aligned && (lin & 15))
        cpu_raise(c, EXC_GP, 0);
    if (store) {
        mem_put(c, in, 0, reg, size);
    } else {
        uint8_t b[16] = { 0 };
        mem_get(c, in, 0, b, size);
        memcpy(reg, b, 16);                /* a scalar load zeroes the upper part */
    }
    return;
undefined:
    trace_unimplemented(c, in, "undefined opcode");
    cpu_raise_noerr(c, EXC_UD);
}

/* ---- the opcode groups ---- */

static void load_constant(struct cpu *c, int which)
{
    static long double (*const fn[8])(uint16_t, uint16_t *) = {
        hx_ld1, hx_ldl2t, hx_ldl2e, hx_ldpi, hx_ldlg2, hx_ldln2, hx_ldz, NULL,
    };
    if (!fn[which])
        cpu_raise_noerr(c, EXC_UD);           /* D9 EF is reserved */
    if (push_overflows(c))
        return;
    uint16_t hsw = 0;
    long double v = fn[which](host_cw(c), &hsw);
    push_loaded(c, v);
}

static void fxam(struct cpu *c)
{
    struct fpu *f = &c->fpu;
    uint16_t cc;
    if (st_empty(f, 0)) {
        cc = SW_C3 | SW_C0;
        uint8_t b[16];
        memcpy(b, &f->st[phys_of(f, 0)], 16);
        if (b[9] & 0x80)
            cc |= SW_C1;
    } else {
        uint16_t hsw = 0;
        hx_xam(f->st[phys_of(f, 0)], host_cw(c), &hsw);
        cc = hsw & SW_CC;
    }
    f->sw = (f->sw & ~SW_CC) | cc;
}

/* ST(0) replaced by f(ST(0)), C1 from the host, C2 too for the partial-range ones. */
static void unary(struct cpu *c, long double (*fn)(long double, uint16_t, uint16_t *), bool range_c2)
{
    long double a;
    if (!operand(c, 0, &a)) {
        underflow_result(c, 0, false);
        return;
    }
    uint16_t hsw = 0;
    long double r = fn(a, host_cw(c), &hsw);
    if (range_c2)
        c->fpu.sw = (c->fpu.sw & ~SW_C2) | (hsw & SW_C2);
    if (arith_flags(c, hsw))
        store_st(c, 0, r);
}

static bool out_of_trig_range(long double a)
{
    return fabsl(a) >= 0x1p63L && !isinf(a);
}

/* FPREM/FPREM1: C2 says "incomplete", C0/C3/C1 carry quotient bits.  A NaN
 * result (NaN or invalid operands) computes no quotient: C0/C3 keep their
 * values, which the host's status word cannot tell us (C1/C2 are cleared
 * before the operation starts). */
static void remainder_result(struct cpu *c, long double r, uint16_t hsw)
{
    uint16_t cc = isnan(r) ? (c->fpu.sw & (SW_C0 | SW_C3)) : (hsw & SW_CC);
    if (!raise_flags(c, hsw))
        return;
    c->fpu.sw = (c->fpu.sw & ~SW_CC) | cc;
    store_st(c, 0, r);
}

/* The operand of FPTAN, FSINCOS and FXTRACT, which replace ST(0) and push
 * a second result: an empty ST(0) is checked before a full stack, and the
 * masked response to either leaves two indefinites. */
static bool split_operand(struct cpu *c, long double *a)
{
    if (st_empty(&c->fpu, 0))
        stack_fault(c, false);
    else if (!st_empty(&c->fpu, 7))
        stack_fault(c, true);
    else {
        *a = c->fpu.st[phys_of(&c->fpu, 0)];
        return true;
    }
    if (ie_masked(c)) {
        store_st(c, 0, indefinite());
        push_unchecked(c, indefinite());
    }
    return false;
}

/* FST/FSTP ST(i) and the undocumented FSTP aliases, which Intel parts run as FSTP. */
static void fst_reg(struct cpu *c, int i, bool pop_after)
{
    long double a;
    if (!fetch(c, 0, &a))
        return;
    store_st(c, i, a);
    c->fpu.sw &= ~SW_C1;
    if (pop_after)
        st_pop(c);
}

static void d9_reg(struct cpu *c, const struct insn *in)
{
    struct fpu *f = &c->fpu;
    long double a, b, r0, r1;
    uint16_t hsw = 0;
    switch (in->modrm) {
    case 0xc0 ... 0xc7:                         /* FLD ST(i) */
        if (st_empty(f, in->rm)) {
            /* The underflow response is the whole story: no overflow check, C1 stays 0. */
            if (stack_fault(c, false))
                push_unchecked(c, indefinite());
            return;
        }
        if (!push_overflows(c))
            push_loaded(c, f->st[phys_of(f, in->rm)]);
        return;
    case 0xc8 ... 0xcf: {                       /* FXCH */
        bool e0 = st_empty(f, 0), ei = st_empty(f, in->rm);
        if ((e0 || ei) && !stack_fault(c, false))
            return;
        a = e0 ? indefinite() : f->st[phys_of(f, 0)];
        b = ei ? indefinite() : f->st[phys_of(f, in->rm)];
        store_st(c, 0, b);
        store_st(c, in->rm, a);
        if (!e0 && !ei)
            f->sw &= ~SW_C1;
        return;
    }
    case 0xd0:                                  /* FNOP */
        return;
    case 0xd8 ... 0xdf:                         /* FSTP1 (undocumented alias of FSTP ST(i)) */
        fst_reg(c, in->rm, true);
        return;
    case 0xe0: case 0xe1:                       /* FCHS, FABS */
        if (!operand(c, 0, &a)) {
            underflow_result(c, 0, false);
            return;
        }
        store_st(c, 0, in->modrm == 0xe0 ? -a : fabsl(a));
        f->sw &= ~SW_C1;
        return;
    case 0xe4:                                  /* FTST */
        if (!operand(c, 0, &a)) {
            underflow_unordered(c, 0);
            return;
        }
        hx_tst(a, host_cw(c), &hsw);
        cc_flags(c, (hsw & ~SW_C1));
        return;
    case 0xe5:
        fxam(c);
        return;
    case 0xe8 ... 0xee:
        load_constant(c, in->modrm - 0xe8);
        return;
    case 0xf0: unary(c, hx_f2xm1, false); return;
    case 0xf1: case 0xf3: case 0xf9:            /* FYL2X, FPATAN, FYL2XP1 */
        if (!operands(c, 0, 1, &a, &b)) {
            underflow_result(c, 1, true);
            return;
        }
        r0 = in->modrm == 0xf1 ? hx_yl2x(a, b, host_cw(c), &hsw)
           : in->modrm == 0xf3 ? hx_patan(a, b, host_cw(c), &hsw)
                               : hx_yl2xp1(a, b, host_cw(c), &hsw);
        if (arith_flags(c, hsw)) {
            store_st(c, 1, r0);
            st_pop(c);
        }
        return;
    case 0xf2: case 0xfb:                       /* FPTAN, FSINCOS */
        f->sw &= ~(SW_C1 | SW_C2);
        if (!split_operand(c, &a))
            return;
        if (out_of_trig_range(a)) {
            f->sw |= SW_C2;
            return;
        }
        if (in->modrm == 0xf2)
            hx_tan(a, &r0, &r1, host_cw(c), &hsw);
        else
            hx_sincos(a, &r0, &r1, host_cw(c), &hsw);
        if (!arith_flags(c, hsw))
            return;
        store_st(c, 0, r1);
        push_value(c, r0);
        return;
    case 0xf4:                                  /* FXTRACT */
        if (!split_operand(c, &a))
            return;
        hx_xtract(a, &r0, &r1, host_cw(c), &hsw);
        if (!arith_flags(c, hsw))
            return;
        store_st(c, 0, r1);
        push_value(c, r0);
        return;
    case 0xf5: case 0xf8:                       /* FPREM1, FPREM */
        f->sw &= ~(SW_C1 | SW_C2);
        if (!operands(c, 0, 1, &a, &b)) {
            underflow_result(c, 0, false);
            return;
        }
        r0 = in->modrm == 0xf8 ? hx_prem(a, b, host_cw(c), &hsw) : hx_prem1(a, b, host_cw(c), &hsw);
        remainder_result(c, r0, hsw);
        return;
    case 0xf6:                                  /* FDECSTP */
        f->top = (f->top - 1) & 7;
        f->sw &= ~SW_C1;
        return;
    case 0xf7:                                  /* FINCSTP */
        f->top = (f->top + 1) & 7;
        f->sw &= ~SW_C1;
        return;
    case 0xfa: unary(c, hx_sqrt, false); return;
    case 0xfc: unary(c, hx_rndint, false); return;
    case 0xfd:                                  /* FSCALE */
        if (!operands(c, 0, 1, &a, &b)) {
            underflow_result(c, 0, false);
            return;
        }
        r0 = hx_scale(a, b, host_cw(c), &hsw);
        if (arith_flags(c, hsw))
            store_st(c, 0, r0);
        return;
    case 0xfe: case 0xff:                       /* FSIN, FCOS */
        f->sw &= ~(SW_C1 | SW_C2);
        if (!operand(c, 0, &a)) {
            underflow_result(c, 0, false);
            return;
        }
        if (out_of_trig_range(a)) {
            f->sw |= SW_C2;
            return;
        }
        unary(c, in->modrm == 0xfe ? hx_sin : hx_cos, false);
        return;
    }
    raise_ud_unimplemented(c, in, "x87 D9 register form");
}

static void d9_mem(struct cpu *c, const struct insn *in)
{
    uint16_t hsw = 0;
    long double a;
    switch (in->reg) {
    case 0: {                                   /* FLD m32real */
        float m;
        mem_get(c, in, 0, &m, 4);
        if (push_overflows(c))
            return;
        a = hx_ld_f32(m, host_cw(c), &hsw);
        if (arith_flags(c, hsw & ~SW_C1))
            push_value(c, a);
        return;
    }
    case 2: case 3: {                           /* FST/FSTP m32real */
        probe_put(c, in, 4);
        if (!fetch(c, 0, &a))
            return;
        float m = hx_st_f32(a, host_cw(c), &hsw);
        if (!store_flags(c, hsw))
            return;
        mem_put(c, in, 0, &m, 4);
        if (in->reg == 3)
            st_pop(c);
        return;
    }
    case 4: fldenv(c, in); return;
    case 5: {                                   /* FLDCW */
        uint16_t cw;
        mem_get(c, in, 0, &cw, 2);
        c->fpu.cw = cw_loaded(cw);
        update_es(c);
        return;
    }
    case 6: fnstenv(c, in); return;
    case 7: mem_put(c, in, 0, &c->fpu.cw, 2); return;
    }
    raise_ud_unimplemented(c, in, "x87 D9 /1");
}

static bool fcmov_condition(const struct cpu *c, int op, int reg)
{
    uint32_t fl = c->eflags;
    bool t;
    switch (reg & 3) {
    case 0: t = fl & FL_CF; break;
    case 1: t = fl & FL_ZF; break;
    case 2: t = fl & (FL_CF | FL_ZF); break;
    default: t = fl & FL_PF; break;
    }
    return op == 0xda ? t : !t;
}

/* FCMOVcc leaves C1 alone unless a register is empty; then the masked
 * response writes the indefinite to ST(0) whatever the condition. */
static void fcmov(struct cpu *c, const struct insn *in)
{
    long double st0, v;
    if (!operands(c, 0, in->rm, &st0, &v)) {
        underflow_result(c, 0, false);
        return;
    }
    if (fcmov_condition(c, in->op, in->reg))
        store_st(c, 0, v);
}

/* FCOMI/FUCOMI(P): the comparison lands in ZF, PF and CF, even when an
 * unmasked invalid operation (a NaN, an empty register: "unordered") stops
 * the pop.  C1 is cleared, as Intel documents it. */
static void fcomi(struct cpu *c, const struct insn *in, bool unordered_ok, bool pop_after)
{
    long double a, b;
    uint16_t cc = SW_C0 | SW_C2 | SW_C3;
    c->fpu.sw &= ~SW_C1;
    if (operands(c, 0, in->rm, &a, &b)) {
        cc = compare_host(c, a, b, unordered_ok);
        pop_after &= raise_flags(c, cc);
    } else {
        pop_after &= ie_masked(c);
    }
    uint32_t fl = c->eflags & ~(FL_ZF | FL_PF | FL_CF | FL_OF | FL_SF | FL_AF);
    if (cc & SW_C3) fl |= FL_ZF;
    if (cc & SW_C2) fl |= FL_PF;
    if (cc & SW_C0) fl |= FL_CF;
    c->eflags = fl;
    if (pop_after)
        st_pop(c);
}

static void fst_int(struct cpu *c, const struct insn *in, int size, bool pop_after)
{
    long double a;
    probe_put(c, in, size);
    if (!fetch(c, 0, &a))
        return;
    uint16_t hsw = 0;
    uint8_t buf[8];
    if (size == 2) { int16_t v = hx_st_i16(a, host_cw_masked(c), &hsw); memcpy(buf, &v, 2); }
    else if (size == 4) { int32_t v = hx_st_i32(a, host_cw_masked(c), &hsw); memcpy(buf, &v, 4); }
    else { int64_t v = hx_st_i64(a, host_cw_masked(c), &hsw); memcpy(buf, &v, 8); }
    if (!arith_flags(c, hsw))
        return;
    mem_put(c, in, 0, buf, size);
    if (pop_after)
        st_pop(c);
}

static void fld_int(struct cpu *c, const struct insn *in, int size)
{
    int64_t v = 0;
    if (size == 2) { int16_t x; mem_get(c, in, 0, &x, 2); v = x; }
    else if (size == 4) { int32_t x; mem_get(c, in, 0, &x, 4); v = x; }
    else mem_get(c, in, 0, &v, 8);
    if (!push_overflows(c))
        push_loaded(c, (long double)v);
}

static void db_group(struct cpu *c, const struct insn *in)
{
    long double a;
    if (insn_is_mem(in)) {
        switch (in->reg) {
        case 0: fld_int(c, in, 4); return;
        case 2: fst_int(c, in, 4, false); return;
        case 3: fst_int(c, in, 4, true); return;
        case 5:                                 /* FLD m80real: no conversion, no exception */
            memset(&a, 0, sizeof(a));
            mem_get(c, in, 0, &a, 10);
            if (!push_overflows(c))
                push_loaded(c, a);
            return;
        case 7:                                 /* FSTP m80real */
            probe_put(c, in, 10);
            if (!fetch(c, 0, &a))
                return;
            mem_put(c, in, 0, &a, 10);
            c->fpu.sw &= ~SW_C1;
            st_pop(c);
            return;
        }
        raise_ud_unimplemented(c, in, "x87 DB memory form");
    }
    switch (in->modrm) {
    case 0xc0 ... 0xdf: fcmov(c, in); return;
    case 0xe0: case 0xe1: case 0xe4: return;    /* FENI, FDISI, FSETPM: no-ops since the 387 */
    case 0xe2:                                  /* FNCLEX */
        c->fpu.sw &= ~(SW_EXC | SW_SF | SW_ES | SW_B);
        machine_fpu_ferr(c->m, false);
        return;
    case 0xe3: fpu_reset_init(c); return;       /* FNINIT */
    case 0xe8 ... 0xef: fcomi(c, in, true, false); return;
    case 0xf0 ... 0xf7: fcomi(c, in, false, false); return;
    }
    raise_ud_unimplemented(c, in, "x87 DB register form");
}

/* FFREE/FFREEP: Intel leaves C1 undefined; the parts we can compare with clear it. */
static void ffree(struct cpu *c, int i, bool pop_after)
{
    set_tag(&c->fpu, phys_of(&c->fpu, i), TAG_EMPTY);
    c->fpu.sw &= ~SW_C1;
    if (pop_after)
        st_pop(c);
}

static void dd_group(struct cpu *c, const struct insn *in)
{
    long double a;
    uint16_t hsw = 0;
    if (insn_is_mem(in)) {
        switch (in->reg) {
        case 0: {                               /* FLD m64real */
            double m;
            mem_get(c, in, 0, &m, 8);
            if (push_overflows(c))
                return;
            a = hx_ld_f64(m, host_cw(c), &hsw);
            if (arith_flags(c, hsw & ~SW_C1))
                push_value(c, a);
            return;
        }
        case 2: case 3: {                       /* FST/FSTP m64real */
            probe_put(c, in, 8);
            if (!fetch(c, 0, &a))
                return;
            double m = hx_st_f64(a, host_cw(c), &hsw);
            if (!store_flags(c, hsw))
                return;
            mem_put(c, in, 0, &m, 8);
            if (in->reg == 3)
                st_pop(c);
            return;
        }
        case 4: frstor(c, in); return;
        case 6: fnsave(c, in); return;
        case 7: {                               /* FNSTSW m16 */
            uint16_t sw = fpu_status_word(c);
            mem_put(c, in, 0, &sw, 2);
            return;
        }
        }
        raise_ud_unimplemented(c, in, "x87 DD memory form");
    }
    switch (in->reg) {
    case 0:                                     /* FFREE */
        ffree(c, in->rm, false);
        return;
    case 1:                                     /* FXCH4 alias */
        d9_reg(c, &(struct insn){.op = 0xd9, .modrm = 0xc8 | in->rm, .rm = in->rm, .mod = 3, .has_modrm = true});
        return;
    case 2: case 3:                             /* FST/FSTP ST(i) */
        fst_reg(c, in->rm, in->reg == 3);
        return;
    case 4: case 5: {                           /* FUCOM/FUCOMP */
        long double b;
        if (operands(c, 0, in->rm, &a, &b))
            compare(c, a, b, true, in->reg == 5);
        else
            underflow_unordered(c, in->reg == 5);
        return;
    }
    }
    raise_ud_unimplemented(c, in, "x87 DD register form");
}

static void da_de_reg_special(struct cpu *c, const struct insn *in)
{
    long double a, b;
    if (operands(c, 0, 1, &a, &b))
        compare(c, a, b, in->op == 0xda, 2); /* DA E9 FUCOMPP, DE D9 FCOMPP */
    else
        underflow_unordered(c, 2);
}

static void df_group(struct cpu *c, const struct insn *in)
{
    long double a;
    if (insn_is_mem(in)) {
        uint16_t hsw = 0;
        switch (in->reg) {
        case 0: fld_int(c, in, 2); return;
        case 2: fst_int(c, in, 2, false); return;
        case 3: fst_int(c, in, 2, true); return;
        case 4: {                               /* FBLD */
            struct bcd m;
            mem_get(c, in, 0, &m, 10);
            if (push_overflows(c))
                return;
            a = hx_ld_bcd(m, host_cw(c), &hsw);
            push_loaded(c, a);
            return;
        }
        case 5: fld_int(c, in, 8); return;
        case 6: {                               /* FBSTP */
            probe_put(c, in, 10);
            if (!fetch(c, 0, &a))
                return;
            struct bcd m = hx_st_bcd(a, host_cw_masked(c), &hsw);
            if (!arith_flags(c, hsw))
                return;
            mem_put(c, in, 0, &m, 10);
            st_pop(c);
            return;
        }
        case 7: fst_int(c, in, 8, true); return;
        }
        raise_ud_unimplemented(c, in, "x87 DF memory form");
    }
    switch (in->reg) {
    case 0:                                     /* FFREEP */
        ffree(c, in->rm, true);
        return;
    case 1:                                     /* FXCH7 alias */
        d9_reg(c, &(struct insn){.op = 0xd9, .modrm = 0xc8 | in->rm, .rm = in->rm, .mod = 3, .has_modrm = true});
        return;
    case 2: case 3:                             /* FSTP8/FSTP9 aliases */
        fst_reg(c, in->rm, true);
        return;
    case 4:
        if (in->modrm == 0xe0) {                /* FNSTSW AX */
            cpu_set_r16(c, R_EAX, fpu_status_word(c));
            return;
        }
        break;
    case 5: fcomi(c, in, true, true); return;
    case 6: fcomi(c, in, false, true); return;
    }
    raise_ud_unimplemented(c, in, "x87 DF register form");
}

/* ---- entry points ---- */

/* FNINIT, FNCLEX, FNSTENV, FNSTCW, FNSAVE, FNSTSW and the 287 leftovers do
 * not report pending exceptions; neither do they change FIP/FOP. */
static bool is_control(const struct insn *in)
{
    bool mem = insn_is_mem(in);
    switch (in->op) {
    case 0xd9: return mem && in->reg >= 4;
    case 0xdb: return !mem && (in->modrm >= 0xe0 && in->modrm <= 0xe4);
    case 0xdd: return mem && in->reg >= 4;
    case 0xdf: return in->modrm == 0xe0;
    }
    return false;
}

static bool is_nowait(const struct insn *in)
{
    bool mem = insn_is_mem(in);
    switch (in->op) {
    case 0xd9: return mem && (in->reg == 6 || in->reg == 7);
    case 0xdb: return !mem && (in->modrm >= 0xe0 && in->modrm <= 0xe4);
    case 0xdd: return mem && (in->reg == 6 || in->reg == 7);
    case 0xdf: return in->modrm == 0xe0;
    }
    return false;
}

void fpu_reset_init(struct cpu *c)
{
    struct fpu *f = &c->fpu;
    f->cw = 0x037f;
    f->sw = 0;
    f->tw = 0xffff;
    f->top = 0;
    f->fip = f->fdp = 0;
    f->fcs = f->fds = 0;
    f->fop = 0;
    machine_fpu_ferr(c->m, false);
}

void fpu_reset(struct cpu *c)
{
    /* RESET (not FNINIT): control word 0x0040, every register +0.0 and tagged valid. */
    struct fpu *f = &c->fpu;
    memset(f, 0, sizeof(*f));
    f->cw = 0x0040;
    f->tw = 0x5555;
}

void fpu_exec(struct cpu *c, const struct insn *in)
{
    if (in->op == 0x1ae) {
        fx_group(c, in);
        return;
    }
    if (c->cr0 & (CR0_EM | CR0_TS))
        cpu_raise_noerr(c, EXC_NM);
    if (!is_nowait(in))
        report_pending(c);
    if (!is_control(in)) {
        struct fpu *f = &c->fpu;
        f->fip = c->eip_start;
        f->fcs = c->seg[SEG_CS].sel;
        f->fop = ((in->op & 7) << 8) | in->modrm;
        if (insn_is_mem(in)) {
            f->fdp = insn_ea_offset(c, in);
            f->fds = c->seg[in->ea_seg].sel;
        }
    }
    bool mem = insn_is_mem(in);
    switch (in->op) {
    case 0xd8:
        if (mem)
            arith_mem(c, in);
        else
            arith_reg(c, in);
        return;
    case 0xd9:
        if (mem)
            d9_mem(c, in);
        else
            d9_reg(c, in);
        return;
    case 0xda:
        if (mem)
            arith_mem(c, in);
        else if (in->modrm == 0xe9)
            da_de_reg_special(c, in);
        else if (in->modrm < 0xe0)
            fcmov(c, in);
        else
            raise_ud_unimplemented(c, in, "x87 DA register form");
        return;
    case 0xdb: db_group(c, in); return;
    case 0xdc:
        if (mem)
            arith_mem(c, in);
        else
            arith_reg(c, in);
        return;
    case 0xdd: dd_group(c, in); return;
    case 0xde:
        if (mem)
            arith_mem(c, in);
        else if (in->reg == 3 && in->modrm != 0xd9)
            raise_ud_unimplemented(c, in, "x87 DE D8-DF");
        else if (in->modrm == 0xd9)
            da_de_reg_special(c, in);
        else
            arith_reg(c, in);
        return;
    case 0xdf: df_group(c, in); return;
    }
}

void fpu_wait(struct cpu *c)
{
    if ((c->cr0 & (CR0_MP | CR0_TS)) == (CR0_MP | CR0_TS))
        cpu_raise_noerr(c, EXC_NM);
    report_pending(c);
}
