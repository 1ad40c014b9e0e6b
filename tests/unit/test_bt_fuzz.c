/*
 * The translator (bt/) differentially against the reference interpreter
 * (monitor/interp.c): random blocks of valid 32-bit code run from the same
 * machine state under both engines, and the final states must be identical.
 *
 * Two machines are built once (-accel interp and -accel bt).  For every block
 * both get the same RAM image (GDT, IDT, TSS, exception handlers, page
 * tables, code, data area, stacks) and the same struct cpu, set directly:
 * 32-bit protected mode, CPL 0 or CPL 3 (often entered by IRET from a ring-0
 * prologue that fills the supervisor TLB first), paging off or on (identity
 * tables with read-only, not-present and supervisor-only pages, WP, one
 * 4 MiB page, a second mapping of the code pages), flat or non-flat segments
 * (DS with a base and a short limit, FS with a base, read-only ES, CS with a
 * base and a limit that may cut the block, a 16-bit SS with a base).  Every
 * exception vector has a handler that stores the vector number through GS
 * (always flat) and halts, so a fault ends the run with its frame (error
 * code, EIP, CS, EFLAGS) on the stack, CR2 in the CPU and the vector in
 * memory.  A quarter of the blocks run a second time with their translations
 * still cached, under new registers, data and often another CPL, paging mode
 * or CS limit; a fifth of the bt runs are cut into slices of 1-40
 * instructions as the run loop does (translated code re-entered mid-block).
 *
 * The generator assembles units (a few instructions that jumps never enter
 * in the middle): ALU in every form and size, INC/DEC, NEG/NOT, TEST, MOV
 * (r/m, imm, moffs, sreg), MOVZX/MOVSX, LEA, XCHG, PUSH/POP (reg, imm, r/m,
 * sreg, PUSHA/POPA, ENTER/LEAVE), CMOVcc, SETcc, shifts/rotates, SHLD/SHRD,
 * MUL/IMUL/DIV/IDIV (divisors usually guarded), BT/BTS/BTR/BTC, BSF/BSR,
 * BSWAP, XADD, CMPXCHG(8B), string ops with REP/REPE/REPNE and either direction, flags
 * ops, BCD, far pointer loads, forward Jcc/JMP/JECXZ/LOOP, CALL/RET pairs
 * (rel, reg, mem, RET imm), computed jumps, loops, self-modifying stores
 * into the code that follows (also through the second mapping and by
 * remapping a data page onto the code), stores and REP STOSB beside the
 * code (past the next instructions, past the block, below its first byte:
 * translations there must survive them), PTE rewrites with INVLPG/CR3
 * reloads, and deliberate exceptions.  Memory operands are built from
 * registers loaded just before (disp32, base+disp, SIB, 16-bit addressing)
 * and aim at the data area, often across a page boundary; a few percent may
 * fault (limits, read-only or absent pages, offsets wrapping at 4 GiB).
 *
 * Compared after the run: the 8 GPRs, EIP, all of EFLAGS, the segment
 * registers with their caches, CPL, CR2, the halted state, a triple-fault
 * reset request, the number of retired instructions, and every byte of the
 * system area, page tables (A/D bits), code, data area and stacks.  Nothing
 * is masked: both engines share the same ALU semantics for the flags the
 * SDM leaves undefined.
 *
 * Not covered: 16-bit code segments, v86 mode, x87/MMX, port I/O, external
 * interrupts (bt delivers them between blocks, so their timing differs by
 * design), the state at the moment a budget runs out (bt finishes the block
 * it is in; only the final state of a sliced run is compared), stale TLB
 * entries after a PTE change without INVLPG (the engines' TLBs may
 * legitimately hold different entries), remapping the code page being run.
 *
 * A failure prints a reproducer: the block's seed (BT_FUZZ_SEED=... runs
 * just that block), the variant, the block's bytes in hex with a
 * disassembly, and both final states side by side with the differing
 * memory bytes.
 *
 * A second test (test_bt_fuzz_windows, its own seeds and machines with a
 * VGA) runs code from the legacy VGA window, the LFB and PAM-shadowed ROM
 * while the VGA's memory modes and the PAM registers change: see "code in
 * the VGA window" below.  BT_FUZZ_WINDOW_COUNT / BT_FUZZ_WINDOW_SEED /
 * BT_FUZZ_WINDOW_FIRST are its count, one seed, and the first block index
 * (BT_FUZZ_WINDOW_DUMP=addr shows both sides of the shadow area at addr);
 * RETROVISOR_LONG=1 runs 2*10^5 of its blocks instead of 2*10^4.
 *
 * Environment: RETROVISOR_LONG=1 runs 10^6 blocks instead of 10^5;
 * BT_FUZZ_COUNT=n overrides the count; BT_FUZZ_SEED=s runs one block;
 * BT_FUZZ_VERBOSE=1 dumps every block run; BT_FUZZ_TRACE=1 traces the
 * interpreter's run instruction by instruction (with BT_FUZZ_SEED);
 * BT_FUZZ_FAULTS=1 lists where each run's exception came from;
 * BT_FUZZ_OUT_ASM=1 prints bt's translations (with BT_FUZZ_SEED).
 *
 * A quarter of the runs translate as on a host without BMI2 (deferred
 * flags captured before every memory operand), so both ways are checked
 * whatever the host.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bt/bt.h"
#include "devices/bus.h"
#include "monitor/cpu.h"
#include "monitor/interp.h"
#include "monitor/machine.h"
#include "monitor/mmu.h"
#include "monitor/physmem.h"
#include "tiny_machine.h"
#include "monitor/trace.h"
#include "devices/vga.h"

enum { BLOCKS_CHECK = 100000, BLOCKS_LONG = 1000000, MAX_REPORTED = 3 };
#define BASE_SEED 0x5eed0b7f022ull
#define RUN_BUDGET 100000
#define FAULT_PCT 3          /* chance that a data access may fault */

/* ---- guest memory layout (physical = linear where paging maps it) ---- */

#define GDT_BASE    0x1000u
#define IDT_BASE    0x2000u
#define TSS_BASE    0x3000u
#define HANDLERS    0x4000u      /* 16 bytes per vector */
#define PROLOGUE    0x4800u      /* CPL 3 runs: ring-0 code that touches pages, then IRET */
#define REC_ADDR    0x5000u      /* the handler stores the vector here */
#define SYS_START   0x1000u
#define SYS_END     0x6000u
#define PD_BASE     0x10000u
#define PT_BASE     0x11000u
#define PT_END      0x12000u
#define CODE_BASE   0x100000u    /* two pages */
#define CODE_END    0x102000u
#define DATA_BASE   0x200000u    /* four pages */
#define DATA_END    0x204000u
#define STK_GUARD   0x2ff000u    /* below the user stack: sometimes not present */
#define CODE_ALIAS  0x380000u    /* with paging: a second mapping of the code pages */
#define SEG_WRAP_BASE 0xfff00000u  /* a segment base of -1 MiB: offset = linear + 1 MiB */
#define USTK_BASE   0x300000u    /* user (or only) stack: two pages */
#define KSTK_BASE   0x302000u    /* ring-0 stack for CPL 3 runs */
#define STK_END     0x303000u
#define NUM_VECTORS 32

#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UCODE 0x18
#define SEL_UDATA 0x20
#define SEL_TSS   0x28
#define SEL_DS    0x30
#define SEL_ES    0x38
#define SEL_FS    0x40
#define SEL_GS    0x48
#define SEL_CODE2 0x50      /* CS with a base (the code area) and a byte-granular limit */
#define SEL_SS16  0x58      /* a 16-bit stack (B=0) with a base */

struct region {
    uint32_t start, end;
    const char *name;
};
static const struct region regions[] = {
    { SYS_START, SYS_END, "system" },
    { PD_BASE, PT_END, "page tables" },
    { CODE_BASE, CODE_END, "code" },
    { DATA_BASE, DATA_END, "data" },
    { STK_GUARD, STK_END, "stacks" },
};
#define NREGIONS (int)(sizeof(regions) / sizeof(regions[0]))

/* ---- reproducible randomness ---- */

static uint64_t rng_state;

static uint64_t splitmix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint32_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static uint32_t below(uint32_t n) { return n ? rnd() % n : 0; }
static bool chance(int pct) { return below(100) < (uint32_t)pct; }

/* A value with carries, sign changes and zeroes more often than uniform. */
static uint32_t interesting(void)
{
    static const uint32_t edges[] = { 0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000,
                                      0x7fffffff, 0x80000000u, 0xffffffffu, 0xfffffffeu, 0x80000001u };
    switch (below(6)) {
    case 0: return edges[below(sizeof edges / sizeof edges[0])];
    case 1: return rnd() & rnd();
    case 2: return rnd() | rnd();
    case 3: return below(64);
    case 4: return (uint32_t)-(int32_t)below(64);
    default: return rnd();
    }
}

/* ---- the variant: CPU mode, segments, page attributes ---- */

enum pa { PA_RW, PA_RO, PA_NP, PA_SUP };   /* page attributes of a data/code page */

struct variant {
    bool paging, user, wp, pse;
    bool nonflat;
    enum pa data_pa[4];
    enum pa code2_pa;
    bool guard_np;
    bool prologue;             /* CPL 3: start in ring 0, fill the supervisor TLB, IRET to the block */
    bool cs_based;             /* CS = SEL_CODE2: base CODE_BASE, EIP != linear address */
    uint32_t cs_limit;
    bool ss16;                 /* SS = SEL_SS16: SP only, ESP's upper half kept */
    struct desc ss;
    uint32_t esp_hi;           /* upper half of ESP with a 16-bit stack */
    struct desc ds, es, fs, gs;
    uint32_t esp;
    uint32_t code_off;
};

static struct desc make_desc(uint32_t base, uint32_t limit, uint8_t access, bool big)
{
    bool g = limit > 0xfffff;
    uint32_t l = g ? limit >> 12 : limit;
    struct desc d;
    d.lo = (l & 0xffff) | (base << 16);
    d.hi = ((base >> 16) & 0xff) | ((uint32_t)access << 8) | (l & 0xf0000) | (big ? 0x400000u : 0) |
           (g ? 0x800000u : 0) | (base & 0xff000000u);
    return d;
}

#define ACC_DATA_RW 0xf3    /* present, DPL 3, data, writable, accessed */
#define ACC_DATA_RO 0xf1

static struct desc flat_data(void) { return make_desc(0, 0xffffffffu, ACC_DATA_RW, true); }

static void pick_variant(struct variant *v)
{
    memset(v, 0, sizeof(*v));
    v->paging = chance(50);
    v->user = chance(25);
    v->wp = v->paging && chance(50);
    v->pse = v->paging && chance(8);
    v->nonflat = chance(35);
    for (int k = 0; k < 4; k++) {
        uint32_t r = below(100);
        v->data_pa[k] = r < 80 ? PA_RW : r < 88 ? PA_RO : r < 95 ? PA_NP : PA_SUP;
    }
    uint32_t r = below(100);
    v->code2_pa = r < 85 ? PA_RW : r < 93 ? PA_NP : PA_RO;
    v->guard_np = v->user && chance(50);
    v->prologue = v->user && chance(70);
    v->cs_based = chance(15);
    v->cs_limit = v->cs_based ? 0xfffff : 0xffffffffu;

    v->ds = v->es = v->gs = flat_data();
    /*
     * FS always has a base (the fast path must add it), usually a flat limit.
     * A base of -1 MiB (offsets wrap around 4 GiB) makes offset != linear
     * land in pages the TLB holds: data offsets are stack addresses, so
     * translated code that dropped or mis-cached a base would hit memory
     * instead of taking the slow path.
     */
    uint32_t fs_base = chance(25) ? SEG_WRAP_BASE : DATA_BASE + below(0x3000);
    v->fs = chance(70) ? make_desc(fs_base, 0xffffffffu - fs_base, ACC_DATA_RW, true)
                       : make_desc(fs_base, 0xfff + below(0x400), ACC_DATA_RW, true);
    if (chance(30) || fs_base == SEG_WRAP_BASE)
        v->fs = make_desc(fs_base, 0xffffffffu, ACC_DATA_RW, true);   /* wraps around 4 GiB */
    if (v->nonflat) {
        /* DS: a base below the data area and a limit that ends inside it. */
        uint32_t base = chance(60) ? DATA_BASE - 0x10000 + below(0x800) : SEG_WRAP_BASE;
        uint32_t limit = DATA_END - base - 1 - below(0x300);   /* page-granular with the wrapping base */
        v->ds = make_desc(base, limit, ACC_DATA_RW, true);
        switch (below(4)) {
        case 0: v->es = make_desc(DATA_BASE, 0x3fff, ACC_DATA_RO, true); break;
        case 1: v->es = make_desc(DATA_BASE + 0x100, 0x3eff, ACC_DATA_RW, true); break;
        case 2: v->es = make_desc(SEG_WRAP_BASE, 0xffffffffu, ACC_DATA_RW, true); break;
        default: break;
        }
    }
    if (chance(10) && v->user == false)
        v->es = make_desc(0, 0xffffffffu, ACC_DATA_RO, true);

    /* ESP: middle of the user stack, sometimes misaligned or near its bottom
     * (pushes then cross into the guard page, which only CPL 3 runs unmap:
     * a CPL 0 #PF there would escalate to a triple fault). */
    switch (below(8)) {
    case 0: v->esp = USTK_BASE + 0x40 + below(0x40); break;
    case 1: v->esp = USTK_BASE + 0x1000 + below(16) - 8; break;
    case 2: v->esp = USTK_BASE + 0x800 + below(0x800); break;
    default: v->esp = (USTK_BASE + 0xc00 + below(0x800)) & ~3u; break;
    }
    if (!v->user && v->esp < USTK_BASE + 0x200)
        v->esp += 0x200;
    /* v->esp is linear; with a 16-bit stack the base puts SP near 0x8000. */
    v->ss16 = chance(10);
    v->ss = v->ss16 ? make_desc(v->esp - 0x8000 - below(0x100), 0xffff, v->user ? 0xf3 : 0x93, false)
                    : make_desc(0, 0xffffffffu, v->user ? 0xf3 : 0x93, true);
    v->esp_hi = v->ss16 && chance(20) ? rnd() & 0xffff0000u : 0;
    v->code_off = chance(20) ? 0xe00 + below(0x1f0) : below(0xe00);
}

/* ---- the code generator ---- */

#define MAX_UNITS 48
#define UNIT_BYTES 640

/* A unit is a few instructions that jumps never enter in the middle. */
struct unit {
    uint8_t b[UNIT_BYTES];
    int len;
    int jump;                  /* 0: plain; else a JMP_* kind whose target is `skip` units on */
    int skip;
    uint8_t cc;
    struct {
        uint16_t pos;          /* 32-bit field in b[] */
        int32_t add;           /* value = linear(unit start + add) - segment base */
        uint32_t seg_base;
    } abs[16];
    int nabs;
};

enum { JMP_JCC8 = 1, JMP_JCC32, JMP_JMP8, JMP_JMP32, JMP_JECXZ, JMP_LOOP };

static struct gen {
    struct unit units[MAX_UNITS];
    int n;
    struct unit *u;            /* unit being built */
    const struct variant *v;
    uint32_t seg_base[SEG_COUNT];
    uint32_t seg_limit[SEG_COUNT];
    uint16_t seg_attr[SEG_COUNT];
    int depth;                 /* approximate stack use in bytes below the initial ESP */
    bool in_body;              /* inside a CALL/RET pair: keep [esp] intact */
} G;

static void put(uint8_t b)
{
    if (G.u->len >= UNIT_BYTES) {
        fprintf(stderr, "test_bt_fuzz: generator overflowed a unit\n");
        abort();
    }
    G.u->b[G.u->len++] = b;
}
static void put16(uint32_t v) { put(v); put(v >> 8); }
static void put32(uint32_t v) { put16(v); put16(v >> 16); }
static void put_imm(uint32_t v, int size)
{
    if (size == 1)
        put(v);
    else if (size == 2)
        put16(v);
    else
        put32(v);
}

static const uint8_t seg_prefix_byte[SEG_COUNT] = { 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65 };

/* A register a 16/32-bit result may go to (never ESP). */
static int reg_w(void)
{
    static const int r[7] = { R_EAX, R_ECX, R_EDX, R_EBX, R_EBP, R_ESI, R_EDI };
    return r[below(7)];
}
static int reg_for(int size) { return size == 1 ? (int)below(8) : reg_w(); }
static int pick_size(void)
{
    uint32_t r = below(10);
    return r < 3 ? 1 : r < 5 ? 2 : 4;
}

static void mov_r32_imm(int reg, uint32_t v)
{
    put(0xb8 + reg);
    put32(v);
}

/* A memory operand: ModRM/SIB/displacement bytes and the override it needs. */
struct memop {
    int seg;                   /* override prefix to emit, or -1 */
    uint8_t mod, rm, sib;
    bool has_sib;
    int disp_size;
    uint32_t disp;
    bool addr16;               /* 16-bit addressing: needs the 0x67 prefix */
};

/* A linear target for a data access of `size` bytes. */
static uint32_t pick_target(int size, bool write, int *want_seg)
{
    uint32_t r = below(100);
    *want_seg = -1;
    if (r < 78) {
        uint32_t off;
        if (chance(30)) {
            /* Around a page boundary (or the end of the area): crossing accesses. */
            off = 0x1000 * (1 + below(4)) - below(size + 2);
        } else {
            off = below(0x4000 - size + 1);
        }
        return DATA_BASE + off;
    }
    if (r < 86)
        return SYS_START + (write ? REC_ADDR - SYS_START + 8 + below(0xf00) : below(SYS_END - SYS_START - 4));
    if (r < 92) {
        *want_seg = SEG_SS;
        return G.v->esp - 0x600 + below(0x100);        /* below any live stack data */
    }
    if (r < 96 && !write)
        return CODE_BASE + below(0x2000 - size);        /* reading code bytes */
    if (G.v->paging && chance(70))
        return rnd();                                   /* mostly unmapped: #PF with CR2 */
    return DATA_BASE + below(0x4000 - size);
}

/* Would a data access fault?  (The generator keeps most accesses valid so
 * that blocks run on; a few faulting ones are let through on purpose.) */
static bool page_faults(uint32_t lin, bool write)
{
    const struct variant *v = G.v;
    if (!v->paging)
        return false;
    if (v->pse)
        return lin >= 0x400000;
    uint32_t page = lin & PAGE_MASK;
    enum pa pa = PA_NP;
    if (page >= SYS_START && page < SYS_END)
        pa = PA_SUP;
    else if (page == CODE_BASE)
        pa = PA_RW;
    else if (page == CODE_BASE + 0x1000 || page == CODE_ALIAS + 0x1000)
        pa = v->code2_pa;
    else if (page == CODE_ALIAS)
        pa = PA_RW;
    else if (page >= DATA_BASE && page < DATA_END)
        pa = v->data_pa[(page - DATA_BASE) >> 12];
    else if (page == STK_GUARD)
        pa = v->guard_np ? PA_NP : PA_RW;
    else if (page >= USTK_BASE && page < KSTK_BASE)
        pa = PA_RW;
    else if (page == KSTK_BASE)
        pa = PA_SUP;
    switch (pa) {
    case PA_NP: return true;
    case PA_SUP: return v->user;
    case PA_RO: return write && (v->user || v->wp);
    default: return false;
    }
}

static bool would_fault(int seg, uint32_t off, int size, bool write)
{
    if (seg == SEG_CS) {
        if (write)
            return true;
    } else if (write && !(G.seg_attr[seg] & 2)) {
        return true;
    }
    if (off > G.seg_limit[seg] || G.seg_limit[seg] - off < (uint32_t)size - 1)
        return true;
    uint32_t lin = G.seg_base[seg] + off;
    return page_faults(lin, write) || page_faults(lin + size - 1, write);
}

static int pick_seg(int want)
{
    if (want >= 0 && chance(80))
        return want;
    uint32_t r = below(100);
    if (r < 55) return SEG_DS;
    if (r < 70) return SEG_FS;
    if (r < 80) return SEG_ES;
    if (r < 88) return SEG_GS;
    if (r < 94) return SEG_SS;
    return SEG_CS;
}

/* Segment and offset of a data access: mostly one that does not fault. */
static void pick_access(int size, bool write, int *seg, uint32_t *off)
{
    int want;
    for (int tries = 0;; tries++) {
        uint32_t lin = pick_target(size, write, &want);
        *seg = pick_seg(want);
        *off = lin - G.seg_base[*seg];
        if (chance(1)) {
            /* At the limit (with a flat limit: around 4 GiB, where the
             * offset must not wrap): #GP/#SS unless it fits. */
            *off = G.seg_limit[*seg] - below(4);
            if (chance(50))
                break;
        }
        if (tries >= 12 || !would_fault(*seg, *off, size, write) || chance(FAULT_PCT))
            break;
    }
}

/*
 * Choose an addressing form for the data operand and emit the register
 * set-up it needs (mov reg, imm32) into the current unit.  `avoid` is a
 * mask of registers the instruction needs intact (never used for set-up).
 */
static void gen_mem(struct memop *mo, int size, bool write, uint32_t avoid)
{
    memset(mo, 0, sizeof(*mo));
    mo->seg = -1;
    avoid |= 1u << R_ESP;

    /* [esp + disp8]: the stack above ESP, not inside a CALL/RET pair. */
    if (!G.in_body && chance(6)) {
        mo->mod = 1;
        mo->rm = 4;
        mo->has_sib = true;
        mo->sib = 0x24;
        mo->disp_size = 1;
        mo->disp = below(0x40);
        if (chance(10))
            mo->seg = pick_seg(-1);
        return;
    }
    int seg;
    uint32_t off;
    pick_access(size, write, &seg, &off);
    if (off <= 0xffffu - (size - 1) && chance(40)) {
        /* 16-bit addressing (FS or a based ES): the registers' upper halves are ignored. */
        static const int8_t b16[8] = { R_EBX, R_EBX, R_EBP, R_EBP, R_ESI, R_EDI, R_EBP, R_EBX };
        static const int8_t i16[8] = { R_ESI, R_EDI, R_ESI, R_EDI, -1, -1, -1, -1 };
        int rm = below(8), mod = below(3);
        int b = b16[rm], i = i16[rm];
        mo->addr16 = true;
        if ((mod == 0 && rm == 6) || (avoid & (1u << b)) || (i >= 0 && (avoid & (1u << i)))) {
            mo->mod = 0;
            mo->rm = 6;
            mo->disp_size = 2;
            mo->disp = off;
            if (seg != SEG_DS || chance(5))
                mo->seg = seg;
            return;
        }
        uint32_t disp = mod == 0 ? 0 : mod == 1 ? (uint32_t)(int32_t)(int8_t)rnd() : rnd() & 0xffff;
        uint32_t iv = i >= 0 ? rnd() : 0;
        if (i >= 0)
            mov_r32_imm(i, iv);
        mov_r32_imm(b, (rnd() & 0xffff0000u) | ((off - disp - iv) & 0xffff));
        mo->mod = mod;
        mo->rm = rm;
        mo->disp_size = mod == 1 ? 1 : mod == 2 ? 2 : 0;
        mo->disp = disp;
        if (seg != (b == R_EBP ? SEG_SS : SEG_DS) || chance(5))
            mo->seg = seg;
        return;
    }

    int form = below(10);
    int base = -1, index = -1;
    for (int tries = 0; tries < 8 && base < 0; tries++) {
        int r = reg_w();
        if (!(avoid & (1u << r)))
            base = r;
    }
    for (int tries = 0; tries < 8 && index < 0; tries++) {
        int r = reg_w();
        if (!(avoid & (1u << r)) && r != base)
            index = r;
    }
    if (base < 0 || index < 0)
        form = 0;
    int defseg = SEG_DS;
    if (form < 3) {                           /* disp32 */
        mo->mod = 0;
        mo->rm = 5;
        mo->disp_size = 4;
        mo->disp = off;
        if (chance(10)) {                     /* the SIB form of disp32: no base, no index */
            mo->rm = 4;
            mo->has_sib = true;
            mo->sib = (below(4) << 6) | (4 << 3) | 5;
        }
    } else if (form < 6) {                    /* base + disp */
        int ds = base == R_EBP ? 1 + below(2) : below(3);   /* mod 0 with EBP means disp32 */
        int32_t disp = ds == 0 ? 0 : ds == 1 ? (int8_t)rnd() : (int32_t)interesting();
        mo->mod = ds;
        mo->rm = base;
        mo->disp_size = ds == 0 ? 0 : ds == 1 ? 1 : 4;
        mo->disp = (uint32_t)disp;
        mov_r32_imm(base, off - (uint32_t)disp);
        if (base == R_EBP)
            defseg = SEG_SS;
    } else if (form < 9) {                    /* base + index * scale + disp */
        int scale = below(4);
        int ds = base == R_EBP ? 1 + below(2) : below(3);
        int32_t disp = ds == 0 ? 0 : ds == 1 ? (int8_t)rnd() : (int32_t)interesting();
        uint32_t iv = chance(50) ? below(0x100) : (uint32_t)-(int32_t)below(0x100);
        if (chance(10))
            iv = rnd();                        /* the sum wraps around 4 GiB */
        mo->mod = ds;
        mo->rm = 4;
        mo->has_sib = true;
        mo->sib = (scale << 6) | (index << 3) | base;
        mo->disp_size = ds == 0 ? 0 : ds == 1 ? 1 : 4;
        mo->disp = (uint32_t)disp;
        mov_r32_imm(index, iv);
        mov_r32_imm(base, off - (uint32_t)disp - (iv << scale));
        if (base == R_EBP)
            defseg = SEG_SS;
    } else {                                  /* index * scale + disp32 */
        int scale = below(4);
        uint32_t iv = below(0x400);
        mo->mod = 0;
        mo->rm = 4;
        mo->has_sib = true;
        mo->sib = (scale << 6) | (index << 3) | 5;
        mo->disp_size = 4;
        mo->disp = off - (iv << scale);
        mov_r32_imm(index, iv);
    }
    if (seg != defseg || chance(5))
        mo->seg = seg;
}

static void put_modrm(const struct memop *mo, int regfield)
{
    put((mo->mod << 6) | ((regfield & 7) << 3) | mo->rm);
    if (mo->has_sib)
        put(mo->sib);
    if (mo->disp_size == 1)
        put(mo->disp);
    else if (mo->disp_size == 2)
        put16(mo->disp);
    else if (mo->disp_size == 4)
        put32(mo->disp);
}

/* Prefixes in a random order. */
static void put_prefixes_a(bool opsize, int seg, bool lock, int rep, bool adsize)
{
    uint8_t p[6];
    int n = 0;
    if (opsize)
        p[n++] = 0x66;
    if (adsize)
        p[n++] = 0x67;
    if (seg >= 0)
        p[n++] = seg_prefix_byte[seg];
    if (lock)
        p[n++] = 0xf0;
    if (rep)
        p[n++] = rep;
    for (int k = n - 1; k > 0; k--) {
        int j = below(k + 1);
        uint8_t t = p[k];
        p[k] = p[j];
        p[j] = t;
    }
    for (int k = 0; k < n; k++)
        put(p[k]);
}

static void put_prefixes(bool opsize, int seg, bool lock, int rep)
{
    put_prefixes_a(opsize, seg, lock, rep, false);
}

/*
 * One instruction with a ModRM operand: prefixes, opcode bytes, ModRM (a
 * register or a data operand) and an immediate.
 */
struct rmi {
    const uint8_t *op;
    int nop;
    bool opsize;               /* emit 0x66 */
    int regfield;
    int rm_size;               /* size of the r/m operand */
    bool rm_write;
    bool rm_dest;              /* a register r/m is written: never ESP (unless 8-bit) */
    int mem_pct;               /* chance of a memory operand */
    bool lockable;
    uint32_t avoid;
    uint32_t imm;
    int imm_size;
};

static void emit_rmi(const struct rmi *x)
{
    bool mem = chance(x->mem_pct);
    struct memop mo;
    if (mem) {
        gen_mem(&mo, x->rm_size, x->rm_write, x->avoid);
    } else {
        memset(&mo, 0, sizeof(mo));
        mo.seg = chance(3) ? pick_seg(-1) : -1;   /* a useless override */
        mo.mod = 3;
        mo.rm = (x->rm_dest && x->rm_size != 1) ? reg_w() : below(8);
    }
    bool lock = mem && x->lockable && chance(15);
    if (!mem && x->lockable && chance(1))
        lock = true;                          /* #UD */
    /* Prefixes that change nothing here: 66 on a byte operation, 67 without
     * a memory operand, REP/REPNE on a non-string instruction. */
    bool opsize = x->opsize || (x->rm_size == 1 && chance(2));
    bool adsize = mo.addr16 || (!mem && chance(1));
    int rep = chance(2) ? (chance(50) ? 0xf2 : 0xf3) : 0;
    put_prefixes_a(opsize, mo.seg, lock, rep, adsize);
    for (int k = 0; k < x->nop; k++)
        put(x->op[k]);
    put_modrm(&mo, x->regfield);
    if (x->imm_size)
        put_imm(x->imm, x->imm_size);
}

static uint32_t imm_for(int size)
{
    uint32_t v = interesting();
    return size == 1 ? v & 0xff : size == 2 ? v & 0xffff : v;
}

/* ---- instruction families ---- */

static void g_alu(void)
{
    int kind = below(8);
    int size = pick_size();
    bool write = kind != 7;
    uint8_t op;
    struct rmi x = { .opsize = size == 2, .mem_pct = 50, .lockable = write };
    switch (below(4)) {
    case 0:                                   /* op r/m, reg */
        op = kind * 8 + (size != 1);
        x.op = &op; x.nop = 1;
        x.regfield = below(8);
        x.rm_size = size; x.rm_write = write; x.rm_dest = write;
        emit_rmi(&x);
        return;
    case 1:                                   /* op reg, r/m */
        op = kind * 8 + 2 + (size != 1);
        x.op = &op; x.nop = 1;
        x.regfield = kind == 7 ? (int)below(8) : reg_for(size);
        x.rm_size = size;
        x.lockable = false;
        emit_rmi(&x);
        return;
    case 2:                                   /* op al/ax/eax, imm */
        put_prefixes(size == 2, -1, false, 0);
        put(kind * 8 + 4 + (size != 1));
        put_imm(imm_for(size), size);
        return;
    default: {                                /* 80/81/83 (82 now and then) */
        static uint8_t g1;
        if (size == 1)
            g1 = chance(5) ? 0x82 : 0x80;
        else
            g1 = chance(50) ? 0x83 : 0x81;
        x.op = &g1; x.nop = 1;
        x.regfield = kind;
        x.rm_size = size; x.rm_write = write; x.rm_dest = write;
        x.imm_size = g1 == 0x81 ? size : 1;
        x.imm = imm_for(x.imm_size);
        emit_rmi(&x);
        return;
    }
    }
}

static void g_incdec_negnot(void)
{
    int size = pick_size();
    if (size != 1 && chance(30)) {            /* 40-4F */
        put_prefixes(size == 2, -1, false, 0);
        put((chance(50) ? 0x40 : 0x48) + reg_w());
        return;
    }
    static uint8_t op;
    struct rmi x = { .opsize = size == 2, .rm_size = size, .rm_write = true, .rm_dest = true,
                     .mem_pct = 50, .lockable = true };
    if (chance(50)) {
        op = size == 1 ? 0xfe : 0xff;
        x.regfield = below(2);
    } else {
        op = size == 1 ? 0xf6 : 0xf7;
        x.regfield = 2 + below(2);
    }
    x.op = &op; x.nop = 1;
    emit_rmi(&x);
}

static void g_test(void)
{
    int size = pick_size();
    static uint8_t op;
    struct rmi x = { .opsize = size == 2, .rm_size = size, .mem_pct = 50 };
    switch (below(3)) {
    case 0:
        op = size == 1 ? 0x84 : 0x85;
        x.regfield = below(8);
        break;
    case 1:
        put_prefixes(size == 2, -1, false, 0);
        put(size == 1 ? 0xa8 : 0xa9);
        put_imm(imm_for(size), size);
        return;
    default:
        op = size == 1 ? 0xf6 : 0xf7;
        x.regfield = chance(90) ? 0 : 1;      /* /1 is TEST too */
        x.imm_size = size;
        x.imm = imm_for(size);
        break;
    }
    x.op = &op; x.nop = 1;
    emit_rmi(&x);
}

static void g_mov(void)
{
    int size = pick_size();
    static uint8_t op;
    struct rmi x = { .opsize = size == 2, .rm_size = size, .mem_pct = 60 };
    switch (below(6)) {
    case 0:                                   /* mov r/m, reg */
        op = size == 1 ? 0x88 : 0x89;
        x.regfield = below(8);
        x.rm_write = x.rm_dest = true;
        break;
    case 1:                                   /* mov reg, r/m */
        op = size == 1 ? 0x8a : 0x8b;
        x.regfield = reg_for(size);
        break;
    case 2:                                   /* mov reg, imm */
        put_prefixes(size == 2, -1, false, 0);
        put((size == 1 ? 0xb0 + below(8) : 0xb8 + reg_w()));
        put_imm(imm_for(size), size);
        return;
    case 3:                                   /* mov r/m, imm */
        op = size == 1 ? 0xc6 : 0xc7;
        x.rm_write = x.rm_dest = true;
        x.imm_size = size;
        x.imm = imm_for(size);
        break;
    case 4: {                                 /* mov al/eax, moffs and back */
        bool store = chance(50);
        int seg;
        uint32_t off;
        pick_access(size, store, &seg, &off);
        put_prefixes(size == 2, seg == SEG_DS && chance(80) ? -1 : seg, false, 0);
        put((store ? 0xa2 : 0xa0) + (size != 1));
        put32(off);
        return;
    }
    default:                                  /* mov r/m, sreg */
        op = 0x8c;
        x.regfield = below(6);
        x.opsize = chance(50);
        x.rm_size = 2;
        x.rm_write = x.rm_dest = true;
        break;
    }
    x.op = &op; x.nop = 1;
    emit_rmi(&x);
}

static void g_movx(void)
{
    static uint8_t op[2] = { 0x0f, 0 };
    op[1] = (chance(50) ? 0xb6 : 0xbe) + below(2);
    bool o16 = chance(25);
    struct rmi x = { .op = op, .nop = 2, .opsize = o16, .regfield = reg_w(), .rm_size = (op[1] & 1) ? 2 : 1,
                     .mem_pct = 50 };
    emit_rmi(&x);
}

static void g_lea(void)
{
    /* No memory access: any registers, any displacement. */
    bool o16 = chance(15);
    put_prefixes(o16, chance(5) ? pick_seg(-1) : -1, false, 0);
    if (chance(8)) {                          /* 16-bit addressing */
        put(0x67);
        put(0x8d);
        int mod = below(3), rm = below(8);
        put((mod << 6) | (reg_w() << 3) | rm);
        if (mod == 1)
            put(rnd());
        else if (mod == 2 || (mod == 0 && rm == 6))
            put16(rnd());
        return;
    }
    put(0x8d);
    int mod = below(3), rm = below(8);
    put((mod << 6) | (reg_w() << 3) | rm);
    if (rm == 4)
        put(rnd());
    bool sib_disp32 = rm == 4 && mod == 0 && (G.u->b[G.u->len - 1] & 7) == 5;
    if (mod == 1)
        put(rnd());
    else if (mod == 2 || (mod == 0 && rm == 5) || sib_disp32)
        put32(interesting());
}

static void g_xchg(void)
{
    int size = pick_size();
    if (size != 1 && chance(30)) {
        put_prefixes(size == 2, -1, false, 0);
        put(0x90 + reg_w());
        return;
    }
    static uint8_t op;
    op = size == 1 ? 0x86 : 0x87;
    struct rmi x = { .op = &op, .nop = 1, .opsize = size == 2, .regfield = reg_for(size), .rm_size = size,
                     .rm_write = true, .rm_dest = true, .mem_pct = 50, .lockable = true };
    emit_rmi(&x);
}

static void g_pushpop(void)
{
    uint32_t r = below(12);
    bool o16 = chance(10);
    int sz = o16 ? 2 : 4;
    bool push = G.depth < 0x300 && (G.depth < 0x40 || chance(50));
    if (push) {
        G.depth += sz;
        if (r < 9) {
            put_prefixes(o16, -1, false, 0);
            if (r < 6) {
                put(0x50 + below(8));
            } else if (chance(50)) {
                put(0x6a);
                put(rnd());
            } else {
                put(0x68);
                put_imm(interesting(), sz);
            }
        } else {
            static uint8_t op = 0xff;         /* push r/m */
            struct rmi x = { .op = &op, .nop = 1, .opsize = o16, .regfield = 6, .rm_size = sz, .mem_pct = 70 };
            emit_rmi(&x);
        }
        return;
    }
    G.depth -= sz;
    if (r < 9) {
        put_prefixes(o16, -1, false, 0);
        put(0x58 + reg_w());
    } else {
        static uint8_t op = 0x8f;             /* pop r/m */
        struct rmi x = { .op = &op, .nop = 1, .opsize = o16, .regfield = 0, .rm_size = sz, .rm_write = true,
                         .rm_dest = true, .mem_pct = 80 };
        emit_rmi(&x);
    }
}

static void g_cmov_setcc(void)
{
    static uint8_t op[2] = { 0x0f, 0 };
    if (chance(50)) {
        op[1] = 0x40 + below(16);
        bool o16 = chance(20);
        struct rmi x = { .op = op, .nop = 2, .opsize = o16, .regfield = reg_w(), .rm_size = o16 ? 2 : 4,
                         .mem_pct = 50 };
        emit_rmi(&x);
    } else {
        op[1] = 0x90 + below(16);
        struct rmi x = { .op = op, .nop = 2, .rm_size = 1, .rm_write = true, .rm_dest = true, .mem_pct = 50,
                         .regfield = chance(90) ? 0 : below(8) };
        emit_rmi(&x);
    }
}

static uint8_t shift_count(void)
{
    static const uint8_t c[] = { 0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 255 };
    return chance(60) ? c[below(sizeof c)] : (uint8_t)rnd();
}

static void g_shift(void)
{
    int size = pick_size();
    static uint8_t op;
    uint32_t form = below(3);
    if (form == 2 && chance(50)) {
        put(0xb1);                            /* mov cl, count */
        put(shift_count());
    }
    op = (form == 0 ? 0xc0 : form == 1 ? 0xd0 : 0xd2) + (size != 1);
    struct rmi x = { .op = &op, .nop = 1, .opsize = size == 2, .regfield = chance(95) ? below(8) : 6,
                     .rm_size = size, .rm_write = true, .rm_dest = true, .mem_pct = 40,
                     .avoid = 1u << R_ECX };
    if (form == 0) {
        x.imm = shift_count();
        x.imm_size = 1;
    }
    emit_rmi(&x);
}

static void g_shld(void)
{
    static uint8_t op[2] = { 0x0f, 0 };
    bool imm = chance(50);
    op[1] = (chance(50) ? 0xa4 : 0xac) + !imm;
    bool o16 = chance(30);
    if (!imm && chance(50)) {
        put(0xb1);
        put(shift_count());
    }
    struct rmi x = { .op = op, .nop = 2, .opsize = o16, .regfield = below(8), .rm_size = o16 ? 2 : 4,
                     .rm_write = true, .rm_dest = true, .mem_pct = 40, .avoid = 1u << R_ECX };
    if (imm) {
        x.imm = shift_count();
        x.imm_size = 1;
    }
    emit_rmi(&x);
}

static void g_muldiv(void)
{
    int size = pick_size();
    static uint8_t op;
    uint32_t kind = below(10);
    if (kind < 4) {                           /* mul / imul r/m */
        op = size == 1 ? 0xf6 : 0xf7;
        struct rmi x = { .op = &op, .nop = 1, .opsize = size == 2, .regfield = 4 + (kind & 1), .rm_size = size,
                         .mem_pct = 40 };
        emit_rmi(&x);
        return;
    }
    if (kind < 7) {                           /* imul r, r/m [, imm] */
        static uint8_t op2[2] = { 0x0f, 0xaf };
        bool o16 = chance(30);
        int sz = o16 ? 2 : 4;
        struct rmi x = { .nop = 1, .opsize = o16, .regfield = reg_w(), .rm_size = sz, .mem_pct = 40 };
        if (kind == 4) {
            x.op = op2;
            x.nop = 2;
        } else if (kind == 5) {
            op = 0x69;
            x.op = &op;
            x.imm_size = sz;
            x.imm = imm_for(sz);
        } else {
            op = 0x6b;
            x.op = &op;
            x.imm_size = 1;
            x.imm = imm_for(1);
        }
        emit_rmi(&x);
        return;
    }
    /* div / idiv: usually with operands that cannot overflow. */
    bool sign = chance(50);
    op = size == 1 ? 0xf6 : 0xf7;
    bool guard = chance(90);
    uint32_t m = size == 1 ? 0xff : size == 2 ? 0xffff : 0xffffffffu;
    struct rmi x = { .op = &op, .nop = 1, .opsize = size == 2, .regfield = sign ? 7 : 6, .rm_size = size,
                     .mem_pct = 30, .avoid = (1u << R_EAX) | (1u << R_EDX) };
    if (chance(x.mem_pct)) {
        /* A divisor from the data area: high half of the dividend zero. */
        if (guard) {
            if (size == 1)
                put(0xb4), put(0);            /* mov ah, 0 */
            else
                mov_r32_imm(R_EDX, 0);
            if (sign && size != 1)
                mov_r32_imm(R_EAX, below(0x7fff));
        }
        x.mem_pct = 100;
        emit_rmi(&x);
        return;
    }
    int dr;
    if (size == 1) {
        static const int r8[6] = { 1, 2, 3, 5, 6, 7 };   /* CL DL BL CH DH BH */
        dr = r8[below(6)];
    } else {
        static const int r[5] = { R_ECX, R_EBX, R_EBP, R_ESI, R_EDI };
        dr = r[below(5)];
    }
    if (guard) {
        uint32_t divisor = interesting() & m;
        if (divisor == 0)
            divisor = 1 + below(100);
        if (size == 1) {
            /* AX: a sign-extended byte, or AH below the divisor. */
            uint32_t ax = sign ? (uint16_t)(int16_t)(int8_t)rnd()
                               : (((divisor - 1 - below(divisor)) & 0xff) << 8) | (rnd() & 0xff);
            put(0x66);
            put(0xb8);
            put16(ax);
            put(0xb0 + dr);
            put(divisor);
        } else {
            if (sign) {
                uint32_t lo = below(0x7fff);
                mov_r32_imm(R_EAX, chance(50) ? lo : (uint32_t)-(int32_t)lo);
                if (size == 2)
                    put(0x66);
                put(0x99);                    /* cdq / cwd */
            } else {
                mov_r32_imm(R_EAX, rnd());
                mov_r32_imm(R_EDX, divisor - 1 - below(divisor));
            }
            if (size == 2)
                put(0x66);
            put(0xb8 + dr);
            put_imm(divisor, size);
        }
    }
    put_prefixes(size == 2, -1, false, 0);
    put(op);
    put(0xc0 | (x.regfield << 3) | dr);
}

static void g_bitops(void)
{
    static uint8_t op[2] = { 0x0f, 0 };
    bool o16 = chance(25);
    int sz = o16 ? 2 : 4;
    switch (below(4)) {
    case 0: {                                 /* bt/bts/btr/btc r/m, reg */
        static const uint8_t o[4] = { 0xa3, 0xab, 0xb3, 0xbb };
        op[1] = o[below(4)];
        int br = reg_w();
        if (chance(70))
            mov_r32_imm(br, (uint32_t)((int32_t)below(256) - 128));   /* a bit offset near the operand */
        struct rmi x = { .op = op, .nop = 2, .opsize = o16, .regfield = br, .rm_size = sz,
                         .rm_write = op[1] != 0xa3, .rm_dest = true, .mem_pct = 40, .avoid = 1u << br,
                         .lockable = op[1] != 0xa3 };
        emit_rmi(&x);
        return;
    }
    case 1: {                                 /* 0F BA /4-7 imm8 */
        op[1] = 0xba;
        int r = 4 + below(4);
        struct rmi x = { .op = op, .nop = 2, .opsize = o16, .regfield = r, .rm_size = sz, .rm_write = r != 4,
                         .rm_dest = true, .mem_pct = 40, .imm = rnd() & 0xff, .imm_size = 1,
                         .lockable = r != 4 };
        emit_rmi(&x);
        return;
    }
    case 2: {                                 /* bsf / bsr */
        op[1] = chance(50) ? 0xbc : 0xbd;
        struct rmi x = { .op = op, .nop = 2, .opsize = o16, .regfield = reg_w(), .rm_size = sz, .mem_pct = 40 };
        emit_rmi(&x);
        return;
    }
    default:                                  /* bswap */
        put(0x0f);
        put(0xc8 + reg_w());
        return;
    }
}

static void g_xadd_cmpxchg(void)
{
    static uint8_t op[2] = { 0x0f, 0 };
    if (chance(15)) {                         /* cmpxchg8b m64 */
        op[1] = 0xc7;
        if (chance(50)) {                     /* EDX:EAX may match: copy it from memory first */
            struct memop mo;
            gen_mem(&mo, 8, true, (1u << R_EAX) | (1u << R_EDX));
            put_prefixes_a(false, mo.seg, false, 0, mo.addr16);
            put(0x8b);
            put_modrm(&mo, R_EAX);
            put_prefixes_a(false, mo.seg, chance(20), 0, mo.addr16);
            put(0x0f);
            put(0xc7);
            put_modrm(&mo, 1);
            return;
        }
        struct rmi x = { .op = op, .nop = 2, .regfield = 1, .rm_size = 8, .rm_write = true, .mem_pct = 98,
                         .lockable = true };
        emit_rmi(&x);                         /* a register operand: #UD */
        return;
    }
    int size = pick_size();
    op[1] = (chance(50) ? 0xc0 : 0xb0) + (size != 1);
    struct rmi x = { .op = op, .nop = 2, .opsize = size == 2, .regfield = reg_for(size), .rm_size = size,
                     .rm_write = true, .rm_dest = true, .mem_pct = 50, .lockable = true };
    emit_rmi(&x);
}

/* ESI/EDI for `count` iterations, mostly inside what the segment and pages allow. */
static uint32_t string_off(int seg, uint32_t count, int size, bool down, bool write)
{
    uint32_t span = count ? count * size : size;
    uint32_t off;
    for (int tries = 0;; tries++) {
        uint32_t lin = DATA_BASE + (chance(20) ? 0x1000 * (1 + below(4)) - below(span + 8) : below(0x4000));
        off = lin - G.seg_base[seg];
        uint32_t lo = down ? off - (span - size) : off;
        if (tries >= 12 || !would_fault(seg, lo, span, write) || chance(FAULT_PCT))
            break;
    }
    return off;
}

static void g_string(void)
{
    static const uint8_t ops[5] = { 0xa4, 0xa6, 0xaa, 0xac, 0xae };   /* movs cmps stos lods scas */
    uint8_t op = ops[below(5)] + (chance(70) ? 1 : 0);
    if (!(G.seg_attr[SEG_ES] & 2) && (op < 0xa6 || op == 0xaa || op == 0xab) && !chance(10))
        op = 0xa6 + (op & 1);                /* ES is read-only: mostly compare instead */
    int size = (op & 1) ? (chance(25) ? 2 : 4) : 1;
    bool src = op == 0xa4 || op == 0xa5 || op == 0xa6 || op == 0xa7 || op == 0xac || op == 0xad;
    bool dst = !(op == 0xac || op == 0xad);
    int rep = chance(70) ? (chance(50) ? 0xf3 : 0xf2) : 0;
    if (rep && (op == 0xac || op == 0xad) && chance(70))
        rep = 0;                              /* rep lods is odd but legal: keep a few */
    int seg = -1;
    if (src && chance(30))
        seg = pick_seg(-1);
    int sseg = seg >= 0 ? seg : SEG_DS;
    put(chance(50) ? 0xfc : 0xfd);           /* cld / std */
    bool down = G.u->b[G.u->len - 1] == 0xfd;
    uint32_t count = rep ? (chance(10) ? 0 : 1 + below(24)) : 1;
    if (rep)
        mov_r32_imm(R_ECX, count);
    if (src)
        mov_r32_imm(R_ESI, string_off(sseg, count, size, down, false));
    if (dst)
        mov_r32_imm(R_EDI, string_off(SEG_ES, count, size, down, op == 0xa4 || op == 0xa5 || op == 0xaa || op == 0xab));
    if (op == 0xa6 || op == 0xa7 || op == 0xae || op == 0xaf) {
        if (chance(50))
            mov_r32_imm(R_EAX, chance(50) ? 0 : rnd());
    }
    if (chance(30)) {
        put(0x70 + below(16));               /* jcc $+2: the string op starts a block, its registers not yet written there */
        put(0);
    }
    put_prefixes(size == 2, seg, false, rep);
    put(op);
}

/* Reload a data segment register, usually with itself, often with another
 * one's selector (push x; pop y, or mov r, x; mov y, r): translated code
 * must use the new base/limit from then on. */
static void g_segload(void)
{
    static const int segs[4] = { SEG_ES, SEG_DS, SEG_FS, SEG_GS };
    int x = segs[below(4)], y = chance(40) ? x : segs[below(3)];   /* GS stays flat: the handlers use it */
    if (chance(70)) {
        if (x == SEG_FS || x == SEG_GS)
            put(0x0f), put(x == SEG_FS ? 0xa0 : 0xa8);
        else
            put(x == SEG_ES ? 0x06 : 0x1e);
        if (y == SEG_FS || y == SEG_GS)
            put(0x0f), put(y == SEG_FS ? 0xa1 : 0xa9);
        else
            put(y == SEG_ES ? 0x07 : 0x1f);
    } else {
        int r = reg_w();
        if (chance(50))
            put(0x66);
        put(0x8c);                        /* mov r, x */
        put(0xc0 | (x << 3) | r);
        put(0x8e);                        /* mov y, r */
        put(0xc0 | (y << 3) | r);
    }
    G.seg_base[y] = G.seg_base[x];
    G.seg_limit[y] = G.seg_limit[x];
    G.seg_attr[y] = G.seg_attr[x];
}

/*
 * A segment reload between two accesses to the same offset: warm the TLB
 * for a data page, load DS/ES from FS (base -1 MiB), and access that offset
 * again through it.  The right linear address is 1 MiB lower (the code
 * pages); code that kept the old base, or took the new segment for flat,
 * would hit the data page's TLB entry instead.
 */
static void g_segload_probe(void)
{
    if (G.seg_base[SEG_FS] != SEG_WRAP_BASE || G.seg_limit[SEG_FS] != 0xffffffffu) {
        g_segload();
        return;
    }
    int y = chance(50) ? SEG_DS : SEG_ES;
    uint32_t lin = DATA_BASE + below(0x2000 - 4);
    put(0x65);                                /* mov eax, gs:[lin] */
    put(0xa1);
    put32(lin);
    if (chance(70)) {
        put(0x0f); put(0xa0);                 /* push fs */
        put(y == SEG_DS ? 0x1f : 0x07);       /* pop y */
    } else {
        int r = reg_w();
        put(0x8c); put(0xc0 | (SEG_FS << 3) | r);
        put(0x8e); put(0xc0 | (y << 3) | r);
    }
    G.seg_base[y] = G.seg_base[SEG_FS];
    G.seg_limit[y] = G.seg_limit[SEG_FS];
    G.seg_attr[y] = G.seg_attr[SEG_FS];
    if (y == SEG_ES)
        put(0x26);
    put(chance(70) ? 0x8b : 0x89);            /* mov ecx, y:[lin] / mov y:[lin], ecx (then SMC) */
    put(0x0d);
    put32(lin);
}

static void g_flags_misc(void)
{
    switch (below(18)) {
    case 14: {                                /* daa das aaa aas aad salc */
        static const uint8_t ops[6] = { 0x27, 0x2f, 0x37, 0x3f, 0xd5, 0xd6 };
        uint8_t o = ops[below(6)];
        put(o);
        if (o == 0xd5)
            put(chance(70) ? 10 : rnd());
        break;
    }
    case 15: case 16: {                       /* lds/les/lfs/lgs reg, m16:32 from a pointer stored just before */
        static const int segs[3] = { SEG_ES, SEG_DS, SEG_FS };
        int sr = chance(90) ? segs[below(3)] : SEG_GS;
        static const uint16_t sels[4] = { SEL_ES, SEL_DS, SEL_FS, SEL_GS };
        int from = sr == SEG_GS ? 3 : (int)below(3);   /* GS stays flat */
        int r = reg_w();
        struct memop mo;
        gen_mem(&mo, 6, true, 1u << r);
        put_prefixes_a(false, mo.seg, false, 0, mo.addr16);
        put(0xc7);                            /* mov dword [m], offset */
        put_modrm(&mo, 0);
        put32(interesting());
        /* mov word [m+4], selector: the same operand with 4 added to its displacement */
        struct memop m4 = mo;
        if (m4.disp_size == 0) {
            m4.mod = 1;
            m4.disp_size = 1;
        } else if (m4.disp_size == 1 && (int8_t)(m4.disp + 4) < (int8_t)m4.disp) {
            m4.mod = 2;
            m4.disp_size = m4.addr16 ? 2 : 4;
            m4.disp = (uint32_t)(int32_t)(int8_t)m4.disp;
        }
        m4.disp += 4;
        if (m4.disp_size == 2)
            m4.disp &= 0xffff;
        put_prefixes_a(true, m4.seg, false, 0, m4.addr16);
        put(0xc7);
        put_modrm(&m4, 0);
        put16(chance(95) ? (sels[from] | (G.v->user ? 3 : 0)) : rnd());
        put_prefixes_a(false, mo.seg, false, 0, mo.addr16);
        if (sr == SEG_ES || sr == SEG_DS) {
            put(sr == SEG_ES ? 0xc4 : 0xc5);
        } else {
            put(0x0f);
            put(sr == SEG_FS ? 0xb4 : 0xb5);
        }
        put_modrm(&mo, r);
        if (sr != SEG_GS) {
            G.seg_base[sr] = G.seg_base[from == 0 ? SEG_ES : from == 1 ? SEG_DS : SEG_FS];
            G.seg_limit[sr] = G.seg_limit[from == 0 ? SEG_ES : from == 1 ? SEG_DS : SEG_FS];
            G.seg_attr[sr] = G.seg_attr[from == 0 ? SEG_ES : from == 1 ? SEG_DS : SEG_FS];
        }
        break;
    }
    case 17: {                                /* bound r32, m32&32: #BR or nothing */
        if (chance(70)) {
            put(0x90);
            break;
        }
        int r = reg_w();
        static uint8_t op = 0x62;
        struct rmi x = { .op = &op, .nop = 1, .regfield = r, .rm_size = 8, .mem_pct = 100,
                         .avoid = 1u << r, .opsize = chance(20) };
        emit_rmi(&x);
        break;
    }
    case 0: put(0xf8); break;                 /* clc */
    case 1: put(0xf9); break;                 /* stc */
    case 2: put(0xf5); break;                 /* cmc */
    case 3: put(0x9e); break;                 /* sahf */
    case 4: put(0x9f); break;                 /* lahf */
    case 5: put(0x9c); put(0x9d); break;      /* pushf; popf */
    case 6: case 7:                           /* cwde/cbw, cdq/cwd */
        if (chance(30))
            put(0x66);
        put(0x98 + below(2));
        break;
    case 8: put(0x90); break;
    case 9: put(0x0f); put(0x1f); put(0x40 | reg_w()); put(rnd()); break;   /* hint nop [r+d8] (no SIB), no access */
    case 10:
        g_segload();
        break;
    case 11:                                  /* xlat */
        mov_r32_imm(R_EBX, DATA_BASE + below(0x3f00) - G.seg_base[SEG_DS]);
        put(0xd7);
        break;
    case 12:                                  /* enter n, level; leave */
        if (G.in_body)
            break;
        put(0x89); put(0xe5);                 /* mov ebp, esp */
        put(0xc8);
        put16(below(0x40) & ~3u);
        put(below(4));
        put(0xc9);
        break;
    default:                                  /* pushad / popad */
        if (G.in_body)
            break;
        put(0x60);
        if (chance(50))
            put(0x61);
        else
            G.depth += 32;
        break;
    }
}

static void g_simple(void);

/* An exception on purpose: #UD, #BP, #OF, or a privileged instruction. */
static void g_trap(void)
{
    switch (below(11)) {
    case 9: case 10: {
        /* A group opcode with an undefined ModRM reg field: #UD, register or memory operand. */
        static const struct { uint8_t op0, op1; uint8_t bad; } grp[] = {
            { 0xc6, 0, 0xfe }, { 0xc7, 0, 0xfe }, { 0x8f, 0, 0xfe }, { 0xfe, 0, 0xfc }, { 0xff, 0, 0x80 },
            { 0x8c, 0, 0xc0 }, { 0x8e, 0, 0xc2 }, { 0x0f, 0xba, 0x0f }, { 0x0f, 0xc7, 0xfd },
        };
        int k = below(sizeof grp / sizeof grp[0]);
        int reg;
        do
            reg = below(8);
        while (!(grp[k].bad & (1u << reg)));
        uint8_t op[2] = { grp[k].op0, grp[k].op1 };
        bool imm = op[0] == 0xc6 || op[0] == 0xc7 || op[1] == 0xba;
        struct rmi x = { .op = op, .nop = op[1] ? 2 : 1, .regfield = reg, .rm_size = 4, .mem_pct = 50,
                         .imm = rnd(), .imm_size = !imm ? 0 : op[0] == 0xc7 ? 4 : 1 };
        emit_rmi(&x);
        break;
    }
    case 6:                                   /* pushfd; or dword [esp], TF; popfd: #DB after the next one */
        put(0x9c);
        put(0x81); put(0x0c); put(0x24); put32(FL_TF);
        put(0x9d);
        g_simple();
        break;
    case 7:                                   /* int n: to a handler, or #GP (gate DPL, IDT limit) */
        put(0xcd);
        put(chance(70) ? below(NUM_VECTORS) : below(256));
        break;
    case 8:                                   /* aam 0: #DE */
        put(0xd4);
        put(chance(50) ? 0 : rnd());
        break;
    case 0: put(0x0f); put(0x0b); break;      /* ud2 */
    case 1: put(0xcc); break;                 /* int3 (#GP from CPL 3: the gate is DPL 0) */
    case 2: put(0xce); break;                 /* into */
    case 3: put(chance(50) ? 0xfa : 0xfb); break;   /* cli, sti: #GP at CPL 3 */
    case 4: put(0xf0); put(0x90); break;      /* lock nop: #UD */
    default: put(0x8e); put(0xd8 | below(8)); break;   /* mov ds, reg: usually #GP */
    }
}

/* A register-only instruction (bodies of CALL pairs, SMC fillers). */
static void g_simple(void)
{
    switch (below(4)) {
    case 0: put(0x01 + 8 * below(8)); put(0xc0 | (below(8) << 3) | reg_w()); break;
    case 1: put(0x40 + reg_w()); break;
    case 2: put(0xb8 + reg_w()); put32(interesting()); break;
    default: put(0x0f); put(0x40 + below(16)); put(0xc0 | (reg_w() << 3) | below(8)); break;
    }
}

/* FS with a base and a 4 GiB limit: an access whose offset wraps past 4 GiB
 * is a #GP even though base + offset lands in a mapped page (whose TLB entry
 * the first access fills). */
static void g_wrap(void)
{
    if (G.seg_limit[SEG_FS] != 0xffffffffu || G.seg_base[SEG_FS] < 0x10) {
        g_mov();
        return;
    }
    int size = chance(50) ? 4 : 2;
    put(0x64);
    put(0xa1);                                /* mov eax, fs:[-16] (valid) */
    put32(0xfffffff0u);
    put_prefixes(size == 2, SEG_FS, false, 0);
    put(chance(50) ? 0x89 : 0x8b);            /* mov fs:[near 4 GiB], ecx / mov ecx, fs:[...] */
    put(0x0d);
    put32((uint32_t)-(int32_t)(1 + below(size)));
}

/* A null selector into FS (as Linux leaves it for user code), then an FS
 * access: a #GP, which code translated for a 4 GiB FS would not raise if
 * it ran on past the load. */
static void g_fs_null(void)
{
    int r = reg_w();
    put(0x31);                                /* xor r, r */
    put(0xc0 | (r << 3) | r);
    put(0x8e);                                /* mov fs, r */
    put(0xc0 | (SEG_FS << 3) | r);
    G.seg_base[SEG_FS] = 0;
    G.seg_limit[SEG_FS] = 0;
    G.seg_attr[SEG_FS] = 0;
    put(0x64);                                /* mov ecx, fs:[data] */
    put(0x8b);
    put(0x0d);
    put32(DATA_BASE + below(0x1000));
}

/*
 * Ring 0 with paging: rewrite the PTE of a data page (another frame, the
 * code's frame, other attribute bits), then INVLPG it or reload CR3.  Stale
 * TLB entries are never relied on: the engines' TLBs may hold different
 * entries (a direct-mapped TLB, and code fetches that differ).
 */
static void g_pte(void)
{
    const struct variant *v = G.v;
    if (!v->paging || v->pse || v->user) {
        g_mov();
        return;
    }
    int k = below(4);
    uint32_t frame = chance(15) ? CODE_BASE + 0x1000 * below(2) : DATA_BASE + 0x1000 * below(4);
    uint32_t flags = (chance(92) ? 1 : 0) | (chance(80) ? 2 : 0) | (rnd() & 0x64);   /* P, RW, U/S, A, D */
    put(0x65);                                /* mov dword gs:[pte], frame | flags */
    put(0xc7);
    put(0x05);
    put32(PT_BASE + (((DATA_BASE >> 12) + k) & 0x3ff) * 4);
    put32(frame | flags);
    if (chance(70)) {
        put(0x65);                            /* invlpg gs:[page + x] */
        put(0x0f);
        put(0x01);
        put(0x3d);
        put32(DATA_BASE + 0x1000 * k + below(0x1000));
    } else {
        int r = reg_w();
        put(0x0f); put(0x20); put(0xd8 | r);  /* mov r, cr3 */
        put(0x0f); put(0x22); put(0xd8 | r);  /* mov cr3, r */
    }
}

/* ---- units with control flow and self-modifying code ---- */

static struct unit *new_unit(void)
{
    struct unit *u = &G.units[G.n++];
    memset(u, 0, sizeof(*u));
    G.u = u;
    return u;
}

static void add_abs(int add, uint32_t seg_base)
{
    struct unit *u = G.u;
    if (u->nabs == (int)(sizeof u->abs / sizeof u->abs[0])) {
        fprintf(stderr, "test_bt_fuzz: generator overflowed a unit's fixups\n");
        abort();
    }
    u->abs[u->nabs].pos = u->len;
    u->abs[u->nabs].add = add;
    u->abs[u->nabs].seg_base = seg_base;
    u->nabs++;
    put32(0);
}

static void g_jump(void)
{
    struct unit *u = G.u;
    uint32_t r = below(100);
    u->jump = r < 45 ? JMP_JCC8 : r < 65 ? JMP_JCC32 : r < 78 ? JMP_JMP8 : r < 85 ? JMP_JMP32
                                                                        : r < 93 ? JMP_JECXZ : JMP_LOOP;
    u->skip = below(4);
    u->cc = below(16);
    if (u->jump == JMP_LOOP)
        u->cc = below(3);                     /* loopne, loope, loop */
    if ((u->jump == JMP_JECXZ || u->jump == JMP_LOOP) && chance(50)) {
        put(0xb9);                            /* mov ecx, small */
        put32(below(3));
    }
}

static void call_body(void)
{
    bool outer = G.in_body;
    G.in_body = true;
    int n = 1 + below(3);
    for (int k = 0; k < n; k++) {
        if (chance(70))
            g_simple();
        else
            g_alu();
    }
    G.in_body = outer;
}

/* An EIP-valued immediate (an absolute branch target within this unit), patched by the caller. */
static int put_eip_field(void)
{
    add_abs(0, G.seg_base[SEG_CS]);
    return G.u->nabs - 1;
}

/* A short JMP over a subroutine (call_body, then RET, or RET 4 when the
 * caller pushed an argument); returns the subroutine's offset in the unit.
 * Sometimes (`may_return_elsewhere`: the CALL is before it) the subroutine
 * returns past itself instead: it overwrites its return address, so the RET
 * goes to another EIP than the CALL pushed. */
static int put_skipped_subroutine(bool ret_imm, bool may_return_elsewhere)
{
    int jmp_at = G.u->len;
    put(0xeb);
    put(0);
    int sub = G.u->len;
    call_body();
    int elsewhere = -1;
    if (may_return_elsewhere && chance(15)) {
        put(0xc7);                            /* mov dword [esp], past the subroutine */
        put(0x04);
        put(0x24);
        elsewhere = put_eip_field();
    }
    if (ret_imm) {
        put(0xc2);
        put16(4);
    } else {
        put(0xc3);
    }
    G.u->b[jmp_at + 1] = G.u->len - (jmp_at + 2);
    if (elsewhere >= 0)
        G.u->abs[elsewhere].add = G.u->len;
    return sub;
}

/*
 * CALL/RET pairs inside the unit: call sub; jmp over; sub: body; ret; over:
 * with CALL rel32, CALL reg, CALL [mem], and the subroutine before the call
 * (jmp over; sub: body; ret; over: call sub), whose return address lies
 * beyond the subroutine (a CS limit between them faults the RET).
 */
static void g_call_pair(void)
{
    bool with_imm = chance(25);
    if (with_imm) {
        put(0x68);
        put32(interesting());
    }
    int kind = below(4);
    if (kind == 3) {                          /* backward */
        int sub = put_skipped_subroutine(with_imm, false);
        put(0xe8);
        put32(sub - (G.u->len + 4));
        return;
    }
    int field = -1;
    if (kind == 1) {                          /* mov reg, sub; call reg */
        int reg = reg_w();
        put(0xb8 + reg);
        field = put_eip_field();
        put(0xff);
        put(0xd0 + reg);
    } else if (kind == 2) {                   /* mov dword [mem], sub; call [mem] */
        struct memop mo;
        gen_mem(&mo, 4, true, 0);
        put_prefixes_a(false, mo.seg, false, 0, mo.addr16);
        put(0xc7);
        put_modrm(&mo, 0);
        field = put_eip_field();
        put_prefixes_a(false, mo.seg, false, 0, mo.addr16);
        put(0xff);
        put_modrm(&mo, 2);
    } else {
        put(0xe8);
        put32(2);                             /* over the short jmp */
    }
    int sub = put_skipped_subroutine(with_imm, true);
    if (field >= 0)
        G.u->abs[field].add = sub;
}

/* Computed jumps to the end of the unit: push target; ret / jmp reg / jmp [mem]. */
static void g_indirect_jump(void)
{
    int field;
    switch (below(3)) {
    case 0:
        put(0x68);
        field = put_eip_field();
        put(0xc3);
        break;
    case 1: {
        int reg = reg_w();
        put(0xb8 + reg);
        field = put_eip_field();
        put(0xff);
        put(0xe0 + reg);
        break;
    }
    default: {
        struct memop mo;
        gen_mem(&mo, 4, true, 0);
        put_prefixes_a(false, mo.seg, false, 0, mo.addr16);
        put(0xc7);
        put_modrm(&mo, 0);
        field = put_eip_field();
        put_prefixes_a(false, mo.seg, false, 0, mo.addr16);
        put(0xff);
        put_modrm(&mo, 4);
        break;
    }
    }
    int n = below(3);                         /* skipped: never executed */
    for (int k = 0; k < n; k++)
        g_simple();
    G.u->abs[field].add = G.u->len;
}

/* Stores into the code that follows: the translation must be dropped. */
static void g_smc(void)
{
    /* Through the code's own linear address, or (with paging) through a
     * second mapping of its physical page: invalidation is by physical page. */
    bool alias = G.v->paging && !G.v->pse && chance(40);
    uint32_t delta = alias ? CODE_ALIAS - CODE_BASE : 0;
    uint32_t code = CODE_BASE + G.v->code_off + delta;
    int seg;
    for (int tries = 0;; tries++) {
        seg = chance(50) ? SEG_GS : pick_seg(-1);
        if (tries >= 8 || !would_fault(seg, code - G.seg_base[seg], 4, true) || chance(FAULT_PCT))
            break;
    }
    uint32_t base = G.seg_base[seg] - delta;   /* fixups: linear - base = the offset of the alias */
    bool override = seg != SEG_DS || chance(20);
    int kind = below(7);
    if ((kind == 2 || kind == 6) && would_fault(SEG_ES, code - G.seg_base[SEG_ES], 4, true) && !chance(FAULT_PCT))
        kind = 0;
    if (kind == 5 && G.v->code_off < 8)
        kind = 4;
    switch (kind) {
    /* Data beside code, inside the code pages (bytes outside the compared
     * regions would carry over to later blocks).  Past the block's first
     * byte it is often past its last, sometimes on later code. */
    case 4:                                   /* a store at or past the block's first byte */
    case 5: {                                 /* a store below it, in its page or the one before */
        bool dword = chance(60);
        put_prefixes(false, override ? seg : -1, false, 0);
        put(dword ? 0xc7 : 0xc6);
        put(0x05);
        uint32_t room = kind == 4 ? CODE_END - CODE_BASE - 4 - G.v->code_off : G.v->code_off - 4;
        uint32_t step = below((room < 0x600 ? room : 0x600) + 1);
        put32((kind == 4 ? code + step : code - 4 - step) - G.seg_base[seg]);
        if (dword)
            put32(interesting());
        else
            put(interesting());
        break;
    }
    case 6: {                                 /* rep stosb at or past the block's first byte */
        put(0xfc);                            /* cld */
        put(0xbf);                            /* mov edi, beyond (ES-relative) */
        int n = 1 + below(24);
        uint32_t room = CODE_END - CODE_BASE - n - G.v->code_off;
        put32(code + below((room < 0x600 ? room : 0x600) + 1) - G.seg_base[SEG_ES]);
        put(0xb9);
        put32(n);
        put(0xb0);
        put(interesting());
        put(0xf3);
        put(0xaa);
        break;
    }
    case 0: {                                 /* patch the imm32 of a later mov */
        put_prefixes(false, override ? seg : -1, false, 0);
        put(0xc7);
        put(0x05);
        add_abs(0, base);
        put32(interesting());
        int n = below(3);
        for (int k = 0; k < n; k++)
            g_simple();
        int reg = reg_w();
        G.u->abs[G.u->nabs - 1].add = G.u->len + 1;
        put(0xb8 + reg);
        put32(interesting());
        break;
    }
    case 1: {                                 /* turn a later inc into a dec */
        put_prefixes(false, override ? seg : -1, false, 0);
        put(0xc6);
        put(0x05);
        add_abs(0, base);
        int reg = reg_w();
        put(0x48 + reg);
        int n = below(3);
        for (int k = 0; k < n; k++)
            g_simple();
        G.u->abs[G.u->nabs - 1].add = G.u->len;
        put(0x40 + reg);
        break;
    }
    case 2: {                                 /* rep stosb over the next bytes: incs become nops */
        put(0xfc);                            /* cld */
        put(0xbf);                            /* mov edi, next (ES-relative) */
        add_abs(0, G.seg_base[SEG_ES] - delta);
        int n = 1 + below(6);
        put(0xb9);
        put32(n);
        put(0xb0);
        put(0x90);
        put(0xf3);
        put(0xaa);
        G.u->abs[G.u->nabs - 1].add = G.u->len;
        for (int k = 0; k < n + 1; k++)
            put(0x40 + reg_w());
        break;
    }
    default:                                  /* rewrite own bytes already executed */
        put_prefixes(false, override ? seg : -1, false, 0);
        put(0x88);
        put(0x05 | (below(8) << 3));
        add_abs(0, base);
        break;
    }
}

/* One instruction (with its set-up) for a loop body: no jumps, no stack
 * imbalance, ESP untouched. */
static void gen_body_insn(void)
{
    uint32_t r = below(100);
    if (r < 20) g_alu();
    else if (r < 28) g_incdec_negnot();
    else if (r < 33) g_test();
    else if (r < 48) g_mov();
    else if (r < 53) g_movx();
    else if (r < 56) g_lea();
    else if (r < 59) g_xchg();
    else if (r < 64) g_cmov_setcc();
    else if (r < 70) g_shift();
    else if (r < 72) g_shld();
    else if (r < 76) g_muldiv();
    else if (r < 79) g_bitops();
    else if (r < 81) g_xadd_cmpxchg();
    else if (r < 87) g_string();
    else if (r < 90) g_flags_misc();
    else if (r < 93) g_call_pair();
    else if (r < 98) g_smc();
    else g_simple();
}

/* push n; top: body; dec dword [esp]; jnz top; pop reg.  The counter lives
 * on the stack, out of the body's reach; blocks run again (cache hits,
 * chained exits, RETs to return sites already resolved), and SMC in the
 * body invalidates them each time round. */
static void g_loop(void)
{
    uint32_t n = 2 + below(chance(80) ? 5 : 40);
    put(0x6a);
    put(n);
    int top = G.u->len;
    bool outer = G.in_body;
    G.in_body = true;
    int k = 1 + below(4);
    for (int i = 0; i < k; i++) {
        if (chance(25))
            g_call_pair();
        else
            gen_body_insn();
    }
    G.in_body = outer;
    put(0xff);                                /* dec dword [esp] */
    put(0x0c);
    put(0x24);
    int rel = top - (G.u->len + 2);
    if (rel >= -128) {
        put(0x75);
        put(rel);
    } else {
        rel = top - (G.u->len + 6);
        put(0x0f);
        put(0x85);
        put32(rel);
    }
    put(0x58 + reg_w());
}

static void gen_unit(void)
{
    new_unit();
    uint32_t r = below(1000);
    if (r < 150) g_alu();
    else if (r < 210) g_incdec_negnot();
    else if (r < 250) g_test();
    else if (r < 365) g_mov();
    else if (r < 372) g_segload();
    else if (r < 380) g_segload_probe();
    else if (r < 420) g_movx();
    else if (r < 450) g_lea();
    else if (r < 480) g_xchg();
    else if (r < 560) g_pushpop();
    else if (r < 610) g_cmov_setcc();
    else if (r < 660) g_shift();
    else if (r < 675) g_shld();
    else if (r < 720) g_muldiv();
    else if (r < 750) g_bitops();
    else if (r < 765) g_xadd_cmpxchg();
    else if (r < 815) g_string();
    else if (r < 850) g_flags_misc();
    else if (r < 920) g_jump();
    else if (r < 950) g_call_pair();
    else if (r < 960) g_indirect_jump();
    else if (r < 975) g_smc();
    else if (r < 990) g_loop();
    else if (r < 992) g_wrap();
    else if (r < 993) g_fs_null();
    else if (r < 996) g_pte();
    else g_trap();
}

static int jump_len(const struct unit *u, bool near)
{
    switch (u->jump) {
    case JMP_JCC8: case JMP_JMP8: return near ? (u->jump == JMP_JCC8 ? 6 : 5) : 2;
    case JMP_JCC32: return 6;
    case JMP_JMP32: return 5;
    default: return 2;
    }
}

/* Lay the units out at code_lin and resolve jumps and absolute fields. */
static int unit_off[MAX_UNITS + 1];

static int assemble(uint8_t *out, uint32_t code_lin, int cap)
{
    int *off = unit_off;
    int jl[MAX_UNITS];
    /* Jumps are rel8 when the target is near enough, otherwise promoted;
     * JECXZ/LOOP have no rel32 form: they skip fewer units instead. */
    for (int k = 0; k < G.n; k++)
        jl[k] = G.units[k].jump ? jump_len(&G.units[k], false) : 0;
    for (int pass = 0; pass < 4; pass++) {
        int pos = 0;
        for (int k = 0; k < G.n; k++) {
            off[k] = pos;
            pos += G.units[k].len + jl[k];
        }
        off[G.n] = pos;
        bool changed = false;
        for (int k = 0; k < G.n; k++) {
            struct unit *u = &G.units[k];
            if (!u->jump)
                continue;
            int t = k + 1 + u->skip;
            if (t > G.n - 1)
                t = G.n - 1;                  /* the final HLT unit */
            int from = off[k] + u->len + jl[k];
            int rel = off[t] - from;
            if (rel > 127) {
                if (u->jump == JMP_JECXZ || u->jump == JMP_LOOP) {
                    u->skip = 0;
                    changed = true;
                } else if (jl[k] == 2) {
                    jl[k] = jump_len(u, true);
                    changed = true;
                }
            }
        }
        if (!changed)
            break;
    }
    int pos = 0;
    for (int k = 0; k < G.n; k++) {
        struct unit *u = &G.units[k];
        if (pos + u->len + jl[k] > cap)
            return -1;
        memcpy(out + pos, u->b, u->len);
        for (int a = 0; a < u->nabs; a++) {
            uint32_t v = code_lin + off[k] + u->abs[a].add - u->abs[a].seg_base;
            memcpy(out + pos + u->abs[a].pos, &v, 4);
        }
        pos += u->len;
        if (!u->jump)
            continue;
        int t = k + 1 + u->skip;
        if (t > G.n - 1)
            t = G.n - 1;
        int rel = off[t] - (pos + jl[k]);
        uint8_t *p = out + pos;
        switch (u->jump) {
        case JMP_JCC8: case JMP_JCC32:
            if (jl[k] == 2) {
                p[0] = 0x70 | u->cc;
                p[1] = rel;
            } else {
                p[0] = 0x0f;
                p[1] = 0x80 | u->cc;
                memcpy(p + 2, &rel, 4);
            }
            break;
        case JMP_JMP8: case JMP_JMP32:
            if (jl[k] == 2) {
                p[0] = 0xeb;
                p[1] = rel;
            } else {
                p[0] = 0xe9;
                memcpy(p + 1, &rel, 4);
            }
            break;
        case JMP_JECXZ:
            p[0] = 0xe3;
            p[1] = rel > 127 ? 0 : rel;
            break;
        default:
            p[0] = 0xe0 + u->cc;
            p[1] = rel > 127 ? 0 : rel;
            break;
        }
        pos += jl[k];
    }
    return pos;
}

/* The generator's own check: the block decodes as one straight sequence of
 * instructions in which every unit starts at an instruction boundary. */
static void check_layout(const uint8_t *code, int len)
{
    static bool boundary[0x1000];
    memset(boundary, 0, sizeof boundary);
    int pos = 0;
    while (pos < len) {
        struct insn in;
        int n = decode(code + pos, len - pos, true, &in);
        if (n <= 0)
            break;
        boundary[pos] = true;
        pos += n;
    }
    for (int k = 0; k < G.n; k++) {
        if (!boundary[unit_off[k]]) {
            fprintf(stderr, "test_bt_fuzz: generator bug: unit %d at +%d is not on an instruction boundary\n", k,
                    unit_off[k]);
            abort();
        }
    }
}

/* ---- machine set-up ---- */

struct image {
    uint8_t sys[SYS_END - SYS_START];
    uint8_t pt[PT_END - PD_BASE];
    uint8_t code[CODE_END - CODE_BASE];
    uint8_t data[DATA_END - DATA_BASE];
    uint8_t stk[STK_END - STK_GUARD];
};

static uint8_t *image_region(struct image *im, int k)
{
    switch (k) {
    case 0: return im->sys;
    case 1: return im->pt;
    case 2: return im->code;
    case 3: return im->data;
    default: return im->stk;
    }
}

static void put_desc(struct image *im, uint16_t sel, struct desc d)
{
    memcpy(im->sys + (GDT_BASE - SYS_START) + (sel & ~7), &d, 8);
}

static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static uint32_t pte_flags(enum pa pa, bool user)
{
    switch (pa) {
    case PA_RO: return 0x1 | (user ? 0x4 : 0);
    case PA_NP: return 0;
    case PA_SUP: return 0x3;
    default: return 0x3 | (user ? 0x4 : 0);
    }
}

static void map_page(struct image *im, uint32_t lin, uint32_t flags)
{
    wr32(im->pt + (PT_BASE - PD_BASE) + ((lin >> 12) & 0x3ff) * 4, flags ? (lin & PAGE_MASK) | flags : 0);
}

struct cpu_init {
    uint32_t r[8], eip, eflags, cr0, cr3, cr4;
    int cpl;
    struct seg seg[SEG_COUNT], tr;
    struct dtr gdtr, idtr;
};

static void build(const struct variant *v, struct image *im, struct cpu_init *ci, const uint8_t *code,
                  int code_len)
{
    memset(im, 0, sizeof(*im));
    /* GDT */
    put_desc(im, SEL_KCODE, make_desc(0, 0xffffffffu, 0x9b, true));
    put_desc(im, SEL_KDATA, make_desc(0, 0xffffffffu, 0x93, true));
    put_desc(im, SEL_UCODE, make_desc(0, 0xffffffffu, 0xfb, true));
    put_desc(im, SEL_UDATA, make_desc(0, 0xffffffffu, 0xf3, true));
    put_desc(im, SEL_TSS, make_desc(TSS_BASE, 0x67, 0x8b, false));
    put_desc(im, SEL_DS, v->ds);
    put_desc(im, SEL_ES, v->es);
    put_desc(im, SEL_FS, v->fs);
    put_desc(im, SEL_GS, v->gs);
    /* IDT: 32-bit interrupt gates to the handlers */
    for (int k = 0; k < NUM_VECTORS; k++) {
        uint32_t off = HANDLERS + 16 * k;
        uint8_t *g = im->sys + (IDT_BASE - SYS_START) + 8 * k;
        wr32(g, (SEL_KCODE << 16) | (off & 0xffff));
        wr32(g + 4, (off & 0xffff0000u) | 0x8e00);
        uint8_t *h = im->sys + (HANDLERS - SYS_START) + 16 * k;
        /* mov dword gs:[REC_ADDR], vector; hlt (GS stays flat in every run) */
        static const uint8_t tmpl[12] = { 0x65, 0xc7, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0xf4 };
        memcpy(h, tmpl, sizeof tmpl);
        wr32(h + 3, REC_ADDR);
        wr32(h + 7, k);
    }
    /* TSS: the ring-0 stack */
    wr32(im->sys + (TSS_BASE - SYS_START) + 4, STK_END);
    wr32(im->sys + (TSS_BASE - SYS_START) + 8, SEL_KDATA);
    wr32(im->sys + (REC_ADDR - SYS_START), 0xffffffffu);
    for (uint32_t k = 8; k < 0x1000; k++)
        im->sys[REC_ADDR - SYS_START + k] = rnd();

    /* Page tables */
    if (v->pse) {
        wr32(im->pt, 0x87);                   /* one 4 MiB user page */
    } else {
        wr32(im->pt, PT_BASE | 0x7);
        for (uint32_t a = SYS_START; a < SYS_END; a += PAGE_SIZE)
            map_page(im, a, 0x3);
        map_page(im, CODE_BASE, pte_flags(PA_RW, v->user));
        map_page(im, CODE_BASE + 0x1000, pte_flags(v->code2_pa, v->user));
        wr32(im->pt + (PT_BASE - PD_BASE) + ((CODE_ALIAS >> 12) & 0x3ff) * 4, CODE_BASE | pte_flags(PA_RW, v->user));
        if (v->code2_pa != PA_NP)
            wr32(im->pt + (PT_BASE - PD_BASE) + (((CODE_ALIAS >> 12) + 1) & 0x3ff) * 4,
                 (CODE_BASE + 0x1000) | pte_flags(v->code2_pa, v->user));
        for (int k = 0; k < 4; k++)
            map_page(im, DATA_BASE + 0x1000 * k, pte_flags(v->data_pa[k], v->user));
        map_page(im, STK_GUARD, v->guard_np ? 0 : pte_flags(PA_RW, v->user));
        map_page(im, USTK_BASE, pte_flags(PA_RW, v->user));
        map_page(im, USTK_BASE + 0x1000, pte_flags(PA_RW, v->user));
        map_page(im, KSTK_BASE, 0x3);
        map_page(im, PT_BASE, 0x3);           /* ring 0 rewrites PTEs through it */
    }

    /* Code: the block, HLTs around it */
    memset(im->code, 0xf4, sizeof im->code);
    memcpy(im->code + v->code_off, code, code_len);
    /* Data and stacks: random bytes */
    for (size_t k = 0; k < sizeof im->data; k++)
        im->data[k] = rnd();
    for (size_t k = 0; k < sizeof im->stk; k++)
        im->stk[k] = rnd();

    /* CPU */
    memset(ci, 0, sizeof(*ci));
    uint32_t block_eip = CODE_BASE + v->code_off;
    for (int k = 0; k < 8; k++)
        ci->r[k] = interesting();
    ci->r[R_ESP] = v->esp - desc_base(v->ss) + v->esp_hi;
    uint32_t cs_base = v->cs_based ? CODE_BASE : 0;
    struct desc csd = make_desc(cs_base, v->cs_limit, v->user ? 0xfb : 0x9b, true);
    uint16_t cs_sel = v->cs_based ? SEL_CODE2 : v->user ? SEL_UCODE : SEL_KCODE;
    if (v->cs_based)
        put_desc(im, SEL_CODE2, csd);
    ci->eip = block_eip - cs_base;
    ci->eflags = 0x2 | (rnd() & (FL_ARITH | FL_DF));
    ci->cr0 = CR0_PE | CR0_ET | (v->paging ? CR0_PG : 0) | (v->wp ? CR0_WP : 0);
    ci->cr3 = v->paging ? PD_BASE : 0;
    ci->cr4 = v->pse ? CR4_PSE : 0;
    int rpl = v->user ? 3 : 0;
    ci->cpl = rpl;
    seg_from_desc(&ci->seg[SEG_CS], cs_sel | rpl, csd);
    uint16_t ss_sel = v->ss16 ? SEL_SS16 | rpl : v->user ? SEL_UDATA | 3 : SEL_KDATA;
    put_desc(im, SEL_SS16, v->ss);
    seg_from_desc(&ci->seg[SEG_SS], ss_sel, v->ss);
    seg_from_desc(&ci->seg[SEG_DS], SEL_DS | rpl, v->ds);
    seg_from_desc(&ci->seg[SEG_ES], SEL_ES | rpl, v->es);
    seg_from_desc(&ci->seg[SEG_FS], SEL_FS | rpl, v->fs);
    seg_from_desc(&ci->seg[SEG_GS], SEL_GS | rpl, v->gs);
    seg_from_desc(&ci->tr, SEL_TSS, make_desc(TSS_BASE, 0x67, 0x8b, false));
    if (v->prologue) {
        /*
         * Ring 0 first: read every page it may and write those it may
         * (A and D bits, supervisor TLB entries the CPL 3 code must not
         * use), then IRET to the block with the initial registers.
         */
        uint8_t *p = im->sys + (PROLOGUE - SYS_START);
        int n = 0;
        p[n++] = 0x50;                        /* push eax */
        for (uint32_t page = DATA_BASE - 0x1000; page < STK_END; page += 0x1000) {
            bool data = page >= DATA_BASE && page < DATA_END;
            bool stack = page >= STK_GUARD;
            if (!data && !stack)
                continue;
            enum pa pa = data ? v->data_pa[(page - DATA_BASE) >> 12] : (page == STK_GUARD && v->guard_np) ? PA_NP : PA_RW;
            if (pa == PA_NP || !v->paging || chance(20))
                continue;
            uint32_t a = page + below(0xffc);
            p[n++] = 0x65; p[n++] = 0xa1;     /* mov eax, gs:[a] */
            wr32(p + n, a); n += 4;
            if (pa == PA_RO && v->wp)
                continue;
            p[n++] = 0x65; p[n++] = 0x83; p[n++] = 0x05;   /* add dword gs:[a], 0 */
            wr32(p + n, a); n += 4;
            p[n++] = 0;
        }
        p[n++] = 0x58;                        /* pop eax */
        p[n++] = 0xcf;                        /* iretd */
        uint8_t *f = im->stk + (STK_END - 20 - STK_GUARD);
        wr32(f, block_eip - cs_base);
        wr32(f + 4, cs_sel | 3);
        wr32(f + 8, ci->eflags);
        wr32(f + 12, ci->r[R_ESP]);
        wr32(f + 16, ss_sel);
        ci->eip = PROLOGUE;
        ci->r[R_ESP] = STK_END - 20;
        ci->cpl = 0;
        seg_from_desc(&ci->seg[SEG_CS], SEL_KCODE, make_desc(0, 0xffffffffu, 0x9b, true));
        seg_from_desc(&ci->seg[SEG_SS], SEL_KDATA, make_desc(0, 0xffffffffu, 0x93, true));
        ci->eflags = 0x2 | (rnd() & FL_ARITH);
    }
    ci->gdtr = (struct dtr){ GDT_BASE, 0x5f };
    ci->idtr = (struct dtr){ IDT_BASE, NUM_VECTORS * 8 - 1 };
}

/* Write the image (all of it, or all but the code: the translations of the
 * previous run stay valid) and set the CPU state. */
static void load(struct machine *m, const struct image *im, const struct cpu_init *ci, bool keep_code)
{
    for (int k = 0; k < NREGIONS; k++)
        if (!(keep_code && regions[k].start == CODE_BASE))
            physmem_copy_to(m->pm, regions[k].start, image_region((struct image *)im, k),
                            regions[k].end - regions[k].start);
    struct cpu *c = &m->cpu;
    memcpy(c->r, ci->r, sizeof c->r);
    c->eip = ci->eip;
    c->eflags = ci->eflags;
    memcpy(c->seg, ci->seg, sizeof c->seg);
    c->tr = ci->tr;
    c->ldtr = (struct seg){ 0, 0, 0, 0 };
    c->gdtr = ci->gdtr;
    c->idtr = ci->idtr;
    c->cr0 = ci->cr0;
    c->cr2 = 0;
    c->cr3 = ci->cr3;
    c->cr4 = ci->cr4;
    c->cpl = ci->cpl;
    c->halted = false;
    c->intr_shadow = false;
    c->fault_depth = 0;
    c->exc_ext = false;
    c->bt_exit = false;
    tlb_flush_all(c);
}

/*
 * Fill the TLB as earlier guest code would have, so that translated code
 * takes its inline fast paths from the first access instead of the stubs
 * (a page that faults is left out).  Both engines get the same calls, so
 * the A/D bits the walks set match.
 */
static void warm_tlb(struct cpu *c)
{
    static const uint32_t spans[][2] = { { DATA_BASE, DATA_END }, { USTK_BASE, KSTK_BASE + 0x1000 },
                                         { CODE_BASE, CODE_BASE + 0x2000 } };
    bool user = c->cpl == 3;
    for (size_t k = 0; k < sizeof spans / sizeof spans[0]; k++)
        for (volatile uint32_t lin = spans[k][0]; lin < spans[k][1]; lin += 0x1000)
            for (volatile int acc = ACC_WRITE; acc >= ACC_READ; acc--) {
                if (setjmp(c->fault_jmp) == 0) {
                    mmu_translate(c, lin, acc, user);
                    break;
                }
                c->fault_depth = 0;            /* the #PF was caught: no double fault next time */
            }
    c->cr2 = 0;
}

/* ---- running and comparing ---- */

struct final {
    uint32_t r[8], eip, eflags, cr2;
    struct seg seg[SEG_COUNT];
    int cpl;
    bool halted;
    uint64_t insns;
    bool reset_request;
    struct image mem;
};

/* Run to the end; slice > 0 runs in slices of that many instructions, as
 * the machine's run loop does (bt then re-enters mid-block). */
static int64_t run_budget = RUN_BUDGET;

static void run_engine(struct machine *m, struct final *f, int slice)
{
    struct cpu *c = &m->cpu;
    uint64_t icount0 = cpu_icount(c);
    if (slice) {
        int status;
        while (!c->halted && cpu_icount(c) - icount0 < (uint64_t)run_budget && bus_pending_request(m->bus, &status) == BUS_REQ_NONE) {
            cpu_set_budget(c, slice);
            bt_run(m->bt);
        }
    } else {
        cpu_set_budget(c, run_budget);
        if (m->bt)
            bt_run(m->bt);
        else
            interp_run(c);
    }
    memset(f, 0, offsetof(struct final, mem));
    memcpy(f->r, c->r, sizeof f->r);
    f->eip = c->eip;
    f->eflags = c->eflags;
    f->cr2 = c->cr2;
    memcpy(f->seg, c->seg, sizeof f->seg);
    f->cpl = c->cpl;
    f->halted = c->halted;
    f->insns = cpu_icount(c) - icount0;
    int status;
    f->reset_request = bus_pending_request(m->bus, &status) != BUS_REQ_NONE;
    if (f->reset_request)
        bus_clear_request(m->bus);
    for (int k = 0; k < NREGIONS; k++)
        physmem_copy_from(m->pm, regions[k].start, image_region(&f->mem, k), regions[k].end - regions[k].start);
}

static bool same_state(const struct final *a, const struct final *b)
{
    return !memcmp(a->r, b->r, sizeof a->r) && a->eip == b->eip && a->eflags == b->eflags && a->cr2 == b->cr2 &&
           !memcmp(a->seg, b->seg, sizeof a->seg) && a->cpl == b->cpl && a->halted == b->halted &&
           a->insns == b->insns && a->reset_request == b->reset_request && !memcmp(&a->mem, &b->mem, sizeof a->mem);
}

static const char *const reg_names[8] = { "eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi" };
static const char *const seg_names[SEG_COUNT] = { "es", "cs", "ss", "ds", "fs", "gs" };

static void dump_variant(const struct variant *v)
{
    static const char *pa[4] = { "rw", "ro", "np", "sup" };
    fprintf(stderr, "  variant: %s, CPL %d%s, %s%s%s\n", v->paging ? "paging" : "no paging", v->user ? 3 : 0,
            v->prologue ? " (entered by IRET from a ring-0 prologue)" : "", v->wp ? "WP, " : "",
            v->pse ? "one 4 MiB page, " : "", v->nonflat ? "non-flat DS" : "flat DS");
    fprintf(stderr, "    data pages %s/%s/%s/%s, code page 2 %s, stack guard page %s", pa[v->data_pa[0]],
            pa[v->data_pa[1]], pa[v->data_pa[2]], pa[v->data_pa[3]], pa[v->code2_pa], v->guard_np ? "np" : "mapped");
    if (v->cs_based)
        fprintf(stderr, ", CS base %08x limit %08x", CODE_BASE, v->cs_limit);
    fprintf(stderr, "\n");
}

static void dump_code(const uint8_t *code, int len, uint32_t lin)
{
    fprintf(stderr, "  block (%d bytes at %08x):", len, lin);
    for (int k = 0; k < len; k++)
        fprintf(stderr, "%s%02x", k % 32 ? " " : "\n    ", code[k]);
    fprintf(stderr, "\n");
    int pos = 0;
    while (pos < len) {
        char buf[128];
        int n = disasm_one(code + pos, len - pos, true, lin + pos, buf, sizeof buf);
        fprintf(stderr, "    %08x  %s\n", lin + pos, n > 0 ? buf : "(bad)");
        pos += n > 0 ? n : 1;
    }
}

static void dump_cpu_init(const struct cpu_init *ci)
{
    fprintf(stderr, "  initial:");
    for (int k = 0; k < 8; k++)
        fprintf(stderr, " %s=%08x", reg_names[k], ci->r[k]);
    fprintf(stderr, " eflags=%08x\n", ci->eflags);
    for (int s = 0; s < SEG_COUNT; s++)
        fprintf(stderr, "    %s=%04x base=%08x limit=%08x attr=%04x\n", seg_names[s], ci->seg[s].sel,
                ci->seg[s].base, ci->seg[s].limit, ci->seg[s].attr);
}

static void dump_diff(const struct final *a, const struct final *b)
{
    fprintf(stderr, "  %-12s %-10s %-10s\n", "", "interp", "bt");
#define ROW(name, x, y) fprintf(stderr, "  %-12s %08x   %08x%s\n", name, (unsigned)(x), (unsigned)(y), (x) != (y) ? "   <--" : "")
    for (int k = 0; k < 8; k++)
        ROW(reg_names[k], a->r[k], b->r[k]);
    ROW("eip", a->eip, b->eip);
    ROW("eflags", a->eflags, b->eflags);
    ROW("cr2", a->cr2, b->cr2);
    ROW("cpl", a->cpl, b->cpl);
    ROW("halted", a->halted, b->halted);
    ROW("insns", a->insns, b->insns);
    ROW("reset req", a->reset_request, b->reset_request);
    for (int s = 0; s < SEG_COUNT; s++) {
        char n[16];
        snprintf(n, sizeof n, "%s.sel", seg_names[s]);
        ROW(n, a->seg[s].sel, b->seg[s].sel);
        if (memcmp(&a->seg[s], &b->seg[s], sizeof a->seg[s]))
            fprintf(stderr, "  %s cache: %08x/%08x/%04x vs %08x/%08x/%04x   <--\n", seg_names[s], a->seg[s].base,
                    a->seg[s].limit, a->seg[s].attr, b->seg[s].base, b->seg[s].limit, b->seg[s].attr);
    }
#undef ROW
    uint32_t rec;
    memcpy(&rec, a->mem.sys + (REC_ADDR - SYS_START), 4);
    fprintf(stderr, "  exception recorded (interp): %s%d\n", rec == 0xffffffffu ? "none " : "", (int)rec);
    memcpy(&rec, b->mem.sys + (REC_ADDR - SYS_START), 4);
    fprintf(stderr, "  exception recorded (bt):     %s%d\n", rec == 0xffffffffu ? "none " : "", (int)rec);
    int shown = 0;
    for (int k = 0; k < NREGIONS; k++) {
        const uint8_t *pa = image_region((struct image *)&a->mem, k);
        const uint8_t *pb = image_region((struct image *)&b->mem, k);
        for (uint32_t i = 0; i < regions[k].end - regions[k].start; i++) {
            if (pa[i] != pb[i]) {
                if (shown++ < 24)
                    fprintf(stderr, "  memory %08x (%s): interp %02x bt %02x\n", regions[k].start + i,
                            regions[k].name, pa[i], pb[i]);
            }
        }
    }
    if (shown > 24)
        fprintf(stderr, "  ... %d differing bytes in all\n", shown);
}

/* ---- the test ---- */

static struct machine *m_interp, *m_bt;

static int setup(void **state)
{
    m_interp = tiny_machine_new(false, 16, false);
    m_bt = tiny_machine_new(true, 16, false);
    return m_interp && m_bt ? 0 : -1;
}

static int teardown(void **state)
{
    machine_free(m_interp);
    machine_free(m_bt);
    return 0;
}

struct tallies {
    unsigned long blocks, runs, warm_runs, halted_plain, not_halted, insns, bytes;
    unsigned long vec[NUM_VECTORS];
};

/* Generate and run one block; true when both engines agree. */
static bool fault_stats;
static bool trace_interp;

static void tally(struct tallies *t, const struct variant *v, const struct image *im, const struct final *fi,
                  int len, uint64_t seed)
{
    t->runs++;
    t->bytes += len;
    t->insns += fi->insns;
    uint32_t rec;
    memcpy(&rec, fi->mem.sys + (REC_ADDR - SYS_START), 4);
    if (!fi->halted) {
        t->not_halted++;
        if (fault_stats)
            fprintf(stderr, "not halted: BT_FUZZ_SEED=0x%016llx\n", (unsigned long long)seed);
    } else if (rec < NUM_VECTORS) {
        t->vec[rec]++;
    } else {
        t->halted_plain++;
    }
    if (fault_stats && fi->halted && rec < NUM_VECTORS) {
        /* Where the exception came from: the frame the handler left on its (flat) stack. */
        bool has_err = rec == 8 || (rec >= 10 && rec <= 14) || rec == 17;
        uint32_t esp = fi->r[R_ESP] + (has_err ? 4 : 0), eip = 0;
        if (esp >= STK_GUARD && esp + 4 <= STK_END)
            memcpy(&eip, fi->mem.stk + (esp - STK_GUARD), 4);
        char buf[128] = "?";
        uint32_t at = eip - CODE_BASE;
        if (at < sizeof im->code - 16)
            disasm_one(fi->mem.code + at, 16, true, eip, buf, sizeof buf);
        fprintf(stderr, "fault #%u %s at %s (%s)\n", rec, v->user ? "u" : "k", buf, v->nonflat ? "nonflat" : "flat");
    }
}

/* Another context for the same code (see run_one). */
static void retune(struct variant *v, int len)
{
    if (chance(30)) {
        v->user = !v->user;
        v->prologue = v->user && chance(70);
        v->guard_np = v->user && chance(50);
        if (!v->user && v->esp < USTK_BASE + 0x200)
            v->esp += 0x200;
        v->ss = make_desc(desc_base(v->ss), desc_limit(v->ss), v->user ? 0xf3 : 0x93, !v->ss16);
    }
    if (chance(30)) {
        v->paging = !v->paging;
        v->wp = v->paging && chance(50);
        v->pse = v->paging && chance(8);
    }
    if (chance(30))
        for (int k = 0; k < 4; k++)
            v->data_pa[k] = chance(80) ? PA_RW : (enum pa)below(4);
    if (v->cs_based && chance(50))
        v->cs_limit = chance(50) ? 0xfffff : v->code_off + below(len + 32);
}

static bool run_one(uint64_t seed, struct tallies *t, bool verbose)
{
    static struct variant v;
    static struct image im;
    static struct cpu_init ci;
    static struct final fi, fb;
    static uint8_t code[0x1000];

    rng_state = splitmix(seed) | 1;
    pick_variant(&v);
    memset(&G, 0, sizeof G);
    G.v = &v;
    struct desc segd[SEG_COUNT] = { v.es, make_desc(v.cs_based ? CODE_BASE : 0, v.cs_limit, 0x9b, true),
                                    v.ss, v.ds, v.fs, v.gs };
    for (int s = 0; s < SEG_COUNT; s++) {
        G.seg_base[s] = desc_base(segd[s]);
        G.seg_limit[s] = desc_limit(segd[s]);
        G.seg_attr[s] = desc_attr(segd[s]);
    }
    int nunits = 4 + below(MAX_UNITS - 6);
    for (int k = 0; k < nunits; k++)
        gen_unit();
    new_unit();
    put(0xf4);                                /* hlt (a #GP at CPL 3, which halts too) */
    int len = assemble(code, CODE_BASE + v.code_off, sizeof code);
    assert_true(len > 0);
    check_layout(code, len);
    if (v.cs_based && chance(50))
        v.cs_limit = v.code_off + below(len + 32);   /* cuts the block: #GP at a fetch or a jump */

    bool same = true;
    for (int round = 0; round < 2 && same; round++) {
        bool keep_code = false;
        if (round == 1) {
            /* Again, with the translations of the first run still cached
             * (unless it modified its code): new registers and data, and
             * often another CPL, paging mode, page attributes or CS limit. */
            if (!chance(25))
                break;
            retune(&v, len);
        }
        build(&v, &im, &ci, code, len);
        if (round == 1) {
            keep_code = !memcmp(fi.mem.code, im.code, sizeof im.code);
            t->warm_runs += keep_code;
        } else {
            t->blocks++;
        }
        load(m_interp, &im, &ci, keep_code);
        load(m_bt, &im, &ci, keep_code);
        bool warm = chance(50);
        if (warm) {
            warm_tlb(&m_interp->cpu);
            warm_tlb(&m_bt->cpu);
        }
        if (trace_interp)
            m_interp->cpu.trace = TRACE_IN_ASM | TRACE_INT | TRACE_CPU;
        if (getenv("BT_FUZZ_OUT_ASM"))
            m_bt->cpu.trace = TRACE_OUT_ASM;
        int slice = chance(20) ? 1 + below(chance(50) ? 4 : 40) : 0;
        bool capture_all = chance(25);         /* the translation of hosts without BMI2 */
        bt_set_flag_keeping_probe(!capture_all);
        /* Pages rewritten too often are interpreted for a while: in one
         * block of eight (a choice that leaves the generator's sequence
         * alone), so that most self-modifying blocks run translated. */
        bt_set_hot_pages(m_bt->bt, (splitmix(seed ^ 0x40a9e5) & 7) == 0);
        run_engine(m_interp, &fi, 0);
        run_engine(m_bt, &fb, slice);
        tally(t, &v, &im, &fi, len, seed);
        /* Neither engine finished (a self-modifying store can make a loop
         * counter huge): bt ends a budget at a block boundary, so the states
         * at the cut may differ; that both ran out is all that is compared. */
        bool unfinished = !fi.halted && !fb.halted && !fi.reset_request && !fb.reset_request;
        same = unfinished || same_state(&fi, &fb);
        if (!same || verbose) {
            fprintf(stderr, "%s: BT_FUZZ_SEED=0x%016llx%s", same ? "block" : "MISMATCH", (unsigned long long)seed,
                    round ? " (second run of the block, translations kept)" : "");
            if (slice)
                fprintf(stderr, " (bt run in slices of %d instructions)", slice);
            if (warm)
                fprintf(stderr, " (TLB warmed before the run)");
            if (capture_all)
                fprintf(stderr, " (flags captured before every probe)");
            fprintf(stderr, "\n");
            dump_variant(&v);
            dump_cpu_init(&ci);
            dump_code(code, len, CODE_BASE + v.code_off);
            dump_diff(&fi, &fb);
        }
    }
    return same;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);
    return s && *s ? strtoull(s, NULL, 0) : dflt;
}

static void test_bt_fuzz(void **state)
{
    struct tallies t = { 0 };
    bool verbose = env_u64("BT_FUZZ_VERBOSE", 0) != 0;
    fault_stats = env_u64("BT_FUZZ_FAULTS", 0) != 0;
    trace_interp = env_u64("BT_FUZZ_TRACE", 0) != 0;
    const char *one = getenv("BT_FUZZ_SEED");
    if (one && *one) {
        assert_true(run_one(strtoull(one, NULL, 0), &t, true));
        return;
    }
    uint64_t n = env_u64("BT_FUZZ_COUNT", getenv("RETROVISOR_LONG") ? BLOCKS_LONG : BLOCKS_CHECK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned failures = 0;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t seed = splitmix(BASE_SEED + k);
        if (!run_one(seed, &t, verbose && failures < MAX_REPORTED)) {
            if (++failures >= MAX_REPORTED) {
                fprintf(stderr, "stopping after %u mismatches\n", failures);
                break;
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    struct bt_stats bs;
    bt_get_stats(m_bt->bt, &bs);
    printf("bt fuzz: %lu blocks, %lu runs (%lu again with their translations cached; %lu bytes, %lu instructions) "
           "in %.1f s; %u mismatches\n", t.blocks, t.runs, t.warm_runs, t.bytes, t.insns, secs, failures);
    printf("  ended by HLT %lu, not halted %lu; exceptions:", t.halted_plain, t.not_halted);
    for (int k = 0; k < NUM_VECTORS; k++)
        if (t.vec[k])
            printf(" #%d:%lu", k, t.vec[k]);
    printf("\n  bt: %llu blocks translated, %llu invalidated, %llu flushes, %llu block entries, %llu jumps followed,"
           " %llu operands and %llu stack slots cached\n"
           "  code writes: %llu spared translations beside them; a page was left to the interpreter %llu times\n",
           (unsigned long long)bs.blocks_translated, (unsigned long long)bs.blocks_invalidated,
           (unsigned long long)bs.flushes, (unsigned long long)bs.block_entries,
           (unsigned long long)bs.jumps_followed, (unsigned long long)bs.operands_cached,
           (unsigned long long)bs.stack_slots_cached, (unsigned long long)bs.code_writes_spared,
           (unsigned long long)bs.pages_made_hot);
    assert_int_equal(failures, 0);
    /* Zero mismatches say something about base caching only if it was used. */
    assert_true(bs.operands_cached > 0);
    assert_true(bs.stack_slots_cached > 0);
}

/* ---- code in the VGA window and in PAM-shadowed ROM (issue 26) ----
 *
 * A second generator on its own seeds and its own machines (with a VGA): a
 * driver in RAM writes small payloads (register arithmetic, a trace in the
 * data area, stores into the payload's own later bytes, a RET) into the
 * legacy VGA window 0xA0000-0xBFFFF or the shadow area 0xC0000-0xFFFFF,
 * patches them with stores of every size, read-modify-write and string
 * instructions, calls them from the window, through the LFB (the same video
 * memory) or from the shadow area, and between those steps reprograms the
 * VGA's memory mode (chain-4, planar, odd/even, write and read modes, map
 * mask, bit mask, the memory map select, the VBE bank) and the i440FX's PAM
 * registers (read ROM or RAM, write ROM or RAM, per 16 KiB or the 64 KiB
 * BIOS segment, whose ROM is HLTs).  Both engines must end in the same
 * state: registers, the RAM regions above, video memory, shadow RAM.  A
 * payload that a mode change turned into other bytes runs as whatever it
 * now is (the exception handlers end such a run).
 */

enum { WIN_BLOCKS_CHECK = 20000, WIN_BLOCKS_LONG = 200000 };
#define WIN_BASE_SEED 0x3a0000c0ffeeull
#define WIN_BUDGET 20000            /* a driver and its payloads run a few hundred instructions */
#define WIN_LFB 0xe0000000u
#define WIN_VGA_CFG (0x80000000u | (2u << 11))
#define WIN_VRAM_COMPARED 0x40000u          /* the four 64 KiB planes */
#define SHADOW_LO 0xc0000u
#define SHADOW_HI 0x100000u
#define STAGING (CODE_BASE + 0x1000)        /* payload copies for REP MOVS */

static struct machine *w_interp, *w_bt;
static uint64_t window_index;
static void window_restart(void);

struct wgen {
    uint8_t code[CODE_END - CODE_BASE];
    int len, staging;
    /* the payload last written to each slot: where its immediates are */
    struct wslot {
        uint32_t write_at, run_at;
        int len;
        uint8_t imm[32];
        int nimm;
    } slot[4];
    int nslots;
};
static struct wgen W;

static void wput(uint8_t b)
{
    if (W.len < STAGING - CODE_BASE - 16)
        W.code[W.len++] = b;
}
static void wput32(uint32_t v) { for (int k = 0; k < 4; k++) wput(v >> (8 * k)); }

/* A payload for run address `at`: arithmetic on EBX/EBP, traces in the data
 * area, a store into its own later bytes, a RET. */
static int gen_payload(uint8_t *p, uint32_t at, struct wslot *s)
{
    int n = 0, count = 2 + below(8);
    s->nimm = 0;
#define IMM32(v) do { if (s->nimm < 32) s->imm[s->nimm++] = n; uint32_t v_ = (v); memcpy(p + n, &v_, 4); n += 4; } while (0)
    for (int k = 0; k < count; k++) {
        switch (below(9)) {
        case 0: p[n++] = 0x81; p[n++] = 0xc3; IMM32(interesting()); break;          /* add ebx, imm32 */
        case 1: p[n++] = 0x81; p[n++] = 0xf5; IMM32(rnd()); break;                  /* xor ebp, imm32 */
        case 2: p[n++] = 0xc1; p[n++] = 0xc3; p[n++] = below(32); break;            /* rol ebx, imm8 */
        case 3: p[n++] = 0x01; p[n++] = 0xeb; p[n++] = 0x31; p[n++] = 0xdd; break;  /* add ebx, ebp; xor ebp, ebx */
        case 4: p[n++] = 0x0f; p[n++] = 0xaf; p[n++] = 0xdd; p[n++] = 0x43; break;  /* imul ebx, ebp; inc ebx */
        case 5: p[n++] = 0xbb; IMM32(rnd()); break;                                 /* mov ebx, imm32 */
        case 6: p[n++] = 0x01; p[n++] = 0x1d; IMM32(DATA_BASE + below(0x3ffc)); break;  /* add [data], ebx */
        case 7:                                                                     /* test bl, 1; jz over; add ebp, imm32 */
            p[n++] = 0xf6; p[n++] = 0xc3; p[n++] = 0x01; p[n++] = 0x74; p[n++] = 0x06;
            p[n++] = 0x81; p[n++] = 0xc5; IMM32(rnd());
            break;
        default:                                                                    /* mov byte [own immediate], imm8 */
            if (s->nimm) {
                /* an immediate already run: the next call must see the new byte */
                uint32_t target = at + s->imm[below(s->nimm)] + below(4);
                p[n++] = 0xc6; p[n++] = 0x05;
                memcpy(p + n, &target, 4);
                n += 4;
                p[n++] = rnd();
            }
            break;
        }
    }
#undef IMM32
    p[n++] = 0xc3;                                                                  /* ret */
    return n;
}

/* Write len bytes to guest address `to` from the driver, in one of several ways. */
static void emit_write(uint32_t to, const uint8_t *b, int len)
{
    int how = below(5);
    if (how == 0 && W.staging + len <= 0x1000) {
        /* rep movsb / movsd from a copy in the code area's second page */
        uint32_t src = STAGING + W.staging;
        memcpy(W.code + (src - CODE_BASE), b, len);
        W.staging += (len + 3) & ~3;
        bool dwords = chance(50) && !(len & 3);
        wput(0xbe); wput32(src);
        wput(0xbf); wput32(to);
        wput(0xb9); wput32(dwords ? len / 4 : len);
        wput(0xf3); wput(dwords ? 0xa5 : 0xa4);
        return;
    }
    for (int i = 0; i < len;) {
        int size = how == 1 ? 1 : how == 2 ? 2 : how == 3 ? 4 : 1 << below(3);
        while (i + size > len)
            size >>= 1;
        uint32_t v = 0;
        memcpy(&v, b + i, size);
        if (size == 2)
            wput(0x66);
        wput(size == 1 ? 0xc6 : 0xc7); wput(0x05); wput32(to + i);
        if (size == 1)
            wput(v);
        else if (size == 2) {
            wput(v); wput(v >> 8);
        } else
            wput32(v);
        i += size;
    }
}

/* A VGA register that changes how the window reaches video memory. */
static void emit_vga_register(void)
{
    static const uint8_t sr4[] = { 0x0e, 0x06, 0x02, 0x0a };
    static const uint8_t gr5[] = { 0x40, 0x00, 0x01, 0x02, 0x03, 0x08, 0x10, 0x40 };
    static const uint8_t gr6[] = { 0x05, 0x01, 0x09, 0x0d, 0x0f, 0x0e, 0x05 };
    uint16_t port = 0x3ce;
    uint8_t idx, val;
    switch (below(11)) {
    case 0: port = 0x3c4; idx = 2; val = chance(60) ? 0x0f : 1u << below(4) | below(16); break;
    case 1: port = 0x3c4; idx = 4; val = sr4[below(sizeof sr4)]; break;
    case 2: idx = 4; val = below(4); break;
    case 3: idx = 5; val = gr5[below(sizeof gr5)]; break;
    case 4: idx = 6; val = gr6[below(sizeof gr6)]; break;
    case 5: idx = 8; val = chance(60) ? 0xff : rnd(); break;
    case 6: idx = below(4); val = chance(50) ? 0 : rnd(); break;     /* set/reset, enable, compare, rotate */
    case 7: /* the VBE bank, or VBE on/off */
        wput(0x66); wput(0xba); wput(0xce); wput(0x01);              /* mov dx, 0x1ce */
        idx = chance(60) ? 5 : 4;
        wput(0x66); wput(0xb8); wput(idx); wput(0);                  /* mov ax, idx */
        wput(0x66); wput(0xef);                                      /* out dx, ax */
        wput(0x42);                                                  /* inc edx */
        val = idx == 5 ? below(4) : chance(50) ? 0x41 : 0;
        wput(0x66); wput(0xb8); wput(val); wput(0);
        wput(0x66); wput(0xef);
        return;
    default: /* back to chain-4, all planes, 64 KiB at 0xA0000 */
        port = 0x3c4; idx = 4; val = 0x0e;
        wput(0x66); wput(0xba); wput(port); wput(port >> 8);
        wput(0xb0); wput(2); wput(0xee); wput(0x42); wput(0xb0); wput(0x0f); wput(0xee);
        port = 0x3ce;
        wput(0x66); wput(0xba); wput(port); wput(port >> 8);
        wput(0xb0); wput(5); wput(0xee); wput(0x42); wput(0xb0); wput(0x40); wput(0xee); wput(0x4a);
        wput(0xb0); wput(6); wput(0xee); wput(0x42); wput(0xb0); wput(0x05); wput(0xee); wput(0x4a);
        wput(0xb0); wput(8); wput(0xee); wput(0x42); wput(0xb0); wput(0xff); wput(0xee);
        port = 0x3c4;
        break;
    }
    wput(0x66); wput(0xba); wput(port); wput(port >> 8);             /* mov dx, port */
    wput(0xb0); wput(idx); wput(0xee);                               /* mov al, idx; out dx, al */
    wput(0x42);                                                      /* inc edx */
    wput(0xb0); wput(val); wput(0xee);                               /* mov al, val; out dx, al */
}

/* A PAM register of the i440FX (0x59-0x5F): each nibble read RAM (1), write RAM (2). */
static void emit_pam(void)
{
    uint8_t reg = 0x59 + below(7);
    uint8_t val = below(4) << 4 | (reg == 0x59 ? 0 : below(4));
    if (chance(30))
        val = reg == 0x59 ? 0x30 : 0x33;
    wput(0xb8); wput32(0x80000000u | (reg & 0xfc));                  /* mov eax, CONFIG_ADDRESS */
    wput(0x66); wput(0xba); wput(0xf8); wput(0x0c);                  /* mov dx, 0xcf8 */
    wput(0xef);                                                      /* out dx, eax */
    wput(0x66); wput(0xba); wput(0xfc + (reg & 3)); wput(0x0c);      /* mov dx, 0xcfc + (reg & 3) */
    wput(0xb0); wput(val); wput(0xee);                               /* mov al, val; out dx, al */
}

/* Where a payload goes: a write address and a run address for the same bytes. */
static void pick_slot(uint32_t *write_at, uint32_t *run_at)
{
    static const uint32_t vga_offs[] = { 0x0000, 0x07f0, 0x0fe8, 0x8000, 0xfff0 - 0x40, 0x10000, 0x18ff0 };
    if (chance(55)) {
        uint32_t off = vga_offs[below(sizeof vga_offs / sizeof vga_offs[0])] + below(16);
        *write_at = chance(80) ? 0xa0000 + off : WIN_LFB + off;
        *run_at = chance(60) ? 0xa0000 + off : WIN_LFB + off;
    } else {
        uint32_t seg = SHADOW_LO + below(16) * 0x4000;
        uint32_t off = chance(30) ? 0x3fe0 + below(16) : below(0x3f00);
        *write_at = *run_at = seg + off;
    }
}

static void emit_call(uint32_t to)
{
    wput(0xb8); wput32(to);                                          /* mov eax, to */
    wput(0xff); wput(0xd0);                                          /* call eax */
}

/* The driver: steps of writing, patching, calling, VGA and PAM changes. */
static int gen_window_driver(void)
{
    memset(&W, 0, sizeof W);
    memset(W.code, 0xf4, sizeof W.code);
    wput(0xfc);                                                      /* cld: the writes go up */
    int steps = 3 + below(10);
    for (int k = 0; k < steps; k++) {
        int what = below(100);
        if (what < 30 || W.nslots == 0) {
            uint32_t wr, run;
            pick_slot(&wr, &run);
            struct wslot *s = &W.slot[W.nslots < 4 ? W.nslots++ : below(4)];
            uint8_t p[256];
            s->write_at = wr;
            s->run_at = run;
            s->len = gen_payload(p, run, s);
            emit_write(wr, p, s->len);
            if (chance(70))
                emit_call(run);
        } else if (what < 55) {
            struct wslot *s = &W.slot[below(W.nslots)];
            int at = s->nimm && chance(95) ? s->imm[below(s->nimm)] + below(4) : below(s->len);
            uint32_t to = (chance(80) ? s->write_at : s->run_at) + at;
            switch (below(4)) {
            case 0: wput(0x80); wput(0x35); wput32(to); wput(rnd()); break;     /* xor byte [to], imm8 */
            case 1:                                                             /* rep stosb */
                wput(0xbf); wput32(to); wput(0xb9); wput32(1 + below(4)); wput(0xb0); wput(rnd());
                wput(0xf3); wput(0xaa);
                break;
            default: {
                uint8_t b[4];
                for (int i = 0; i < 4; i++)
                    b[i] = rnd();
                emit_write(to, b, 1 + below(4));
                break;
            }
            }
            if (chance(60))
                emit_call(s->run_at);
        } else if (what < 75) {
            emit_call(W.slot[below(W.nslots)].run_at);
        } else if (what < 88) {
            emit_vga_register();
        } else {
            emit_pam();
        }
    }
    wput(0xf4);
    return W.len;
}

/* Reset both machines' video memory, VGA registers, shadow RAM and PAM to
 * the same random starting point. */
static void window_start_state(void)
{
    static const uint8_t modes[][6] = {
        /* SR2, SR4, GR5, GR6, GR8, VBE enable */
        { 0x0f, 0x0e, 0x40, 0x05, 0xff, 0x00 },    /* chain-4 (mode 13h) */
        { 0x0f, 0x06, 0x00, 0x05, 0xff, 0x00 },    /* planar (mode 12h) */
        { 0x03, 0x02, 0x10, 0x0e, 0xff, 0x00 },    /* odd/even text at 0xB8000 */
        { 0x0f, 0x0e, 0x40, 0x01, 0xff, 0x41 },    /* VBE 640x480x8, 128 KiB window */
    };
    const uint8_t *mode = modes[below(4)];
    uint8_t pam[7];
    for (int k = 0; k < 7; k++)
        pam[k] = chance(40) ? 0x33 : (below(4) << 4 | below(4));
    pam[0] &= 0xf0;
    static const uint8_t fills[] = { 0xf4, 0xc3, 0xcc };   /* HLT, RET, INT3: stray calls end soon */
    uint8_t fill = fills[below(3)], vfill = fills[below(3)];
    struct machine *ms[2] = { w_interp, w_bt };
    for (int i = 0; i < 2; i++) {
        struct machine *m = ms[i];
        static const uint16_t vbe_off[][2] = { { 4, 0 } };
        machine_io_write(m, 0x1ce, vbe_off[0][0], 2);
        machine_io_write(m, 0x1cf, vbe_off[0][1], 2);
        memset(vga_state(m->vga)->vram, vfill, WIN_VRAM_COMPARED);
        if (mode[5]) {
            static const uint16_t vbe[][2] = { { 1, 640 }, { 2, 480 }, { 3, 8 }, { 5, 0 }, { 4, 0x41 } };
            for (size_t k = 0; k < sizeof vbe / sizeof vbe[0]; k++) {
                machine_io_write(m, 0x1ce, vbe[k][0], 2);
                machine_io_write(m, 0x1cf, vbe[k][1], 2);
            }
        }
        static const uint16_t regs[] = { 0x3ce, 0x0000, 0x3ce, 0x0001, 0x3ce, 0x0002, 0x3ce, 0x0003, 0x3ce, 0x0004,
                                         0x3ce, 0x0f07, 0x3c4, 0x0101, 0x3c4, 0x0303, 0x1ce, 0x0005, 0x1cf, 0x0000,
                                         0x21, 0xff, 0xa1, 0xff };   /* no PIC interrupts: engines deliver them at different points */
        for (size_t k = 0; k < sizeof regs / sizeof regs[0]; k += 2)
            machine_io_write(m, regs[k], regs[k + 1], regs[k] < 0x100 ? 1 : 2);
        machine_io_write(m, 0x3c4, 0x02 | mode[0] << 8, 2);
        machine_io_write(m, 0x3c4, 0x04 | mode[1] << 8, 2);
        machine_io_write(m, 0x3ce, 0x05 | mode[2] << 8, 2);
        machine_io_write(m, 0x3ce, 0x06 | mode[3] << 8, 2);
        machine_io_write(m, 0x3ce, 0x08 | mode[4] << 8, 2);
        for (int k = 0; k < 7; k++) {                              /* all shadow RAM, to fill it */
            machine_io_write(m, 0xcf8, 0x80000000u | ((0x59 + k) & 0xfc), 4);
            machine_io_write(m, 0xcfc + ((0x59 + k) & 3), k ? 0x33 : 0x30, 1);
        }
        static uint8_t shadow[SHADOW_HI - SHADOW_LO];
        memset(shadow, fill, sizeof shadow);
        physmem_copy_to(m->pm, SHADOW_LO, shadow, sizeof shadow);
        for (int k = 0; k < 7; k++) {
            machine_io_write(m, 0xcf8, 0x80000000u | ((0x59 + k) & 0xfc), 4);
            machine_io_write(m, 0xcfc + ((0x59 + k) & 3), pam[k], 1);
        }
    }
}

struct wfinal {
    struct final f;
    uint8_t vram[WIN_VRAM_COMPARED];
    uint8_t shadow[SHADOW_HI - SHADOW_LO];
};

static void window_final(struct machine *m, struct wfinal *w, int slice)
{
    run_engine(m, &w->f, slice);
    memcpy(w->vram, vga_state(m->vga)->vram, sizeof w->vram);
    physmem_copy_from(m->pm, SHADOW_LO, w->shadow, sizeof w->shadow);
}

static void dump_window_diff(const struct wfinal *a, const struct wfinal *b)
{
    dump_diff(&a->f, &b->f);
    int shown = 0;
    for (uint32_t i = 0; i < sizeof a->vram; i++)
        if (a->vram[i] != b->vram[i] && shown++ < 16)
            fprintf(stderr, "  vram %05x (plane %u offset %04x): interp %02x bt %02x\n", i, i & 3, i >> 2,
                    a->vram[i], b->vram[i]);
    for (uint32_t i = 0; i < sizeof a->shadow; i++)
        if (a->shadow[i] != b->shadow[i] && shown++ < 32)
            fprintf(stderr, "  shadow RAM %05x: interp %02x bt %02x\n", SHADOW_LO + i, a->shadow[i], b->shadow[i]);
}

struct wtallies {
    unsigned long blocks, halted_plain, not_halted, faulted, insns;
};

static bool run_window_block(uint64_t seed, struct wtallies *t, bool verbose)
{
    static struct variant v;
    static struct image im;
    static struct cpu_init ci;
    static struct wfinal fi, fb;

    rng_state = splitmix(seed) | 1;
    memset(&v, 0, sizeof v);
    v.ds = v.es = v.fs = v.gs = flat_data();
    v.ss = make_desc(0, 0xffffffffu, 0x93, true);
    v.cs_limit = 0xffffffffu;
    v.esp = USTK_BASE + 0x1800;
    int len = gen_window_driver();
    window_start_state();
    build(&v, &im, &ci, W.code, sizeof W.code);
    load(w_interp, &im, &ci, false);
    load(w_bt, &im, &ci, false);
    int slice = chance(20) ? 1 + below(40) : 0;
    if (trace_interp)
        w_interp->cpu.trace = w_bt->cpu.trace = TRACE_IN_ASM | TRACE_INT | TRACE_CPU;
    if (getenv("BT_FUZZ_OUT_ASM"))
        w_bt->cpu.trace = TRACE_OUT_ASM;
    window_final(w_interp, &fi, 0);
    window_final(w_bt, &fb, slice);
    t->blocks++;
    t->insns += fi.f.insns;
    uint32_t rec;
    memcpy(&rec, fi.f.mem.sys + (REC_ADDR - SYS_START), 4);
    if (!fi.f.halted)
        t->not_halted++;
    else if (rec < NUM_VECTORS)
        t->faulted++;
    else
        t->halted_plain++;
    /* Both ran out of budget, or both stopped at a reset request (stray code
     * reached 0xCF9 or triple-faulted): bt stops such a cut at a block
     * boundary or mid-REP where the interpreter may not, so that both
     * stopped is all that is compared (as in the first test). */
    bool unfinished = (!fi.f.halted && !fb.f.halted && !fi.f.reset_request && !fb.f.reset_request) ||
                      (fi.f.reset_request && fb.f.reset_request);
    if (unfinished)
        window_restart();         /* device state the run reached may differ: start afresh */
    bool same = unfinished || (same_state(&fi.f, &fb.f) && !memcmp(fi.vram, fb.vram, sizeof fi.vram) &&
                               !memcmp(fi.shadow, fb.shadow, sizeof fi.shadow));
    if (!same || verbose) {
        fprintf(stderr, "%s: BT_FUZZ_WINDOW_SEED=0x%016llx%s (block %llu)\n", same ? "block" : "MISMATCH",
                (unsigned long long)seed, slice ? " (bt run in slices)" : "", (unsigned long long)window_index);
        dump_code(W.code, len, CODE_BASE);
        dump_window_diff(&fi, &fb);
        /* BT_FUZZ_WINDOW_DUMP=addr: both sides of the shadow area there (ROM and RAM), and which one reads */
        uint32_t a = (uint32_t)env_u64("BT_FUZZ_WINDOW_DUMP", 0);
        if (a >= SHADOW_LO && a + 16 <= SHADOW_HI) {
            for (int i = 0; i < 2; i++) {
                struct physmem *pm = (i ? w_bt : w_interp)->pm;
                fprintf(stderr, "%s rom:", i ? "bt" : "interp");
                for (int k = 0; k < 16; k++) fprintf(stderr, " %02x", pm->rom_shadow[a - 0xc0000 + k]);
                fprintf(stderr, " rd=%s wr=%s", !pm->rd[a >> 12] ? "null" : pm->rd[a >> 12] == pm->ram + (a & ~0xfffu) ? "ram" : "rom",
                        !pm->wr[a >> 12] ? "null" : "ram");
                fprintf(stderr, " ram:");
                for (int k = 0; k < 16; k++) fprintf(stderr, " %02x", pm->ram[a + k]);
                fprintf(stderr, "\n");
            }
        }
    }
    return same;
}

static unsigned long restarts;

static void map_lfb(struct machine *m)
{
    machine_io_write(m, 0xcf8, WIN_VGA_CFG | 0x10, 4);       /* BAR0: the LFB */
    machine_io_write(m, 0xcfc, WIN_LFB, 4);
    machine_io_write(m, 0xcf8, WIN_VGA_CFG | 0x04, 4);       /* memory decode on */
    machine_io_write(m, 0xcfc, 0x0003, 2);
}

/* After a run both engines cut short, the same start again: the machines
 * reset, RAM and the first MiB of video memory cleared, the LFB mapped.
 * bt keeps its translations (they must survive the reset correctly). */
static void window_restart(void)
{
    static uint8_t zeros[0x10000];
    for (int i = 0; i < 2; i++) {
        struct machine *m = i ? w_bt : w_interp;
        machine_reset(m);
        for (uint32_t a = 0; a < (16u << 20); a += sizeof zeros)
            physmem_copy_to(m->pm, a, zeros, sizeof zeros);
        memset(vga_state(m->vga)->vram, 0, 1u << 20);
        map_lfb(m);
    }
    restarts++;
}

static int window_setup(void **state)
{
    w_interp = tiny_machine_new(false, 16, true);
    w_bt = tiny_machine_new(true, 16, true);
    if (w_interp && w_bt) {                        /* none without SeaVGABIOS: the test skips */
        map_lfb(w_interp);
        map_lfb(w_bt);
    }
    return 0;
}

static int window_teardown(void **state)
{
    machine_free(w_interp);
    machine_free(w_bt);
    return 0;
}

static void test_bt_fuzz_windows(void **state)
{
    if (!w_interp || !w_bt)
        skip();
    struct wtallies t = { 0 };
    bool verbose = env_u64("BT_FUZZ_VERBOSE", 0) != 0;
    trace_interp = env_u64("BT_FUZZ_TRACE", 0) != 0;
    const char *one = getenv("BT_FUZZ_WINDOW_SEED");
    if (one && *one) {
        assert_true(run_window_block(strtoull(one, NULL, 0), &t, true));
        return;
    }
    if (getenv("BT_FUZZ_SEED") && *getenv("BT_FUZZ_SEED"))
        skip();
    uint64_t n = env_u64("BT_FUZZ_WINDOW_COUNT", getenv("RETROVISOR_LONG") ? WIN_BLOCKS_LONG : WIN_BLOCKS_CHECK);
    run_budget = WIN_BUDGET;
    struct bt_stats before, after;
    bt_get_stats(w_bt->bt, &before);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned failures = 0;
    for (window_index = env_u64("BT_FUZZ_WINDOW_FIRST", 0); t.blocks < n && failures < MAX_REPORTED; window_index++)
        failures += !run_window_block(splitmix(WIN_BASE_SEED + window_index), &t, verbose);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    bt_get_stats(w_bt->bt, &after);
    run_budget = RUN_BUDGET;
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("bt fuzz (VGA window, PAM shadow): %lu blocks, %lu instructions in %.1f s; %u mismatches\n"
           "  ended by HLT %lu, by an exception %lu, not halted %lu (machines reset %lu times);"
           " bt translated %llu blocks, invalidated %llu\n",
           t.blocks, t.insns, secs, failures, t.halted_plain, t.faulted, t.not_halted, restarts,
           (unsigned long long)(after.blocks_translated - before.blocks_translated),
           (unsigned long long)(after.blocks_invalidated - before.blocks_invalidated));
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bt_fuzz),
        cmocka_unit_test_setup_teardown(test_bt_fuzz_windows, window_setup, window_teardown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
