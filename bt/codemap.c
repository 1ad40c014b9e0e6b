/*
 * Write heat of code pages (see bt/codemap.h).
 */
#include "bt/codemap.h"
#include "hosted-driver/xalloc.h"

#include <stdlib.h>

/* A page that loses translations to this many writes within the window
 * turns hot; it is then interpreted for HOT_BASE << level instructions.
 * Retranslating a block costs about what interpreting a thousand
 * instructions does: one invalidation per thousand instructions is where
 * interpreting the page starts to pay. */
#define HEAT_WINDOW  (1ull << 15)
#define HEAT_LIMIT   32
#define HOT_BASE     (1ull << 22)
#define HOT_MAX_LEVEL 8
#define HEAT_SLOTS   512           /* direct-mapped by page: hot pages are few */
#define TOP_SLOTS    16

struct heat_slot {
    uint32_t page;                 /* page number + 1; 0: empty */
    uint32_t hits;                 /* invalidating writes in the current window */
    uint64_t window_start;
    uint64_t cool_at;              /* interpreted until this instruction count */
    unsigned level;                /* times it turned hot: the next period doubles */
};

/* The most invalidated pages, counted the "space-saving" way: a page not
 * in the table takes the place of the least counted one, inheriting its
 * count, so a page's count may be over but never under its true count. */
struct top_slot {
    uint32_t page;                 /* page number + 1; 0: empty */
    uint64_t count;
    unsigned times_hot;
};

struct code_heat {
    struct heat_slot slot[HEAT_SLOTS];
    struct top_slot top[TOP_SLOTS];
};

struct code_heat *code_heat_new(void)
{
    return xcalloc(1, sizeof(struct code_heat));
}

void code_heat_free(struct code_heat *h)
{
    free(h);
}

static unsigned slot_of(uint32_t page)
{
    uint32_t n = page >> 12;
    return (n ^ (n >> 9)) & (HEAT_SLOTS - 1);
}

static struct top_slot *count_in_top(struct code_heat *h, uint32_t page)
{
    uint32_t key = (page >> 12) + 1;
    struct top_slot *least = &h->top[0];
    for (int k = 0; k < TOP_SLOTS; k++) {
        struct top_slot *t = &h->top[k];
        if (t->page == key) {
            t->count++;
            return t;
        }
        if (t->count < least->count)
            least = t;
    }
    least->page = key;
    least->count++;
    least->times_hot = 0;
    return least;
}

bool code_heat_note(struct code_heat *h, uint32_t page, uint64_t now)
{
    struct top_slot *t = count_in_top(h, page);
    struct heat_slot *s = &h->slot[slot_of(page)];
    uint32_t key = (page >> 12) + 1;
    if (s->page != key)
        *s = (struct heat_slot){ .page = key, .window_start = now };
    if (now - s->window_start > HEAT_WINDOW) {
        s->window_start = now;
        s->hits = 0;
    }
    if (++s->hits < HEAT_LIMIT)
        return false;
    s->hits = 0;
    s->cool_at = now + (HOT_BASE << s->level);
    if (s->level < HOT_MAX_LEVEL)
        s->level++;
    t->times_hot++;
    return true;
}

bool code_heat_is_hot(const struct code_heat *h, uint32_t page, uint64_t now)
{
    const struct heat_slot *s = &h->slot[slot_of(page)];
    return s->page == (page >> 12) + 1 && now < s->cool_at;
}

static int by_count_desc(const void *a, const void *b)
{
    const struct top_slot *x = a, *y = b;
    return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

void code_heat_report(const struct code_heat *h, FILE *out)
{
    struct top_slot top[TOP_SLOTS];
    int n = 0;
    for (int k = 0; k < TOP_SLOTS; k++)
        if (h->top[k].page)
            top[n++] = h->top[k];
    if (!n)
        return;
    qsort(top, n, sizeof top[0], by_count_desc);
    fprintf(out, "bt: pages whose writes invalidated translations (most first):\n");
    for (int k = 0; k < n && k < 8; k++)
        fprintf(out, "bt:   %08x  %llu writes, interpreted %u times for being written too often\n",
                (top[k].page - 1) << 12, (unsigned long long)top[k].count, top[k].times_hot);
}
