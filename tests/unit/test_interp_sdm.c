/*
 * The instructions a 64-bit host cannot run (so test_interp_oracle cannot
 * use the host as their oracle) against the SDM's pseudo-code, written out
 * again here from the SDM's Operation sections and independent of
 * monitor/alu.c and monitor/interp.c:
 *   DAA, DAS, AAA, AAS (every AL, CF and AF, several AH), AAM and AAD (every
 *   AL with several bases, AAM 0 raising #DE), BOUND (16 and 32 bits, in
 *   and out of range, #BR, #UD with a register operand), PUSHA/POPA (16 and
 *   32 bits, the pushed ESP is the one before), INTO (nothing with OF clear,
 *   interrupt 4 through the real-mode IVT with OF set), ARPL (every RPL
 *   pair, register and memory destination; #UD in real mode), LES/LDS (16
 *   and 32 bits in real mode; #UD with a register operand).
 * Each runs one instruction through interp_step in real mode (ARPL in
 * protected mode) on random registers and flags.  Flags the SDM leaves
 * undefined are not compared (the interpreter's P6 choice is tested by the
 * test ROM under QEMU: tests/e2e/sdm_rom.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "monitor/cpu.h"
#include "monitor/interp.h"
#include "monitor/machine.h"
#include "monitor/mmu.h"
#include "monitor/physmem.h"
#include "tiny_machine.h"

#define CODE_SEG 0x1000u            /* real mode: code at 1000:0100 */
#define CODE_IP  0x0100u
#define DATA_SEG 0x2000u            /* DS = ES = SS */
#define DATA_OFF 0x0200u            /* memory operands ([BX] with BX = DATA_OFF) */
#define STACK_TOP 0x8000u
#define FLAGS6 (FL_CF | FL_PF | FL_AF | FL_ZF | FL_SF | FL_OF)

static struct machine *m;
static uint64_t rng = 0x5dee5dee1234ull;

static uint32_t rnd(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 32);
}

/* ---- running one instruction ---- */

struct state {
    uint32_t r[8];
    uint32_t flags;
    uint16_t es, ds;
    uint32_t eip;
    uint16_t cs;
};

static void real_mode(struct cpu *c)
{
    cpu_reset(c);
    c->cr0 = CR0_ET;
    seg_load_real(c, SEG_CS, CODE_SEG);
    seg_load_real(c, SEG_DS, DATA_SEG);
    seg_load_real(c, SEG_ES, DATA_SEG);
    seg_load_real(c, SEG_SS, DATA_SEG);
    tlb_flush_all(c);
}

/* A flat 32-bit protected mode at CPL 0 (no descriptor is ever read). */
static void protected_mode(struct cpu *c)
{
    cpu_reset(c);
    tiny_flat_ring0_segments(c);
    tlb_flush_all(c);
}

static uint32_t linear(uint16_t seg, uint32_t off) { return ((uint32_t)seg << 4) + off; }

/* Runs `code` at the CPU's CS:EIP with registers r and flags; returns the
 * exception vector or -1, and the state after. */
static int run(const uint8_t *code, int len, const uint32_t *r, uint32_t flags, struct state *out)
{
    struct cpu *c = &m->cpu;
    uint32_t at = c->seg[SEG_CS].base + c->eip;
    assert_true(physmem_copy_to(m->pm, at, code, len));
    memcpy(c->r, r, sizeof c->r);
    c->eflags = 0x2 | (flags & FLAGS6);
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
    out->flags = c->eflags;
    out->es = c->seg[SEG_ES].sel;
    out->ds = c->seg[SEG_DS].sel;
    out->eip = c->eip;
    out->cs = c->seg[SEG_CS].sel;
    return vector;
}

static void put16(uint32_t addr, uint16_t v) { assert_true(physmem_copy_to(m->pm, addr, &v, 2)); }
static void put32(uint32_t addr, uint32_t v) { assert_true(physmem_copy_to(m->pm, addr, &v, 4)); }
static uint16_t get16(uint32_t addr) { uint16_t v; assert_true(physmem_copy_from(m->pm, addr, &v, 2)); return v; }
static uint32_t get32(uint32_t addr) { uint32_t v; assert_true(physmem_copy_from(m->pm, addr, &v, 4)); return v; }

static void random_regs(uint32_t *r)
{
    for (int k = 0; k < 8; k++)
        r[k] = rnd();
    r[R_ESP] = STACK_TOP;
    r[R_EBX] = DATA_OFF;
}

static unsigned long mismatches;

#define EXPECT(what, got, want, ...)                                                              \
    do {                                                                                          \
        if ((uint32_t)(got) != (uint32_t)(want)) {                                                \
            if (mismatches++ < 20) {                                                              \
                print_error("%s: got %#x, want %#x: ", __func__, (unsigned)(got), (unsigned)(want)); \
                print_error(what "\n", __VA_ARGS__);                                              \
            }                                                                                     \
        }                                                                                         \
    } while (0)

/* ---- the SDM's pseudo-code ---- */

static uint32_t szp8(uint8_t v)
{
    uint32_t f = 0;
    if (v & 0x80)
        f |= FL_SF;
    if (!v)
        f |= FL_ZF;
    int ones = 0;
    for (int b = 0; b < 8; b++)
        ones += (v >> b) & 1;
    if (!(ones & 1))
        f |= FL_PF;
    return f;
}

/* DAA (SDM, "DAA—Decimal Adjust AL after Addition", Operation). */
static void sdm_daa(uint8_t *al, uint32_t *fl)
{
    uint8_t old_al = *al;
    bool old_cf = *fl & FL_CF, cf = false, af;
    if ((*al & 0x0f) > 9 || (*fl & FL_AF)) {
        cf = old_cf || *al + 6 > 0xff;
        *al += 6;
        af = true;
    } else {
        af = false;
    }
    if (old_al > 0x99 || old_cf) {
        *al += 0x60;
        cf = true;
    } else {
        cf = false;
    }
    *fl = (*fl & ~(FL_CF | FL_AF | FL_SF | FL_ZF | FL_PF)) | (cf ? FL_CF : 0) | (af ? FL_AF : 0) | szp8(*al);
}

/* DAS (SDM, Operation). */
static void sdm_das(uint8_t *al, uint32_t *fl)
{
    uint8_t old_al = *al;
    bool old_cf = *fl & FL_CF, cf = false, af;
    if ((*al & 0x0f) > 9 || (*fl & FL_AF)) {
        cf = old_cf || *al < 6;
        *al -= 6;
        af = true;
    } else {
        af = false;
    }
    if (old_al > 0x99 || old_cf) {
        *al -= 0x60;
        cf = true;
    }
    *fl = (*fl & ~(FL_CF | FL_AF | FL_SF | FL_ZF | FL_PF)) | (cf ? FL_CF : 0) | (af ? FL_AF : 0) | szp8(*al);
}

/* AAA and AAS (SDM, Operation: AX ← AX + 106H, resp. AX ← AX – 6; AH ← AH – 1). */
static void sdm_aaa_aas(bool sub, uint16_t *ax, uint32_t *fl)
{
    bool adjust = (*ax & 0x0f) > 9 || (*fl & FL_AF);
    if (adjust) {
        if (sub) {
            *ax -= 6;
            *ax = (uint16_t)((((*ax >> 8) - 1) & 0xff) << 8 | (*ax & 0xff));
        } else {
            *ax += 0x106;
        }
    }
    *ax &= 0xff0f;
    *fl = (*fl & ~(FL_CF | FL_AF)) | (adjust ? FL_CF | FL_AF : 0);
}

/* ---- the tests ---- */

static void test_daa_das(void **state)
{
    mismatches = 0;
    unsigned long cases = 0;
    for (int sub = 0; sub < 2; sub++)
        for (int al = 0; al < 256; al++)
            for (int fl = 0; fl < 4; fl++) {
                real_mode(&m->cpu);
                m->cpu.eip = CODE_IP;
                uint8_t code[] = { sub ? 0x2f : 0x27 };
                uint32_t r[8];
                random_regs(r);
                r[R_EAX] = (r[R_EAX] & ~0xffu) | (uint32_t)al;
                uint32_t flags = (rnd() & FLAGS6 & ~(FL_CF | FL_AF)) | (fl & 1 ? FL_CF : 0) | (fl & 2 ? FL_AF : 0);
                struct state s;
                assert_int_equal(run(code, 1, r, flags, &s), -1);
                uint8_t want_al = (uint8_t)al;
                uint32_t want_fl = flags;
                (sub ? sdm_das : sdm_daa)(&want_al, &want_fl);
                EXPECT("%s AL %02x flags %x", s.r[R_EAX], (r[R_EAX] & ~0xffu) | want_al, sub ? "DAS" : "DAA", al, flags);
                /* OF is undefined */
                EXPECT("%s AL %02x flags %x", s.flags & (FLAGS6 & ~FL_OF), want_fl & (FLAGS6 & ~FL_OF),
                       sub ? "DAS" : "DAA", al, flags);
                EXPECT("%s AL %02x flags %x: length", s.eip, CODE_IP + 1, sub ? "DAS" : "DAA", al, flags);
                cases++;
            }
    print_message("sdm: DAA/DAS %lu cases\n", cases);
    assert_int_equal(mismatches, 0);
}

static void test_aaa_aas(void **state)
{
    mismatches = 0;
    static const uint8_t ahs[] = { 0x00, 0x01, 0x7f, 0x80, 0xff };
    unsigned long cases = 0;
    for (int sub = 0; sub < 2; sub++)
        for (unsigned h = 0; h < sizeof ahs; h++)
            for (int al = 0; al < 256; al++)
                for (int af = 0; af < 2; af++) {
                    real_mode(&m->cpu);
                    m->cpu.eip = CODE_IP;
                    uint8_t code[] = { sub ? 0x3f : 0x37 };
                    uint32_t r[8];
                    random_regs(r);
                    r[R_EAX] = (r[R_EAX] & 0xffff0000u) | (uint32_t)ahs[h] << 8 | (uint32_t)al;
                    uint32_t flags = (rnd() & FLAGS6 & ~FL_AF) | (af ? FL_AF : 0);
                    struct state s;
                    assert_int_equal(run(code, 1, r, flags, &s), -1);
                    uint16_t want_ax = (uint16_t)r[R_EAX];
                    uint32_t want_fl = flags;
                    sdm_aaa_aas(sub, &want_ax, &want_fl);
                    EXPECT("%s AX %04x AF %d", s.r[R_EAX], (r[R_EAX] & 0xffff0000u) | want_ax, sub ? "AAS" : "AAA",
                           (unsigned)(uint16_t)r[R_EAX], af);
                    /* OF, SF, ZF and PF are undefined */
                    EXPECT("%s AX %04x AF %d", s.flags & (FL_CF | FL_AF), want_fl & (FL_CF | FL_AF), sub ? "AAS" : "AAA",
                           (unsigned)(uint16_t)r[R_EAX], af);
                    cases++;
                }
    print_message("sdm: AAA/AAS %lu cases\n", cases);
    assert_int_equal(mismatches, 0);
}

static void test_aam_aad(void **state)
{
    mismatches = 0;
    static const uint8_t bases[] = { 10, 0, 1, 2, 7, 16, 0x80, 0xff };
    unsigned long cases = 0, de = 0;
    for (int op = 0; op < 2; op++)
        for (unsigned b = 0; b < sizeof bases; b++)
            for (int al = 0; al < 256; al++) {
                real_mode(&m->cpu);
                m->cpu.eip = CODE_IP;
                uint8_t imm = bases[b];
                uint8_t code[] = { op ? 0xd5 : 0xd4, imm };
                uint32_t r[8];
                random_regs(r);
                r[R_EAX] = (r[R_EAX] & 0xffffff00u) | (uint32_t)al;
                uint32_t flags = rnd() & FLAGS6;
                struct state s;
                int v = run(code, 2, r, flags, &s);
                uint8_t ah = (uint8_t)(r[R_EAX] >> 8);
                uint8_t want_al, want_ah;
                if (!op) {
                    /* AAM: imm8 = 0 is #DE, AX unchanged */
                    if (!imm) {
                        EXPECT("AAM 0 AL %02x: vector", v, EXC_DE, al);
                        EXPECT("AAM 0 AL %02x: EAX", s.r[R_EAX], r[R_EAX], al);
                        de++;
                        cases++;
                        continue;
                    }
                    want_ah = (uint8_t)(al / imm);
                    want_al = (uint8_t)(al % imm);
                } else {
                    want_al = (uint8_t)((al + ah * imm) & 0xff);
                    want_ah = 0;
                }
                EXPECT("%s %02x AX %04x: vector", v, -1, op ? "AAD" : "AAM", imm, (unsigned)(uint16_t)r[R_EAX]);
                EXPECT("%s %02x AX %04x", s.r[R_EAX], (r[R_EAX] & 0xffff0000u) | (uint32_t)want_ah << 8 | want_al,
                       op ? "AAD" : "AAM", imm, (unsigned)(uint16_t)r[R_EAX]);
                /* SF, ZF and PF from AL; OF, AF and CF are undefined */
                EXPECT("%s %02x AX %04x: flags", s.flags & (FL_SF | FL_ZF | FL_PF), szp8(want_al),
                       op ? "AAD" : "AAM", imm, (unsigned)(uint16_t)r[R_EAX]);
                cases++;
            }
    print_message("sdm: AAM/AAD %lu cases (%lu AAM 0 raising #DE)\n", cases, de);
    assert_int_equal(mismatches, 0);
    assert_true(de > 0);
}

static int32_t sext(uint32_t v, bool o32) { return o32 ? (int32_t)v : (int16_t)v; }

static uint32_t interesting(bool o32)
{
    static const uint32_t edges[] = { 0, 1, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000u, 0xffffffffu };
    uint32_t v = rnd() % 3 ? edges[rnd() % 8] + rnd() % 3 - 1 : rnd();
    return o32 ? v : v & 0xffff;
}

/* BOUND r, m (SDM: IF (ArrayIndex < LowerBound OR ArrayIndex > UpperBound) #BR). */
static void test_bound(void **state)
{
    mismatches = 0;
    unsigned long cases = 0, br = 0;
    for (int k = 0; k < 20000; k++) {
        bool o32 = k & 1;
        int reg = rnd() % 8;
        if (reg == R_EBX || reg == R_ESP)
            reg = R_EAX;
        real_mode(&m->cpu);
        m->cpu.eip = CODE_IP;
        uint8_t code[3];
        int n = 0;
        if (o32)
            code[n++] = 0x66;
        code[n++] = 0x62;
        code[n++] = (uint8_t)(reg << 3 | 7);       /* [BX] */
        uint32_t r[8];
        random_regs(r);
        uint32_t lo = interesting(o32), hi = interesting(o32), idx = interesting(o32);
        if (rnd() % 2) {                           /* often a real range around the index */
            lo = o32 ? idx - rnd() % 4 : (idx - rnd() % 4) & 0xffff;
            hi = o32 ? idx + rnd() % 4 - 1 : (idx + rnd() % 4 - 1) & 0xffff;
        }
        r[reg] = o32 ? idx : (r[reg] & 0xffff0000u) | idx;
        uint32_t mem = linear(DATA_SEG, DATA_OFF);
        if (o32) {
            put32(mem, lo);
            put32(mem + 4, hi);
        } else {
            put16(mem, (uint16_t)lo);
            put16(mem + 2, (uint16_t)hi);
        }
        struct state s;
        int v = run(code, n, r, 0, &s);
        bool out = sext(idx, o32) < sext(lo, o32) || sext(idx, o32) > sext(hi, o32);
        EXPECT("BOUND%s %x in [%x, %x]: vector", v, out ? EXC_BR : -1, o32 ? "32" : "16", idx, lo, hi);
        EXPECT("BOUND%s %x: register", s.r[reg], r[reg], o32 ? "32" : "16", idx);
        if (!out)
            EXPECT("BOUND%s %x in [%x, %x]: EIP", s.eip, CODE_IP + n, o32 ? "32" : "16", idx, lo, hi);
        br += out;
        cases++;
    }
    /* a register operand is #UD */
    real_mode(&m->cpu);
    m->cpu.eip = CODE_IP;
    uint8_t code[] = { 0x62, 0xc1 };
    uint32_t r[8];
    random_regs(r);
    struct state s;
    EXPECT("BOUND with a register: vector%s", run(code, 2, r, 0, &s), EXC_UD, "");
    print_message("sdm: BOUND %lu cases, %lu raising #BR\n", cases, br);
    assert_int_equal(mismatches, 0);
    assert_true(br > 1000 && br < cases - 1000);
}

/* PUSHA/PUSHAD and POPA/POPAD (SDM: Temp ← (SP); Push(AX) ... Push(Temp) ... Push(DI);
 * POPA skips the stored SP). */
static void test_pusha_popa(void **state)
{
    mismatches = 0;
    unsigned long cases = 0;
    for (int k = 0; k < 2000; k++) {
        bool o32 = k & 1;
        int size = o32 ? 4 : 2;
        real_mode(&m->cpu);
        m->cpu.eip = CODE_IP;
        uint8_t push[2], pop[2];
        int n = 0;
        if (o32)
            push[n] = pop[n] = 0x66, n++;
        push[n] = 0x60;
        pop[n] = 0x61;
        n++;
        uint32_t r[8];
        random_regs(r);
        r[R_ESP] = (rnd() & 0xffff0000u) | (STACK_TOP - 2 * (rnd() % 16));
        uint32_t sp = r[R_ESP] & 0xffff;
        struct state s;
        EXPECT("PUSHA%s: vector", run(push, n, r, 0, &s), -1, o32 ? "D" : "");
        for (int reg = 0; reg < 8; reg++) {
            uint32_t slot = linear(DATA_SEG, sp - (uint32_t)(reg + 1) * size);
            uint32_t want = reg == R_ESP ? r[R_ESP] : r[reg];
            uint32_t got = o32 ? get32(slot) : get16(slot);
            EXPECT("PUSHA%s: slot of register %d", got, o32 ? want : want & 0xffff, o32 ? "D" : "", reg);
        }
        EXPECT("PUSHA%s: ESP", s.r[R_ESP], (r[R_ESP] & 0xffff0000u) | ((sp - 8 * size) & 0xffff), o32 ? "D" : "");
        /* POPA from a frame of fresh values */
        uint32_t frame[8];
        for (int reg = 0; reg < 8; reg++) {
            frame[reg] = rnd();
            uint32_t slot = linear(DATA_SEG, sp - (uint32_t)(reg + 1) * size);
            if (o32)
                put32(slot, frame[reg]);
            else
                put16(slot, (uint16_t)frame[reg]);
        }
        m->cpu.eip = CODE_IP;
        uint32_t r2[8];
        memcpy(r2, s.r, sizeof r2);
        EXPECT("POPA%s: vector", run(pop, n, r2, 0, &s), -1, o32 ? "D" : "");
        for (int reg = 0; reg < 8; reg++) {
            uint32_t want = reg == R_ESP ? (r2[R_ESP] & 0xffff0000u) | (sp & 0xffff)
                            : o32 ? frame[reg] : (r2[reg] & 0xffff0000u) | (frame[reg] & 0xffff);
            EXPECT("POPA%s: register %d", s.r[reg], want, o32 ? "D" : "", reg);
        }
        cases += 2;
    }
    print_message("sdm: PUSHA/POPA %lu cases\n", cases);
    assert_int_equal(mismatches, 0);
}

/* INTO (SDM: IF OF = 1 THEN CALL INTR-HANDLER(4): in real mode, push FLAGS,
 * CS and the IP after INTO, clear IF, TF and AC, load CS:IP from the IVT). */
static void test_into(void **state)
{
    mismatches = 0;
    unsigned long taken = 0;
    for (int k = 0; k < 200; k++) {
        real_mode(&m->cpu);
        m->cpu.eip = CODE_IP;
        uint16_t vec_ip = (uint16_t)rnd(), vec_cs = (uint16_t)rnd();
        put16(4 * EXC_OF, vec_ip);
        put16(4 * EXC_OF + 2, vec_cs);
        uint8_t code[] = { 0xce };
        uint32_t r[8];
        random_regs(r);
        uint32_t flags = rnd() & FLAGS6;
        struct state s;
        int v = run(code, 1, r, flags, &s);
        EXPECT("INTO flags %x: vector", v, -1, flags);
        if (!(flags & FL_OF)) {
            EXPECT("INTO flags %x: EIP", s.eip, CODE_IP + 1, flags);
            EXPECT("INTO flags %x: SP", s.r[R_ESP], r[R_ESP], flags);
            continue;
        }
        taken++;
        EXPECT("INTO: CS%s", s.cs, vec_cs, "");
        EXPECT("INTO: IP%s", s.eip, vec_ip, "");
        EXPECT("INTO: SP%s", s.r[R_ESP], r[R_ESP] - 6, "");
        uint32_t top = linear(DATA_SEG, STACK_TOP);
        EXPECT("INTO: pushed IP%s", get16(top - 6), CODE_IP + 1, "");
        EXPECT("INTO: pushed CS%s", get16(top - 4), CODE_SEG, "");
        EXPECT("INTO: pushed FLAGS%s", get16(top - 2) & FLAGS6, flags, "");
    }
    print_message("sdm: INTO 200 cases, %lu taken\n", taken);
    assert_int_equal(mismatches, 0);
    assert_true(taken > 0 && taken < 200);
}

/* ARPL r/m16, r16 (SDM: IF DEST[RPL] < SRC[RPL] THEN ZF ← 1; DEST[RPL] ← SRC[RPL]
 * ELSE ZF ← 0).  In real mode it is #UD. */
static void test_arpl(void **state)
{
    mismatches = 0;
    unsigned long cases = 0;
    for (int k = 0; k < 4000; k++) {
        bool mem = k & 1;
        int dst = rnd() % 8, src = rnd() % 8;
        if (dst == R_ESP)
            dst = R_EAX;
        protected_mode(&m->cpu);
        uint32_t at = 0x00300000u;
        m->cpu.eip = at;
        uint32_t data = 0x00400000u;
        uint8_t code[] = { 0x63, (uint8_t)(mem ? (src << 3) | 3 : 0xc0 | (src << 3) | dst) };   /* [EBX] */
        uint32_t r[8];
        random_regs(r);
        r[R_EBX] = data;
        uint16_t d = (uint16_t)rnd(), sv = (uint16_t)r[src];
        if (mem)
            put16(data, d);
        else
            d = (uint16_t)r[dst];
        if (!mem && dst == src)
            sv = d;
        uint32_t flags = rnd() & FLAGS6;
        struct state s;
        EXPECT("ARPL: vector%s", run(code, 2, r, flags, &s), -1, "");
        bool adjust = (d & 3) < (sv & 3);
        uint16_t want = adjust ? (uint16_t)((d & ~3) | (sv & 3)) : d;
        uint16_t got = mem ? get16(data) : (uint16_t)s.r[dst];
        EXPECT("ARPL %04x, %04x", got, want, d, sv);
        EXPECT("ARPL %04x, %04x: ZF", s.flags & FL_ZF, adjust ? FL_ZF : 0, d, sv);
        EXPECT("ARPL %04x, %04x: other flags", s.flags & FLAGS6 & ~FL_ZF, flags & ~FL_ZF, d, sv);
        if (!mem)
            EXPECT("ARPL %04x, %04x: upper bits", s.r[dst] >> 16, r[dst] >> 16, d, sv);
        cases++;
    }
    real_mode(&m->cpu);
    m->cpu.eip = CODE_IP;
    uint8_t code[] = { 0x63, 0xc8 };
    uint32_t r[8];
    random_regs(r);
    struct state s;
    EXPECT("ARPL in real mode: vector%s", run(code, 2, r, 0, &s), EXC_UD, "");
    print_message("sdm: ARPL %lu cases\n", cases);
    assert_int_equal(mismatches, 0);
}

/* LES/LDS r, m16:16/32 (SDM: DEST ← [SRC]; ES/DS ← [SRC + 2 or 4]); a
 * register source is #UD. */
static void test_les_lds(void **state)
{
    mismatches = 0;
    unsigned long cases = 0;
    for (int k = 0; k < 4000; k++) {
        bool o32 = k & 1, lds = k & 2;
        int reg = rnd() % 8;
        if (reg == R_ESP || reg == R_EBX)
            reg = R_EDX;
        real_mode(&m->cpu);
        m->cpu.eip = CODE_IP;
        uint8_t code[3];
        int n = 0;
        if (o32)
            code[n++] = 0x66;
        code[n++] = lds ? 0xc5 : 0xc4;
        code[n++] = (uint8_t)(reg << 3 | 7);     /* [BX] */
        uint32_t r[8];
        random_regs(r);
        uint32_t off = rnd();
        uint16_t sel = (uint16_t)rnd();
        uint32_t mem = linear(DATA_SEG, DATA_OFF);
        put32(mem, off);
        put16(mem + (o32 ? 4 : 2), sel);
        struct state s;
        EXPECT("L%cS: vector", run(code, n, r, 0, &s), -1, lds ? 'D' : 'E');
        EXPECT("L%cS: register", s.r[reg], o32 ? off : (r[reg] & 0xffff0000u) | (off & 0xffff), lds ? 'D' : 'E');
        EXPECT("L%cS: segment", lds ? s.ds : s.es, sel, lds ? 'D' : 'E');
        EXPECT("L%cS: the other segment", lds ? s.es : s.ds, DATA_SEG, lds ? 'D' : 'E');
        EXPECT("L%cS: segment base", m->cpu.seg[lds ? SEG_DS : SEG_ES].base, (uint32_t)sel << 4, lds ? 'D' : 'E');
        cases++;
    }
    real_mode(&m->cpu);
    m->cpu.eip = CODE_IP;
    uint8_t code[] = { 0xc4, 0xc1 };
    uint32_t r[8];
    random_regs(r);
    struct state s;
    EXPECT("LES with a register: vector%s", run(code, 2, r, 0, &s), EXC_UD, "");
    print_message("sdm: LES/LDS %lu cases\n", cases);
    assert_int_equal(mismatches, 0);
}

static int setup(void **state)
{
    m = tiny_machine_new(false, 16, false);
    return m ? 0 : -1;
}

static int teardown(void **state)
{
    machine_free(m);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_daa_das),   cmocka_unit_test(test_aaa_aas), cmocka_unit_test(test_aam_aad),
        cmocka_unit_test(test_bound),     cmocka_unit_test(test_pusha_popa), cmocka_unit_test(test_into),
        cmocka_unit_test(test_arpl),      cmocka_unit_test(test_les_lds),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
