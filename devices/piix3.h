/*
 * Intel PIIX3 PCI-to-ISA bridge, PCI 00:01.0: PIRQ routing of PCI INTA-D to
 * ISA IRQs (registers 0x60-0x63) and the reset control register at 0xCF9.
 * (The ELCR at 0x4D0 lives with the PIC, port 0x61 with the PIT, 0x92 with
 * the keyboard controller.)
 */
#ifndef RV_PIIX3_H
#define RV_PIIX3_H

struct pci_bus;
struct bus;
struct piix3;

struct piix3 *piix3_new(struct pci_bus *pb, struct bus *b);

#endif
