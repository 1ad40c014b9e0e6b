/*
 * monitor/decode.c cross-checked against capstone (an independent decoder
 * that knows every modern encoding).
 *
 * What is compared, for every byte string capstone decodes:
 *   - the length;
 *   - for a ModRM memory operand: base, index, scale (when there is an
 *     index), displacement (modulo the address size), segment override, and
 *     that ea_seg is the override or the SS/DS default of the base register;
 *   - for moffs (A0-A3): the offset and the segment override;
 *   - the immediate, when we decode one and capstone shows exactly one
 *     (relative branches through their target, since capstone shows that).
 * Byte strings capstone rejects are only counted: the emulated CPU needs a
 * length for every encoding that exists, capstone gives none there.
 *
 * Where the bytes come from:
 *   1. Chosen encodings: corners, past bugs, one per known disagreement.
 *   2. Random 15-byte strings with a fixed seed, biased toward prefixes and
 *      the 0F, 0F 38 and 0F 3A maps, in both modes.
 *   3. SeaBIOS's 32-bit code (Debian's bios.bin), found by following its
 *      control flow: see struct bios_walk for how code is told from data.
 *   4. Every byte offset of the same image, decoded in 16- and in 32-bit
 *      mode: a superset of all its real code of either size (16-bit code
 *      included), plus whatever data capstone happens to accept.
 * Without capstone's answer there is still a check of our own: an
 * instruction of length L needs exactly L bytes (NEED_MORE below that).
 *
 * Disagreements that are right on our side (the emulated CPU is a P6, not
 * whatever capstone models) or capstone's fault are listed in known[] with
 * the reason; everything else fails the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <capstone/capstone.h>

#include "monitor/cpu.h"
#include "monitor/decode.h"

enum { RANDOM_STRINGS = 100000, MAX_REPORTED = 16 };

#define BIOS_PATH "/usr/share/seabios/bios.bin"
#define BIOS_SIZE 0x20000
/* Also mapped at 0xFFFE0000, but SeaBIOS links its 32-bit code at the
 * alias below 1 MiB, so branch targets and pointers are in this one. */
#define BIOS_LOW  0xe0000u

/* ---- one byte string through both decoders ------------------------------ */

struct view {
    const uint8_t *buf;
    int avail;
    bool code32;
    uint64_t addr;
    int len;                 /* decode()'s answer */
    struct insn in;
    const cs_insn *ci;       /* capstone's, NULL if it rejected the bytes */
    const uint8_t *op;       /* first byte after the legacy prefixes */
};

static bool is_prefix(uint8_t b)
{
    switch (b) {
    case 0x26: case 0x2e: case 0x36: case 0x3e: case 0x64: case 0x65:
    case 0x66: case 0x67: case 0xf0: case 0xf2: case 0xf3:
        return true;
    default:
        return false;
    }
}

static const uint8_t *skip_prefixes(const uint8_t *b, int avail)
{
    int k = 0;
    while (k < avail - 1 && k < INSN_MAX_LEN && is_prefix(b[k]))
        k++;
    return b + k;
}

static int modrm_after(const struct view *v, int opcode_bytes)
{
    return v->op + opcode_bytes < v->buf + v->avail ? v->op[opcode_bytes] : -1;
}

/* ---- capstone's answer, in our terms ------------------------------------ */

/* -1: no register; -2: a register our decoder could never report. */
static int gpr_index(x86_reg r)
{
    switch (r) {
    case X86_REG_INVALID: case X86_REG_EIZ: case X86_REG_RIZ: return -1;
    case X86_REG_EAX: case X86_REG_AX: return R_EAX;
    case X86_REG_ECX: case X86_REG_CX: return R_ECX;
    case X86_REG_EDX: case X86_REG_DX: return R_EDX;
    case X86_REG_EBX: case X86_REG_BX: return R_EBX;
    case X86_REG_ESP: case X86_REG_SP: return R_ESP;
    case X86_REG_EBP: case X86_REG_BP: return R_EBP;
    case X86_REG_ESI: case X86_REG_SI: return R_ESI;
    case X86_REG_EDI: case X86_REG_DI: return R_EDI;
    default: return -2;
    }
}

static int seg_index(x86_reg r)
{
    switch (r) {
    case X86_REG_INVALID: return -1;
    case X86_REG_ES: return SEG_ES;
    case X86_REG_CS: return SEG_CS;
    case X86_REG_SS: return SEG_SS;
    case X86_REG_DS: return SEG_DS;
    case X86_REG_FS: return SEG_FS;
    case X86_REG_GS: return SEG_GS;
    default: return -2;
    }
}

static const cs_x86_op *cs_operand(const cs_insn *ci, x86_op_type type, int *count)
{
    const cs_x86 *x = &ci->detail->x86;
    const cs_x86_op *first = NULL;
    *count = 0;
    for (int k = 0; k < x->op_count; k++) {
        if (x->operands[k].type == type) {
            if (!first)
                first = &x->operands[k];
            ++*count;
        }
    }
    return first;
}

static bool is_relative_branch(const struct insn *in)
{
    uint16_t op = in->op;
    return (op >= 0x70 && op <= 0x7f) || (op >= 0xe0 && op <= 0xe3) || op == 0xe8 || op == 0xe9 ||
           op == 0xeb || (op >= 0x180 && op <= 0x18f) ||
           (op == 0xc7 && in->modrm == 0xf8);   /* XBEGIN, which capstone knows */
}

static uint32_t size_mask(bool is32) { return is32 ? 0xffffffffu : 0xffffu; }

static uint32_t sext(uint32_t v, int bytes)
{
    return bytes == 1 ? (uint32_t)(int8_t)v : bytes == 2 ? (uint32_t)(int16_t)v : v;
}

/* ---- known disagreements ------------------------------------------------ */

/* Capstone reads a VEX/EVEX/XOP prefix where a P6 has a legacy opcode
 * whose ModRM makes it #UD (a register operand to LES/LDS/BOUND, POP /1-7). */
static bool vex_les_lds(const struct view *v)
{
    int m = modrm_after(v, 1);
    return (v->op[0] == 0xc4 || v->op[0] == 0xc5) && m >= 0xc0 && v->ci->id != X86_INS_LES &&
           v->ci->id != X86_INS_LDS;
}

static bool evex_bound(const struct view *v)
{
    int m = modrm_after(v, 1);
    return v->op[0] == 0x62 && m >= 0xc0 && v->ci->id != X86_INS_BOUND;
}

static bool xop_pop(const struct view *v)
{
    int m = modrm_after(v, 1);
    return v->op[0] == 0x8f && m >= 0 && (m & 0x38) != 0 && v->ci->id != X86_INS_POP;
}

static int prefix_count(const struct view *v) { return (int)(v->op - v->buf); }

static bool ud1_without_modrm(const struct view *v)
{
    return v->in.op == 0x1b9 && v->ci->size == prefix_count(v) + 2;
}

static bool ud0_without_modrm(const struct view *v)
{
    return v->in.op == 0x1ff && v->ci->size == prefix_count(v) + 2;
}

static bool has_prefix(const struct view *v, uint8_t p)
{
    return memchr(v->buf, p, prefix_count(v)) != NULL;
}

static bool sse4a_two_imm8(const struct view *v)
{
    return v->in.op == 0x178 && (has_prefix(v, 0x66) || has_prefix(v, 0xf2)) &&
           v->ci->size == v->len + 2;
}

static bool bnd_drops_66(const struct view *v)
{
    return v->code32 && is_relative_branch(&v->in) && !v->in.op32 && v->in.imm_size == 2 &&
           has_prefix(v, 0xf2) && v->ci->size == v->len + 2;
}

/* The length agrees and so do the low 16 bits of the target. */
static bool rel32_cut_to_16(const struct view *v)
{
    if (!is_relative_branch(&v->in) || v->in.imm_size != 4 || v->len != v->ci->size ||
        !(has_prefix(v, 0x66) || has_prefix(v, 0x67)))
        return false;
    int n;
    const cs_x86_op *imm = cs_operand(v->ci, X86_OP_IMM, &n);
    uint32_t target = (uint32_t)v->addr + v->len + (uint32_t)(int16_t)v->in.imm;
    return n == 1 && ((imm->imm ^ target) & 0xffff) == 0;
}

struct known {
    const char *name;        /* category in the summary line */
    const char *pattern;     /* the bytes, SDM style */
    const char *reason;
    bool (*match)(const struct view *v);
};

static const struct known known[] = {
    { "vex", "C4/C5 with ModRM mod=11",
      "capstone decodes a VEX prefix (in 16-bit code too); a P6 has LES/LDS there, #UD with a "
      "register operand", vex_les_lds },
    { "evex", "62 with ModRM mod=11",
      "capstone decodes an EVEX prefix; a P6 has BOUND there, #UD with a register operand", evex_bound },
    { "xop", "8F with ModRM reg!=0",
      "capstone decodes an AMD XOP prefix; a P6 has POP Ev there, #UD for reg!=0", xop_pop },
    { "ud1", "0F B9 /r",
      "capstone 4 decodes UD1 as \"ud2b\" without a ModRM byte; the SDM gives UD1 r32, r/m32", ud1_without_modrm },
    { "ud0", "0F FF /r",
      "capstone 4 decodes UD0 without a ModRM byte (AMD's form); the SDM gives UD0 r32, r/m32", ud0_without_modrm },
    { "sse4a", "66/F2 0F 78 /r ib ib",
      "capstone decodes AMD's SSE4a EXTRQ/INSERTQ (two imm8); we give 0F 78 Intel's VMREAD shape, #UD either way",
      sse4a_two_imm8 },
    { "bnd66", "66 and F2 on a rel16 branch",
      "capstone ignores 66 when F2 (BND) is also there and reads a rel32; the CPU reads a rel16", bnd_drops_66 },
    { "rel16", "66 or 67 with E8/E9/0F 8x rel32",
      "capstone computes the target from the low 16 bits of the rel32 (sign-extended when bit 15 is "
      "set; 0F 8x in 16-bit code also wraps it to 16 bits); the length is right", rel32_cut_to_16 },
};
#define N_KNOWN ((int)(sizeof known / sizeof known[0]))

enum { COMPARED_MEM = 1, COMPARED_IMM = 2 };

/* The first difference between the two decoders, or NULL; *compared says
 * which operand facts were compared beyond the length. */
static const char *difference(const struct view *v, char *why, size_t n, int *compared)
{
    *compared = 0;
    const struct insn *in = &v->in;
    const cs_insn *ci = v->ci;

    if (v->len != ci->size) {
        snprintf(why, n, "length %d, capstone %d", v->len, ci->size);
        return why;
    }

    if (ci->detail->x86.addr_size != (in->addr32 ? 4 : 2)) {
        snprintf(why, n, "address size %d, capstone %d", in->addr32 ? 4 : 2, ci->detail->x86.addr_size);
        return why;
    }

    int nmem, nimm;
    const cs_x86_op *mem = cs_operand(ci, X86_OP_MEM, &nmem);
    const cs_x86_op *imm = cs_operand(ci, X86_OP_IMM, &nimm);
    uint32_t amask = size_mask(in->addr32);

    if (insn_is_mem(in) || (in->op >= 0xa0 && in->op <= 0xa3)) {
        *compared |= COMPARED_MEM;
        if (!mem) {
            snprintf(why, n, "memory operand, capstone has none");
            return why;
        }
        int cseg = seg_index(mem->mem.segment);
        if (cseg != in->seg) {
            snprintf(why, n, "segment override %d, capstone %d", in->seg, cseg);
            return why;
        }
    }
    if (insn_is_mem(in)) {
        int base = gpr_index(mem->mem.base), index = gpr_index(mem->mem.index);
        if (base != in->ea_base || index != in->ea_index) {
            snprintf(why, n, "base/index %d/%d, capstone %d/%d", in->ea_base, in->ea_index, base, index);
            return why;
        }
        if (index >= 0 && (1 << in->ea_scale) != mem->mem.scale) {
            snprintf(why, n, "scale %d, capstone %d", 1 << in->ea_scale, mem->mem.scale);
            return why;
        }
        if (((uint32_t)in->disp & amask) != ((uint32_t)mem->mem.disp & amask)) {
            snprintf(why, n, "displacement %#x, capstone %#llx", (uint32_t)in->disp,
                     (unsigned long long)mem->mem.disp);
            return why;
        }
        int def = base == R_EBP || base == R_ESP ? SEG_SS : SEG_DS;
        if (in->ea_seg != (in->seg >= 0 ? in->seg : def)) {
            snprintf(why, n, "ea_seg %d with base %d and override %d", in->ea_seg, base, in->seg);
            return why;
        }
    }
    if (in->op >= 0xa0 && in->op <= 0xa3 && (in->imm & amask) != ((uint32_t)mem->mem.disp & amask)) {
        snprintf(why, n, "moffs %#x, capstone %#llx", in->imm, (unsigned long long)mem->mem.disp);
        return why;
    }
    if (in->imm_size && nimm == 1) {
        *compared |= COMPARED_IMM;
        uint32_t ours = in->imm, theirs = (uint32_t)imm->imm;
        uint32_t mask = in->imm_size == 4 ? 0xffffffffu : (1u << 8 * in->imm_size) - 1;
        if (is_relative_branch(in)) {
            mask = size_mask(in->op32);
            ours = (uint32_t)v->addr + v->len + sext(in->imm, in->imm_size);
        }
        if ((ours & mask) != (theirs & mask)) {
            snprintf(why, n, "immediate %#x, capstone %#x", ours & mask, theirs & mask);
            return why;
        }
    }
    return NULL;
}

/* ---- tallies ------------------------------------------------------------ */

struct tally {
    const char *what;
    unsigned long agree, agree_mem, agree_imm, rejected, unlisted;
    unsigned long known[N_KNOWN];
};

static void report(const struct view *v, const char *why)
{
    char hex[3 * INSN_MAX_LEN + 1] = "";
    int shown = v->avail < INSN_MAX_LEN ? v->avail : INSN_MAX_LEN;
    for (int k = 0; k < shown; k++)
        sprintf(hex + 3 * k, "%02x ", v->buf[k]);
    print_message("  %s-bit at %#llx: %s| capstone \"%s %s\" | %s\n", v->code32 ? "32" : "16",
                  (unsigned long long)v->addr, hex, v->ci ? v->ci->mnemonic : "(rejects)",
                  v->ci ? v->ci->op_str : "", why);
}

static struct tally total = { .what = "all of the above" };

/* Prints one tally and adds it to the total. */
static void summary(const struct tally *t)
{
    if (t != &total) {
        total.agree += t->agree;
        total.agree_mem += t->agree_mem;
        total.agree_imm += t->agree_imm;
        total.rejected += t->rejected;
        total.unlisted += t->unlisted;
        for (int k = 0; k < N_KNOWN; k++)
            total.known[k] += t->known[k];
    }
    unsigned long known_total = 0;
    char parts[512] = "";
    size_t at = 0;
    for (int k = 0; k < N_KNOWN; k++) {
        known_total += t->known[k];
        at += snprintf(parts + at, sizeof parts - at, "%s%s: %lu", k ? ", " : "", known[k].name,
                       t->known[k]);
    }
    print_message("decode cross-check (%s): %lu agree (%lu with a memory operand, %lu with an "
                  "immediate), %lu known-disagree (%s), %lu rejected by capstone, %lu unlisted\n",
                  t->what, t->agree, t->agree_mem, t->agree_imm, known_total, parts, t->rejected,
                  t->unlisted);
}

/* ---- the comparison driver ---------------------------------------------- */

struct checker {
    csh cs16, cs32;
    cs_insn *ci16, *ci32;
};

static void checker_open(struct checker *c)
{
    assert_int_equal(cs_open(CS_ARCH_X86, CS_MODE_16, &c->cs16), CS_ERR_OK);
    assert_int_equal(cs_open(CS_ARCH_X86, CS_MODE_32, &c->cs32), CS_ERR_OK);
    cs_option(c->cs16, CS_OPT_DETAIL, CS_OPT_ON);
    cs_option(c->cs32, CS_OPT_DETAIL, CS_OPT_ON);
    c->ci16 = cs_malloc(c->cs16);
    c->ci32 = cs_malloc(c->cs32);
}

static void checker_close(struct checker *c)
{
    cs_free(c->ci16, 1);
    cs_free(c->ci32, 1);
    cs_close(&c->cs16);
    cs_close(&c->cs32);
}

/* What check() found: an index into known[] or one of these. */
enum { AGREE = -1, REJECTED = -2, UNLISTED = -3 };

static int check(struct checker *c, struct tally *t, const uint8_t *buf, int avail, bool code32,
                 uint64_t addr)
{
    struct view v = { .buf = buf, .avail = avail, .code32 = code32, .addr = addr };
    cs_insn *ci = code32 ? c->ci32 : c->ci16;
    const uint8_t *p = buf;
    size_t size = avail;
    uint64_t a = addr;
    v.ci = cs_disasm_iter(code32 ? c->cs32 : c->cs16, &p, &size, &a, ci) ? ci : NULL;
    v.len = decode(buf, avail, code32, &v.in);
    v.op = skip_prefixes(buf, avail);
    if (!v.ci) {
        t->rejected++;
        return REJECTED;
    }
    char why[160];
    int compared;
    if (!difference(&v, why, sizeof why, &compared)) {
        t->agree++;
        t->agree_mem += !!(compared & COMPARED_MEM);
        t->agree_imm += !!(compared & COMPARED_IMM);
        return AGREE;
    }
    for (int k = 0; k < N_KNOWN; k++) {
        if (known[k].match(&v)) {
            t->known[k]++;
            return k;
        }
    }
    if (t->unlisted++ < MAX_REPORTED)
        report(&v, why);
    return UNLISTED;
}

/* Independent of capstone: a length-L instruction needs exactly L bytes. */
static void check_self(const uint8_t *buf, bool code32, unsigned long *bad)
{
    struct insn in;
    int len = decode(buf, INSN_MAX_LEN, code32, &in);
    if (len == DECODE_NEED_MORE) {
        if ((*bad)++ < MAX_REPORTED)
            print_message("  %s-bit %02x %02x %02x...: NEED_MORE with 15 bytes given\n",
                          code32 ? "32" : "16", buf[0], buf[1], buf[2]);
        return;
    }
    if (len < 0)
        return;
    for (int k = 0; k < len; k++) {
        int r = decode(buf, k, code32, &in);
        if (r != DECODE_NEED_MORE) {
            if ((*bad)++ < MAX_REPORTED)
                print_message("  %s-bit %02x %02x %02x...: length %d but %d bytes give %d\n",
                              code32 ? "32" : "16", buf[0], buf[1], buf[2], len, k, r);
            return;
        }
    }
}

/* ---- random byte strings ------------------------------------------------ */

static uint64_t rng_state;

static uint32_t rng32(void)
{
    /* xorshift64*: fast and good enough to spread bytes. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

/* Uniform bytes rarely reach the 0F maps or stack prefixes, which is where
 * most of the table is; bias the first bytes toward them. */
static void random_string(uint8_t *b)
{
    static const uint8_t prefixes[] = { 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3 };
    int k = 0;
    for (int i = 0; i < INSN_MAX_LEN; i++)
        b[i] = (uint8_t)rng32();
    /* Now and then enough prefixes to reach the 15-byte limit. */
    int n = rng32() % 32 == 0 ? 9 + rng32() % 5 : rng32() % 8 > 4 ? 1 + rng32() % 3 : 0;
    while (k < n)
        b[k++] = prefixes[rng32() % sizeof prefixes];
    switch (rng32() % 8) {
    case 0: case 1: case 2:
        break;                               /* one-byte map */
    case 3: case 4: case 5:
        b[k] = 0x0f;                         /* 0F map */
        break;
    case 6:
        b[k] = 0x0f, b[k + 1] = 0x38;
        break;
    default:
        b[k] = 0x0f, b[k + 1] = 0x3a;
        break;
    }
}

static void test_random(void **state)
{
    struct checker c;
    struct tally t16 = { .what = "random, 16-bit" }, t32 = { .what = "random, 32-bit" };
    unsigned long self_bad = 0;
    uint8_t b[INSN_MAX_LEN];
    checker_open(&c);
    rng_state = 0x6465636f64652121ull;
    for (int i = 0; i < RANDOM_STRINGS; i++) {
        random_string(b);
        check(&c, &t16, b, INSN_MAX_LEN, false, 0x1000);
        check(&c, &t32, b, INSN_MAX_LEN, true, 0x100000);
        check_self(b, false, &self_bad);
        check_self(b, true, &self_bad);
    }
    summary(&t16);
    summary(&t32);
    checker_close(&c);
    assert_int_equal(self_bad, 0);
    assert_int_equal(t16.unlisted + t32.unlisted, 0);
}

/* ---- chosen encodings -------------------------------------------------- */

/*
 * Shapes random bytes reach rarely or that broke before, each with the
 * outcome it must have; every known[] entry has at least one here, so none
 * is dead or wider than its reason.
 */
struct directed {
    const char *bytes;
    bool code32;
    const char *expect;      /* "agree", "rejected", "too long" or a known[] name */
    int len;                 /* our length where capstone has none to compare */
};

static const struct directed directed[] = {
    /* the operand-less and ModRM-only corners of the 0F map */
    { "0f 0f c1 9e", true, "agree" },                   /* 3DNow! PFADD: ModRM + suffix */
    { "0f 0f 44 08 9e", false, "agree" },
    { "0f 78 c1", true, "agree" },                      /* VMREAD */
    { "0f 79 04 24", true, "agree" },                   /* VMWRITE */
    { "0f a7 c0", true, "agree" },                      /* VIA PadLock XSTORE */
    { "0f 20 00", true, "agree" },                      /* MOV from CR0: mod is ignored */
    { "0f 22 5d", false, "agree" },
    { "0f 1f 44 00 00", true, "agree" },                /* NOP Ev */
    { "0f 0d 08", true, "agree" },                      /* PREFETCHW */
    { "0f 18 04 24", false, "agree" },                  /* PREFETCHNTA */
    { "66 0f 3a 0f c1 08", true, "agree" },             /* PALIGNR */
    { "66 0f 38 00 44 24 10", true, "agree" },          /* PSHUFB */
    { "66 0f 73 d0 04", false, "agree" },
    /* one-byte map immediates */
    { "c8 10 00 01", true, "agree" },                   /* ENTER: two immediates */
    { "9a 78 56 34 12 00 10", true, "agree" },          /* CALL far ptr16:32 */
    { "66 9a 78 56 34 12 00 10", false, "agree" },
    { "f6 c0 01", true, "agree" },                      /* TEST Eb, ib */
    { "66 f7 44 24 04 01 00", true, "agree" },          /* TEST Ew, iw */
    { "f7 d0", true, "agree" },                         /* NOT: no immediate in group 3 */
    { "82 c0 01", true, "agree" },
    { "c7 f8 00 01 00 00", true, "agree" },             /* XBEGIN shape of MOV Ev, Iz */
    { "67 e3 fe", true, "agree" },                      /* JCXZ */
    { "66 6a ff", false, "agree" },
    /* addressing */
    { "a1 78 56 34 12", true, "agree" },                /* moffs */
    { "67 a1 34 12", true, "agree" },
    { "64 66 a3 34 12 00 00", false, "agree" },
    { "8b 46 fe", false, "agree" },                     /* [bp-2]: SS */
    { "26 8b 46 00", false, "agree" },
    { "8b 06 34 12", false, "agree" },                  /* disp16 alone */
    { "8b 04 8d 00 10 00 00", true, "agree" },          /* index*4 + disp32, no base */
    { "8b 04 24", true, "agree" },                      /* [esp]: SS */
    { "8b 04 20", true, "agree" },                      /* SIB index 100: none */
    { "8b 44 e5 80", true, "agree" },                   /* [ebp - 0x80] with a dead scale */
    { "67 8b 00", true, "agree" },
    { "67 8b 04 24", false, "agree" },
    { "36 3e 8b 00", true, "agree" },                   /* the last override counts */
    /* 15 bytes is the most */
    { "66 66 66 66 66 66 66 66 66 66 66 66 66 66 90", true, "agree" },
    { "3e 3e 3e 3e 3e 3e 3e 3e 3e 3e 3e 05 01 02 03 04", true, "too long" },
    { "26 26 26 26 26 26 26 26 26 26 26 26 0f 38 00 c1", true, "too long" },
    /* capstone 4 has no answer; the length is the SDM's (or, for what only
     * older or other CPUs define, theirs) */
    { "0f 0d c0", true, "rejected", 3 },                /* NOP Ev / PREFETCHW, register form */
    { "0f 18 c0", true, "rejected", 3 },                /* hint NOP, register form */
    { "0f 1e c0", false, "rejected", 3 },
    { "0f 24 58", true, "rejected", 3 },                /* MOV r32, TR3: mod ignored */
    { "0f 26 d8", true, "rejected", 3 },
    { "0f a6 00", true, "rejected", 3 },
    { "0f 38 ff 44 24 08", true, "rejected", 6 },       /* undefined, still ModRM */
    { "0f 3a ff 00 01", false, "rejected", 5 },
    { "0f 0f 00 00", true, "rejected", 4 },             /* 3DNow! with an undefined suffix */
    { "c6 c8 01", true, "rejected", 3 },                /* group 11 beyond /0 */
    { "0f 04", true, "rejected", 2 },
    /* the known disagreements */
    { "c4 e1 78 58 c1", true, "vex" },
    { "c5 f8 58 c1", false, "vex" },
    { "62 f1 7c 48 58 c1", true, "evex" },
    { "8f e9 78 e1 c1", true, "xop" },
    { "0f b9 00", true, "ud1" },
    { "0f ff 00", false, "ud0" },
    { "66 0f 78 c0 01 02", true, "sse4a" },
    { "f2 0f 78 c1 01 02", true, "sse4a" },
    { "3e 66 f2 e8 5c 75 71 eb", true, "bnd66" },
    { "66 0f 84 00 00 01 00", false, "rel16" },
    { "3e f2 66 e9 f3 ac 45 4d", false, "rel16" },
    { "67 0f 84 00 80 01 00", true, "rel16" },
};

static int parse_hex(const char *text, uint8_t *out, int max)
{
    int n = 0;
    char *end;
    for (const char *p = text; *p && n < max; p = end) {
        out[n++] = (uint8_t)strtoul(p, &end, 16);
        if (end == p)
            break;
    }
    return n;
}

static void test_directed(void **state)
{
    struct checker c;
    struct tally t = { .what = "chosen encodings" };
    bool used[N_KNOWN] = { false };
    int wrong = 0;
    checker_open(&c);
    for (size_t i = 0; i < sizeof directed / sizeof directed[0]; i++) {
        const struct directed *d = &directed[i];
        uint8_t b[INSN_MAX_LEN + 8];
        int n = parse_hex(d->bytes, b, sizeof b);
        int avail = n < INSN_MAX_LEN ? n : INSN_MAX_LEN;
        int got = check(&c, &t, b, avail, d->code32, d->code32 ? 0x100000 : 0x1000);
        const char *name = got == AGREE ? "agree" : got == REJECTED ? "rejected" :
                           got == UNLISTED ? "unlisted" : known[got].name;
        if (got >= 0)
            used[got] = true;
        struct insn in;
        int ours = decode(b, n, d->code32, &in);
        if (!strcmp(d->expect, "too long")) {
            if (got != REJECTED || ours != DECODE_TOO_LONG) {
                print_message("  %s: %s and length %d, expected both to refuse it\n", d->bytes, name, ours);
                wrong++;
            }
        } else if (d->len && ours != d->len) {
            print_message("  %s (%s-bit): length %d, expected %d\n", d->bytes, d->code32 ? "32" : "16",
                          ours, d->len);
            wrong++;
        } else if (strcmp(name, d->expect)) {
            print_message("  %s (%s-bit): %s, expected %s\n", d->bytes, d->code32 ? "32" : "16", name,
                          d->expect);
            wrong++;
        }
    }
    checker_close(&c);
    for (int k = 0; k < N_KNOWN; k++) {
        if (!used[k]) {
            print_message("  known[] entry %s has no chosen encoding\n", known[k].name);
            wrong++;
        }
    }
    summary(&t);
    assert_int_equal(wrong, 0);
}

/* ---- SeaBIOS ------------------------------------------------------------ */

static uint8_t *bios;

static bool load_bios(void)
{
    if (bios)
        return true;
    FILE *f = fopen(BIOS_PATH, "rb");
    if (!f)
        return false;
    bios = malloc(BIOS_SIZE);
    size_t got = bios ? fread(bios, 1, BIOS_SIZE, f) : 0;
    fclose(f);
    if (got != BIOS_SIZE) {
        free(bios);
        bios = NULL;
    }
    return bios != NULL;
}

/*
 * SeaBIOS's 32-bit code, told from data by following it.
 *
 * SeaBIOS links 16-bit, 32-bit segmented and 32-bit flat code into one image
 * and interleaves code with data (scripts/layoutrom.py packs sections by
 * alignment), and Debian's image has no symbols: a linear sweep would read
 * data as code.  So the code is found the way a CPU finds it:
 *   seeds   - where 16-bit code enters 32-bit code, recognised by the code
 *             that does it (romlayout.S): ENTRY_INTO32 is
 *             "movl $func, %edx; jmp transition32" (66 BA imm32 E9 rel16),
 *             transition32 jumps far to the flat code selector
 *             (66 EA imm32 08 00), and the BIOS32 service directory entry
 *             begins "pushfl; cmpl $'$PCI', %eax" (9C 3D 24 50 43 49) and
 *             hands out entry_pcibios32 with "movl $entry_pcibios32, %edx"
 *             (BA imm32, an offset in the F segment).
 *   flow    - direct jumps, calls and conditional branches are followed; a
 *             path ends at ret/iret, an unconditional or indirect jump, hlt
 *             or ud2.
 *   guesses - code reached only through pointers (the init code, relocated
 *             and called through a computed pointer; threads; callbacks in
 *             tables) is guessed from the byte after each path's end (gcc
 *             packs functions back to back) and from every immediate that
 *             points into the image.  A guess is kept only if everything it
 *             reaches decodes, lines up with the code already found, stays in
 *             the image, does not start like a C string, holds none of the
 *             instructions gcc never emits (never_from_gcc; seeds are held
 *             to that too) and makes no far transfer (only the mode-switch
 *             trampolines do, and after one the code may be 16-bit).
 * With SeaBIOS 1.16 this finds ~21000 instructions: the init code
 * (0x2120-0xe875 in the image), the runtime flat code (0xf3d8-0x12adf), the
 * 32-bit segmented PCI BIOS code (0x16f67-0x17836) and the trampolines.  The
 * only bytes it takes that are not compiled 32-bit code are the reset vector's
 * far jump, which the 32-bit reset fallback really does call.  What it misses
 * is 32-bit code reached only through pointers stored in data; the
 * every-offset sweep covers that (without knowing it is code).
 */
enum { MIN_SEABIOS32_INSNS = 15000 };

enum { CODE_START = 1, CODE_BODY = 2 };

struct bios_walk {
    csh cs;
    cs_insn *ci;
    uint8_t mark[BIOS_SIZE];     /* accepted code: CODE_START / CODE_BODY */
    uint8_t tmark[BIOS_SIZE];    /* the same for the guess being tried ... */
    uint32_t tgen[BIOS_SIZE];    /* ... valid where tgen == gen */
    uint32_t gen;
    uint32_t tried[BIOS_SIZE / 32 + 1];
    uint32_t *guess;             /* offsets still to try, FIFO */
    size_t nguess, guessed, guess_cap;
    /* An instruction takes at least one byte and pushes at most one branch
     * target and, being 5 bytes or more to hold a pointer, one guess. */
    uint32_t tinsn[BIOS_SIZE], ntinsn;       /* starts taken by the current try */
    uint32_t tnew[BIOS_SIZE + 1], ntnew;     /* guesses it produced */
    uint32_t stack[BIOS_SIZE + 1], nstack;
};

/* Only the alias the code is linked at: small negative numbers would all
 * look like pointers into the one below 4 GiB. */
static long bios_offset(uint64_t linear)
{
    linear &= 0xffffffffu;
    if (linear >= BIOS_LOW && linear < BIOS_LOW + BIOS_SIZE)
        return (long)(linear - BIOS_LOW);
    return -1;
}

static bool looks_like_string(const uint8_t *p, size_t left)
{
    size_t k = 0;
    while (k < left && k < 80 && ((p[k] >= 0x20 && p[k] < 0x7f) || p[k] == '\n' || p[k] == '\t'))
        k++;
    return k >= 3 && k < left && p[k] == 0;
}

/* What gcc -m32 (and SeaBIOS's inline asm) never generates, and data or
 * 16-bit code decoded as 32-bit code often does: BCD, ARPL, BOUND, INTO,
 * LES/LDS, SALC, INT1, IRET, and 16-bit addressing (a 67 prefix anywhere
 * but on a string instruction, where memcpy_far puts one). */
static bool never_from_gcc(const cs_insn *ci)
{
    const cs_x86 *x = &ci->detail->x86;
    uint8_t op = x->opcode[0];
    bool string_op = (op >= 0xa4 && op <= 0xa7) || (op >= 0xaa && op <= 0xaf) || (op >= 0x6c && op <= 0x6f);
    if (x->prefix[3] && !string_op)
        return true;
    /* So are 16-bit near transfers (66 C2/C3/E8/E9) and "add [eax], al"
     * (00 00, what zero fill decodes to). */
    if (x->prefix[2] && (op == 0xc2 || op == 0xc3 || op == 0xe8 || op == 0xe9))
        return true;
    if (op == 0xca)   /* RETF imm16: SeaBIOS's far returns pop nothing */
        return true;
    if (ci->size == 2 && ci->bytes[0] == 0 && ci->bytes[1] == 0)
        return true;
    switch (ci->id) {
    case X86_INS_AAA: case X86_INS_AAD: case X86_INS_AAM: case X86_INS_AAS:
    case X86_INS_DAA: case X86_INS_DAS: case X86_INS_ARPL: case X86_INS_BOUND:
    case X86_INS_INTO: case X86_INS_LES: case X86_INS_LDS: case X86_INS_SALC:
    case X86_INS_INT1: case X86_INS_IRET: case X86_INS_IRETD:
        return true;
    default:
        return false;
    }
}

static bool has_group(const cs_insn *ci, uint8_t group)
{
    for (int k = 0; k < ci->detail->groups_count; k++)
        if (ci->detail->groups[k] == group)
            return true;
    return false;
}

static void add_guess(struct bios_walk *w, long off)
{
    if (off < 0 || (w->tried[off / 32] >> (off % 32) & 1))
        return;
    w->tried[off / 32] |= 1u << (off % 32);
    if (w->nguess == w->guess_cap) {
        w->guess_cap = w->guess_cap ? 2 * w->guess_cap : 4096;
        w->guess = realloc(w->guess, w->guess_cap * sizeof *w->guess);
        assert_non_null(w->guess);
    }
    w->guess[w->nguess++] = (uint32_t)off;
}

static uint8_t tmark_at(const struct bios_walk *w, uint32_t off)
{
    return w->tgen[off] == w->gen ? w->tmark[off] : 0;
}

/* Follows everything reachable from start; keeps it all or nothing. */
static bool try_code(struct bios_walk *w, uint32_t start, bool seed)
{
    w->gen++;
    w->ntinsn = w->ntnew = w->nstack = 0;
    w->stack[w->nstack++] = start;
    if (looks_like_string(bios + start, BIOS_SIZE - start))
        return false;
    while (w->nstack) {
        uint32_t off = w->stack[--w->nstack];
        for (;;) {
            if (w->mark[off] == CODE_START || tmark_at(w, off) == CODE_START)
                break;                       /* joins code already found */
            const uint8_t *p = bios + off;
            size_t left = BIOS_SIZE - off;
            uint64_t addr = BIOS_LOW + off;
            if (!cs_disasm_iter(w->cs, &p, &left, &addr, w->ci) || never_from_gcc(w->ci))
                return false;
            for (uint32_t k = 0; k < w->ci->size; k++) {
                if (w->mark[off + k] || tmark_at(w, off + k))
                    return false;            /* overlaps other code out of step */
                w->tgen[off + k] = w->gen;
                w->tmark[off + k] = k ? CODE_BODY : CODE_START;
            }
            w->tinsn[w->ntinsn++] = off;

            const cs_x86 *x = &w->ci->detail->x86;
            bool jump = has_group(w->ci, CS_GRP_JUMP), call = has_group(w->ci, CS_GRP_CALL);
            bool direct = x->op_count == 1 && x->operands[0].type == X86_OP_IMM;
            if ((jump || call) && direct) {
                long target = bios_offset((uint64_t)x->operands[0].imm);
                if (target < 0)
                    return false;
                w->stack[w->nstack++] = (uint32_t)target;
            }
            if (!jump && !call) {
                int n;
                const cs_x86_op *imm = cs_operand(w->ci, X86_OP_IMM, &n);
                long target = n == 1 ? bios_offset((uint64_t)imm->imm) : -1;
                if (target >= 0)
                    w->tnew[w->ntnew++] = (uint32_t)target;
            }
            /* Far transfers switch modes: only the trampolines the seeds
             * lead to make them, and what follows one may be 16-bit code. */
            bool far = w->ci->id == X86_INS_LJMP || w->ci->id == X86_INS_LCALL ||
                       w->ci->id == X86_INS_RETF;
            if (far && !seed)
                return false;
            off += w->ci->size;
            bool end = has_group(w->ci, CS_GRP_RET) || has_group(w->ci, CS_GRP_IRET) ||
                       (jump && !direct) || w->ci->id == X86_INS_JMP || far ||
                       w->ci->id == X86_INS_HLT || w->ci->id == X86_INS_UD2;
            if (end || off >= BIOS_SIZE) {
                if (off < BIOS_SIZE && !far)
                    w->tnew[w->ntnew++] = off;
                break;
            }
        }
    }
    for (uint32_t i = 0; i < w->ntinsn; i++) {
        uint32_t off = w->tinsn[i];
        w->mark[off] = CODE_START;
        for (uint32_t k = off + 1; k < BIOS_SIZE && tmark_at(w, k) == CODE_BODY; k++)
            w->mark[k] = CODE_BODY;
    }
    for (uint32_t i = 0; i < w->ntnew; i++)
        add_guess(w, w->tnew[i]);
    return true;
}

/* The seeds described above; returns how many. */
static int seabios_seeds(uint32_t *seed, int max)
{
    int n = 0;
    for (uint32_t off = 0; off + 10 <= BIOS_SIZE && n < max; off++) {
        const uint8_t *b = bios + off;
        long to = -1;
        if (b[0] == 0x66 && b[1] == 0xba && b[6] == 0xe9)
            to = bios_offset(b[2] | b[3] << 8 | b[4] << 16 | (uint32_t)b[5] << 24);
        else if (b[0] == 0x66 && b[1] == 0xea && b[6] == 0x08 && b[7] == 0x00)
            to = bios_offset(b[2] | b[3] << 8 | b[4] << 16 | (uint32_t)b[5] << 24);
        else if (!memcmp(b, "\x9c\x3d$PCI", 6)) {
            seed[n++] = off;
            for (uint32_t k = 6; k + 5 <= 32 && off + k + 5 <= BIOS_SIZE; k++) {
                if (b[k] == 0xba && b[k + 3] == 0 && b[k + 4] == 0) {
                    to = 0x10000 + (b[k + 1] | b[k + 2] << 8);   /* CS base is 0xF0000 */
                    break;
                }
            }
        }
        if (to >= 0 && n < max)
            seed[n++] = (uint32_t)to;
    }
    return n;
}

static void test_seabios_32bit_code(void **state)
{
    if (!load_bios()) {
        print_message("%s not found: skipped\n", BIOS_PATH);
        skip();
    }
    struct bios_walk *w = calloc(1, sizeof *w);
    assert_non_null(w);
    assert_int_equal(cs_open(CS_ARCH_X86, CS_MODE_32, &w->cs), CS_ERR_OK);
    cs_option(w->cs, CS_OPT_DETAIL, CS_OPT_ON);
    w->ci = cs_malloc(w->cs);

    /* A seed pattern could match data in another SeaBIOS build: one that
     * does not pass is reported, and the instruction count below tells
     * whether enough did. */
    uint32_t seed[64];
    int nseed = seabios_seeds(seed, 64);
    for (int i = 0; i < nseed; i++) {
        if (w->mark[seed[i]] != CODE_START && !try_code(w, seed[i], true))
            print_message("  entry candidate at %#x does not decode as 32-bit code\n", seed[i]);
    }
    int kept = 0;
    while (w->guessed < w->nguess) {
        uint32_t off = w->guess[w->guessed++];
        if (!w->mark[off] && try_code(w, off, false))
            kept++;
    }

    struct checker c;
    struct tally t = { .what = "SeaBIOS 32-bit code" };
    unsigned long insns = 0, bytes = 0, invalid = 0;
    checker_open(&c);
    for (uint32_t off = 0; off < BIOS_SIZE; off++) {
        if (!w->mark[off])
            continue;
        bytes++;
        if (w->mark[off] != CODE_START)
            continue;
        insns++;
        int avail = BIOS_SIZE - off < INSN_MAX_LEN ? BIOS_SIZE - off : INSN_MAX_LEN;
        check(&c, &t, bios + off, avail, true, BIOS_LOW + off);
        struct insn in;
        if (decode(bios + off, avail, true, &in) > 0 && in.invalid && invalid++ < MAX_REPORTED)
            print_message("  %#x: opcode %#x is #UD on the emulated CPU\n", off, in.op);
    }
    checker_close(&c);

    char ranges[1024] = "";
    size_t at = 0;
    for (uint32_t off = 0; off < BIOS_SIZE;) {
        uint32_t end = off;
        while (end < BIOS_SIZE && w->mark[end])
            end++;
        if (end - off >= 1024 && at < sizeof ranges - 40)
            at += snprintf(ranges + at, sizeof ranges - at, " %#x-%#x", off, end);
        off = end > off ? end : off + 1;
    }
    print_message("SeaBIOS 32-bit code: %lu instructions, %lu bytes from %d entries and %d guesses; "
                  "runs of 1 KiB or more at offsets%s\n", insns, bytes, nseed, kept, ranges);
    summary(&t);
    cs_free(w->ci, 1);
    cs_close(&w->cs);
    free(w->guess);
    free(w);
    assert_true(insns >= MIN_SEABIOS32_INSNS);
    assert_int_equal(invalid, 0);
    assert_int_equal(t.unlisted, 0);
}

/* Every offset in both modes; near the end capstone sees only what is left. */
static void test_seabios_every_offset(void **state)
{
    if (!load_bios()) {
        print_message("%s not found: skipped\n", BIOS_PATH);
        skip();
    }
    struct checker c;
    struct tally t16 = { .what = "SeaBIOS every offset, 16-bit" };
    struct tally t32 = { .what = "SeaBIOS every offset, 32-bit" };
    checker_open(&c);
    for (uint32_t off = 0; off < BIOS_SIZE; off++) {
        int avail = BIOS_SIZE - off < INSN_MAX_LEN ? BIOS_SIZE - off : INSN_MAX_LEN;
        check(&c, &t16, bios + off, avail, false, off & 0xffff);
        check(&c, &t32, bios + off, avail, true, BIOS_LOW + off);
    }
    summary(&t16);
    summary(&t32);
    checker_close(&c);
    assert_int_equal(t16.unlisted + t32.unlisted, 0);
}

static int print_total(void **state)
{
    summary(&total);
    print_message("known disagreements:\n");
    for (int k = 0; k < N_KNOWN; k++)
        print_message("  %-6s %-30s %7lu  %s\n", known[k].name, known[k].pattern, total.known[k],
                      known[k].reason);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directed),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_seabios_32bit_code),
        cmocka_unit_test(test_seabios_every_offset),
    };
    return cmocka_run_group_tests(tests, NULL, print_total);
}
