/*
 * Code pages and invalidation: which physical pages hold translations
 * (physmem's code-page bitmap), dropping the blocks a write touched and
 * leaving the rest, write-hot pages, remapped ROM and RAM, and flushing the
 * whole cache.
 */
#include "bt/bt_internal.h"

void mark_code_page(struct bt *bt, uint32_t page)
{
    struct physmem *pm = bt->pm;
    if (physmem_is_code(pm, page))
        return;
    physmem_set_code(pm, page, true);
    /* Writes to this page must now reach us: drop direct-write TLB entries to it. */
    tlb_invalidate_phys_writes(bt->cpu, page);
}

static void unlink_hash(struct bt *bt, struct block *b)
{
    struct block **pp = &bt->hash[hash_of(b->phys, b->code32)];
    while (*pp && *pp != b)
        pp = &(*pp)->hash_next;
    if (*pp)
        *pp = b->hash_next;
}

/* The block goes: lookups miss it, chained jumps into it stop. */
void drop_block(struct bt *bt, struct block *b)
{
    if (!b->valid)
        return;
    unlink_hash(bt, b);
    b->valid = false;
    for (struct chain_slot *s = b->incoming; s; s = s->next_in) {
        emit_patch_rel32(s->jump, s->unchained);
        s->target = NULL;
    }
    b->incoming = NULL;
    bt->stats.blocks_invalidated++;
}

/* The next block in the list of `page`: a two-page block is in two lists. */
static struct block *next_in_page(const struct block *b, uint32_t page)
{
    return b->two_pages && b->phys2 == page ? b->page2_next : b->page_next;
}

/* Every block of the physical page goes. */
static void drop_page(struct bt *bt, uint32_t page)
{
    page &= PAGE_MASK;
    for (struct block *b = bt->page_blocks[page >> 12]; b; b = next_in_page(b, page))
        drop_block(bt, b);
    bt->page_blocks[page >> 12] = NULL;
    bt->code_granules[page >> 12] = 0;
    physmem_set_code(bt->pm, page, false);
}

/* Where the link to the next block of `page` is in b. */
static struct block **link_in_page(struct block *b, uint32_t page)
{
    return b->two_pages && b->phys2 == page ? &b->page2_next : &b->page_next;
}

/* Whether b's bytes in `page` meet the written offsets [lo, hi). */
static bool block_bytes_meet(const struct block *b, uint32_t page, uint64_t written, uint32_t lo, uint32_t hi)
{
    if (b->two_pages && b->phys2 == page)
        return (b->gran2 & written) && lo < b->hi2;
    return (b->gran & written) && lo < b->hi && hi > b->lo;
}

static uint64_t block_granules(const struct block *b, uint32_t page)
{
    return b->two_pages && b->phys2 == page ? b->gran2 : b->gran;
}

/* Drop the blocks of `page` whose bytes meet [lo, hi) (offsets), and blocks
 * already invalid; the page's granules become those of the blocks left.
 * Returns how many valid blocks went. */
static int drop_blocks_meeting(struct bt *bt, uint32_t page, uint64_t written, uint32_t lo, uint32_t hi)
{
    int dropped = 0;
    uint64_t left = 0;
    struct block **pp = &bt->page_blocks[page >> 12];
    while (*pp) {
        struct block *b = *pp;
        struct block **next = link_in_page(b, page);
        if (b->valid && !block_bytes_meet(b, page, written, lo, hi)) {
            left |= block_granules(b, page);
            pp = next;
            continue;
        }
        if (b->valid)
            dropped++;
        drop_block(bt, b);
        *pp = *next;
    }
    bt->code_granules[page >> 12] = left;
    if (!bt->page_blocks[page >> 12])
        physmem_set_code(bt->pm, page, false);
    return dropped;
}

void bt_invalidate_range(struct bt *bt, uint32_t addr, uint32_t len, bool by_cpu)
{
    uint32_t page = addr & PAGE_MASK, lo = addr & 0xfff, hi = lo + len;
    uint64_t written = code_granules(lo, hi);
    if (!(written & bt->code_granules[page >> 12])) {
        bt->stats.code_writes_spared++;
        return;
    }
    int dropped = drop_blocks_meeting(bt, page, written, lo, hi);
    if (!dropped) {
        bt->stats.code_writes_spared++;
        return;
    }
    struct cpu *c = bt->cpu;
    if (c->trace & TRACE_BT)
        fprintf(trace_output(), "bt: write to %08x+%u at EIP %08x drops %d blocks\n", addr, len, c->eip_start, dropped);
    if (by_cpu && !bt->no_hot_pages && code_heat_note(bt->heat, page, cpu_icount(c))) {
        bt->stats.pages_made_hot++;
        if (c->trace & TRACE_BT)
            fprintf(trace_output(), "bt: page %08x is rewritten too often: interpreted for a while\n", page);
    }
    /* The block running now may be one of them: leave it after this instruction. */
    c->bt_exit = true;
}

void bt_set_exact_budget(struct bt *bt, bool on)
{
    bt->exact_budget = on;
}

void bt_set_hot_pages(struct bt *bt, bool on)
{
    bt->no_hot_pages = !on;
}

void bt_flush(struct bt *bt)
{
    if (bt->cpu->trace & TRACE_BT)
        fprintf(trace_output(), "bt: flush (%d blocks, %s)\n", bt->nblocks,
                bt->pm_rom_generation != bt->pm->rom_generation ? "ROM contents changed" : "cache full or requested");
    for (int k = 0; k < bt->nblocks; k++) {
        struct block *b = &bt->blocks[k];
        for (int p = 0; p < 1 + b->two_pages; p++) {
            uint32_t page = p ? b->phys2 : b->phys & PAGE_MASK;
            if (bt->page_blocks[page >> 12]) {
                physmem_set_code(bt->pm, page, false);
                bt->page_blocks[page >> 12] = NULL;
                bt->code_granules[page >> 12] = 0;
            }
        }
    }
    memset(bt->hash, 0, sizeof(bt->hash));
    memset(bt->jump_cache, 0, sizeof(bt->jump_cache));
    bt->nblocks = 0;
    bt->ninsns = 0;
    bt->em.p = bt->code_buf;
    bt->cold.p = bt->cold_start;
    bt->stats.flushes++;
    bt->pm_generation = bt->pm->generation;
    bt->pm_rom_generation = bt->pm->rom_generation;
    bt->flush_pending = false;
    bt->cpu->bt_chain_slot = NULL;
    cpu_forget_returns(bt->cpu);               /* its slots were in the blocks */
}

/* The guest memory map changed (PAM, a BAR, the LFB): only pages of code
 * whose bytes now come from elsewhere lose their translations. */
void drop_remapped(struct bt *bt)
{
    int pages = 0;
    for (int k = 0; k < bt->nblocks; k++) {
        struct block *b = &bt->blocks[k];
        if (b->valid && bt->pm->rd[b->phys >> 12] != b->host_page) {
            drop_page(bt, b->phys);
            pages++;
        }
        if (b->valid && b->two_pages && bt->pm->rd[b->phys2 >> 12] != b->host_page2) {
            drop_page(bt, b->phys2);
            pages++;
        }
    }
    if (bt->cpu->trace & TRACE_BT)
        fprintf(trace_output(), "bt: guest memory map changed: %d pages of code remapped\n", pages);
    bt->pm_generation = bt->pm->generation;
}
