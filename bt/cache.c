/*
 * Creating and freeing the translation cache (its code buffer, block and
 * instruction arenas, per-page lists, prefault areas, the perf map) and its
 * statistics (-d bt).
 */
#include "bt/bt_internal.h"
/* What an empty entry of the return stack names: a slot whose block is never valid. */
static struct block no_block;
static struct chain_slot no_return = { .target = &no_block };

#define BLOCKS_BYTES ((size_t)MAX_BLOCKS * sizeof(struct block))
#define INSNS_BYTES ((size_t)MAX_BLOCKS * 8 * sizeof(struct insn))

static void *hugemap_or_die(size_t size, const char *what)
{
    void *p = hugemap(size, PROT_READ | PROT_WRITE, MAP_NORESERVE);
    if (p == MAP_FAILED) {
        fprintf(stderr, "retrovisor: cannot map %zu MiB for the translation cache's %s: %s\n", size >> 20, what,
                strerror(errno));
        exit(1);
    }
    return p;
}

struct bt *bt_new(struct cpu *c)
{
    struct bt *bt = xcalloc(1, sizeof(*bt));
    bt->cpu = c;
    bt->pm = c->m->pm;
    bt->code_buf = execmem_alloc(CODE_SIZE);
    bt->em.p = bt->code_buf;
    bt->em.end = bt->code_buf + HOT_SIZE;
    bt->cold.p = bt->code_buf + HOT_SIZE;
    bt->cold.end = bt->code_buf + CODE_SIZE;
    bt->em.epilogue = bt->cold.epilogue = native_emit_epilogue_routine(&bt->cold);
    bt->cold_start = bt->cold.p;
    /* (Huge pages: a boot fills tens of MiB of these a page at a time.
     * 2 MiB alignment also gives struct block its 64 bytes.) */
    bt->blocks = hugemap_or_die(BLOCKS_BYTES, "blocks");
    bt->insn_arena = hugemap_or_die(INSNS_BYTES, "decoded instructions");
    bt->page_blocks = xcalloc(PHYS_PAGES, sizeof(struct block *));
    bt->code_granules = xcalloc(PHYS_PAGES, sizeof(uint64_t));
    bt->heat = code_heat_new();
    bt->pm_generation = bt->pm->generation;
    bt->pm_rom_generation = bt->pm->rom_generation;
    c->bt_ras_none = &no_return;
    cpu_forget_returns(c);
    bt->prefault = prefault_new();
    bt->prefault_area[0] = prefault_add(bt->prefault, bt->code_buf, HOT_SIZE);
    bt->prefault_area[1] = prefault_add(bt->prefault, bt->code_buf + HOT_SIZE, HOT_SIZE);
    bt->prefault_area[2] = prefault_add(bt->prefault, (uint8_t *)bt->blocks, BLOCKS_BYTES);
    bt->prefault_area[3] = prefault_add(bt->prefault, (uint8_t *)bt->insn_arena, INSNS_BYTES);
    if (getenv("RETROVISOR_PERF_MAP")) {
        char path[64];
        snprintf(path, sizeof(path), "/tmp/perf-%d.map", (int)getpid());
        bt->perf_map = fopen(path, "w");
        if (bt->perf_map)
            setvbuf(bt->perf_map, NULL, _IOLBF, 0);
    }
    return bt;
}

/* The opcodes run most often through the interpreter from translated code. */
static void print_op_counts(const char *what, const uint64_t *by_op)
{
    uint64_t total = 0;
    for (int op = 0; op < 0x200; op++)
        total += by_op[op];
    fprintf(trace_output(), "bt: %llu %s; most frequent opcodes:\n", (unsigned long long)total, what);
    bool shown[0x200] = { false };
    for (int k = 0; k < 12 && total; k++) {
        int best = -1;
        for (int op = 0; op < 0x200; op++)
            if (!shown[op] && by_op[op] && (best < 0 || by_op[op] > by_op[best]))
                best = op;
        if (best < 0)
            break;
        shown[best] = true;
        fprintf(trace_output(), "bt:   %s%02x %12llu\n", best >= 0x100 ? "0f " : "", best & 0xff,
                (unsigned long long)by_op[best]);
    }
}

void bt_free(struct bt *bt)
{
    if (!bt)
        return;
    if (bt->perf_map)
        fclose(bt->perf_map);
    if (bt->cpu->trace & TRACE_BT)
        fprintf(trace_output(), "bt: %llu blocks translated, %llu invalidated, %llu flushes, %llu block entries, "
                "%llu jumps followed, %llu operands and %llu stack slots cached, %llu writes beside code spared "
                "its translations, %llu times a page was left to the interpreter\n",
                (unsigned long long)bt->stats.blocks_translated, (unsigned long long)bt->stats.blocks_invalidated,
                (unsigned long long)bt->stats.flushes, (unsigned long long)bt->stats.block_entries,
                (unsigned long long)bt->stats.jumps_followed, (unsigned long long)bt->stats.operands_cached,
                (unsigned long long)bt->stats.stack_slots_cached, (unsigned long long)bt->stats.code_writes_spared,
                (unsigned long long)bt->stats.pages_made_hot);
    if (bt->cpu->trace & TRACE_BT) {
        print_op_counts("threaded instructions", bt->threaded_by_op);
        print_op_counts("native instructions that took the slow path", bt->slow_by_op);
        code_heat_report(bt->heat, trace_output());
    }
    prefault_free(bt->prefault);               /* before the areas go */
    execmem_free(bt->code_buf, CODE_SIZE);
    munmap(bt->blocks, BLOCKS_BYTES);
    munmap(bt->insn_arena, INSNS_BYTES);
    free(bt->page_blocks);
    free(bt->code_granules);
    code_heat_free(bt->heat);
    free(bt);
}

void bt_get_stats(const struct bt *bt, struct bt_stats *s)
{
    *s = bt->stats;
}
