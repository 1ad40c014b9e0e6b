/*
 * The host CPU as the oracle for the interpreter, one whole instruction at a
 * time: decoder, operand fetch, ALU, write-back and exceptions together.
 *
 * Each case builds one user-mode integer instruction (an opcode form, a
 * random ModRM/SIB/displacement, random immediates, registers and flags),
 * runs it through interp_step in a flat 32-bit CPL 3 machine, and runs the
 * same instruction natively in 64-bit mode on the same registers, flags and
 * memory.  Registers, the defined arithmetic flags, a 4 KiB memory window,
 * the instruction's length and the exception (#DE, #UD) must agree.
 *
 * How a 32-bit instruction becomes a 64-bit one with the same meaning:
 *   - a memory operand gets an address-size prefix (0x67), so the effective
 *     address is computed and wrapped in 32 bits as the guest does; the
 *     window is mapped at the same address in the host and in guest RAM;
 *   - [disp32] (mod 0, rm 5) is RIP-relative in 64-bit mode: the host gets
 *     the SIB form with neither base nor index, which means the same;
 *   - INC/DEC reg (40-4F) are REX prefixes there: the host gets FF /0, /1;
 *     82 (an alias of 80) is invalid there: the host gets 80;
 *   - LEA with a 16-bit address (0x67 in 32-bit code): the host computes the
 *     same sum in 32 bits into a 16-bit destination (the low 16 bits of a
 *     sum depend only on the low 16 bits of its terms), and a 32-bit
 *     destination takes that zero-extended, as the SDM says.
 * ESP is never an operand or a base: the host's is its stack.  Memory
 * operands with 16-bit addresses are not run (the host cannot map the
 * first 64 KiB); LEA covers their address arithmetic.
 *
 * Undefined flags (SDM) are not compared; how often the interpreter and the
 * host agree on them is printed per family.  Forms a 64-bit host cannot run
 * at all (AAA/DAA..., BOUND, PUSHA, INTO, ARPL, LDS/LES) are tested against
 * other oracles: test_alu.c (the BCD table from test386's reference) and
 * test_interp_sdm.c (the SDM's pseudo-code), and under QEMU TCG by
 * tests/e2e/sdm_rom.sh.
 *
 * RETROVISOR_LONG=1 runs 10^7 cases instead of 10^5.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <cpuid.h>

#include "monitor/cpu.h"
#include "monitor/interp.h"
#include "monitor/machine.h"
#include "monitor/physmem.h"
#include "tiny_machine.h"

/* ---- where things live (guest-physical = guest-linear = host address) ---- */

#define WIN_ADDR   0x00800000u   /* the memory window, in guest RAM and mapped at the same host address */
#define WIN_SIZE   0x1000u
#define CODE_ADDR  0x00100000u   /* the instruction, in guest RAM only */
#define RAM_MB     16

/* ---- the random source (xorshift64*, fixed seed) ---- */

static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}
static bool chance(unsigned percent) { return rnd() % 100 < percent; }

/* Operands near the edges of their width find more bugs than uniform ones. */
static uint32_t interesting(void)
{
    static const uint32_t edges[] = { 0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff,
                                      0x10000, 0x7fffffff, 0x80000000u, 0xffffffffu, 0xfffffffeu, 0x80 };
    switch (rnd() % 4) {
    case 0: return edges[rnd() % 16];
    case 1: return rnd() & 0xff;
    case 2: return (uint32_t)(int32_t)(int8_t)rnd();
    default: return rnd();
    }
}

/* ---- instruction forms ---- */

enum kind {
    K_PLAIN,      /* every flag defined (or untouched) */
    K_LOGIC,      /* AF undefined */
    K_MUL,        /* SF ZF AF PF undefined */
    K_DIV,        /* every flag undefined; #DE */
    K_SHIFT,      /* group 2: depends on the count */
    K_DSHIFT,     /* SHLD/SHRD: depends on the count */
    K_BT,         /* CF and ZF defined; a register bit offset moves a memory operand */
    K_BSCAN,      /* ZF defined; destination undefined for a zero source */
    K_LEA,        /* no memory access: any address */
};

enum { M_NONE, M_REG, M_DIGIT };  /* ModRM: none, reg field is an operand, reg field is an opcode digit */

struct form {
    const char *name;
    uint8_t op[2];
    int oplen;
    int modrm;           /* M_* */
    int digit;           /* for M_DIGIT */
    int size;            /* operand size: 1, 2 or 4 (2 adds 0x66) */
    int rm_size;         /* size of the r/m operand if it differs (MOVZX/MOVSX), else 0 */
    int imm;             /* bytes of immediate */
    int kind;            /* enum kind */
    bool reg_only;       /* r/m must be a register */
    bool lockable;       /* a memory form may take LOCK */
    int opreg;           /* >= 0: the register is in the opcode's low 3 bits (B8+r, C8+r, 40+r) */
};

#define MAX_FORMS 700
static struct form forms[MAX_FORMS];
static int nforms;

static void add(const char *name, int b0, int b1, int modrm, int digit, int size, int imm, int kind)
{
    assert_true(nforms < MAX_FORMS);
    struct form *f = &forms[nforms++];
    *f = (struct form){ .name = name, .op = { (uint8_t)b0, (uint8_t)b1 }, .oplen = b0 == 0x0f ? 2 : 1,
                        .modrm = modrm, .digit = digit, .size = size, .imm = imm, .kind = kind, .opreg = -1 };
    if (f->oplen == 1)
        f->op[0] = (uint8_t)b0;
}

/* The last form added: adjust a field. */
static struct form *last(void) { return &forms[nforms - 1]; }

/* Byte, then word and dword forms of an opcode pair (even: byte, odd: wide). */
static void add_bww(const char *name, int b0, int b1, int modrm, int digit, int imm_w, int kind)
{
    bool two = b0 == 0x0f;
    int byte_op = two ? b1 : b0;
    add(name, two ? 0x0f : byte_op, two ? byte_op : 0, modrm, digit, 1, imm_w < 0 ? 1 : imm_w ? 1 : 0, kind);
    for (int s = 2; s <= 4; s += 2) {
        add(name, two ? 0x0f : byte_op + 1, two ? byte_op + 1 : 0, modrm, digit, s,
            imm_w < 0 ? 1 : imm_w ? s : 0, kind);
        if (two)
            last()->op[1] = (uint8_t)(byte_op + 1);
    }
}

static void add_ww(const char *name, int b0, int b1, int modrm, int digit, int imm, int kind)
{
    add(name, b0, b1, modrm, digit, 2, imm == 4 ? 2 : imm, kind);
    add(name, b0, b1, modrm, digit, 4, imm, kind);
}

static void build_forms(void)
{
    static const char *alu[8] = { "ADD", "OR", "ADC", "SBB", "AND", "SUB", "XOR", "CMP" };
    for (int k = 0; k < 8; k++) {
        int kind = (k == 1 || k == 4 || k == 6) ? K_LOGIC : K_PLAIN;
        add_bww(alu[k], k * 8 + 0, 0, M_REG, 0, 0, kind);          /* r/m, r */
        for (int f = nforms - 3; f < nforms; f++)
            forms[f].lockable = k != 7;
        add_bww(alu[k], k * 8 + 2, 0, M_REG, 0, 0, kind);          /* r, r/m */
        add_bww(alu[k], k * 8 + 4, 0, M_NONE, 0, 4, kind);         /* AL/eAX, imm */
        add_bww(alu[k], 0x80, 0, M_DIGIT, k, 4, kind);             /* 80 ib, 81 iz */
        for (int f = nforms - 3; f < nforms; f++)
            forms[f].lockable = k != 7;
        add_ww(alu[k], 0x83, 0, M_DIGIT, k, 1, kind);              /* 83 ib */
        add(alu[k], 0x82, 0, M_DIGIT, k, 1, 1, kind);              /* 82: 80's alias */
    }
    add_bww("TEST", 0x84, 0, M_REG, 0, 0, K_LOGIC);
    add_bww("TEST", 0xa8, 0, M_NONE, 0, 4, K_LOGIC);
    add_bww("TEST", 0xf6, 0, M_DIGIT, 0, 4, K_LOGIC);
    add_bww("XCHG", 0x86, 0, M_REG, 0, 0, K_PLAIN);
    add_bww("MOV", 0x88, 0, M_REG, 0, 0, K_PLAIN);
    add_bww("MOV", 0x8a, 0, M_REG, 0, 0, K_PLAIN);
    add_bww("MOV", 0xc6, 0, M_DIGIT, 0, 4, K_PLAIN);
    static const char *sh[8] = { "ROL", "ROR", "RCL", "RCR", "SHL", "SHR", "SAL", "SAR" };
    for (int k = 0; k < 8; k++) {
        add_bww(sh[k], 0xc0, 0, M_DIGIT, k, -1, K_SHIFT);
        add_bww(sh[k], 0xd0, 0, M_DIGIT, k, 0, K_SHIFT);
        add_bww(sh[k], 0xd2, 0, M_DIGIT, k, 0, K_SHIFT);
    }
    static const char *g3[8] = { 0, 0, "NOT", "NEG", "MUL", "IMUL", "DIV", "IDIV" };
    static const int g3kind[8] = { 0, 0, K_PLAIN, K_PLAIN, K_MUL, K_MUL, K_DIV, K_DIV };
    for (int k = 2; k < 8; k++) {
        add_bww(g3[k], 0xf6, 0, M_DIGIT, k, 0, g3kind[k]);
        if (k < 4)
            for (int f = nforms - 3; f < nforms; f++)
                forms[f].lockable = true;
    }
    add(("INC"), 0xfe, 0, M_DIGIT, 0, 1, 0, K_PLAIN);
    last()->lockable = true;
    add(("DEC"), 0xfe, 0, M_DIGIT, 1, 1, 0, K_PLAIN);
    last()->lockable = true;
    add_ww("INC", 0xff, 0, M_DIGIT, 0, 0, K_PLAIN);
    add_ww("DEC", 0xff, 0, M_DIGIT, 1, 0, K_PLAIN);
    for (int r = 0; r < 8; r++) {
        if (r == R_ESP)
            continue;
        add_ww("INC", 0x40 + r, 0, M_NONE, 0, 0, K_PLAIN);
        forms[nforms - 1].opreg = forms[nforms - 2].opreg = r;
        add_ww("DEC", 0x48 + r, 0, M_NONE, 0, 0, K_PLAIN);
        forms[nforms - 1].opreg = forms[nforms - 2].opreg = r;
        add_ww("MOV", 0xb8 + r, 0, M_NONE, 0, 4, K_PLAIN);
        forms[nforms - 1].opreg = forms[nforms - 2].opreg = r;
        add("BSWAP", 0x0f, 0xc8 + r, M_NONE, 0, 4, 0, K_PLAIN);
        last()->op[1] = (uint8_t)(0xc8 + r);
        last()->opreg = r;
    }
    add_ww("IMUL", 0x0f, 0xaf, M_REG, 0, 0, K_MUL);
    add_ww("IMUL", 0x69, 0, M_REG, 0, 4, K_MUL);
    add_ww("IMUL", 0x6b, 0, M_REG, 0, 1, K_MUL);
    static const char *bt[4] = { "BT", "BTS", "BTR", "BTC" };
    for (int k = 0; k < 4; k++) {
        add_ww(bt[k], 0x0f, 0xa3 + 8 * k, M_REG, 0, 0, K_BT);
        forms[nforms - 1].lockable = forms[nforms - 2].lockable = k > 0;
        add_ww(bt[k], 0x0f, 0xba, M_DIGIT, 4 + k, 1, K_BT);
        forms[nforms - 1].lockable = forms[nforms - 2].lockable = k > 0;
    }
    add_ww("BSF", 0x0f, 0xbc, M_REG, 0, 0, K_BSCAN);
    add_ww("BSR", 0x0f, 0xbd, M_REG, 0, 0, K_BSCAN);
    add_ww("SHLD", 0x0f, 0xa4, M_REG, 0, 1, K_DSHIFT);
    add_ww("SHLD", 0x0f, 0xa5, M_REG, 0, 0, K_DSHIFT);
    add_ww("SHRD", 0x0f, 0xac, M_REG, 0, 1, K_DSHIFT);
    add_ww("SHRD", 0x0f, 0xad, M_REG, 0, 0, K_DSHIFT);
    add_bww("XADD", 0x0f, 0xc0, M_REG, 0, 0, K_PLAIN);
    for (int f = nforms - 3; f < nforms; f++)
        forms[f].lockable = true;
    add_bww("CMPXCHG", 0x0f, 0xb0, M_REG, 0, 0, K_PLAIN);
    for (int f = nforms - 3; f < nforms; f++)
        forms[f].lockable = true;
    for (int cc = 0; cc < 16; cc++) {
        add("SETcc", 0x0f, 0x90 + cc, M_DIGIT, 0, 1, 0, K_PLAIN);
        add_ww("CMOVcc", 0x0f, 0x40 + cc, M_REG, 0, 0, K_PLAIN);
    }
    add_ww("MOVZX", 0x0f, 0xb6, M_REG, 0, 0, K_PLAIN);
    forms[nforms - 1].rm_size = forms[nforms - 2].rm_size = 1;
    add("MOVZX", 0x0f, 0xb7, M_REG, 0, 4, 0, K_PLAIN);
    last()->rm_size = 2;
    add_ww("MOVSX", 0x0f, 0xbe, M_REG, 0, 0, K_PLAIN);
    forms[nforms - 1].rm_size = forms[nforms - 2].rm_size = 1;
    add("MOVSX", 0x0f, 0xbf, M_REG, 0, 4, 0, K_PLAIN);
    last()->rm_size = 2;
    add_ww("CBW/CWDE", 0x98, 0, M_NONE, 0, 0, K_PLAIN);
    add_ww("CWD/CDQ", 0x99, 0, M_NONE, 0, 0, K_PLAIN);
    add_ww("LEA", 0x8d, 0, M_REG, 0, 0, K_LEA);
    add("CMC", 0xf5, 0, M_NONE, 0, 4, 0, K_PLAIN);
    add("CLC", 0xf8, 0, M_NONE, 0, 4, 0, K_PLAIN);
    add("STC", 0xf9, 0, M_NONE, 0, 4, 0, K_PLAIN);
}

/* ---- one generated case ---- */

struct regs {
    uint32_t r[8];
    uint64_t flags;   /* at offset 32: the host stub pushes and pops it */
};

struct gen {
    const struct form *f;
    uint8_t guest[16], host[20];
    int glen, hlen;
    bool mem, addr16, locked;
    int count;                 /* shift count, for the flags that depend on it */
    struct regs in;
    uint32_t undef_regs;       /* registers whose value is undefined afterwards */
    uint32_t defined;          /* arithmetic flags to compare */
    bool undef_mem;            /* the memory result is undefined too */
    bool lea16_widen;          /* host result: zero-extend the low 16 bits of this reg */
    int lea_reg;
    int reg_field;             /* ModRM's reg field */
};

/* A register that the form may name: never ESP at 16/32 bits (AH is fine). */
static int pick_reg(int size)
{
    for (;;) {
        int r = rnd() % 8;
        if (!(size >= 2 && r == R_ESP))
            return r;
    }
}

struct ea {
    int base, index, scale;    /* -1: none */
    int32_t disp;
    int mod, rm, sib;          /* sib -1: none */
    int disp_bytes;
};

/* A random 32-bit addressing form (mod 0-2) that does not name ESP. */
static void pick_ea32(struct ea *e, int mod)
{
    for (;;) {
        e->mod = mod;
        e->rm = rnd() % 8;
        e->sib = -1;
        e->base = e->index = -1;
        e->scale = 0;
        e->disp_bytes = mod == 1 ? 1 : mod == 2 ? 4 : 0;
        if (e->rm == 4) {
            e->sib = rnd() & 0xff;
            int base = e->sib & 7, index = (e->sib >> 3) & 7;
            e->scale = e->sib >> 6;
            if (base == R_ESP)
                continue;
            if (base == 5 && mod == 0)
                e->disp_bytes = 4;
            else
                e->base = base;
            if (index != 4)
                e->index = index;
        } else if (e->rm == 5 && mod == 0) {
            e->disp_bytes = 4;
        } else {
            e->base = e->rm;
        }
        e->disp = e->disp_bytes == 1 ? (int8_t)rnd() : e->disp_bytes == 4 ? (int32_t)rnd() : 0;
        return;
    }
}

static uint32_t ea32_value(const struct ea *e, const uint32_t *r)
{
    uint32_t a = (uint32_t)e->disp;
    if (e->base >= 0)
        a += r[e->base];
    if (e->index >= 0)
        a += r[e->index] << e->scale;
    return a;
}

/* Steer the address into the window through the base (or, without one, the
 * displacement or index).  False when the form cannot be steered. */
static bool steer_ea(struct ea *e, uint32_t *r, uint32_t target)
{
    if (e->base >= 0 && e->base == e->index)
        return false;
    if (e->base >= 0) {
        r[e->base] = 0;
        r[e->base] = target - ea32_value(e, r);
        return true;
    }
    if (e->disp_bytes == 4) {
        e->disp = 0;
        e->disp = (int32_t)(target - ea32_value(e, r));
        return true;
    }
    return false;
}

static int put_ea32(uint8_t *p, const struct ea *e, int reg_field, bool host)
{
    int n = 0;
    if (host && e->mod == 0 && e->rm == 5) {
        /* [disp32] is RIP-relative in 64-bit mode; SIB with no base/index is not. */
        p[n++] = (uint8_t)((reg_field << 3) | 4);
        p[n++] = 0x25;
    } else {
        p[n++] = (uint8_t)((e->mod << 6) | (reg_field << 3) | e->rm);
        if (e->sib >= 0)
            p[n++] = (uint8_t)e->sib;
    }
    for (int i = 0; i < e->disp_bytes; i++)
        p[n++] = (uint8_t)((uint32_t)e->disp >> (8 * i));
    return n;
}

/* 16-bit addressing (LEA only): the host's equivalent 32-bit SIB form. */
static const int8_t a16_base[8] = { R_EBX, R_EBX, R_EBP, R_EBP, R_ESI, R_EDI, R_EBP, R_EBX };
static const int8_t a16_index[8] = { R_ESI, R_EDI, R_ESI, R_EDI, -1, -1, -1, -1 };

static void put_lea16(uint8_t *g, uint8_t *h, int reg_field, int *glen, int *hlen)
{
    int mod = rnd() % 3, rm = rnd() % 8;
    int disp_bytes = mod == 1 ? 1 : mod == 2 ? 2 : (rm == 6 ? 2 : 0);
    int32_t disp = disp_bytes == 1 ? (int8_t)rnd() : disp_bytes == 2 ? (int16_t)rnd() : 0;
    int gn = 0, hn = 0;
    g[gn++] = (uint8_t)((mod << 6) | (reg_field << 3) | rm);
    for (int i = 0; i < disp_bytes; i++)
        g[gn++] = (uint8_t)((uint32_t)disp >> (8 * i));
    int base = (mod == 0 && rm == 6) ? -1 : a16_base[rm], index = a16_index[rm];
    /* Host: mod 2 SIB form [base + index + disp32], or [index*1 + disp32] with no base. */
    if (base < 0) {
        h[hn++] = (uint8_t)((reg_field << 3) | 4);
        h[hn++] = 0x25;                                       /* no base, no index */
    } else {
        h[hn++] = (uint8_t)(0x80 | (reg_field << 3) | 4);
        h[hn++] = (uint8_t)(((index < 0 ? 4 : index) << 3) | base);
    }
    for (int i = 0; i < 4; i++)
        h[hn++] = (uint8_t)((uint32_t)disp >> (8 * i));
    *glen = gn;
    *hlen = hn;
}

static uint32_t shift_defined(int digit, unsigned count, int size)
{
    unsigned n = count & 31, bits = 8 * size;
    if (n == 0)
        return FL_ARITH;
    uint32_t defined = FL_ARITH;
    if (n != 1)
        defined &= ~FL_OF;
    if (digit <= 3)
        return defined;
    defined &= ~FL_AF;
    if (digit != 7 && n >= bits)
        defined &= ~FL_CF;
    return defined;
}

static uint32_t dshift_defined(unsigned count, int size)
{
    unsigned n = count & 31;
    if (n == 0)
        return FL_ARITH;
    if (n > 8u * size)
        return 0;
    return FL_CF | FL_PF | FL_ZF | FL_SF | (n == 1 ? FL_OF : 0);
}

static void put_imm(uint8_t *p, int *n, uint32_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[(*n)++] = (uint8_t)(v >> (8 * i));
}

/* Build a random instance of form f into g; false to try another. */
static bool generate(struct gen *g, const struct form *f)
{
    memset(g, 0, sizeof *g);
    g->f = f;
    for (int k = 0; k < 8; k++)
        g->in.r[k] = interesting();
    g->in.r[R_ESP] = 0x00f00000u;
    g->in.flags = 0x2 | (rnd() & FL_ARITH);
    g->defined = FL_ARITH;
    g->lea_reg = -1;

    uint8_t *gp = g->guest, *hp = g->host;
    int gn = 0, hn = 0;
    int rm_size = f->rm_size ? f->rm_size : f->size;
    int reg_field = f->modrm == M_DIGIT ? f->digit : pick_reg(f->size);
    g->reg_field = reg_field;
    g->mem = f->modrm != M_NONE && !f->reg_only && chance(50);
    g->addr16 = f->kind == K_LEA && g->mem && chance(25);
    if (f->kind == K_LEA && !g->mem && !chance(3))
        g->mem = true;                  /* LEA r, r is #UD: a few cases only */
    g->locked = chance(4) || (f->lockable && g->mem && chance(10));

    if (g->locked)
        gp[gn++] = hp[hn++] = 0xf0;
    if (g->mem && !g->addr16)
        hp[hn++] = 0x67;
    if (g->addr16)
        gp[gn++] = 0x67;
    if (f->size == 2)
        gp[gn++] = hp[hn++] = 0x66;

    /* The opcode, with the host's spelling where 64-bit mode differs. */
    if (f->opreg >= 0 && (f->op[0] & 0xf0) == 0x40) {
        gp[gn++] = f->op[0];
        hp[hn++] = 0xff;
        hp[hn++] = (uint8_t)(0xc0 | ((f->op[0] >> 3) & 1) << 3 | f->opreg);
    } else {
        for (int i = 0; i < f->oplen; i++) {
            gp[gn++] = f->op[i];
            hp[hn++] = f->op[i] == 0x82 && f->oplen == 1 ? 0x80 : f->op[i];
        }
    }

    struct ea e;
    if (f->modrm != M_NONE) {
        if (!g->mem) {
            int rm = pick_reg(rm_size);
            gp[gn++] = hp[hn++] = (uint8_t)(0xc0 | (reg_field << 3) | rm);
        } else if (g->addr16) {
            int a, b;
            put_lea16(gp + gn, hp + hn, reg_field, &a, &b);
            gn += a;
            hn += b;
            if (f->size == 4) {
                /* The host writes 16 bits; the test widens them (see the top). */
                memmove(hp + 1, hp, hn);
                hp[0] = 0x66;
                hn++;
                g->lea16_widen = true;
                g->lea_reg = reg_field;
            }
        } else {
            pick_ea32(&e, rnd() % 3);
            if (f->kind != K_LEA) {
                uint32_t target = WIN_ADDR + 0x400 + rnd() % 0x800;
                if (!steer_ea(&e, g->in.r, target))
                    return false;
                if (f->kind == K_BT && f->modrm == M_REG) {
                    /* The bit offset register moves the operand: keep it near. */
                    if (reg_field == e.base || reg_field == e.index)
                        return false;
                    g->in.r[reg_field] = (uint32_t)((int32_t)(rnd() % 4096) - 2048);
                    if (f->size == 2)
                        g->in.r[reg_field] = (g->in.r[reg_field] & 0xffff) | (rnd() & 0xffff0000u);
                }
            }
            gn += put_ea32(gp + gn, &e, reg_field, false);
            hn += put_ea32(hp + hn, &e, reg_field, true);
        }
    }
    uint32_t imm = interesting();
    if (f->kind == K_SHIFT || f->kind == K_DSHIFT)
        imm = chance(70) ? rnd() % 34 : rnd() & 0xff;
    put_imm(gp, &gn, imm, f->imm);
    put_imm(hp, &hn, imm, f->imm);
    g->glen = gn;
    g->hlen = hn;

    /* Counts by CL: mostly small. */
    bool by_cl = (f->kind == K_SHIFT && f->op[0] == 0xd2) || (f->kind == K_SHIFT && f->op[0] == 0xd3) ||
                 (f->kind == K_DSHIFT && (f->op[1] == 0xa5 || f->op[1] == 0xad));
    if (by_cl && chance(70) && !(g->mem && (e.base == R_ECX || e.index == R_ECX)))
        g->in.r[R_ECX] = (g->in.r[R_ECX] & ~0xffu) | (rnd() % 34);
    if (f->kind == K_SHIFT) {
        g->count = f->op[0] <= 0xc1 ? imm & 0xff : f->op[0] <= 0xd1 ? 1 : g->in.r[R_ECX] & 0xff;
        g->defined = shift_defined(f->digit, g->count, f->size);
    } else if (f->kind == K_DSHIFT) {
        g->count = f->imm ? imm & 0xff : g->in.r[R_ECX] & 0xff;
        g->defined = dshift_defined(g->count, f->size);
        if (g->defined == 0) {
            g->undef_regs = 0xff;       /* the destination too */
            g->undef_mem = true;
        }
    } else if (f->kind == K_LOGIC) {
        g->defined = FL_ARITH & ~FL_AF;
    } else if (f->kind == K_MUL) {
        g->defined = FL_CF | FL_OF;
    } else if (f->kind == K_DIV) {
        g->defined = 0;
    } else if (f->kind == K_BT) {
        g->defined = FL_CF | FL_ZF;
    } else if (f->kind == K_BSCAN) {
        g->defined = FL_ZF;
    }
    return true;
}

/* ---- the host: a stub that loads the registers, runs the bytes, stores them ---- */

static uint8_t *stub;
static int stub_insn_at;
static sigjmp_buf host_fault;
static volatile int host_signal;

static void on_host_fault(int sig, siginfo_t *si, void *uc)
{
    host_signal = sig;
    siglongjmp(host_fault, 1);
}

static void emit(int *n, int count, ...)
{
    va_list ap;
    va_start(ap, count);
    for (int i = 0; i < count; i++)
        stub[(*n)++] = (uint8_t)va_arg(ap, int);
    va_end(ap);
}

/* RDI points at struct regs.  Callee-saved RBX, RBP and R15 are kept;
 * ESP is not loaded (it is the host's stack). */
static void build_stub(void)
{
    stub = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(stub != MAP_FAILED);
    int n = 0;
    emit(&n, 5, 0x53, 0x55, 0x41, 0x57, 0x49), emit(&n, 2, 0x89, 0xff);   /* push rbx, rbp, r15; mov r15, rdi */
    for (int r = 0; r < 8; r++)
        if (r != R_ESP)
            emit(&n, 4, 0x41, 0x8b, 0x47 | (r << 3), 4 * r);                /* mov r32, [r15 + 4r] */
    emit(&n, 4, 0x41, 0xff, 0x77, 32);                                       /* push qword [r15 + 32] */
    emit(&n, 1, 0x9d);                                                       /* popfq */
    stub_insn_at = n;
    memset(stub + n, 0x90, 20);
    n += 20;
    emit(&n, 1, 0x9c);                                                       /* pushfq */
    emit(&n, 4, 0x41, 0x8f, 0x47, 32);                                       /* pop qword [r15 + 32] */
    for (int r = 0; r < 8; r++)
        if (r != R_ESP)
            emit(&n, 4, 0x41, 0x89, 0x47 | (r << 3), 4 * r);                /* mov [r15 + 4r], r32 */
    emit(&n, 5, 0x41, 0x5f, 0x5d, 0x5b, 0xc3);                               /* pop r15, rbp, rbx; ret */
}

/* The host's #DE and #UD arrive as signals.  cmocka installs handlers of
 * its own around each test, so the test installs these inside its body. */
static void catch_host_faults(void)
{
    struct sigaction sa = { 0 };
    sa.sa_sigaction = on_host_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGFPE, &sa, NULL);
    sigaction(SIGILL, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

/* Returns the vector of the exception the host raised, or -1. */
static int run_host(const struct gen *g, struct regs *out)
{
    memset(stub + stub_insn_at, 0x90, 20);
    memcpy(stub + stub_insn_at, g->host, g->hlen);
    *out = g->in;
    host_signal = 0;
    if (sigsetjmp(host_fault, 1)) {
        *out = g->in;
        return host_signal == SIGFPE ? EXC_DE : host_signal == SIGILL ? EXC_UD : EXC_GP;
    }
    ((void (*)(struct regs *))stub)(out);
    out->flags = 0x2 | (out->flags & FL_ARITH);
    if (g->lea16_widen)
        out->r[g->lea_reg] &= 0xffff;
    return -1;
}

/* ---- the interpreter ---- */

static struct machine *m;

static void flat_user_mode(struct cpu *c)
{
    struct seg code = { 0 }, data = { 0 };
    /* 4 GiB, 32-bit, DPL 3: code execute/read, data read/write. */
    code.base = data.base = 0;
    code.limit = data.limit = 0xffffffffu;
    code.attr = SEG_ATTR_S | SEG_ATTR_P | SEG_ATTR_DB | SEG_ATTR_G | (3 << 5) | 0xb;
    data.attr = SEG_ATTR_S | SEG_ATTR_P | SEG_ATTR_DB | SEG_ATTR_G | (3 << 5) | 0x3;
    code.sel = 0x1b;
    data.sel = 0x23;
    for (int s = 0; s < SEG_COUNT; s++)
        c->seg[s] = data;
    c->seg[SEG_CS] = code;
    c->cr0 = CR0_PE | CR0_ET;
    c->cr3 = c->cr4 = 0;
    c->cpl = 3;
}

static int run_interp(const struct gen *g, struct regs *out, uint32_t *eip_after)
{
    struct cpu *c = &m->cpu;
    physmem_copy_to(m->pm, CODE_ADDR, g->guest, sizeof g->guest);
    memcpy(c->r, g->in.r, sizeof c->r);
    c->eflags = (uint32_t)g->in.flags | FL_IF;
    c->eip = CODE_ADDR;
    c->fault_depth = 0;
    c->halted = false;
    c->intr_shadow = false;
    c->budget = 1;
    int vector = -1;
    if (setjmp(c->fault_jmp)) {
        vector = c->exc_vector;
        c->fault_depth = 0;
    } else {
        interp_step(c);
    }
    memcpy(out->r, c->r, sizeof out->r);
    out->flags = 0x2 | (c->eflags & FL_ARITH);
    *eip_after = c->eip;
    return vector;
}

/* ---- comparing ---- */

struct family_tally {
    const char *name;
    unsigned long cases, undefined_seen, undefined_same;
};
static struct family_tally tallies[64];
static int ntallies;
static unsigned long failures;

static struct family_tally *tally_for(const char *name)
{
    for (int i = 0; i < ntallies; i++)
        if (!strcmp(tallies[i].name, name))
            return &tallies[i];
    assert_true(ntallies < 64);
    tallies[ntallies].name = name;
    return &tallies[ntallies++];
}

static void hex(char *buf, const uint8_t *p, int n)
{
    for (int i = 0; i < n; i++)
        sprintf(buf + 3 * i, "%02x ", p[i]);
}

static void report(const struct gen *g, const char *what, const struct regs *h, const struct regs *i, int hv,
                   int iv)
{
    if (failures++ >= 12)
        return;
    char gb[64] = "", hb[64] = "";
    hex(gb, g->guest, g->glen);
    hex(hb, g->host, g->hlen);
    print_error("MISMATCH %s (%s): guest [%s] host [%s]\n", g->f->name, what, gb, hb);
    print_error("  in   eax=%08x ecx=%08x edx=%08x ebx=%08x ebp=%08x esi=%08x edi=%08x fl=%03x\n", g->in.r[0],
                g->in.r[1], g->in.r[2], g->in.r[3], g->in.r[5], g->in.r[6], g->in.r[7], (unsigned)g->in.flags);
    print_error("  host eax=%08x ecx=%08x edx=%08x ebx=%08x ebp=%08x esi=%08x edi=%08x fl=%03x exc=%d\n", h->r[0],
                h->r[1], h->r[2], h->r[3], h->r[5], h->r[6], h->r[7], (unsigned)h->flags, hv);
    print_error("  intp eax=%08x ecx=%08x edx=%08x ebx=%08x ebp=%08x esi=%08x edi=%08x fl=%03x exc=%d\n", i->r[0],
                i->r[1], i->r[2], i->r[3], i->r[5], i->r[6], i->r[7], (unsigned)i->flags, iv);
}

static uint8_t *host_win;
static uint8_t win_init[WIN_SIZE], win_guest[WIN_SIZE];

/* Run one generated case both ways and compare. */
static void run_case(const struct gen *g)
{
    for (size_t k = 0; k < WIN_SIZE; k += 4) {
        uint32_t v = interesting();
        memcpy(win_init + k, &v, 4);
    }
    memcpy(host_win, win_init, WIN_SIZE);
    physmem_copy_to(m->pm, WIN_ADDR, win_init, WIN_SIZE);

    struct regs h, i;
    uint32_t eip_after;
    int hv = run_host(g, &h);
    int iv = run_interp(g, &i, &eip_after);
    physmem_copy_from(m->pm, WIN_ADDR, win_guest, WIN_SIZE);

    struct family_tally *t = tally_for(g->f->name);
    t->cases++;
    if (hv != iv) {
        report(g, "exception", &h, &i, hv, iv);
        return;
    }
    uint32_t defined = hv >= 0 ? FL_ARITH : g->defined;
    for (int r = 0; r < 8; r++) {
        if (r == R_ESP)
            continue;
        bool undefined = hv < 0 && ((g->undef_regs >> r) & 1);
        /* BSF/BSR of a zero source (ZF set) leave the destination undefined. */
        if (hv < 0 && g->f->kind == K_BSCAN && (h.flags & FL_ZF) && r == g->reg_field)
            undefined = true;
        if (!undefined && h.r[r] != i.r[r]) {
            report(g, "register", &h, &i, hv, iv);
            return;
        }
    }
    if ((h.flags ^ i.flags) & defined) {
        report(g, "defined flag", &h, &i, hv, iv);
        return;
    }
    if (hv < 0 && (FL_ARITH & ~defined)) {
        t->undefined_seen++;
        t->undefined_same += !((h.flags ^ i.flags) & FL_ARITH & ~defined);
    }
    if (!(hv < 0 && g->undef_mem) && memcmp(host_win, win_guest, WIN_SIZE)) {
        report(g, "memory", &h, &i, hv, iv);
        return;
    }
    if (hv < 0 && eip_after != CODE_ADDR + (uint32_t)g->glen)
        report(g, "length", &h, &i, hv, iv);
}

/* ---- setup ---- */

static int setup(void **state)
{
    m = tiny_machine_new(false, RAM_MB, false);
    if (!m)
        return -1;
    flat_user_mode(&m->cpu);
    tlb_flush_all(&m->cpu);
    host_win = mmap((void *)(uintptr_t)WIN_ADDR, WIN_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (host_win != (void *)(uintptr_t)WIN_ADDR) {
        fprintf(stderr, "cannot map the host window at %#x\n", WIN_ADDR);
        return -1;
    }
    build_stub();
    build_forms();
    return 0;
}

static int teardown(void **state)
{
    machine_free(m);
    return 0;
}

/* ---- named regressions: 8-bit DIV/IDIV take AH:AL (issue 22) ---- */

/* Runs the guest bytes with AX = ax and BL = divisor; returns the vector or -1. */
static int div8(uint8_t modrm_op, uint16_t ax, uint8_t divisor, uint16_t *ax_out)
{
    struct gen g = { 0 };
    static const struct form f = { .name = "DIV r/m8" };
    g.f = &f;
    g.guest[0] = 0xf6;
    g.guest[1] = modrm_op;              /* F6 /6 or /7 with BL */
    g.glen = 2;
    g.in.r[R_EAX] = 0x12340000u | ax;
    g.in.r[R_EBX] = divisor;
    g.in.r[R_ESP] = 0x00f00000u;
    g.in.flags = 0x2;
    struct regs out;
    uint32_t eip;
    int v = run_interp(&g, &out, &eip);
    *ax_out = (uint16_t)out.r[R_EAX];
    assert_int_equal(out.r[R_EAX] >> 16, 0x1234);
    return v;
}

static void test_div8_uses_ah(void **state)
{
    uint16_t ax;
    assert_int_equal(div8(0xf3, 257, 2, &ax), -1);          /* DIV BL: 257 / 2 */
    assert_int_equal(ax, 0x0180);                           /* AL = 128, AH = 1 */
    assert_int_equal(div8(0xfb, 0xff00, 2, &ax), -1);       /* IDIV BL: -256 / 2 */
    assert_int_equal(ax, 0x0080);                           /* AL = -128, AH = 0 */
}

static void test_div8_overflow_raises_de(void **state)
{
    uint16_t ax;
    assert_int_equal(div8(0xf3, 0x0500, 5, &ax), EXC_DE);   /* AH >= divisor: the quotient needs 9 bits */
    assert_int_equal(ax, 0x0500);                           /* a fault leaves AX alone */
    assert_int_equal(div8(0xf3, 0x0700, 5, &ax), EXC_DE);
    assert_int_equal(div8(0xf3, 0x0123, 0, &ax), EXC_DE);   /* divide by zero */
    assert_int_equal(div8(0xfb, 0x0100, 2, &ax), EXC_DE);   /* IDIV: 256 / 2 = 128 does not fit */
    assert_int_equal(div8(0xfb, 0x7f00, 0xff, &ax), EXC_DE);
}

/* ---- RDTSCP and RDPID (issue 17): IA32_TSC_AUX, flags and registers ---- */

/* The TSC itself differs from run to run; IA32_TSC_AUX (the CPU number
 * on a Linux host) does not: the guest's is set to the value the host's
 * run returned, and everything else must agree. */
static bool host_has(uint32_t leaf, int reg, int bit)
{
    uint32_t r[4];
    if (!__get_cpuid_count(leaf, 0, &r[0], &r[1], &r[2], &r[3]))
        return false;
    return (r[reg] >> bit) & 1;
}

static void tsc_aux_cases(const char *name, const uint8_t *bytes, int len, int aux_reg, uint32_t clobbered)
{
    static struct form f;
    f.name = name;
    catch_host_faults();
    for (int n = 0; n < 200; n++) {
        struct gen g = { 0 };
        g.f = &f;
        memcpy(g.guest, bytes, len);
        memcpy(g.host, bytes, len);
        g.glen = g.hlen = len;
        for (int r = 0; r < 8; r++)
            g.in.r[r] = interesting();
        g.in.r[R_ESP] = 0x00f00000u;
        g.in.flags = 0x2 | (rnd() & (FL_ARITH | FL_DF));
        struct regs h, i;
        uint32_t eip;
        assert_int_equal(run_host(&g, &h), -1);
        m->cpu.tsc_aux = h.r[aux_reg];
        assert_int_equal(run_interp(&g, &i, &eip), -1);
        assert_int_equal(eip, CODE_ADDR + (uint32_t)len);
        for (int r = 0; r < 8; r++)
            if (r != R_ESP && !((clobbered >> r) & 1) && h.r[r] != i.r[r])
                fail_msg("%s: register %d is %08x, the host's %08x", name, r, i.r[r], h.r[r]);
        assert_int_equal(h.flags & (FL_ARITH | FL_DF), i.flags & (FL_ARITH | FL_DF));
    }
}

static void test_rdtscp_ecx_is_tsc_aux(void **state)
{
    if (!host_has(0x80000001u, 3, 27))
        skip();
    static const uint8_t rdtscp[] = { 0x0f, 0x01, 0xf9 };
    tsc_aux_cases("RDTSCP", rdtscp, 3, R_ECX, 1u << R_EAX | 1u << R_EDX);
}

static void test_rdpid_is_tsc_aux(void **state)
{
    if (!host_has(7, 2, 22))
        skip();
    for (int r = 0; r < 8; r++) {
        if (r == R_ESP)
            continue;
        const uint8_t rdpid[] = { 0xf3, 0x0f, 0xc7, (uint8_t)(0xf8 | r) };
        tsc_aux_cases("RDPID", rdpid, 4, r, 0);
    }
}

/* STAC and CLAC at CPL 3 raise #UD, on the host (with SMAP or without)
 * as in the guest, and change nothing. */
static void test_stac_clac_at_cpl3_raise_ud(void **state)
{
    static const uint8_t forms[2][3] = { { 0x0f, 0x01, 0xcb }, { 0x0f, 0x01, 0xca } };
    static const struct form f = { .name = "STAC/CLAC" };
    catch_host_faults();
    for (int k = 0; k < 2; k++) {
        struct gen g = { 0 };
        g.f = &f;
        memcpy(g.guest, forms[k], 3);
        memcpy(g.host, forms[k], 3);
        g.glen = g.hlen = 3;
        for (int r = 0; r < 8; r++)
            g.in.r[r] = interesting();
        g.in.r[R_ESP] = 0x00f00000u;
        g.in.flags = 0x2;
        struct regs h, i;
        uint32_t eip;
        assert_int_equal(run_host(&g, &h), EXC_UD);
        assert_int_equal(run_interp(&g, &i, &eip), EXC_UD);
        assert_memory_equal(h.r, i.r, sizeof h.r);
    }
}

/* ---- the random run ---- */

static void test_random_instructions(void **state)
{
    const char *long_env = getenv("RETROVISOR_LONG");
    unsigned long n = long_env && *long_env && strcmp(long_env, "0") ? 10000000ul : 100000ul;
    rng_state = 0x5eed0022u;
    catch_host_faults();
    unsigned long ran = 0;
    while (ran < n) {
        struct gen g;
        if (!generate(&g, &forms[rnd() % nforms]))
            continue;
        run_case(&g);
        ran++;
    }
    for (int i = 0; i < ntallies; i++) {
        const struct family_tally *t = &tallies[i];
        if (t->undefined_seen)
            printf("  %-9s %7lu cases, undefined flags agree with the host in %.1f%%\n", t->name, t->cases,
                   100.0 * t->undefined_same / t->undefined_seen);
        else
            printf("  %-9s %7lu cases\n", t->name, t->cases);
    }
    printf("%lu cases, %lu mismatches (%d forms)\n", ran, failures, nforms);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_div8_uses_ah),
        cmocka_unit_test(test_div8_overflow_raises_de),
        cmocka_unit_test(test_random_instructions),
        cmocka_unit_test(test_rdtscp_ecx_is_tsc_aux),
        cmocka_unit_test(test_rdpid_is_tsc_aux),
        cmocka_unit_test(test_stac_clac_at_cpl3_raise_ud),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
