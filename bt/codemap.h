/*
 * Which bytes of a physical page hold translated code, and which pages are
 * written so often that translating them does not pay.
 *
 * A page's code bytes are kept as a mask of 64-byte granules (one bit each,
 * 64 per 4 KiB page).  A write to a page with translations invalidates only
 * the blocks whose granules and byte range it touches: data kept beside code
 * (decompressors, DOS overlays, self-patching games) costs a slow-path write,
 * not a retranslation.
 *
 * A page whose code bytes keep being rewritten (true self-modifying code)
 * turns "hot": it is interpreted instead of translated for a while, and the
 * while doubles each time it turns hot again, so that a page that settles is
 * translated again soon and one that never does costs little.
 */
#ifndef RV_BT_CODEMAP_H
#define RV_BT_CODEMAP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CODE_GRANULE_SHIFT 6

/* The granules holding page offsets [lo, hi), 0 <= lo < hi <= 4096. */
static inline uint64_t code_granules(uint32_t lo, uint32_t hi)
{
    unsigned a = lo >> CODE_GRANULE_SHIFT, b = (hi - 1) >> CODE_GRANULE_SHIFT;
    uint64_t through_b = b == 63 ? ~0ull : (2ull << b) - 1;
    return through_b & ~((1ull << a) - 1);
}

struct code_heat;

struct code_heat *code_heat_new(void);
void code_heat_free(struct code_heat *h);
/* Blocks of `page` were invalidated by a write at instruction count `now`:
 * true when the page turns hot with that. */
bool code_heat_note(struct code_heat *h, uint32_t page, uint64_t now);
/* The page is hot: translate nothing there now. */
bool code_heat_is_hot(const struct code_heat *h, uint32_t page, uint64_t now);
/* -d bt: pages by invalidating writes, the most written first. */
void code_heat_report(const struct code_heat *h, FILE *out);

#endif
