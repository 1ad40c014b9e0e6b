/* Data breakpoints (see databp.h). */
#include "monitor/databp.h"

#define PAGE_BYTES 4096u

void databp_init(struct databp_set *s)
{
    s->n = 0;
    s->hit = -1;
    s->hit_access = 0;
}

bool databp_add(struct databp_set *s, uint32_t addr, uint32_t len, uint8_t on)
{
    if (len == 0 || len > DATABP_MAX_LEN || addr > UINT32_MAX - (len - 1))
        return false;
    if (!(on & DATABP_ACCESS) || (on & ~DATABP_ACCESS) || s->n == DATABP_MAX)
        return false;
    s->bp[s->n++] = (struct databp){ .addr = addr, .len = len, .on = on };
    return true;
}

bool databp_remove(struct databp_set *s, uint32_t addr, uint32_t len, uint8_t on)
{
    for (int k = 0; k < s->n; k++) {
        const struct databp *b = &s->bp[k];
        if (b->addr == addr && b->len == len && b->on == on) {
            /* Kept in insertion order: with overlapping breakpoints the
             * oldest is the one a hit names, whatever was removed since. */
            for (int j = k + 1; j < s->n; j++)
                s->bp[j - 1] = s->bp[j];
            s->n--;
            if (s->hit >= k)
                s->hit = -1;
            return true;
        }
    }
    return false;
}

/* [a, a + alen) and [b, b + blen) share a byte; lengths are at least 1 and
 * compared as 64-bit ends, so a range that ends at 4 GiB does not wrap. */
static bool ranges_overlap(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen)
{
    return (uint64_t)a + alen > b && (uint64_t)b + blen > a;
}

int databp_match(const struct databp_set *s, uint32_t lin, uint32_t size, uint8_t access)
{
    for (int k = 0; k < s->n; k++) {
        const struct databp *b = &s->bp[k];
        if ((b->on & access) && ranges_overlap(lin, size, b->addr, b->len))
            return k;
    }
    return -1;
}

bool databp_covers_page(const struct databp_set *s, uint32_t page)
{
    for (int k = 0; k < s->n; k++)
        if (ranges_overlap(page & ~(PAGE_BYTES - 1), PAGE_BYTES, s->bp[k].addr, s->bp[k].len))
            return true;
    return false;
}

void databp_note(struct databp_set *s, uint32_t lin, uint32_t size, uint8_t access)
{
    if (s->hit >= 0)
        return;
    int k = databp_match(s, lin, size, access);
    if (k >= 0) {
        s->hit = k;
        s->hit_access = access;
    }
}
