/* Between the PCI bus and the ISA bridge that routes PIRQA-D to ISA IRQs. */
#ifndef RV_PCI_INTERNAL_H
#define RV_PCI_INTERNAL_H

struct bus;
struct pci_bus;

/* Returns the ISA IRQ a PIRQ line (0-3) is routed to, or -1 when disabled. */
typedef int (*pirq_route_fn)(void *opaque, int pirq);
void pci_bus_set_router(struct pci_bus *pb, pirq_route_fn fn, void *opaque);
struct bus *pci_bus_isa(struct pci_bus *pb);

#endif
