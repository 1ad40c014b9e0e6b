/*
 * pc-testdev, the test device kvm-unit-tests expects (`-device pc-testdev`,
 * off by default):
 *   0xE0-0xE3      a 32-bit data register: writes of any width land at their
 *                  byte offset, reads return it from there (string I/O checks);
 *   0xE4-0xE7      "flush page": a hypervisor hook; nothing to do here;
 *   0x2000-0x2017  interrupt line N (the bus's line N: ISA IRQs, I/O APIC
 *                  pins) set to the value written (0 or not);
 *   0xFF000000     64 KiB of memory answered through MMIO (IORAM), so that
 *                  instructions are exercised on an MMIO operand.
 */
#ifndef RV_PCTESTDEV_H
#define RV_PCTESTDEV_H

struct bus;
struct pctestdev;

#define PCTESTDEV_IORAM_BASE 0xff000000u
#define PCTESTDEV_IORAM_LEN 0x10000u

struct pctestdev *pctestdev_new(struct bus *b);
void pctestdev_free(struct pctestdev *t);

#endif
