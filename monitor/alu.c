/*
 * Integer ALU semantics (see alu.h): results and eager flags for every
 * integer arithmetic/logic instruction, shared by the interpreter and the
 * translator's helpers.  This is the interpreter's hot path: flags come from
 * carry-chain formulas and a parity table, never from loops over bits.
 *
 * Flags the SDM leaves undefined are set as the P6 family does, as far as it
 * is known (Bochs' P6 model, cross-checked against the SDM):
 *  - AND/OR/XOR/TEST, flags_logic: AF = 0.
 *  - shifts (count != 0): AF = 0; OF for counts > 1 keeps the count-1
 *    formula: SHL/SAL and RCL/ROL  OF = CF ^ MSB(result),
 *    SHR/RCR/ROR  OF = MSB(result) ^ (MSB-1)(result)  (so SHR gives 0),
 *    SAR  OF = 0.  SHL/SHR by >= the operand width shift the zero-extended
 *    value: result 0, CF = the last bit shifted out (0 past width+1).
 *  - RCL/RCR with a count that is a multiple of 9/17: nothing changes.
 *  - SHLD/SHRD: AF = 0, OF as SHL/SHR above.  16-bit counts 17..31 shift
 *    the 48-bit value dst:src:dst as P6 does (Pentium used dst:src:src);
 *    CF is the last bit shifted out of that value.
 *  - MUL/IMUL: SF/ZF/PF from the low half (the truncated product), AF = 0.
 *  - DIV/IDIV: flags unchanged.
 *  - BSF/BSR: source 0: ZF = 1, all else unchanged; otherwise flags as a
 *    logic op on the bit index (PF = parity(index), SF = CF = OF = AF = 0).
 *  - BT/BTS/BTR/BTC: only CF changes.
 *  - DAA/DAS: OF = 0.  AAA/AAS: SF/ZF/PF from the final AL (after masking
 *    to its low nibble), OF = 0.  AAM/AAD: OF = AF = CF = 0.
 */
#include "monitor/alu.h"
#include "monitor/cpu.h"

/* FL_PF for each byte with an even number of set bits. */
#define PAR2(p) (p), (p) ^ FL_PF, (p) ^ FL_PF, (p)
#define PAR4(p) PAR2(p), PAR2((p) ^ FL_PF), PAR2((p) ^ FL_PF), PAR2(p)
#define PAR6(p) PAR4(p), PAR4((p) ^ FL_PF), PAR4((p) ^ FL_PF), PAR4(p)
static const uint8_t parity_flag[256] = {
    PAR6(FL_PF), PAR6(0), PAR6(0), PAR6(FL_PF),
};

static inline unsigned width(int size) { return 8u * (unsigned)size; }
static inline uint32_t size_mask(int size) { return 0xffffffffu >> (32 - width(size)); }

static inline uint32_t msb(uint32_t v, int size) { return (v >> (width(size) - 1)) & 1; }

/* Sign-extends the low `size` bytes of v. */
static inline int32_t sext(uint32_t v, int size)
{
    unsigned sh = 32 - width(size);
    return (int32_t)(v << sh) >> sh;
}

/* OF from a value whose bit (width-1) says whether signed overflow happened. */
static inline uint32_t of_from_msb(uint32_t v, int size) { return msb(v, size) << 11; }

/* SF, ZF, PF of a result already truncated to `size`. */
static inline uint32_t flags_szp(uint32_t r, int size)
{
    return parity_flag[r & 0xff] | ((uint32_t)(r == 0) << 6) | ((r >> (width(size) - 8)) & FL_SF);
}

/* Replace the flags in `which` with `val`, keeping every other EFLAGS bit. */
static inline void put_flags(uint32_t *fl, uint32_t which, uint32_t val)
{
    *fl = (*fl & ~which) | val;
}

/* ---- add/sub family ---------------------------------------------------- */

/* Flags of a + b + cin; a and b are truncated operands. */
static inline uint32_t add_flags(uint32_t a, uint32_t b, uint32_t cin, int size, uint32_t *res)
{
    uint64_t sum = (uint64_t)a + b + cin;
    uint32_t r = (uint32_t)sum & size_mask(size);
    *res = r;
    return ((uint32_t)(sum >> width(size)) & 1) | ((a ^ b ^ r) & FL_AF) |
           of_from_msb((a ^ r) & (b ^ r), size) | flags_szp(r, size);
}

/* Flags of a - b - cin; a borrow makes the 64-bit difference wrap, setting bit `width`. */
static inline uint32_t sub_flags(uint32_t a, uint32_t b, uint32_t cin, int size, uint32_t *res)
{
    uint64_t diff = (uint64_t)a - b - cin;
    uint32_t r = (uint32_t)diff & size_mask(size);
    *res = r;
    return ((uint32_t)(diff >> width(size)) & 1) | ((a ^ b ^ r) & FL_AF) |
           of_from_msb((a ^ b) & (a ^ r), size) | flags_szp(r, size);
}

void alu_flags_logic(uint32_t *fl, uint32_t result, int size)
{
    put_flags(fl, FL_ARITH, flags_szp(result & size_mask(size), size));
}

uint32_t alu_binop(uint32_t *fl, int op, uint32_t dst, uint32_t src, int size)
{
    uint32_t m = size_mask(size), r;
    dst &= m;
    src &= m;
    switch (op) {
    case ALU_ADD: put_flags(fl, FL_ARITH, add_flags(dst, src, 0, size, &r)); return r;
    case ALU_ADC: put_flags(fl, FL_ARITH, add_flags(dst, src, *fl & FL_CF, size, &r)); return r;
    case ALU_SUB: put_flags(fl, FL_ARITH, sub_flags(dst, src, 0, size, &r)); return r;
    case ALU_SBB: put_flags(fl, FL_ARITH, sub_flags(dst, src, *fl & FL_CF, size, &r)); return r;
    case ALU_CMP: put_flags(fl, FL_ARITH, sub_flags(dst, src, 0, size, &r)); return dst;
    case ALU_OR:  r = dst | src; break;
    case ALU_AND: r = dst & src; break;
    default:      r = dst ^ src; break;   /* ALU_XOR */
    }
    put_flags(fl, FL_ARITH, flags_szp(r, size));
    return r;
}

uint32_t alu_inc(uint32_t *fl, uint32_t v, int size)
{
    uint32_t r;
    uint32_t f = add_flags(v & size_mask(size), 1, 0, size, &r);
    put_flags(fl, FL_ARITH & ~FL_CF, f & ~FL_CF);
    return r;
}

uint32_t alu_dec(uint32_t *fl, uint32_t v, int size)
{
    uint32_t r;
    uint32_t f = sub_flags(v & size_mask(size), 1, 0, size, &r);
    put_flags(fl, FL_ARITH & ~FL_CF, f & ~FL_CF);
    return r;
}

uint32_t alu_neg(uint32_t *fl, uint32_t v, int size)
{
    uint32_t r;
    put_flags(fl, FL_ARITH, sub_flags(0, v & size_mask(size), 0, size, &r));
    return r;
}

/* ---- shifts and rotates ------------------------------------------------ */

/* Shifts set every arithmetic flag; AF is undefined and P6 clears it. */
static inline uint32_t shift_flags(uint32_t r, uint32_t cf, uint32_t of, int size)
{
    return cf | (of << 11) | flags_szp(r, size);
}

/* OF for right shifts: for a 1-bit shift it is the old MSB, which now sits
 * one below the MSB of the result; P6 keeps that formula for longer shifts. */
static inline uint32_t right_shift_of(uint32_t r, int size)
{
    return msb(r ^ (r << 1), size);
}

static uint32_t shl(uint32_t *fl, uint32_t v, unsigned n, int size)
{
    uint64_t wide = (uint64_t)v << n;
    uint32_t r = (uint32_t)wide & size_mask(size);
    uint32_t cf = (uint32_t)(wide >> width(size)) & 1;
    put_flags(fl, FL_ARITH, shift_flags(r, cf, cf ^ msb(r, size), size));
    return r;
}

static uint32_t shr(uint32_t *fl, uint32_t v, unsigned n, int size)
{
    uint32_t r = v >> n;
    uint32_t cf = (v >> (n - 1)) & 1;
    put_flags(fl, FL_ARITH, shift_flags(r, cf, right_shift_of(r, size), size));
    return r;
}

static uint32_t sar(uint32_t *fl, uint32_t v, unsigned n, int size)
{
    int32_t s = sext(v, size);
    uint32_t r = (uint32_t)(s >> n) & size_mask(size);
    uint32_t cf = (uint32_t)(s >> (n - 1)) & 1;
    put_flags(fl, FL_ARITH, shift_flags(r, cf, 0, size));
    return r;
}

/* Rotates change only CF and OF.  A count that is a nonzero multiple of the
 * width leaves the value alone but still sets the flags (SDM pseudo-code). */
static uint32_t rol(uint32_t *fl, uint32_t v, unsigned n, int size)
{
    unsigned k = n & (width(size) - 1);
    uint32_t r = k ? ((v << k) | (v >> (width(size) - k))) & size_mask(size) : v;
    uint32_t cf = r & 1;
    put_flags(fl, FL_CF | FL_OF, cf | ((cf ^ msb(r, size)) << 11));
    return r;
}

static uint32_t ror(uint32_t *fl, uint32_t v, unsigned n, int size)
{
    unsigned k = n & (width(size) - 1);
    uint32_t r = k ? ((v >> k) | (v << (width(size) - k))) & size_mask(size) : v;
    put_flags(fl, FL_CF | FL_OF, msb(r, size) | (right_shift_of(r, size) << 11));
    return r;
}

/* RCL/RCR rotate the (width+1)-bit value CF:v. */
static inline unsigned rc_count(unsigned n, int size)
{
    /* 8- and 16-bit counts wrap modulo 9 and 17; 32-bit counts are < 33. */
    static const uint8_t mod9[32] = {
        0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 4, 5, 6,
        7, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 4,
    };
    static const uint8_t mod17[32] = {
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        16, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    };
    return size == 1 ? mod9[n] : size == 2 ? mod17[n] : n;
}

static uint32_t rcl(uint32_t *fl, uint32_t v, unsigned n, int size)
{
    unsigned k = rc_count(n, size), w = width(size) + 1;
    if (!k)
        return v;
    uint64_t x = ((uint64_t)(*fl & FL_CF) << (w - 1)) | v;
    uint64_t y = (x << k) | (x >> (w - k));
    uint32_t r = (uint32_t)y & size_mask(size);
    uint32_t cf = (uint32_t)(y >> (w - 1)) & 1;
    put_flags(fl, FL_CF | FL_OF, cf | ((cf ^ msb(r, size)) << 11));
    return r;
}

static uint32_t rcr(uint32_t *fl, uint32_t v, unsigned n, int size)
{
    unsigned k = rc_count(n, size), w = width(size) + 1;
    if (!k)
        return v;
    uint64_t x = ((uint64_t)(*fl & FL_CF) << (w - 1)) | v;
    uint64_t y = (x >> k) | (x << (w - k));
    uint32_t r = (uint32_t)y & size_mask(size);
    uint32_t cf = (uint32_t)(y >> (w - 1)) & 1;
    put_flags(fl, FL_CF | FL_OF, cf | (right_shift_of(r, size) << 11));
    return r;
}

uint32_t alu_shift(uint32_t *fl, int op, uint32_t v, uint32_t count, int size)
{
    unsigned n = count & 31;
    v &= size_mask(size);
    if (!n)
        return v;
    switch (op) {
    case SH_ROL: return rol(fl, v, n, size);
    case SH_ROR: return ror(fl, v, n, size);
    case SH_RCL: return rcl(fl, v, n, size);
    case SH_RCR: return rcr(fl, v, n, size);
    case SH_SHR: return shr(fl, v, n, size);
    case SH_SAR: return sar(fl, v, n, size);
    default:     return shl(fl, v, n, size);   /* SH_SHL, SH_SAL */
    }
}

/* SHLD/SHRD work on a 64-bit window: dst:src for 32-bit operands, and the
 * 48-bit dst:src:dst for 16-bit ones so that counts 17..31 behave as P6. */
static inline uint64_t double_window(uint32_t dst, uint32_t src, int size)
{
    if (size == 4)
        return ((uint64_t)dst << 32) | src;
    dst &= 0xffff;
    return ((uint64_t)dst << 32) | ((uint64_t)(src & 0xffff) << 16) | dst;
}

uint32_t alu_shld(uint32_t *fl, uint32_t dst, uint32_t src, uint32_t count, int size)
{
    unsigned n = count & 31;
    uint32_t m = size_mask(size);
    if (!n)
        return dst & m;
    /* The result is the top `size` bytes of the window after the shift. */
    unsigned top = size == 4 ? 64 : 48;
    uint64_t x = double_window(dst, src, size);
    uint32_t r = (uint32_t)((x << n) >> (top - width(size))) & m;
    uint32_t cf = (uint32_t)(x >> (top - n)) & 1;
    put_flags(fl, FL_ARITH, shift_flags(r, cf, cf ^ msb(r, size), size));
    return r;
}

uint32_t alu_shrd(uint32_t *fl, uint32_t dst, uint32_t src, uint32_t count, int size)
{
    unsigned n = count & 31;
    uint32_t m = size_mask(size);
    if (!n)
        return dst & m;
    /* The window puts dst in the low bits; swap halves for the 32-bit case. */
    uint64_t x = size == 4 ? ((uint64_t)src << 32) | dst : double_window(dst, src, size);
    uint32_t r = (uint32_t)(x >> n) & m;
    uint32_t cf = (uint32_t)(x >> (n - 1)) & 1;
    put_flags(fl, FL_ARITH, shift_flags(r, cf, right_shift_of(r, size), size));
    return r;
}

/* ---- multiply and divide ----------------------------------------------- */

/* CF = OF = the product does not fit the low half; SF/ZF/PF from the low half. */
static inline void mul_flags(uint32_t *fl, uint32_t lo, bool overflow, int size)
{
    put_flags(fl, FL_ARITH, (overflow ? FL_CF | FL_OF : 0) | flags_szp(lo, size));
}

void alu_mul(uint32_t *fl, uint32_t a, uint32_t b, int size, uint32_t *lo, uint32_t *hi)
{
    uint32_t m = size_mask(size);
    uint64_t p = (uint64_t)(a & m) * (b & m);
    *lo = (uint32_t)p & m;
    *hi = (uint32_t)(p >> width(size)) & m;
    mul_flags(fl, *lo, *hi != 0, size);
}

void alu_imul(uint32_t *fl, uint32_t a, uint32_t b, int size, uint32_t *lo, uint32_t *hi)
{
    uint32_t m = size_mask(size);
    int64_t p = (int64_t)sext(a, size) * sext(b, size);
    *lo = (uint32_t)p & m;
    *hi = (uint32_t)((uint64_t)p >> width(size)) & m;
    mul_flags(fl, *lo, p != sext(*lo, size), size);
}

uint32_t alu_imul_trunc(uint32_t *fl, uint32_t a, uint32_t b, int size)
{
    uint32_t lo, hi;
    alu_imul(fl, a, b, size, &lo, &hi);
    return lo;
}

bool alu_div(uint32_t *fl, uint32_t lo, uint32_t hi, uint32_t divisor, int size, uint32_t *quot, uint32_t *rem)
{
    uint32_t m = size_mask(size);
    divisor &= m;
    hi &= m;
    /* The quotient fits in `size` exactly when the high half is below the divisor. */
    if (hi >= divisor)
        return false;
    uint64_t n = ((uint64_t)hi << width(size)) | (lo & m);
    *quot = (uint32_t)(n / divisor);
    *rem = (uint32_t)(n % divisor);
    return true;
}

bool alu_idiv(uint32_t *fl, uint32_t lo, uint32_t hi, uint32_t divisor, int size, uint32_t *quot, uint32_t *rem)
{
    uint32_t m = size_mask(size);
    unsigned sh = 64 - 2 * width(size);
    uint64_t u = ((uint64_t)(hi & m) << width(size)) | (lo & m);
    int64_t n = (int64_t)(u << sh) >> sh;
    int64_t d = sext(divisor, size);
    if (d == 0)
        return false;
    /* INT64_MIN / -1 would trap on the host; its quotient overflows anyway. */
    if (d == -1 && n == INT64_MIN)
        return false;
    int64_t q = n / d;
    int64_t limit = (int64_t)1 << (width(size) - 1);
    if (q >= limit || q < -limit)
        return false;
    *quot = (uint32_t)q & m;
    *rem = (uint32_t)(n % d) & m;
    return true;
}

/* ---- bit scan and bit test --------------------------------------------- */

static inline void bit_scan_flags(uint32_t *fl, uint32_t index)
{
    put_flags(fl, FL_ARITH, parity_flag[index]);
}

uint32_t alu_bsf(uint32_t *fl, uint32_t dst, uint32_t src, int size)
{
    src &= size_mask(size);
    if (!src) {
        *fl |= FL_ZF;
        return dst;
    }
    uint32_t index = (uint32_t)__builtin_ctz(src);
    bit_scan_flags(fl, index);
    return index;
}

uint32_t alu_bsr(uint32_t *fl, uint32_t dst, uint32_t src, int size)
{
    src &= size_mask(size);
    if (!src) {
        *fl |= FL_ZF;
        return dst;
    }
    uint32_t index = 31u - (uint32_t)__builtin_clz(src);
    bit_scan_flags(fl, index);
    return index;
}

uint32_t alu_bit(uint32_t *fl, int op, uint32_t v, uint32_t bit, int size)
{
    /* Masking again keeps a stray index from being an undefined C shift. */
    uint32_t b = 1u << (bit & (width(size) - 1));
    put_flags(fl, FL_CF, (v & b) != 0);
    switch (op) {
    case 1:  return v | b;
    case 2:  return v & ~b;
    case 3:  return v ^ b;
    default: return v;
    }
}

/* ---- BCD adjust -------------------------------------------------------- */

/* BCD results set SF/ZF/PF from AL; OF (undefined) is cleared as on P6. */
static inline void bcd_flags(uint32_t *fl, uint8_t al, uint32_t cf, uint32_t af)
{
    put_flags(fl, FL_ARITH, flags_szp(al, 1) | cf | af);
}

void alu_daa(uint32_t *fl, uint8_t *al)
{
    uint8_t old = *al, v = old;
    uint32_t af = 0, cf = 0;
    if ((old & 0x0f) > 9 || (*fl & FL_AF)) {
        v += 0x06;
        af = FL_AF;
    }
    /* A carry out of the +6 step implies old > 0x99, so it needs no test. */
    if (old > 0x99 || (*fl & FL_CF)) {
        v += 0x60;
        cf = FL_CF;
    }
    *al = v;
    bcd_flags(fl, v, cf, af);
}

void alu_das(uint32_t *fl, uint8_t *al)
{
    uint8_t old = *al, v = old;
    uint32_t af = 0, cf = 0;
    if ((old & 0x0f) > 9 || (*fl & FL_AF)) {
        /* Unlike DAA, the borrow of the -6 step survives (old = 0..5, AF set). */
        cf = old < 6 ? FL_CF : 0;
        v -= 0x06;
        af = FL_AF;
    }
    if (old > 0x99 || (*fl & FL_CF)) {
        v -= 0x60;
        cf = FL_CF;
    }
    *al = v;
    bcd_flags(fl, v, cf, af);
}

void alu_aaa(uint32_t *fl, uint16_t *ax)
{
    uint16_t v = *ax;
    uint32_t adj = 0;
    if ((v & 0x0f) > 9 || (*fl & FL_AF)) {
        v += 0x106;   /* 286+: the +6 carries from AL into AH */
        adj = FL_AF | FL_CF;
    }
    v &= 0xff0f;
    *ax = v;
    bcd_flags(fl, (uint8_t)v, adj & FL_CF, adj & FL_AF);
}

void alu_aas(uint32_t *fl, uint16_t *ax)
{
    uint16_t v = *ax;
    uint32_t adj = 0;
    if ((v & 0x0f) > 9 || (*fl & FL_AF)) {
        v -= 0x106;
        adj = FL_AF | FL_CF;
    }
    v &= 0xff0f;
    *ax = v;
    bcd_flags(fl, (uint8_t)v, adj & FL_CF, adj & FL_AF);
}

bool alu_aam(uint32_t *fl, uint16_t *ax, uint8_t imm)
{
    if (!imm)
        return false;
    uint8_t al = (uint8_t)*ax;
    uint8_t q = al / imm, r = al % imm;
    *ax = (uint16_t)(q << 8 | r);
    bcd_flags(fl, r, 0, 0);
    return true;
}

void alu_aad(uint32_t *fl, uint16_t *ax, uint8_t imm)
{
    uint8_t al = (uint8_t)*ax, ah = (uint8_t)(*ax >> 8);
    al = (uint8_t)(al + ah * imm);
    *ax = al;
    bcd_flags(fl, al, 0, 0);
}

/* ---- condition codes --------------------------------------------------- */

bool alu_cond(uint32_t fl, int cc)
{
    uint32_t sf_ne_of = ((fl >> 7) ^ (fl >> 11)) & 1;
    bool t;
    switch ((cc >> 1) & 7) {
    case 0:  t = fl & FL_OF; break;
    case 1:  t = fl & FL_CF; break;
    case 2:  t = fl & FL_ZF; break;
    case 3:  t = fl & (FL_CF | FL_ZF); break;
    case 4:  t = fl & FL_SF; break;
    case 5:  t = fl & FL_PF; break;
    case 6:  t = sf_ne_of; break;
    default: t = sf_ne_of | (fl & FL_ZF); break;
    }
    /* Odd condition codes are the negation of the even one below them. */
    return t ^ (cc & 1);
}
