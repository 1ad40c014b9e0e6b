/*
 * 8259A programmable interrupt controller pair as wired in a PC: master at
 * 0x20-0x21 (IRQ 0-7), slave at 0xA0-0xA1 (IRQ 8-15) cascaded on master IR2,
 * plus the PIIX3 edge/level control registers (ELCR) at 0x4D0-0x4D1.
 *
 * pic_new installs the pair as the bus's IRQ sink and interrupt controller:
 * bus_intr_pending() is the master's INT output, bus_intr_ack() performs the
 * INTA cycle and returns the vector.
 */
#ifndef RV_PIC_H
#define RV_PIC_H

#include <stdint.h>

struct bus;
struct pic;

struct pic *pic_new(struct bus *b);
void pic_free(struct pic *p);

/* For the monitor console and tests: chip 0 = master, 1 = slave. */
struct pic_regs {
    uint8_t irr, isr, imr, elcr, vector_base;
};
void pic_get_regs(const struct pic *p, int chip, struct pic_regs *out);

#endif
