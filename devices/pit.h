/*
 * 8254 programmable interval timer at 0x40-0x43 (input clock 1193182 Hz),
 * plus port 0x61 (NMI status / speaker control: bit0 channel-2 gate, bit1
 * speaker data enable; reads give bit4 refresh toggle, bit5 channel-2 OUT).
 * Counter values are computed from the virtual clock, never ticked.
 * Channel 0 OUT drives IRQ0.
 */
#ifndef RV_PIT_H
#define RV_PIT_H

#include <stdbool.h>

struct bus;
struct pit;

#define PIT_HZ 1193182

struct pit *pit_new(struct bus *b);
void pit_free(struct pit *p);

/* Channel-2 OUT gated by port 0x61 bit1: what the PC speaker would play. */
bool pit_speaker_active(struct pit *p);

#endif
