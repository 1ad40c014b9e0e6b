/*
 * Data breakpoints (monitor/databp.h): the matching of accesses against
 * ranges and kinds, the table's limits, and the CPU noticing its own
 * accesses through the MMU's slow paths: hand-assembled instructions run
 * by the interpreter, as the gdb stub runs them while watchpoints are set
 * (a hit is forgotten before each instruction and taken after it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "monitor/cpu.h"
#include "monitor/databp.h"
#include "monitor/interp.h"
#include "monitor/machine.h"
#include "monitor/mmu.h"
#include "monitor/physmem.h"
#include "tiny_machine.h"

/* ---- the matching, apart from any CPU ---- */

static void test_overlap_edges(void **state)
{
    struct databp_set s;
    databp_init(&s);
    assert_true(databp_add(&s, 0x1000, 4, DATABP_ACCESS));
    assert_int_equal(databp_match(&s, 0x0ffc, 4, DATABP_READ), -1);    /* ends just before */
    assert_int_equal(databp_match(&s, 0x0ffd, 4, DATABP_READ), 0);     /* its last byte is the first watched */
    assert_int_equal(databp_match(&s, 0x1003, 1, DATABP_WRITE), 0);
    assert_int_equal(databp_match(&s, 0x1004, 1, DATABP_WRITE), -1);   /* just after */
    assert_int_equal(databp_match(&s, 0x0f00, 0x200, DATABP_READ), 0); /* an access that encloses it */
}

static void test_kinds(void **state)
{
    struct databp_set s;
    databp_init(&s);
    assert_true(databp_add(&s, 0x2000, 2, DATABP_READ));
    assert_true(databp_add(&s, 0x3000, 2, DATABP_WRITE));
    assert_true(databp_add(&s, 0x4000, 2, DATABP_ACCESS));
    assert_int_equal(databp_match(&s, 0x2000, 1, DATABP_READ), 0);
    assert_int_equal(databp_match(&s, 0x2000, 1, DATABP_WRITE), -1);
    assert_int_equal(databp_match(&s, 0x3001, 1, DATABP_READ), -1);
    assert_int_equal(databp_match(&s, 0x3001, 1, DATABP_WRITE), 1);
    assert_int_equal(databp_match(&s, 0x4001, 4, DATABP_READ), 2);
    assert_int_equal(databp_match(&s, 0x4001, 4, DATABP_WRITE), 2);
}

static void test_lengths_and_limits(void **state)
{
    struct databp_set s;
    databp_init(&s);
    assert_false(databp_add(&s, 0x1000, 0, DATABP_WRITE));
    assert_false(databp_add(&s, 0x1000, DATABP_MAX_LEN + 1, DATABP_WRITE));
    assert_false(databp_add(&s, 0xffffffffu, 2, DATABP_WRITE));        /* would wrap */
    assert_false(databp_add(&s, 0x1000, 4, 0));
    assert_false(databp_add(&s, 0x1000, 4, 4));
    assert_int_equal(s.n, 0);
    assert_true(databp_add(&s, 0xffffffffu, 1, DATABP_WRITE));         /* the last byte is fine */
    assert_int_equal(databp_match(&s, 0xfffffffcu, 4, DATABP_WRITE), 0);
    static const uint32_t lens[] = { 1, 2, 4, 8, 3, DATABP_MAX_LEN, 16 };
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++)
        assert_true(databp_add(&s, 0x10000 * (uint32_t)(k + 1), lens[k], DATABP_READ));
    assert_int_equal(s.n, DATABP_MAX);
    assert_false(databp_add(&s, 0x9000, 4, DATABP_READ));              /* full */
    assert_int_equal(databp_match(&s, 0x40000 + 7, 1, DATABP_READ), 4);     /* the 8-byte one */
    assert_int_equal(databp_match(&s, 0x40000 + 8, 1, DATABP_READ), -1);
}

static void test_remove_names_kind_too(void **state)
{
    struct databp_set s;
    databp_init(&s);
    assert_true(databp_add(&s, 0x5000, 4, DATABP_READ));
    assert_true(databp_add(&s, 0x5000, 4, DATABP_WRITE));
    assert_false(databp_remove(&s, 0x5000, 4, DATABP_ACCESS));
    assert_false(databp_remove(&s, 0x5000, 2, DATABP_READ));
    assert_true(databp_remove(&s, 0x5000, 4, DATABP_READ));
    assert_int_equal(databp_match(&s, 0x5000, 4, DATABP_READ), -1);
    assert_int_equal(databp_match(&s, 0x5000, 4, DATABP_WRITE), 0);
    assert_true(databp_remove(&s, 0x5000, 4, DATABP_WRITE));
    assert_int_equal(s.n, 0);
    assert_false(databp_active(&s));
}

/* The first match since the hit was forgotten is the one kept. */
static void test_first_hit_is_kept(void **state)
{
    struct databp_set s;
    databp_init(&s);
    assert_true(databp_add(&s, 0x100, 4, DATABP_READ));
    assert_true(databp_add(&s, 0x200, 4, DATABP_WRITE));
    assert_false(databp_hit(&s));
    databp_note(&s, 0x300, 4, DATABP_READ);
    assert_false(databp_hit(&s));
    databp_note(&s, 0x200, 4, DATABP_WRITE);
    databp_note(&s, 0x100, 4, DATABP_READ);
    assert_true(databp_hit(&s));
    assert_int_equal(s.hit, 1);
    assert_int_equal(s.hit_access, DATABP_WRITE);
    databp_forget_hit(&s);
    assert_false(databp_hit(&s));
    assert_false(databp_hit(NULL));
}

static void test_covers_page(void **state)
{
    struct databp_set s;
    databp_init(&s);
    assert_true(databp_add(&s, 0x5ffe, 4, DATABP_READ));      /* straddles two pages */
    assert_false(databp_covers_page(&s, 0x4000));
    assert_true(databp_covers_page(&s, 0x5000));
    assert_true(databp_covers_page(&s, 0x6000));
    assert_false(databp_covers_page(&s, 0x7000));
    assert_true(databp_add(&s, 0xfffffffcu, 4, DATABP_READ));
    assert_true(databp_covers_page(&s, 0xfffff000u));
    assert_false(databp_covers_page(&s, 0));
}

/* ---- the CPU noticing its own accesses ---- */

#define CODE 0x1000u
#define WATCHED 0x5000u

static struct machine *m;
static struct databp_set watch;

static int setup(void **state)
{
    m = tiny_machine_new(false, 16, false);
    return m ? 0 : -1;
}

static int teardown(void **state)
{
    m->cpu.databp = NULL;
    machine_free(m);
    return 0;
}

static void put(uint32_t addr, const void *bytes, size_t len)
{
    assert_true(physmem_copy_to(m->pm, addr, bytes, len));
}

static uint32_t get32(uint32_t addr)
{
    uint32_t v;
    assert_true(physmem_copy_from(m->pm, addr, &v, 4));
    return v;
}

static void flat_ring0(uint32_t eip)
{
    tiny_flat_ring0_start(&m->cpu, eip, 0x9000);
}

/* What the gdb stub does when gdb inserts one (monitor/gdbstub.c). */
static void watch_range(uint32_t addr, uint32_t len, uint8_t on)
{
    assert_true(databp_add(&watch, addr, len, on));
    tlb_flush_page(&m->cpu, addr);
    tlb_flush_page(&m->cpu, addr + len - 1);
}

/* A fresh table with nothing hit, the CPU checking it. */
static void start_watching(void)
{
    databp_init(&watch);
    m->cpu.databp = &watch;
}

static void step_one(void *opaque)
{
    databp_forget_hit(&watch);
    interp_step(&m->cpu);
}

/* One instruction as the stub's single step runs it: exceptions delivered. */
static void run_one(void)
{
    cpu_set_budget(&m->cpu, 1);
    cpu_run_loop(&m->cpu, step_one, NULL);
}

/* A load through a TLB entry filled before the watchpoint was set: the
 * flush on insertion sends the next one through the slow path. */
static void test_load_through_cached_entry(void **state)
{
    static const uint8_t code[] = {
        0xa1, 0x00, 0x50, 0x00, 0x00,      /* mov eax, [0x5000] */
        0xa1, 0x00, 0x50, 0x00, 0x00,      /* mov eax, [0x5000] */
        0xa3, 0x00, 0x50, 0x00, 0x00,      /* mov [0x5000], eax */
    };
    put(CODE, code, sizeof code);
    uint32_t v = 0x12345678;
    put(WATCHED, &v, 4);
    start_watching();
    flat_ring0(CODE);
    run_one();
    assert_false(databp_hit(&watch));
    assert_int_equal(m->cpu.r[R_EAX], 0x12345678);
    watch_range(WATCHED, 4, DATABP_READ);
    run_one();
    assert_true(databp_hit(&watch));
    assert_int_equal(watch.hit_access, DATABP_READ);
    assert_int_equal(m->cpu.eip, CODE + 10);        /* a trap: after the load */
    run_one();                                      /* a write: not a read watchpoint's */
    assert_false(databp_hit(&watch));
}

/* A write of the value already there is a write (a real write hook, not a
 * comparison of values); a read-modify-write is first a read. */
static void test_same_value_write_and_rmw(void **state)
{
    static const uint8_t code[] = {
        0x89, 0x1d, 0x00, 0x50, 0x00, 0x00,          /* mov [0x5000], ebx */
        0x83, 0x05, 0x00, 0x50, 0x00, 0x00, 0x01,    /* add dword [0x5000], 1 */
    };
    put(CODE, code, sizeof code);
    uint32_t v = 7;
    put(WATCHED, &v, 4);
    start_watching();
    flat_ring0(CODE);
    m->cpu.r[R_EBX] = 7;
    watch_range(WATCHED, 4, DATABP_WRITE);
    watch_range(WATCHED, 4, DATABP_ACCESS);
    run_one();
    assert_true(databp_hit(&watch));
    assert_int_equal(watch.hit, 0);
    assert_int_equal(get32(WATCHED), 7);
    run_one();
    assert_true(databp_hit(&watch));
    assert_int_equal(watch.hit, 1);                 /* the read came first: the access watchpoint */
    assert_int_equal(watch.hit_access, DATABP_READ);
    assert_int_equal(get32(WATCHED), 8);
    assert_int_equal(m->cpu.eip, CODE + 13);
}

/* REP STOSD stops after the element that hit, EIP still at the
 * instruction and the count left in ECX; the next run finishes it. */
static void test_rep_stops_after_the_element(void **state)
{
    static const uint8_t code[] = { 0xf3, 0xab, 0xf4 };     /* rep stosd; hlt */
    put(CODE, code, sizeof code);
    start_watching();
    flat_ring0(CODE);
    m->cpu.r[R_EDI] = WATCHED - 8;
    m->cpu.r[R_ECX] = 6;
    m->cpu.r[R_EAX] = 0xa5a5a5a5;
    watch_range(WATCHED + 1, 2, DATABP_WRITE);
    run_one();
    assert_true(databp_hit(&watch));
    assert_int_equal(m->cpu.eip, CODE);
    assert_int_equal(m->cpu.r[R_ECX], 3);
    assert_int_equal(m->cpu.r[R_EDI], WATCHED + 4);
    assert_int_equal(get32(WATCHED), 0xa5a5a5a5);
    assert_int_not_equal(get32(WATCHED + 4), 0xa5a5a5a5);
    run_one();
    assert_false(databp_hit(&watch));
    assert_int_equal(m->cpu.r[R_ECX], 0);
    assert_int_equal(m->cpu.eip, CODE + 2);
}

/* REP MOVSD reads its source element by element in a watched page. */
static void test_rep_movs_source(void **state)
{
    static const uint8_t code[] = { 0xf3, 0xa5 };           /* rep movsd */
    put(CODE, code, sizeof code);
    start_watching();
    flat_ring0(CODE);
    m->cpu.r[R_ESI] = WATCHED;
    m->cpu.r[R_EDI] = 0x7000;
    m->cpu.r[R_ECX] = 4;
    watch_range(WATCHED + 8, 4, DATABP_READ);
    run_one();
    assert_true(databp_hit(&watch));
    assert_int_equal(m->cpu.eip, CODE);
    assert_int_equal(m->cpu.r[R_ECX], 1);
    assert_int_equal(m->cpu.r[R_ESI], WATCHED + 12);
}

/* An access that crosses into the watched page matches; fetching code
 * from that page does not. */
static void test_page_crossing_and_fetch(void **state)
{
    static const uint8_t code[] = {
        0x8b, 0x05, 0xfe, 0x4f, 0x00, 0x00,          /* mov eax, [0x4ffe] */
        0x90,                                        /* nop */
    };
    put(WATCHED + 0x100, code, sizeof code);
    start_watching();
    flat_ring0(WATCHED + 0x100);
    watch_range(WATCHED, 1, DATABP_ACCESS);
    run_one();
    assert_true(databp_hit(&watch));
    run_one();
    assert_false(databp_hit(&watch));
    assert_int_equal(m->cpu.eip, WATCHED + 0x107);
}

/* A real-mode DIV whose divisor at the watched word is 0: it reads the
 * word, then faults (#DE); the handler runs and nothing was hit, as a
 * trap comes only after an instruction that completes.  The same DIV
 * with a divisor completes and hits. */
static void test_faulting_instruction_hits_nothing(void **state)
{
    struct cpu *c = &m->cpu;
    static const uint8_t code[] = { 0xf7, 0x36, 0x00, 0x50 };       /* div word [0x5000] */
    static const uint8_t ivt0[] = { 0x00, 0x06, 0x00, 0x00 };       /* #DE -> 0000:0600 */
    static const uint8_t hlt = 0xf4;
    put(CODE, code, sizeof code);
    put(0, ivt0, sizeof ivt0);
    put(0x600, &hlt, 1);
    uint16_t zero = 0, three = 3;
    start_watching();
    for (int pass = 0; pass < 2; pass++) {
        put(WATCHED, pass ? &three : &zero, 2);
        cpu_reset(c);
        for (int s = 0; s < SEG_COUNT; s++)
            seg_load_real(c, s, 0);
        c->eip = CODE;
        c->r[R_ESP] = 0x9000;
        c->r[R_EAX] = 9;
        c->r[R_EDX] = 0;
        databp_init(&watch);
        watch_range(WATCHED, 2, DATABP_READ);
        run_one();
        if (pass == 0) {
            assert_int_equal(c->eip, 0x600);
            assert_false(databp_hit(&watch));
        } else {
            assert_int_equal(c->eip, CODE + 4);
            assert_int_equal(c->r[R_EAX] & 0xffff, 3);
            assert_true(databp_hit(&watch));
        }
    }
}

/* Pages keep their TLB tags until a breakpoint covers them: only the
 * watched pages take the slow paths. */
static void test_no_breakpoints_leave_tags(void **state)
{
    static const uint8_t code[] = { 0xa1, 0x00, 0x50, 0x00, 0x00 };   /* mov eax, [0x5000] */
    put(CODE, code, sizeof code);
    start_watching();
    flat_ring0(CODE);
    run_one();
    const struct tlb_entry *e = &m->cpu.tlb[0][(WATCHED >> 12) & (TLB_SIZE - 1)];
    assert_int_equal(e->tag_read, WATCHED);
    watch_range(WATCHED + 0x800, 1, DATABP_WRITE);
    flat_ring0(CODE);
    run_one();
    assert_int_equal(e->tag_read, TLB_INVALID);
    assert_false(databp_hit(&watch));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overlap_edges),
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_lengths_and_limits),
        cmocka_unit_test(test_remove_names_kind_too),
        cmocka_unit_test(test_first_hit_is_kept),
        cmocka_unit_test(test_covers_page),
        cmocka_unit_test(test_load_through_cached_entry),
        cmocka_unit_test(test_same_value_write_and_rmw),
        cmocka_unit_test(test_rep_stops_after_the_element),
        cmocka_unit_test(test_rep_movs_source),
        cmocka_unit_test(test_page_crossing_and_fetch),
        cmocka_unit_test(test_faulting_instruction_hits_nothing),
        cmocka_unit_test(test_no_breakpoints_leave_tags),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
