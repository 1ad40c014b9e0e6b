/*
 * The translation cache (bt): guest code is cut into blocks of decoded
 * instructions, each with generated x86-64 host code, cached by the physical
 * address of its first instruction and the code-segment size.
 *
 * Common 32-bit integer instructions become the same host instruction on
 * the guest registers held in host registers (bt/native.c and the files
 * beside it, listed in bt/native_internal.h; host instructions are named
 * emitters in bt/emit.h), with memory
 * operands through an inline TLB probe; every other instruction is
 * "threaded": generated code calls the shared instruction semantics
 * (interp_exec), so decoding, fetching and CS/page checks are paid once per
 * block and a semantic exists once.  Exceptions stay precise: a native
 * instruction whose checks fail goes to a stub that runs it through the
 * interpreter before it has changed anything.  Blocks chain to each other
 * by patched jumps; flat blocks may follow direct jumps and take
 * conditional side exits; a block may end with an instruction that crosses
 * into a second page (see docs/ARCHITECTURE.md, "Translation cache").
 *
 * A physical page that holds translations is marked in physmem's code-page
 * bitmap: the TLB gives no direct write access to it, so every CPU or DMA
 * write to it reaches bt_invalidate_range, which drops the blocks whose
 * bytes it touches (self-modifying code, loaders, DMA) and leaves the rest;
 * pages rewritten all the time are interpreted for a while (bt/codemap.h).
 */
#ifndef RV_BT_H
#define RV_BT_H

#include <stdbool.h>
#include <stdint.h>

struct cpu;
struct bt;

struct bt *bt_new(struct cpu *c);
void bt_free(struct bt *bt);
/* Run until the budget is spent, the CPU halts or the machine asks to stop. */
void bt_run(struct bt *bt);
/* A write of len bytes at physical addr (within one page) reached a page
 * holding translations; by_cpu: an instruction's store (a page rewritten so
 * again and again is interpreted for a while), else DMA or a loader. */
void bt_invalidate_range(struct bt *bt, uint32_t addr, uint32_t len, bool by_cpu);
/* Whether pages rewritten too often are left to the interpreter for a
 * while (default: yes).  The differential fuzzer mostly turns it off, so
 * that its self-modifying blocks keep being compared as translations. */
void bt_set_hot_pages(struct bt *bt, bool on);
/* Budgets kept to the instruction (-icount): a block runs only when the
 * budget covers all of it, else the interpreter takes the instructions
 * one by one, and chained exits leave while the budget is within a
 * block's length.  Slices then end at exact counts, as the interpreter's
 * do, whatever blocks the cache holds: a run resumed from a snapshot
 * (whose cache starts empty) takes interrupts where the first run did.
 * Set before the first translation. */
void bt_set_exact_budget(struct bt *bt, bool on);

/* A debugger's breakpoints (linear addresses): from now on no block runs
 * into an instruction at one of them (blocks end before it, and no chained
 * or cached jump enters a block that starts there), so a step function
 * that checks EIP before each bt_run_one sees every arrival.  Call again
 * after adding a breakpoint: all translations are dropped.  NULL: none. */
void bt_set_breakpoints(struct bt *bt, bool (*is_breakpoint)(void *opaque, uint32_t lin), void *opaque);
/* One step of bt_run's loop (a block, or one interpreted instruction), for a
 * caller that runs cpu_run_loop itself. */
void bt_run_one(struct bt *bt);
/* Drop every translation (mapping changes, cache full). */
void bt_flush(struct bt *bt);
/* Whether translations made from now on keep deferred flags in the host's
 * EFLAGS across flat memory operands (default: when the host has BMI2). */
void bt_set_flag_keeping_probe(bool want);

struct bt_stats {
    uint64_t blocks_translated;
    uint64_t blocks_invalidated;
    uint64_t flushes;
    uint64_t block_entries;
    uint64_t jumps_followed;   /* direct JMPs translated as part of a block that goes on at their target */
    uint64_t operands_cached;  /* [reg + disp] operands translated against their register's entry check */
    uint64_t stack_slots_cached;   /* PUSH/POP/CALL/RET slots translated against ESP's */
    uint64_t code_writes_spared;   /* writes to pages with translations that touched none of their bytes */
    uint64_t pages_made_hot;       /* times a page was left to the interpreter for being rewritten */
};
void bt_get_stats(const struct bt *bt, struct bt_stats *s);

#endif
