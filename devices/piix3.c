#include "devices/piix3.h"
#include "devices/bus.h"
#include "devices/state.h"
#include "devices/pci.h"
#include "devices/pci_internal.h"
#include "hosted-driver/xalloc.h"

#include <stdio.h>
#include <stdlib.h>

#define PIRQ_ROUTE 0x60
#define PIRQ_DISABLED 0x80
#define RCR_PORT 0xcf9
#define RCR_SYS_RESET 0x02
#define RCR_RESET_CPU 0x04

struct piix3 {
    struct pci_dev pci;
    struct bus *bus;
    uint8_t rcr;
};

static int route_pirq(void *opaque, int pirq)
{
    struct piix3 *p = opaque;
    uint8_t r = p->pci.config[PIRQ_ROUTE + pirq];
    if (r & PIRQ_DISABLED)
        return -1;
    r &= 0x0f;
    /* IRQs 0, 1, 2, 8 and 13 are reserved routes (the datasheet's "reserved" values). */
    if (r < 3 || r == 8 || r == 13)
        return -1;
    return r;
}

static uint32_t rcr_read(void *opaque, uint16_t port, int size)
{
    struct piix3 *p = opaque;
    return p->rcr;
}

static void rcr_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct piix3 *p = opaque;
    /* Writing RST_CPU (bit 2) resets; SYS_RST (bit 1) chooses hard over soft, both reset us. */
    if (val & RCR_RESET_CPU) {
        bus_request(p->bus, BUS_REQ_RESET, 0);
        p->rcr = 0;
        return;
    }
    p->rcr = val & RCR_SYS_RESET;
}

static void bridge_reset(struct pci_dev *d)
{
    struct piix3 *p = d->opaque;
    for (int k = 0; k < 4; k++)
        d->config[PIRQ_ROUTE + k] = PIRQ_DISABLED;
    p->rcr = 0;
}

/* The PIRQ routes are config bytes the router reads on each use. */
static void piix3_post_load(void *opaque)
{
    struct piix3 *p = opaque;
    pci_dev_post_load(&p->pci);
}

static const struct state_field piix3_fields[] = {
    STATE_FIELD(struct piix3, pci.config), STATE_FIELD(struct piix3, pci.irq_level), STATE_FIELD(struct piix3, rcr),
};
static const struct state_table piix3_state = { "piix3", 1, piix3_fields, STATE_COUNT(piix3_fields), piix3_post_load };

struct piix3 *piix3_new(struct pci_bus *pb, struct bus *b)
{
    struct piix3 *p = xcalloc(1, sizeof(*p));
    p->bus = b;
    pci_dev_init(&p->pci, "piix3", 1 << 3, 0x8086, 0x7000, 0x060100, 0x00);
    p->pci.opaque = p;
    p->pci.reset = bridge_reset;
    p->pci.config[0x0e] = 0x80;            /* multi-function: IDE and USB are functions 1 and 2 */
    for (int k = 0; k < 4; k++)
        p->pci.wmask[PIRQ_ROUTE + k] = 0x8f;
    pci_register(pb, &p->pci);
    pci_bus_set_router(pb, route_pirq, p);
    bus_register_pio(b, RCR_PORT, 1, p, rcr_read, rcr_write);
    bridge_reset(&p->pci);
    /* Reset comes through the PCI bus's; the registry entry is for snapshots. */
    bus_add_device(b, &(struct device){ .name = "piix3", .opaque = p, .state = &piix3_state });
    return p;
}
