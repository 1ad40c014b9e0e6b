/*
 * I/O APIC (82093AA-style, version 0x11, 24 pins) at 0xFEC00000: IOREGSEL
 * at +0x00, IOWIN at +0x10.  It listens to the bus's interrupt lines beside
 * the 8259: ISA IRQ 0 reaches pin 2 (as the MP table and the MADT's
 * override say), ISA IRQ n pin n, and bus lines 16-23 pins 16-23, where
 * PIRQA-D arrive.  Messages go to the local APIC over the bus's APIC
 * channel; the local APIC's EOI broadcast clears remote IRR.
 */
#ifndef RV_IOAPIC_H
#define RV_IOAPIC_H

#include <stdint.h>

struct bus;
struct ioapic;

#define IOAPIC_DEFAULT_BASE 0xfec00000u
#define IOAPIC_PINS 24
#define IOAPIC_VERSION 0x00170011u

struct ioapic *ioapic_new(struct bus *b, uint32_t base);
void ioapic_free(struct ioapic *io);

/* For tests and the monitor console: a redirection entry, 64 bits. */
uint64_t ioapic_redirection(const struct ioapic *io, int pin);

#endif
