/*
 * Memory made present ahead of its use, by a thread of its own.
 *
 * The translation cache fills its arenas (code, blocks, decoded
 * instructions) front to back.  Each first touch of a page is a fault in
 * which the host kernel zeroes it: on a virtualized host that was a tenth
 * of a Linux boot's CPU time, on the thread that runs the guest.  A
 * prefaulter keeps a few MiB beyond each arena's fill point present, with
 * madvise(MADV_POPULATE_WRITE) from a second thread, which leaves the
 * contents alone (so the two threads never disagree about a byte).  Where
 * the kernel lacks that advice the thread stops and first touches fault as
 * before.
 */
#ifndef RV_PREFAULT_H
#define RV_PREFAULT_H

#include <stddef.h>
#include <stdint.h>

#define PREFAULT_MAX_AREAS 4

struct prefault;

/* A prefaulter with its thread, or NULL (then the calls below do nothing). */
struct prefault *prefault_new(void);

/* Stops the thread and frees; the areas may be unmapped after this. */
void prefault_free(struct prefault *pf);

/* Registers [base, base + size); returns its number, or -1. */
int prefault_add(struct prefault *pf, uint8_t *base, size_t size);

/* The area is used up to `fill`: keep what follows present.  Cheap when
 * nothing needs doing (one comparison). */
void prefault_note(struct prefault *pf, int area, const uint8_t *fill);

#endif
