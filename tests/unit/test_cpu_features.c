/*
 * The CPU features past the P6 set that kvm-unit-tests look for (issue
 * 17): SMAP in the MMU, STAC/CLAC, RDTSCP and RDPID with IA32_TSC_AUX,
 * IA32_TSC_ADJUST, EFER.SCE, VMCALL's #UD, and what CPUID says of them.
 *
 * The MMU's rules are checked by calling the accessors in a paged ring 0
 * machine; the software TLB's part (a supervisor entry for a user page
 * cached while EFLAGS.AC is set must not outlive AC) by running a small
 * hand-assembled guest under both engines, whose #PF handler counts the
 * faults and sets AC in the interrupted EFLAGS, as kvm-unit-tests' smap
 * test does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "bt/bt.h"
#include "monitor/cpu.h"
#include "monitor/interp.h"
#include "monitor/machine.h"
#include "monitor/mmu.h"
#include "monitor/physmem.h"
#include "tiny_machine.h"

/* Guest-physical layout (identity-mapped). */
#define CODE     0x00100000u   /* the program */
#define HANDLER  0x00101000u   /* its #PF handler */
#define RESULTS  0x00102000u   /* the handler's record: last error code, CR2, count */
#define IDT      0x00103000u
#define GDT      0x00104000u
#define PD       0x00200000u
#define PT0      0x00201000u   /* 4 KiB pages for the first 4 MiB */
#define USER     0x00300000u   /* the only user page */
#define STACK    0x00f00000u

#define PTE_P  0x001u
#define PTE_RW 0x002u
#define PTE_US 0x004u
#define PTE_PS 0x080u

static struct machine *m_bt, *m_interp;

static int setup(void **state)
{
    m_bt = tiny_machine_new(true, 16, false);
    m_interp = tiny_machine_new(false, 16, false);
    return m_bt && m_interp ? 0 : -1;
}

static int teardown(void **state)
{
    machine_free(m_bt);
    machine_free(m_interp);
    return 0;
}

static void put(struct machine *m, uint32_t addr, const void *bytes, size_t len)
{
    assert_true(physmem_copy_to(m->pm, addr, bytes, len));
}

static void put32(struct machine *m, uint32_t addr, uint32_t v)
{
    put(m, addr, &v, 4);
}

static uint32_t get32(struct machine *m, uint32_t addr)
{
    return (uint32_t)physmem_read(m->pm, addr, 4);
}

/* Page tables: 16 MiB identity-mapped, supervisor only but for USER;
 * a flat GDT (code 0x08, data 0x10) and an IDT whose vector 14 is an
 * interrupt gate to HANDLER. */
static void build_tables(struct machine *m)
{
    put32(m, PD, PT0 | PTE_P | PTE_RW | PTE_US);   /* U/S is the AND of both levels */
    for (uint32_t k = 1; k < 4; k++)
        put32(m, PD + 4 * k, (k << 22) | PTE_P | PTE_RW | PTE_PS);
    for (uint32_t k = 0; k < 1024; k++)
        put32(m, PT0 + 4 * k, (k << 12) | PTE_P | PTE_RW | ((k << 12) == USER ? PTE_US : 0));
    static const uint32_t gdt[6] = { 0, 0, 0x0000ffff, 0x00cf9a00, 0x0000ffff, 0x00cf9200 };
    put(m, GDT, gdt, sizeof gdt);
    put32(m, IDT + 14 * 8, (0x08u << 16) | (HANDLER & 0xffff));
    put32(m, IDT + 14 * 8 + 4, (HANDLER & 0xffff0000u) | 0x8e00);
    put32(m, RESULTS, 0);
    put32(m, RESULTS + 4, 0);
    put32(m, RESULTS + 8, 0);
}

/* Flat 32-bit ring 0 with paging, PSE and SMAP on, AC clear. */
static void paged_ring0(struct machine *m, uint32_t eip)
{
    struct cpu *c = &m->cpu;
    tiny_flat_ring0_start(c, eip, STACK);
    c->gdtr.base = GDT;
    c->gdtr.limit = 23;
    c->idtr.base = IDT;
    c->idtr.limit = 0x7ff;
    c->cr0 = CR0_PE | CR0_ET | CR0_PG | CR0_WP;
    c->cr3 = PD;
    c->cr4 = CR4_PSE | CR4_SMAP;
    tlb_flush_all(c);           /* paging is on now */
}

/* Run until HLT. */
static void run_to_hlt(struct machine *m)
{
    struct cpu *c = &m->cpu;
    cpu_set_budget(c, 1000000);
    if (m->bt)
        bt_run(m->bt);
    else
        interp_run(c);
    assert_true(c->halted);
}

/* Calls fn with the CPU set up; returns the vector it raised or -1. */
static int raised(struct machine *m, void (*fn)(struct cpu *c, uint32_t *out), uint32_t *out)
{
    struct cpu *c = &m->cpu;
    if (setjmp(c->fault_jmp)) {
        c->fault_depth = 0;
        return c->exc_vector;
    }
    fn(c, out);
    return -1;
}

/* ---- the MMU's rules, through the accessors ---- */

static void read_user_explicit(struct cpu *c, uint32_t *out) { *out = mem_read(c, USER, 4, false); }
static void write_user_explicit(struct cpu *c, uint32_t *out) { mem_write(c, USER + 4, 0x1234, 4, false); }
static void read_user_implicit(struct cpu *c, uint32_t *out) { *out = sys_read(c, USER, 4); }
static void read_user_as_user(struct cpu *c, uint32_t *out) { *out = mem_read(c, USER, 4, true); }
static void fetch_user(struct cpu *c, uint32_t *out) { *out = mem_fetch_byte(c, USER, false); }
static void read_super_implicit(struct cpu *c, uint32_t *out) { *out = sys_read(c, GDT + 8, 4); }

static void test_smap_explicit_needs_ac(void **state)
{
    struct machine *m = m_interp;
    struct cpu *c = &m->cpu;
    build_tables(m);
    put32(m, USER, 0xcafe0001u);
    paged_ring0(m, CODE);
    uint32_t v = 0;
    assert_int_equal(raised(m, read_user_explicit, &v), EXC_PF);
    assert_int_equal(c->exc_error, 0x1);                      /* P, a read, supervisor */
    assert_int_equal(c->cr2, USER);
    assert_int_equal(raised(m, write_user_explicit, &v), EXC_PF);
    assert_int_equal(c->exc_error, 0x3);                      /* P|W */
    c->eflags |= FL_AC;
    assert_int_equal(raised(m, read_user_explicit, &v), -1);
    assert_int_equal(v, 0xcafe0001u);
    assert_int_equal(raised(m, write_user_explicit, &v), -1);
    assert_int_equal(get32(m, USER + 4), 0x1234);
    /* Without SMAP, AC does not matter. */
    c->eflags &= ~FL_AC;
    cpu_write_cr4(c, CR4_PSE);
    assert_int_equal(raised(m, read_user_explicit, &v), -1);
}

static void test_smap_implicit_ignores_ac(void **state)
{
    struct machine *m = m_interp;
    struct cpu *c = &m->cpu;
    build_tables(m);
    paged_ring0(m, CODE);
    c->eflags |= FL_AC;
    uint32_t v;
    assert_int_equal(raised(m, read_user_explicit, &v), -1);    /* fills the supervisor entry */
    assert_int_equal(raised(m, read_user_implicit, &v), EXC_PF); /* which an implicit access may not use */
    assert_int_equal(c->exc_error, 0x1);
    assert_int_equal(raised(m, read_super_implicit, &v), -1);
    assert_int_equal(v, 0x0000ffff);
}

static void test_smap_leaves_user_and_fetch_alone(void **state)
{
    struct machine *m = m_interp;
    build_tables(m);
    put32(m, USER, 0xc3c3c3c3u);
    paged_ring0(m, CODE);
    uint32_t v = 0;
    assert_int_equal(raised(m, fetch_user, &v), -1);           /* no SMEP here */
    assert_int_equal(v, 0xc3);
    assert_int_equal(raised(m, read_user_explicit, &v), EXC_PF); /* the fetch cached nothing for data */
    assert_int_equal(raised(m, read_user_as_user, &v), -1);
    assert_int_equal(v, 0xc3c3c3c3u);
}

/* CLAC after a cached access: the entry must not let the next one through. */
static void test_smap_clac_revokes_cached_entry(void **state)
{
    struct machine *m = m_interp;
    struct cpu *c = &m->cpu;
    build_tables(m);
    paged_ring0(m, CODE);
    c->eflags |= FL_AC;
    uint32_t v;
    assert_int_equal(raised(m, read_user_explicit, &v), -1);
    assert_int_equal(raised(m, read_user_explicit, &v), -1);   /* from the TLB now */
    set_eflags(c, c->eflags & ~FL_AC, FL_AC);
    assert_int_equal(raised(m, read_user_explicit, &v), EXC_PF);
    assert_int_equal(c->tlb_smap_n, 0);
}

/* ---- the same through guest code, under both engines ---- */

/* Program and handler bytes (hand-assembled, 32-bit). */
static const uint8_t program[] = {
    0x0f, 0x01, 0xcb,                         /* stac */
    0xa1, 0x00, 0x00, 0x30, 0x00,             /* mov eax, [USER] */
    0xa3, 0x04, 0x00, 0x30, 0x00,             /* mov [USER + 4], eax */
    0x8b, 0x35, 0x00, 0x00, 0x30, 0x00,       /* mov esi, [USER]: cached while AC=1 */
    0x0f, 0x01, 0xca,                         /* clac */
    0x8b, 0x1d, 0x00, 0x00, 0x30, 0x00,       /* mov ebx, [USER]: #PF, retried with AC=1 */
    0x0f, 0x01, 0xca,                         /* clac */
    0xe8, 0xdc, 0x00, 0x20, 0x00,             /* call USER + 0x100 (a RET): fetching is allowed */
    0x89, 0x0d, 0x08, 0x00, 0x30, 0x00,       /* mov [USER + 8], ecx: #PF (a write), retried */
    0x0f, 0x01, 0xca,                         /* clac */
    0x9c,                                     /* pushf */
    0x81, 0x0c, 0x24, 0x00, 0x00, 0x04, 0x00, /* or dword [esp], AC */
    0x9d,                                     /* popf: AC=1 again */
    0x8b, 0x3d, 0x00, 0x00, 0x30, 0x00,       /* mov edi, [USER] */
    0x9c,                                     /* pushf */
    0x81, 0x24, 0x24, 0xff, 0xff, 0xfb, 0xff, /* and dword [esp], ~AC */
    0x9d,                                     /* popf: AC=0 */
    0x8b, 0x2d, 0x00, 0x00, 0x30, 0x00,       /* mov ebp, [USER]: #PF, retried */
    0xf4,                                     /* hlt */
};

static const uint8_t handler[] = {
    0x87, 0x04, 0x24,                         /* xchg [esp], eax: the error code */
    0xa3, 0x00, 0x20, 0x10, 0x00,             /* mov [RESULTS], eax */
    0x0f, 0x20, 0xd0,                         /* mov eax, cr2 */
    0xa3, 0x04, 0x20, 0x10, 0x00,             /* mov [RESULTS + 4], eax */
    0xff, 0x05, 0x08, 0x20, 0x10, 0x00,       /* inc dword [RESULTS + 8] */
    0x58,                                     /* pop eax */
    0x81, 0x4c, 0x24, 0x08, 0x00, 0x00, 0x04, 0x00, /* or dword [esp + 8], AC: the interrupted EFLAGS */
    0xcf,                                     /* iret */
};

static void guest_case(struct machine *m)
{
    build_tables(m);
    put(m, CODE, program, sizeof program);
    put(m, HANDLER, handler, sizeof handler);
    put32(m, USER, 0x5a5a0001u);
    static const uint8_t ret = 0xc3;
    put(m, USER + 0x100, &ret, 1);
    paged_ring0(m, CODE);
    m->cpu.r[R_ECX] = 0x77;
    run_to_hlt(m);
    struct cpu *c = &m->cpu;
    assert_int_equal(get32(m, RESULTS + 8), 3);             /* the three accesses with AC=0 */
    assert_int_equal(get32(m, RESULTS), 0x1);               /* the last: a read */
    assert_int_equal(get32(m, RESULTS + 4), USER);
    assert_int_equal(get32(m, USER + 4), 0x5a5a0001u);
    assert_int_equal(get32(m, USER + 8), 0x77);
    assert_int_equal(c->r[R_EBX], 0x5a5a0001u);
    assert_int_equal(c->r[R_ESI], 0x5a5a0001u);
    assert_int_equal(c->r[R_EDI], 0x5a5a0001u);
    assert_int_equal(c->r[R_EBP], 0x5a5a0001u);
    assert_int_equal(c->r[R_ESP], STACK);
}

static void test_guest_smap_interp(void **state) { guest_case(m_interp); }
static void test_guest_smap_bt(void **state) { guest_case(m_bt); }

/* A loop whose accesses go through a base register, the kind translated
 * code checks once at a block's entry: each pass reads with AC=1, clears
 * it, and must fault on the next read through the same page. */
static const uint8_t base_loop[] = {
    0xbb, 0x00, 0x00, 0x30, 0x00,             /* mov ebx, USER */
    0xbf, 0x05, 0x00, 0x00, 0x00,             /* mov edi, 5 */
    0x0f, 0x01, 0xcb,                         /* again: stac */
    0x8b, 0x03,                               /* mov eax, [ebx] */
    0x0f, 0x01, 0xca,                         /* clac */
    0x8b, 0x4b, 0x04,                         /* mov ecx, [ebx + 4]: #PF, retried with AC=1 */
    0x01, 0xce,                               /* add esi, ecx */
    0x4f,                                     /* dec edi */
    0x75, 0xf0,                               /* jnz again */
    0xf4,                                     /* hlt */
};

static void base_loop_case(struct machine *m)
{
    build_tables(m);
    put(m, CODE, base_loop, sizeof base_loop);
    put(m, HANDLER, handler, sizeof handler);
    put32(m, USER + 4, 7);
    paged_ring0(m, CODE);
    run_to_hlt(m);
    assert_int_equal(get32(m, RESULTS + 8), 5);             /* one fault per pass */
    assert_int_equal(m->cpu.r[R_ESI], 35);
}

static void test_guest_smap_base_interp(void **state) { base_loop_case(m_interp); }
static void test_guest_smap_base_bt(void **state) { base_loop_case(m_bt); }

/* ---- the instructions ---- */

/* Runs `bytes` at CODE in flat ring `cpl` (paging off); the vector or -1. */
static int run_insn(struct machine *m, const uint8_t *bytes, size_t len, int cpl)
{
    struct cpu *c = &m->cpu;
    paged_ring0(m, CODE);
    c->cr0 &= ~CR0_PG;
    c->cr4 = 0;
    if (cpl == 3) {
        for (int s = 0; s < SEG_COUNT; s++) {
            c->seg[s].attr |= 3 << 5;
            c->seg[s].sel |= 3;
        }
        c->cpl = 3;
    }
    tlb_flush_all(c);
    put(m, CODE, bytes, len);
    c->budget = 1;
    if (setjmp(c->fault_jmp)) {
        c->fault_depth = 0;
        return c->exc_vector;
    }
    interp_step(c);
    return -1;
}

static void test_stac_clac(void **state)
{
    struct machine *m = m_interp;
    struct cpu *c = &m->cpu;
    static const uint8_t stac[] = { 0x0f, 0x01, 0xcb }, clac[] = { 0x0f, 0x01, 0xca };
    assert_int_equal(run_insn(m, stac, 3, 0), -1);
    assert_true(c->eflags & FL_AC);
    assert_int_equal(c->eip, CODE + 3);
    c->eflags |= FL_AC;
    assert_int_equal(run_insn(m, clac, 3, 0), -1);
    assert_false(c->eflags & FL_AC);
    assert_int_equal(run_insn(m, stac, 3, 3), EXC_UD);       /* CPL 3 */
    assert_int_equal(run_insn(m, clac, 3, 3), EXC_UD);
}

static void test_rdtscp_and_rdpid_read_tsc_aux(void **state)
{
    struct machine *m = m_interp;
    struct cpu *c = &m->cpu;
    static const uint8_t rdtscp[] = { 0x0f, 0x01, 0xf9 };
    static const uint8_t rdpid_esi[] = { 0xf3, 0x0f, 0xc7, 0xfe };
    static const uint8_t rdseed_esi[] = { 0x0f, 0xc7, 0xfe };   /* without F3: RDSEED, absent */
    assert_true(cpu_wrmsr(c, 0xc0000103u, 0x1234));
    assert_false(cpu_wrmsr(c, 0xc0000103u, 1ull << 32));      /* reserved bits: #GP */
    uint64_t v;
    assert_true(cpu_rdmsr(c, 0xc0000103u, &v));
    assert_int_equal(v, 0x1234);
    c->tsc_aux = 0x1234;
    assert_int_equal(run_insn(m, rdtscp, 3, 3), -1);
    assert_int_equal(c->r[R_ECX], 0x1234);
    uint64_t t1 = ((uint64_t)c->r[R_EDX] << 32) | c->r[R_EAX];
    assert_int_equal(run_insn(m, rdpid_esi, 4, 3), -1);
    assert_int_equal(c->r[R_ESI], 0x1234);
    assert_int_equal(c->eip, CODE + 4);
    assert_int_equal(run_insn(m, rdseed_esi, 3, 0), EXC_UD);
    /* CR4.TSD: CPL 3 gets #GP, as for RDTSC. */
    paged_ring0(m, CODE);
    c->cr0 &= ~CR0_PG;
    c->cr4 = CR4_TSD;
    c->budget = 1;
    for (int s = 0; s < SEG_COUNT; s++)
        c->seg[s].attr |= 3 << 5;
    c->cpl = 3;
    put(m, CODE, rdtscp, 3);
    int vec = -1;
    if (setjmp(c->fault_jmp)) {
        c->fault_depth = 0;
        vec = c->exc_vector;
    } else {
        interp_step(c);
    }
    assert_int_equal(vec, EXC_GP);
    assert_true(cpu_rdtsc(c) >= t1);
}

static void test_vmcall_is_ud(void **state)
{
    static const uint8_t vmcall[] = { 0x0f, 0x01, 0xc1 }, vmmcall[] = { 0x0f, 0x01, 0xd9 };
    assert_int_equal(run_insn(m_interp, vmcall, 3, 0), EXC_UD);
    assert_int_equal(run_insn(m_interp, vmmcall, 3, 0), EXC_UD);
}

static void cpuid(struct cpu *c, uint32_t leaf, uint32_t sub, uint32_t out[4])
{
    c->r[R_EAX] = leaf;
    c->r[R_ECX] = sub;
    cpu_cpuid(c);
    out[0] = c->r[R_EAX], out[1] = c->r[R_EBX], out[2] = c->r[R_ECX], out[3] = c->r[R_EDX];
}

static void test_cpuid_reports_them(void **state)
{
    struct cpu *c = &m_interp->cpu;
    uint32_t r[4];
    cpuid(c, 0, 0, r);
    assert_true(r[0] >= 7);
    cpuid(c, 7, 0, r);
    assert_true(r[1] & (1u << 20));                           /* SMAP */
    assert_true(r[1] & (1u << 1));                            /* IA32_TSC_ADJUST */
    assert_true(r[2] & (1u << 22));                           /* RDPID */
    cpuid(c, 7, 1, r);
    assert_int_equal(r[1] | r[2], 0);                         /* no sub-leaf 1 */
    cpuid(c, 0x80000000u, 0, r);
    assert_true(r[0] >= 0x80000001u);
    cpuid(c, 0x80000001u, 0, r);
    assert_true(r[3] & (1u << 27));                           /* RDTSCP */
}

/* SDM 17.17.3: a write to the TSC moves IA32_TSC_ADJUST by as much, and a
 * write to IA32_TSC_ADJUST moves the TSC. */
static void test_tsc_adjust_follows_tsc(void **state)
{
    struct cpu *c = &m_interp->cpu;
    uint64_t adj, tsc;
    assert_true(cpu_wrmsr(c, 0x3b, 0));
    uint64_t before = cpu_rdtsc(c);
    assert_true(cpu_wrmsr(c, 0x3b, 1000000000000ull));
    assert_true(cpu_rdtsc(c) - before >= 1000000000000ull);
    assert_true(cpu_wrmsr(c, 0x3b, 0));
    before = cpu_rdtsc(c);
    uint64_t offset_before = c->tsc_offset;
    assert_true(cpu_wrmsr(c, 0x10, before + 5000000000ull));
    assert_true(cpu_rdmsr(c, 0x3b, &adj));
    assert_true(cpu_rdmsr(c, 0x10, &tsc));
    assert_true(adj == c->tsc_offset - offset_before);        /* what the write added */
    assert_true(adj <= 5000000000ull && adj > 0);
    assert_true(tsc - adj >= before);                         /* the TSC without the write's jump */
}

static void test_efer_keeps_sce_only(void **state)
{
    struct cpu *c = &m_interp->cpu;
    uint64_t v;
    assert_true(cpu_wrmsr(c, 0xc0000080u, 1));
    assert_true(cpu_rdmsr(c, 0xc0000080u, &v));
    assert_int_equal(v, 1);
    assert_false(cpu_wrmsr(c, 0xc0000080u, 1u << 8));         /* LME: no long mode */
    assert_true(cpu_wrmsr(c, 0xc0000080u, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smap_explicit_needs_ac),
        cmocka_unit_test(test_smap_implicit_ignores_ac),
        cmocka_unit_test(test_smap_leaves_user_and_fetch_alone),
        cmocka_unit_test(test_smap_clac_revokes_cached_entry),
        cmocka_unit_test(test_guest_smap_interp),
        cmocka_unit_test(test_guest_smap_bt),
        cmocka_unit_test(test_guest_smap_base_interp),
        cmocka_unit_test(test_guest_smap_base_bt),
        cmocka_unit_test(test_stac_clac),
        cmocka_unit_test(test_rdtscp_and_rdpid_read_tsc_aux),
        cmocka_unit_test(test_vmcall_is_ud),
        cmocka_unit_test(test_cpuid_reports_them),
        cmocka_unit_test(test_tsc_adjust_follows_tsc),
        cmocka_unit_test(test_efer_keeps_sce_only),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
