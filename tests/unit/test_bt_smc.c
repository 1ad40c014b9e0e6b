/*
 * Invalidation by what was written (bt/codemap.h): a write to a page that
 * holds translations drops the blocks whose bytes it touches and no others;
 * a page rewritten again and again is interpreted for a while.
 *
 * Each case runs a few hand-assembled instructions in flat 32-bit ring 0
 * under the translation cache, and where it matters under the interpreter
 * too, and checks the registers and the cache's counters (counts, never
 * times).
 *
 * Also here, as the other guard against guests that make no progress: a
 * fault that keeps recurring at one address is reported as a livelock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bt/bt.h"
#include "bt/codemap.h"
#include "devices/bus.h"
#include "monitor/cpu.h"
#include "monitor/interp.h"
#include "monitor/machine.h"
#include "monitor/physmem.h"
#include "tiny_machine.h"

#define CODE 0x00100000u
#define STACK_TOP 0x00f00000u

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

/* Run from eip until HLT (or 10^7 instructions). */
static void run_from(struct machine *m, uint32_t eip)
{
    struct cpu *c = &m->cpu;
    tiny_flat_ring0_start(c, eip, STACK_TOP);
    cpu_set_budget(c, 10000000);
    if (m->bt)
        bt_run(m->bt);
    else
        interp_run(c);
    assert_true(c->halted);
}

static void put(struct machine *m, uint32_t addr, const void *bytes, size_t len)
{
    assert_true(physmem_copy_to(m->pm, addr, bytes, len));
}

static struct bt_stats stats(void)
{
    struct bt_stats s;
    bt_get_stats(m_bt->bt, &s);
    return s;
}

/* ---- the granule masks ---- */

static void test_granules(void **state)
{
    assert_int_equal(code_granules(0, 1), 1);
    assert_int_equal(code_granules(0, 64), 1);
    assert_int_equal(code_granules(63, 65), 3);
    assert_int_equal(code_granules(64, 128), 2);
    assert_true(code_granules(0, 4096) == ~0ull);
    assert_true(code_granules(4095, 4096) == 1ull << 63);
    assert_true(code_granules(4032, 4096) == 1ull << 63);
    assert_true(code_granules(100, 300) == (0x1full & ~1ull));
}

/* ---- the last bytes of a block's last instruction ---- */

/* A JMP at 0x3F whose rel32 starts at 0x40: the only byte of the block in
 * the page's second granule.  Patching it must retarget the jump. */
static void jump_tail_case(bool by_cpu)
{
    static const uint8_t targets[] = {
        0xb8, 1, 0, 0, 0, 0xf4,                        /* 0x200: mov eax, 1; hlt */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0xb8, 2, 0, 0, 0, 0xf4,                        /* 0x210: mov eax, 2; hlt */
    };
    uint8_t jmp[5] = { 0xe9 };
    uint32_t rel = 0x200 - (0x3f + 5);
    memcpy(jmp + 1, &rel, 4);
    put(m_bt, CODE + 0x200, targets, sizeof targets);
    put(m_bt, CODE + 0x3f, jmp, sizeof jmp);
    run_from(m_bt, CODE + 0x3f);
    assert_int_equal(m_bt->cpu.r[R_EAX], 1);

    uint8_t low = (uint8_t)(rel + 0x10);
    if (by_cpu) {
        /* 0x400: mov byte [CODE + 0x40], low; jmp CODE + 0x3f */
        uint8_t patch[12] = { 0xc6, 0x05 };
        uint32_t at = CODE + 0x40, back = 0x3f - (0x400 + 12);
        memcpy(patch + 2, &at, 4);
        patch[6] = low;
        patch[7] = 0xe9;
        memcpy(patch + 8, &back, 4);
        put(m_bt, CODE + 0x400, patch, sizeof patch);
        run_from(m_bt, CODE + 0x400);
    } else {
        put(m_bt, CODE + 0x40, &low, 1);                /* as a DMA write lands */
        run_from(m_bt, CODE + 0x3f);
    }
    assert_int_equal(m_bt->cpu.r[R_EAX], 2);
}

static void test_jump_tail_written_by_dma(void **state) { jump_tail_case(false); }
static void test_jump_tail_written_by_cpu(void **state) { jump_tail_case(true); }

/* ---- a store into the next instruction of the same block ---- */

static void test_store_into_next_instruction(void **state)
{
    static const uint8_t code[] = {
        0xc6, 0x05, 0x08, 0x06, 0x10, 0x00, 0x05,      /* 0x600: mov byte [CODE + 0x608], 5 */
        0xb8, 0x01, 0x00, 0x00, 0x00,                  /* 0x607: mov eax, 1 (its imm at 0x608) */
        0xf4,
    };
    put(m_bt, CODE + 0x600, code, sizeof code);
    run_from(m_bt, CODE + 0x600);
    assert_int_equal(m_bt->cpu.r[R_EAX], 5);
}

/* ---- data beside code costs no translation ---- */

/* mov ecx, 1000; loop: mov [CODE + 0x880], ecx; dec ecx; jnz loop; hlt:
 * the data is in the loop's page, 128 bytes past its code. */
static void test_data_beside_code_keeps_translations(void **state)
{
    static const uint8_t code[] = {
        0xb9, 0xe8, 0x03, 0x00, 0x00,                  /* 0x800: mov ecx, 1000 */
        0x89, 0x0d, 0x80, 0x08, 0x10, 0x00,            /* 0x805: mov [CODE + 0x880], ecx */
        0x49,                                          /* dec ecx */
        0x75, 0xf7,                                    /* jnz 0x805 */
        0xf4,
    };
    put(m_bt, CODE + 0x800, code, sizeof code);
    struct bt_stats before = stats();
    run_from(m_bt, CODE + 0x800);
    struct bt_stats after = stats();
    uint32_t last;
    physmem_copy_from(m_bt->pm, CODE + 0x880, &last, 4);
    assert_int_equal(m_bt->cpu.r[R_ECX], 0);
    assert_int_equal(last, 1);
    /* Whole-page invalidation dropped the loop's block at each of the 1000 stores. */
    assert_true(after.blocks_invalidated - before.blocks_invalidated < 4);
    assert_true(after.code_writes_spared - before.code_writes_spared >= 999);
}

/* ---- a page rewritten all the time ---- */

/* mov ecx, 20000; xor ebx, ebx; loop: mov [imm], ecx; mov eax, imm32;
 * add ebx, eax; dec ecx; jnz loop; hlt.  EBX ends as the sum 1..20000. */
static void test_rewritten_page_turns_hot_and_stays_right(void **state)
{
    uint8_t code[] = {
        0xb9, 0x20, 0x4e, 0x00, 0x00,                  /* 0xa00: mov ecx, 20000 */
        0x31, 0xdb,                                    /* 0xa05: xor ebx, ebx */
        0x89, 0x0d, 0, 0, 0, 0,                        /* 0xa07: mov [imm], ecx */
        0xb8, 0, 0, 0, 0,                              /* 0xa0d: mov eax, imm32 (imm at 0xa0e) */
        0x01, 0xc3,                                    /* add ebx, eax */
        0x49,                                          /* dec ecx */
        0x75, 0xf0,                                    /* jnz 0xa07 */
        0xf4,
    };
    uint32_t imm = CODE + 0xa0e;
    memcpy(code + 9, &imm, 4);
    put(m_bt, CODE + 0xa00, code, sizeof code);
    put(m_interp, CODE + 0xa00, code, sizeof code);
    struct bt_stats before = stats();
    run_from(m_bt, CODE + 0xa00);
    run_from(m_interp, CODE + 0xa00);
    struct bt_stats after = stats();
    assert_int_equal(m_bt->cpu.r[R_EBX], 20000u * 20001u / 2);
    assert_int_equal(m_interp->cpu.r[R_EBX], m_bt->cpu.r[R_EBX]);
    assert_true(after.pages_made_hot > before.pages_made_hot);
    /* Interpreted once hot: far fewer retranslations than iterations. */
    assert_true(after.blocks_translated - before.blocks_translated < 2000);
}

/* ---- code in video memory ---- */

/* The VGA's LFB maps video memory straight into the guest; the legacy
 * window at 0xA0000 reaches the same bytes through the device.  Code run
 * from the LFB and rewritten through the window must not run stale. */
static void test_code_in_video_memory_rewritten_through_the_window(void **state)
{
    struct machine *m = tiny_machine_new(true, 16, true);
    if (!m)
        skip();                                        /* no SeaVGABIOS here */
    const uint32_t lfb = 0xe0000000u, cfg_addr = 0x80000000u | (2u << 11);
    machine_io_write(m, 0xcf8, cfg_addr | 0x10, 4);  /* 00:02.0 BAR0: the LFB */
    machine_io_write(m, 0xcfc, lfb, 4);
    machine_io_write(m, 0xcf8, cfg_addr | 0x04, 4);  /* memory decode on */
    machine_io_write(m, 0xcfc, 0x0003, 2);
    static const uint16_t vbe[][2] = { { 1, 640 }, { 2, 480 }, { 3, 32 }, { 5, 0 }, { 4, 0x41 } };
    for (size_t k = 0; k < sizeof vbe / sizeof vbe[0]; k++) {
        machine_io_write(m, 0x1ce, vbe[k][0], 2);
        machine_io_write(m, 0x1cf, vbe[k][1], 2);
    }
    static const uint8_t code[] = { 0xb8, 0x01, 0x00, 0x00, 0x00, 0xf4 };   /* mov eax, 1; hlt */
    for (size_t k = 0; k < sizeof code; k++)
        machine_phys_write(m, 0xa0000 + k, code[k], 1);                     /* through the window */
    run_from(m, lfb);
    assert_int_equal(m->cpu.r[R_EAX], 1);
    machine_phys_write(m, 0xa0001, 2, 1);                                   /* mov eax, 2 */
    run_from(m, lfb);
    assert_int_equal(m->cpu.r[R_EAX], 2);
    machine_free(m);
}

/* ---- a port write that remaps the running code's page ---- */

/* Code in shadow RAM at 0xF8000 turns the BIOS segment's reads back to ROM
 * (PAM0: read ROM, write RAM): the very next instruction comes from the ROM,
 * the tiny machine's HLTs, not from the RAM the block was translated from.
 * (Found by test_bt_fuzz's window blocks: bt ran on past the OUT.) */
static void test_out_remapping_its_own_page_ends_the_block(void **state)
{
    static const uint8_t code[] = {
        0xb8, 0x58, 0x00, 0x00, 0x80,                  /* mov eax, CONFIG_ADDRESS of 0x58-0x5b */
        0x66, 0xba, 0xf8, 0x0c, 0xef,                  /* mov dx, 0xcf8; out dx, eax */
        0x66, 0xba, 0xfd, 0x0c,                        /* mov dx, 0xcfd (register 0x59, PAM0) */
        0xb0, 0x20, 0xee,                              /* mov al, 0x20; out dx, al */
        0xbb, 0x01, 0x00, 0x00, 0x00,                  /* mov ebx, 1 (in RAM only) */
        0xf4,
    };
    for (int k = 0; k < 2; k++) {
        struct machine *m = k ? m_interp : m_bt;
        put(m, 0xf8000, code, sizeof code);
        machine_io_write(m, 0xcf8, 0x80000058u, 4);
        machine_io_write(m, 0xcfd, 0x30, 1);           /* the BIOS segment: RAM */
        run_from(m, 0xf8000);
        assert_int_equal(m->cpu.r[R_EBX], 0);
        assert_int_equal(m->cpu.eip, 0xf8000 + 17 + 1);  /* the ROM's HLT where MOV EBX was */
        machine_io_write(m, 0xcf8, 0x80000058u, 4);
        machine_io_write(m, 0xcfd, 0x00, 1);
    }
}

/* ---- a guest stuck in a fault ---- */

/* Real mode, interrupts off: UD2 at 0000:0600, and its #UD handler IRETs
 * straight back to it. */
static void run_fault_loop(struct machine *m, int64_t insns)
{
    struct cpu *c = &m->cpu;
    static const uint8_t ivt6[4] = { 0x00, 0x05, 0x00, 0x00 };   /* 0000:0500 */
    static const uint8_t iret = 0xcf, ud2[2] = { 0x0f, 0x0b };
    put(m, 6 * 4, ivt6, 4);
    put(m, 0x500, &iret, 1);
    put(m, 0x600, ud2, 2);
    tiny_flat_ring0_start(c, 0x600, STACK_TOP);
    c->cr0 = CR0_ET;
    c->cpl = 0;
    for (int s = 0; s < SEG_COUNT; s++) {
        c->seg[s].sel = 0;
        c->seg[s].base = 0;
        c->seg[s].limit = 0xffff;
        c->seg[s].attr = SEG_ATTR_S | SEG_ATTR_P | (s == SEG_CS ? 0xb : 0x3);
    }
    c->r[R_ESP] = 0x7000;
    c->idtr = (struct dtr){ 0, 0x3ff };
    c->livelock_reported = false;
    tlb_flush_all(c);
    cpu_set_budget(c, insns);
    if (m->bt)
        bt_run(m->bt);
    else
        interp_run(c);
    assert_false(c->halted);
    assert_int_equal(c->repeat_vector, EXC_UD);
}

static void test_fault_loop_reported_as_livelock(void **state)
{
    for (int k = 0; k < 2; k++) {
        struct machine *m = k ? m_interp : m_bt;
        run_fault_loop(m, 500000);                 /* 250000 faults: not yet */
        assert_false(m->cpu.livelock_reported);
        run_fault_loop(m, 2100000);                /* 10^6 in a row */
        assert_true(m->cpu.livelock_reported);
        assert_int_equal(m->cpu.repeat_addr, 0x600);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_granules),
        cmocka_unit_test(test_jump_tail_written_by_dma),
        cmocka_unit_test(test_jump_tail_written_by_cpu),
        cmocka_unit_test(test_store_into_next_instruction),
        cmocka_unit_test(test_data_beside_code_keeps_translations),
        cmocka_unit_test(test_rewritten_page_turns_hot_and_stays_right),
        cmocka_unit_test(test_code_in_video_memory_rewritten_through_the_window),
        cmocka_unit_test(test_out_remapping_its_own_page_ends_the_block),
        cmocka_unit_test(test_fault_loop_reported_as_livelock),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
