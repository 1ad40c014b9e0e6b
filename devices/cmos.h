/*
 * MC146818 RTC + 128 bytes of CMOS RAM at ports 0x70 (index, bit 7 = NMI
 * mask) / 0x71 (data).  The clock starts from `base` (host wall-clock time
 * at power-on, UTC, or the -rtc base) and then follows the virtual clock.
 * Periodic, alarm and update-ended interrupts go to IRQ 8.
 *
 * The machine fills the BIOS bytes with cmos_set before the first
 * instruction (memory sizes 0x15-0x18/0x30-0x31/0x34-0x35/0x5b-0x5d,
 * equipment 0x14, floppy 0x10, disks 0x12/0x19/0x1a, boot order
 * 0x3d/0x38, CPUs 0x5f) and then calls cmos_update_checksum.
 */
#ifndef RV_CMOS_H
#define RV_CMOS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct bus;
struct cmos;

#define CMOS_CENTURY 0x32

struct cmos *cmos_new(struct bus *b, time_t base);
void cmos_free(struct cmos *s);

/* Raw RAM access for the machine (no side effects, index 0-127).
 * cmos_get of a clock register returns the current time in the guest's format. */
void cmos_set(struct cmos *s, int idx, uint8_t v);
uint8_t cmos_get(struct cmos *s, int idx);
/* Standard AT checksum: sum of bytes 0x10-0x2d stored big-endian at 0x2e/0x2f. */
void cmos_update_checksum(struct cmos *s);
/* Bit 7 of the last write to port 0x70. */
bool cmos_nmi_masked(struct cmos *s);

#endif
