/*
 * What the translation cache's files share: struct bt and its sizes.
 *   bt.c          blocks: decoding, the block plan, emitting, lookup, chaining, the run loop
 *   cache.c       creating and freeing the cache, its statistics
 *   invalidate.c  code-page tracking, invalidation by what was written, flushes
 * The native translator's files are listed in bt/native_internal.h.
 */
#ifndef RV_BT_INTERNAL_H
#define RV_BT_INTERNAL_H

#include "bt/bt.h"
#include "bt/codemap.h"
#include "bt/emit.h"
#include "bt/native.h"
#include "hosted-driver/execmem.h"
#include "hosted-driver/hugemap.h"
#include "hosted-driver/prefault.h"
#include "monitor/interp.h"
#include "monitor/machine.h"
#include "monitor/physmem.h"
#include "monitor/trace.h"
#include "hosted-driver/xalloc.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CODE_SIZE (256u << 20)       /* generated code (reserved; pages are touched as used) */
/* Blocks' bodies fill the first half; their stubs, which run only on a
 * slow path, the second: the code that runs is not interleaved with code
 * that does not, so it takes fewer cache lines and pages. */
#define HOT_SIZE (CODE_SIZE / 2)
#define MAX_BLOCKS (1 << 18)
#define HASH_BITS 18
#define MAX_BLOCK_INSNS 64
#define CODE_PER_INSN 400            /* upper bound of host bytes emitted per guest instruction */

struct bt {
    struct cpu *cpu;
    struct physmem *pm;
    uint8_t *code_buf;
    uint8_t *cold_start;             /* the cold half after the shared epilogue */
    struct emitter em;               /* blocks' bodies */
    struct emitter cold;             /* their stubs */
    struct block *blocks;            /* arena of MAX_BLOCKS (BLOCKS_BYTES, mapped) */
    int nblocks;
    struct insn *insn_arena;
    int ninsns;
    struct block *hash[1u << HASH_BITS];
    struct block *jump_cache[BT_JUMP_CACHE_SIZE];
    struct block **page_blocks;      /* [PHYS_PAGES] lists per physical page, allocated lazily */
    uint64_t *code_granules;         /* [PHYS_PAGES] granules of each page its blocks cover (bt/codemap.h) */
    struct code_heat *heat;          /* pages rewritten too often to translate */
    bool no_hot_pages;               /* bt_set_hot_pages(false) */
    bool exact_budget;               /* bt_set_exact_budget */
    uint64_t pm_generation;
    uint64_t pm_rom_generation;
    bool flush_pending;
    uint8_t want_uncached;           /* the next lookup needs a block that does not cache these base registers */
    struct block *refilled;          /* the block whose covered pages the last run filled in */
    struct bt_stats stats;
    /* A debugger's breakpoints (bt_set_breakpoints): NULL, or whether a linear address has one. */
    bool (*is_breakpoint)(void *opaque, uint32_t lin);
    void *breakpoint_opaque;
    uint64_t threaded_by_op[0x200];  /* -d bt: threaded executions per opcode */
    uint64_t slow_by_op[0x200];      /* -d bt: native instructions that took their stub */
    FILE *perf_map;                  /* /tmp/perf-PID.map for `perf report` (RETROVISOR_PERF_MAP=1) */
    struct prefault *prefault;       /* keeps the arenas present ahead of their fill points */
    int prefault_area[4];            /* hot code, cold code, blocks, decoded instructions */
};

static inline unsigned hash_of(uint32_t phys, bool code32)
{
    uint32_t h = (phys * 2654435761u) ^ (code32 ? 0x9e3779b9u : 0);
    return h >> (32 - HASH_BITS);
}

/* A debugger's breakpoint at this linear address: no block runs into it. */
static inline bool bt_breakpoint_at(const struct bt *bt, uint32_t lin)
{
    return bt->is_breakpoint && bt->is_breakpoint(bt->breakpoint_opaque, lin);
}

/* invalidate.c */
void mark_code_page(struct bt *bt, uint32_t page);
void drop_block(struct bt *bt, struct block *b);
void drop_remapped(struct bt *bt);

#endif
