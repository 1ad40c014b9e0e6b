/*
 * The host CPU as the oracle for monitor/alu.c: each host_* function runs
 * the same instruction natively (x86-64, same operand size) and mirrors the
 * signature of its alu_* counterpart, so a test can call both alike.
 *
 * Only the arithmetic flags travel between the guest EFLAGS word and the
 * host: the other host bits (DF, AC, TF...) must keep their ABI values.
 * Header-only and static so the test links against the whole library too.
 */
#ifndef RV_TEST_ALU_HOST_H
#define RV_TEST_ALU_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "monitor/alu.h"
#include "monitor/cpu.h"

/* The asm pushes below the stack pointer: step over the red zone first, as
 * the compiler may keep live data there.  Operands must be registers (an
 * rsp-relative memory operand would be off by the adjustment). */
#define HOST_PRE "lea -128(%%rsp), %%rsp\n\tpushq %[f]\n\tpopfq\n\t"
#define HOST_POST "\n\tpushfq\n\tpopq %[f]\n\tlea 128(%%rsp), %%rsp"

static inline uint64_t host_flags_in(uint32_t fl) { return 0x2 | (fl & FL_ARITH); }
static inline uint32_t host_flags_out(uint32_t fl, uint64_t f) { return (fl & ~FL_ARITH) | ((uint32_t)f & FL_ARITH); }

/* "insn src, dst" with dst in/out: two-operand ALU ops, IMUL r,r/m, BSF/BSR, BT*. */
#define DEF_RR(name, insn, T)                                                         \
    static inline T name(uint64_t *f, T a, T b)                                       \
    {                                                                                 \
        __asm__ volatile(HOST_PRE insn " %[b], %[a]" HOST_POST                        \
                         : [a] "+r"(a), [f] "+r"(*f) : [b] "r"(b) : "cc");            \
        return a;                                                                     \
    }
#define DEF_R(name, insn, T)                                                          \
    static inline T name(uint64_t *f, T a)                                            \
    {                                                                                 \
        __asm__ volatile(HOST_PRE insn " %[a]" HOST_POST                              \
                         : [a] "+r"(a), [f] "+r"(*f) : : "cc");                       \
        return a;                                                                     \
    }
#define DEF_SHIFT(name, insn, T)                                                      \
    static inline T name(uint64_t *f, T a, uint8_t count)                             \
    {                                                                                 \
        __asm__ volatile(HOST_PRE insn " %%cl, %[a]" HOST_POST                        \
                         : [a] "+r"(a), [f] "+r"(*f) : "c"(count) : "cc");            \
        return a;                                                                     \
    }
#define DEF_DSHIFT(name, insn, T)                                                     \
    static inline T name(uint64_t *f, T d, T s, uint8_t count)                        \
    {                                                                                 \
        __asm__ volatile(HOST_PRE insn " %%cl, %[s], %[d]" HOST_POST                  \
                         : [d] "+r"(d), [f] "+r"(*f) : [s] "r"(s), "c"(count) : "cc"); \
        return d;                                                                     \
    }
/* One-operand MUL/IMUL/DIV/IDIV on (E)DX:(E)AX. */
#define DEF_AXDX(name, insn, T)                                                       \
    static inline void name(uint64_t *f, T *ax, T *dx, T b)                           \
    {                                                                                 \
        __asm__ volatile(HOST_PRE insn " %[b]" HOST_POST                              \
                         : "+a"(*ax), "+d"(*dx), [f] "+r"(*f) : [b] "r"(b) : "cc");   \
    }
/* The byte forms use AX alone. */
#define DEF_AX8(name, insn)                                                           \
    static inline void name(uint64_t *f, uint16_t *ax, uint8_t b)                     \
    {                                                                                 \
        __asm__ volatile(HOST_PRE insn " %[b]" HOST_POST                              \
                         : "+a"(*ax), [f] "+r"(*f) : [b] "r"(b) : "cc");              \
    }

#define DEF_ALL_SIZES(DEF, op) \
    DEF(host_##op##8, #op "b", uint8_t) DEF(host_##op##16, #op "w", uint16_t) DEF(host_##op##32, #op "l", uint32_t)
#define DEF_WIDE_SIZES(DEF, op) DEF(host_##op##16, #op "w", uint16_t) DEF(host_##op##32, #op "l", uint32_t)

/* Lists in the order of enum alu_op / enum shift_op. */
#define HOST_BINOPS(X) X(add) X(or) X(adc) X(sbb) X(and) X(sub) X(xor) X(cmp)
#define HOST_SHIFTS(X) X(rol) X(ror) X(rcl) X(rcr) X(shl) X(shr) X(sal) X(sar)
#define HOST_BITOPS(X) X(bt) X(bts) X(btr) X(btc)

#define DEF_BINOP_ALL(op) DEF_ALL_SIZES(DEF_RR, op)
#define DEF_SHIFT_ALL(op) DEF_ALL_SIZES(DEF_SHIFT, op)
#define DEF_BITOP_ALL(op) DEF_WIDE_SIZES(DEF_RR, op)
HOST_BINOPS(DEF_BINOP_ALL)
HOST_SHIFTS(DEF_SHIFT_ALL)
HOST_BITOPS(DEF_BITOP_ALL)
DEF_ALL_SIZES(DEF_R, inc)
DEF_ALL_SIZES(DEF_R, dec)
DEF_ALL_SIZES(DEF_R, neg)
DEF_WIDE_SIZES(DEF_DSHIFT, shld)
DEF_WIDE_SIZES(DEF_DSHIFT, shrd)
DEF_WIDE_SIZES(DEF_RR, imul)
DEF_WIDE_SIZES(DEF_RR, bsf)
DEF_WIDE_SIZES(DEF_RR, bsr)
DEF_WIDE_SIZES(DEF_AXDX, mul)
DEF_AXDX(host_imul1_16, "imulw", uint16_t)
DEF_AXDX(host_imul1_32, "imull", uint32_t)
DEF_WIDE_SIZES(DEF_AXDX, div)
DEF_WIDE_SIZES(DEF_AXDX, idiv)
DEF_AX8(host_mul8, "mulb")
DEF_AX8(host_imul1_8, "imulb")
DEF_AX8(host_div8, "divb")
DEF_AX8(host_idiv8, "idivb")

/* TEST r,r: the host's version of alu_flags_logic. */
static inline uint32_t host_test(uint64_t *f, uint32_t v, int size)
{
    uint8_t b = (uint8_t)v;
    uint16_t w = (uint16_t)v;
    switch (size) {
    case 1: __asm__ volatile(HOST_PRE "testb %[a], %[a]" HOST_POST : [f] "+r"(*f) : [a] "r"(b) : "cc"); break;
    case 2: __asm__ volatile(HOST_PRE "testw %[a], %[a]" HOST_POST : [f] "+r"(*f) : [a] "r"(w) : "cc"); break;
    default: __asm__ volatile(HOST_PRE "testl %[a], %[a]" HOST_POST : [f] "+r"(*f) : [a] "r"(v) : "cc"); break;
    }
    return v;
}

/* ---- alu.h-shaped wrappers --------------------------------------------- */

#define PTR8(op) host_##op##8,
#define PTR16(op) host_##op##16,
#define PTR32(op) host_##op##32,

typedef uint8_t (*host_rr8)(uint64_t *, uint8_t, uint8_t);
typedef uint16_t (*host_rr16)(uint64_t *, uint16_t, uint16_t);
typedef uint32_t (*host_rr32)(uint64_t *, uint32_t, uint32_t);

static inline uint32_t host_rr(uint64_t *f, host_rr8 f8, host_rr16 f16, host_rr32 f32,
                               uint32_t a, uint32_t b, int size)
{
    switch (size) {
    case 1: return f8(f, (uint8_t)a, (uint8_t)b);
    case 2: return f16(f, (uint16_t)a, (uint16_t)b);
    default: return f32(f, a, b);
    }
}

static inline uint32_t host_binop(uint32_t *fl, int op, uint32_t dst, uint32_t src, int size)
{
    static const host_rr8 f8[] = {HOST_BINOPS(PTR8)};
    static const host_rr16 f16[] = {HOST_BINOPS(PTR16)};
    static const host_rr32 f32[] = {HOST_BINOPS(PTR32)};
    uint64_t f = host_flags_in(*fl);
    uint32_t r = host_rr(&f, f8[op], f16[op], f32[op], dst, src, size);
    *fl = host_flags_out(*fl, f);
    return r;
}

#define HOST_UNARY(name, op)                                              \
    static inline uint32_t name(uint32_t *fl, uint32_t v, int size)       \
    {                                                                     \
        uint64_t f = host_flags_in(*fl);                                  \
        uint32_t r;                                                       \
        switch (size) {                                                   \
        case 1: r = host_##op##8(&f, (uint8_t)v); break;                  \
        case 2: r = host_##op##16(&f, (uint16_t)v); break;                \
        default: r = host_##op##32(&f, v); break;                         \
        }                                                                 \
        *fl = host_flags_out(*fl, f);                                     \
        return r;                                                         \
    }
HOST_UNARY(host_inc, inc)
HOST_UNARY(host_dec, dec)
HOST_UNARY(host_neg, neg)

static inline uint32_t host_shift(uint32_t *fl, int op, uint32_t v, uint32_t count, int size)
{
    static uint8_t (*const f8[])(uint64_t *, uint8_t, uint8_t) = {HOST_SHIFTS(PTR8)};
    static uint16_t (*const f16[])(uint64_t *, uint16_t, uint8_t) = {HOST_SHIFTS(PTR16)};
    static uint32_t (*const f32[])(uint64_t *, uint32_t, uint8_t) = {HOST_SHIFTS(PTR32)};
    uint64_t f = host_flags_in(*fl);
    uint32_t r;
    switch (size) {
    case 1: r = f8[op](&f, (uint8_t)v, (uint8_t)count); break;
    case 2: r = f16[op](&f, (uint16_t)v, (uint8_t)count); break;
    default: r = f32[op](&f, v, (uint8_t)count); break;
    }
    *fl = host_flags_out(*fl, f);
    return r;
}

#define HOST_DSHIFT(name, op)                                                                 \
    static inline uint32_t name(uint32_t *fl, uint32_t dst, uint32_t src, uint32_t count, int size) \
    {                                                                                         \
        uint64_t f = host_flags_in(*fl);                                                      \
        uint32_t r = size == 2 ? host_##op##16(&f, (uint16_t)dst, (uint16_t)src, (uint8_t)count) \
                               : host_##op##32(&f, dst, src, (uint8_t)count);                 \
        *fl = host_flags_out(*fl, f);                                                         \
        return r;                                                                             \
    }
HOST_DSHIFT(host_shld, shld)
HOST_DSHIFT(host_shrd, shrd)

/* MUL/IMUL/DIV/IDIV in the (hi:lo) shape of alu.h; for bytes hi:lo is AH:AL. */
#define HOST_AXDX(name, op)                                                                   \
    static inline void name(uint32_t *fl, uint32_t lo, uint32_t hi, uint32_t b, int size,     \
                            uint32_t *out_lo, uint32_t *out_hi)                               \
    {                                                                                         \
        uint64_t f = host_flags_in(*fl);                                                      \
        if (size == 1) {                                                                      \
            uint16_t ax = (uint16_t)((hi & 0xff) << 8 | (lo & 0xff));                         \
            host_##op##8(&f, &ax, (uint8_t)b);                                                \
            *out_lo = ax & 0xff;                                                              \
            *out_hi = ax >> 8;                                                                \
        } else if (size == 2) {                                                               \
            uint16_t ax = (uint16_t)lo, dx = (uint16_t)hi;                                    \
            host_##op##16(&f, &ax, &dx, (uint16_t)b);                                         \
            *out_lo = ax;                                                                     \
            *out_hi = dx;                                                                     \
        } else {                                                                              \
            uint32_t eax = lo, edx = hi;                                                      \
            host_##op##32(&f, &eax, &edx, b);                                                 \
            *out_lo = eax;                                                                    \
            *out_hi = edx;                                                                    \
        }                                                                                     \
        *fl = host_flags_out(*fl, f);                                                         \
    }
HOST_AXDX(host_axdx_mul, mul)
HOST_AXDX(host_axdx_imul, imul1_)
HOST_AXDX(host_axdx_div, div)
HOST_AXDX(host_axdx_idiv, idiv)

static inline void host_mul(uint32_t *fl, uint32_t a, uint32_t b, int size, uint32_t *lo, uint32_t *hi)
{
    host_axdx_mul(fl, a, 0, b, size, lo, hi);
}

static inline void host_imul(uint32_t *fl, uint32_t a, uint32_t b, int size, uint32_t *lo, uint32_t *hi)
{
    host_axdx_imul(fl, a, 0, b, size, lo, hi);
}

/* Byte IMUL has no truncating form: take the low half of the widening one. */
static inline uint32_t host_imul_trunc(uint32_t *fl, uint32_t a, uint32_t b, int size)
{
    uint64_t f = host_flags_in(*fl);
    uint32_t r, hi;
    switch (size) {
    case 1: host_imul(fl, a, b, 1, &r, &hi); return r;
    case 2: r = host_imul16(&f, (uint16_t)a, (uint16_t)b); break;
    default: r = host_imul32(&f, a, b); break;
    }
    *fl = host_flags_out(*fl, f);
    return r;
}

/* The caller must rule out #DE first: the host would raise SIGFPE. */
static inline void host_div(uint32_t *fl, uint32_t lo, uint32_t hi, uint32_t divisor, int size, uint32_t *quot, uint32_t *rem)
{
    host_axdx_div(fl, lo, hi, divisor, size, quot, rem);
}

static inline void host_idiv(uint32_t *fl, uint32_t lo, uint32_t hi, uint32_t divisor, int size, uint32_t *quot, uint32_t *rem)
{
    host_axdx_idiv(fl, lo, hi, divisor, size, quot, rem);
}

#define HOST_WIDE_RR(name, op)                                                              \
    static inline uint32_t name(uint32_t *fl, uint32_t a, uint32_t b, int size)             \
    {                                                                                       \
        uint64_t f = host_flags_in(*fl);                                                    \
        uint32_t r = size == 2 ? host_##op##16(&f, (uint16_t)a, (uint16_t)b) : host_##op##32(&f, a, b); \
        *fl = host_flags_out(*fl, f);                                                       \
        return r;                                                                           \
    }
HOST_WIDE_RR(host_bsf, bsf)
HOST_WIDE_RR(host_bsr, bsr)

static inline uint32_t host_bit(uint32_t *fl, int op, uint32_t v, uint32_t bit, int size)
{
    static const host_rr16 f16[] = {HOST_BITOPS(PTR16)};
    static const host_rr32 f32[] = {HOST_BITOPS(PTR32)};
    uint64_t f = host_flags_in(*fl);
    uint32_t r = size == 2 ? f16[op](&f, (uint16_t)v, (uint16_t)bit) : f32[op](&f, v, bit);
    *fl = host_flags_out(*fl, f);
    return r;
}

static inline void host_flags_logic(uint32_t *fl, uint32_t result, int size)
{
    uint64_t f = host_flags_in(*fl);
    host_test(&f, result, size);
    *fl = host_flags_out(*fl, f);
}

/* SETcc for each condition code, in the order of the Jcc low nibble. */
#define HOST_CONDS(X) X(o) X(no) X(b) X(ae) X(e) X(ne) X(be) X(a) X(s) X(ns) X(p) X(np) X(l) X(ge) X(le) X(g)
#define DEF_SETCC(cc)                                                                \
    static inline bool host_set##cc(uint64_t f)                                      \
    {                                                                                \
        uint8_t r;                                                                   \
        __asm__ volatile(HOST_PRE "set" #cc " %[r]" HOST_POST                        \
                         : [r] "=r"(r), [f] "+r"(f) : : "cc");                       \
        return r;                                                                    \
    }
HOST_CONDS(DEF_SETCC)
#define PTR_SETCC(cc) host_set##cc,

static inline bool host_cond(uint32_t fl, int cc)
{
    static bool (*const set[16])(uint64_t) = {HOST_CONDS(PTR_SETCC)};
    return set[cc & 15](host_flags_in(fl));
}

#endif
