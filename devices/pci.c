/*
 * PCI bus 0 with configuration mechanism #1: CONFIG_ADDRESS at 0xCF8 (32-bit
 * accesses only) and CONFIG_DATA at 0xCFC-0xCFF.  Generic handling of the
 * header: guest-writable bits by wmask, BAR sizing and remapping, decode
 * enables in COMMAND, the expansion ROM BAR, and INTx routing through the
 * PIIX3 PIRQ registers.
 */
#include "devices/pci.h"
#include "devices/pci_internal.h"
#include "devices/bus.h"
#include "devices/state.h"
#include "hosted-driver/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_BAR0 0x10
#define PCI_ROM_BAR 0x30
#define PCI_INTERRUPT_PIN 0x3d
#define PCI_CMD_IO 0x1
#define PCI_CMD_MEM 0x2
#define PCI_CMD_INTX_DISABLE 0x400
#define PCI_STATUS_INTX 0x08
#define ROM_SLOT PCI_BAR_COUNT

struct pci_bus {
    struct bus *bus;
    uint32_t config_address;
    struct pci_dev *dev[256];
    pirq_route_fn route;
    void *route_opaque;
    int pirq_level[4];         /* number of functions driving each PIRQ line */
    int8_t intx_pirq[256];     /* the PIRQ a function drives now, -1 if none */
    uint16_t isa_driven;       /* ISA IRQ lines the PIRQs hold high */
    uint8_t pirq_driven;       /* PIRQA-D lines high (the I/O APIC's pins 16-19) */
};

void pci_dev_init(struct pci_dev *d, const char *name, int devfn, uint16_t vendor, uint16_t device,
                  uint32_t class_code, uint8_t revision)
{
    memset(d->config, 0, sizeof(d->config));
    memset(d->wmask, 0, sizeof(d->wmask));
    d->name = name;
    d->devfn = devfn;
    pci_set16(d, 0x00, vendor);
    pci_set16(d, 0x02, device);
    d->config[0x08] = revision;
    d->config[0x09] = class_code & 0xff;
    d->config[0x0a] = (class_code >> 8) & 0xff;
    d->config[0x0b] = class_code >> 16;
    /* QEMU's subsystem ids: SeaBIOS's QEMU build recognises the platform by them. */
    pci_set16(d, 0x2c, 0x1af4);
    pci_set16(d, 0x2e, 0x1100);
    /* COMMAND: I/O, memory, bus master, SERR, parity, INTx disable are writable. */
    pci_set16(d, 0x04 + 0, 0);
    d->wmask[0x04] = 0x47;
    d->wmask[0x05] = 0x05;
    d->wmask[0x0c] = 0xff;      /* cache line size */
    d->wmask[0x0d] = 0xff;      /* latency timer */
    d->wmask[0x3c] = 0xff;      /* interrupt line (a scratch register for firmware) */
    for (int k = 0; k < PCI_BAR_COUNT; k++)
        d->bar[k].mapped = PCI_BAR_UNMAPPED;
    d->rom.mapped = PCI_BAR_UNMAPPED;
}

void pci_set_bar(struct pci_dev *d, int bar, uint32_t size, bool io, void (*map)(struct pci_dev *, int, uint32_t))
{
    struct pci_bar *b = &d->bar[bar];
    b->size = size;
    b->io = io;
    b->map = map;
    b->mapped = PCI_BAR_UNMAPPED;
    pci_set32(d, PCI_BAR0 + 4 * bar, io ? 1 : (b->prefetch ? 8 : 0));
    uint32_t mask = ~(size - 1) & (io ? ~0x3u : ~0xfu);
    for (int k = 0; k < 4; k++)
        d->wmask[PCI_BAR0 + 4 * bar + k] = mask >> (8 * k);
}

void pci_set_rom(struct pci_dev *d, uint32_t size, void (*map)(struct pci_dev *, int, uint32_t))
{
    d->rom.size = size;
    d->rom.io = false;
    d->rom.map = map;
    d->rom.mapped = PCI_BAR_UNMAPPED;
    uint32_t mask = (~(size - 1) & ~0x7ffu) | 1;   /* address bits and the enable bit */
    for (int k = 0; k < 4; k++)
        d->wmask[PCI_ROM_BAR + k] = mask >> (8 * k);
}

static uint32_t rom_image_read(void *opaque, uint32_t addr, int size)
{
    struct pci_dev *d = opaque;
    uint32_t val = 0;
    for (int k = 0; k < size; k++)
        if (addr + k < d->rom.size)
            val |= (uint32_t)d->rom_image[addr + k] << (8 * k);
    return val;
}

static void rom_image_map(struct pci_dev *d, int bar, uint32_t base)
{
    struct bus *b = d->bus->bus;
    if (d->rom_image_base != PCI_BAR_UNMAPPED)
        bus_unregister_mmio(b, d->rom_image_base, d->rom.size);
    d->rom_image_base = base;
    if (base != PCI_BAR_UNMAPPED)
        bus_register_mmio(b, base, d->rom.size, d, rom_image_read, NULL);
}

/* One boot ROM can serve several devices (iPXE's ne2k_pci image carries
 * ids 0:0): its PCI data structure must name this device or the BIOS
 * skips it.  The byte sum of the first image stays 0 by adjusting byte 6,
 * which Etherboot-style ROMs keep for that. */
static void rom_claim_ids(struct pci_dev *d, uint8_t *rom, uint32_t len)
{
    if (len < 0x1a || rom[0] != 0x55 || rom[1] != 0xaa)
        return;
    uint32_t pcir = rom[0x18] | rom[0x19] << 8;
    if (pcir + 8 > len || memcmp(rom + pcir, "PCIR", 4))
        return;
    int delta = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t want = d->config[k];         /* vendor, then device id, as in config space */
        delta += want - rom[pcir + 4 + k];
        rom[pcir + 4 + k] = want;
    }
    if (delta && (uint32_t)rom[2] * 512 <= len)
        rom[6] -= (uint8_t)delta;
}

void pci_set_rom_image(struct pci_dev *d, const uint8_t *img, uint32_t len)
{
    uint32_t size = 2048;
    while (size < len)
        size <<= 1;
    free(d->rom_image);
    d->rom_image = xcalloc(1, size);
    memcpy(d->rom_image, img, len);
    rom_claim_ids(d, d->rom_image, len);
    d->rom_image_base = PCI_BAR_UNMAPPED;
    pci_set_rom(d, size, rom_image_map);
}

/* Where a BAR decodes now, given its register and the COMMAND enables. */
static uint32_t bar_target(const struct pci_dev *d, int slot)
{
    uint16_t cmd = pci_get16(d, PCI_COMMAND);
    if (slot == ROM_SLOT) {
        uint32_t v = pci_get32(d, PCI_ROM_BAR);
        if (!(v & 1) || !(cmd & PCI_CMD_MEM))
            return PCI_BAR_UNMAPPED;
        v &= ~0x7ffu;
        /* As for BARs: address 0 or the sizing pattern decodes nothing. */
        if (v == 0 || v == (~(d->rom.size - 1) & ~0x7ffu))
            return PCI_BAR_UNMAPPED;
        return v;
    }
    const struct pci_bar *b = &d->bar[slot];
    uint32_t v = pci_get32(d, PCI_BAR0 + 4 * slot);
    if (b->io) {
        if (!(cmd & PCI_CMD_IO))
            return PCI_BAR_UNMAPPED;
        v &= ~0x3u;
    } else {
        if (!(cmd & PCI_CMD_MEM))
            return PCI_BAR_UNMAPPED;
        v &= ~0xfu;
    }
    /* A BAR left at 0 or still holding the sizing pattern decodes nothing. */
    if (v == 0 || v == (~(b->size - 1) & (b->io ? ~0x3u : ~0xfu)))
        return PCI_BAR_UNMAPPED;
    return v;
}

/* A BAR decodes positively: what its map callback claims wins over the
 * subtractive ISA devices under it, and they decode again when it leaves. */
static void map_bar(struct pci_dev *d, int slot, uint32_t target)
{
    struct pci_bar *b = slot == ROM_SLOT ? &d->rom : &d->bar[slot];
    struct bus *isa = d->bus ? d->bus->bus : NULL;
    enum bus_decode old = isa ? bus_set_decode(isa, BUS_DECODE_POSITIVE) : BUS_DECODE_SUBTRACTIVE;
    b->map(d, slot, target);
    if (isa)
        bus_set_decode(isa, old);
}

static void update_mappings(struct pci_dev *d)
{
    for (int k = 0; k <= ROM_SLOT; k++) {
        struct pci_bar *b = k == ROM_SLOT ? &d->rom : &d->bar[k];
        if (!b->size)
            continue;
        uint32_t t = bar_target(d, k);
        if (t != b->mapped) {
            b->mapped = t;
            if (b->map)
                map_bar(d, k, t);
        }
    }
}

void pci_register(struct pci_bus *pb, struct pci_dev *d)
{
    pb->dev[d->devfn & 0xff] = d;
    d->bus = pb;
}

/* The router is a multiplexer: each ISA IRQ is the OR of the PIRQs routed to
 * it now.  Called whenever a PIRQ level or the routing may have changed. */
static void update_isa_lines(struct pci_bus *pb)
{
    uint16_t want = 0;
    for (int p = 0; p < 4 && pb->route; p++) {
        if (pb->pirq_level[p] <= 0)
            continue;
        int irq = pb->route(pb->route_opaque, p);
        if (irq >= 0 && irq < 16)
            want |= 1u << irq;
    }
    uint16_t changed = want ^ pb->isa_driven;
    pb->isa_driven = want;
    for (int irq = 0; irq < 16; irq++)
        if (changed & (1u << irq))
            irq_set(pb->bus, irq, (want >> irq) & 1);
    /* The board also wires PIRQA-D to I/O APIC pins 16-19, whatever the router says. */
    uint8_t pirqs = 0;
    for (int p = 0; p < 4; p++)
        if (pb->pirq_level[p] > 0)
            pirqs |= 1u << p;
    uint8_t pirq_changed = pirqs ^ pb->pirq_driven;
    pb->pirq_driven = pirqs;
    for (int p = 0; p < 4; p++)
        if (pirq_changed & (1u << p))
            irq_set(pb->bus, BUS_IRQ_PIRQ_BASE + p, (pirqs >> p) & 1);
}

/* Drive d's PIRQ from its INTx level, INTERRUPT_PIN and COMMAND.INTx_DISABLE;
 * STATUS.INTx shows the level whether or not it is disabled. */
static void update_intx(struct pci_dev *d)
{
    struct pci_bus *pb = d->bus;
    int devfn = d->devfn & 0xff;
    int pin = d->config[PCI_INTERRUPT_PIN];
    if (pin < 1 || pin > 4)
        return;
    if (d->irq_level)
        d->config[PCI_STATUS] |= PCI_STATUS_INTX;
    else
        d->config[PCI_STATUS] &= ~PCI_STATUS_INTX;
    int pirq = -1;
    if (d->irq_level && !(pci_get16(d, PCI_COMMAND) & PCI_CMD_INTX_DISABLE))
        /* The board's wiring of a slot's INTA-D onto PIRQA-D, as on QEMU's PC and
         * as SeaBIOS assumes when it fills INTERRUPT_LINE: (slot - 1 + pin - 1) & 3. */
        pirq = ((devfn >> 3) - 1 + pin - 1) & 3;
    if (pirq == pb->intx_pirq[devfn])
        return;
    if (pb->intx_pirq[devfn] >= 0)
        pb->pirq_level[pb->intx_pirq[devfn]]--;
    if (pirq >= 0)
        pb->pirq_level[pirq]++;
    pb->intx_pirq[devfn] = pirq;
    update_isa_lines(pb);
}

struct pci_dev *pci_find(struct pci_bus *pb, int devfn)
{
    return pb->dev[devfn & 0xff];
}

void pci_dev_post_load(struct pci_dev *d)
{
    update_mappings(d);
    if (d->bus)
        update_intx(d);
}

uint32_t pci_config_read(struct pci_bus *pb, int devfn, int offset, int size)
{
    struct pci_dev *d = pb->dev[devfn & 0xff];
    if (!d)
        return size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
    uint32_t v = 0;
    for (int k = 0; k < size && offset + k < 256; k++)
        v |= (uint32_t)d->config[offset + k] << (8 * k);
    if (d->config_read)
        v = d->config_read(d, offset, size, v);
    return v;
}

void pci_config_write(struct pci_bus *pb, int devfn, int offset, uint32_t val, int size)
{
    struct pci_dev *d = pb->dev[devfn & 0xff];
    if (!d)
        return;
    for (int k = 0; k < size && offset + k < 256; k++) {
        uint8_t m = d->wmask[offset + k];
        uint8_t b = val >> (8 * k);
        d->config[offset + k] = (d->config[offset + k] & ~m) | (b & m);
    }
    bool touches_decode = offset < 0x40 && (offset + size > PCI_COMMAND && offset <= 0x34);
    if (touches_decode)
        update_mappings(d);
    if (d->config_write)
        d->config_write(d, offset, val, size);
    if (offset <= PCI_COMMAND + 1 && offset + size > PCI_COMMAND + 1)
        update_intx(d);
    /* A write to the router's PIRQ registers moves asserted levels at once. */
    update_isa_lines(pb);
}

static uint32_t cf8_read(void *opaque, uint16_t port, int size)
{
    struct pci_bus *pb = opaque;
    if (port == 0xcf8 && size == 4)
        return pb->config_address;
    return size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

static void cf8_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct pci_bus *pb = opaque;
    /* Only doubleword accesses reach CONFIG_ADDRESS; byte/word go to the ISA bus. */
    if (port == 0xcf8 && size == 4)
        pb->config_address = val & 0x80fffffcu;
}

/* Decode CONFIG_ADDRESS: returns false for disabled, other buses. */
static bool target(const struct pci_bus *pb, uint16_t port, int *devfn, int *offset)
{
    uint32_t a = pb->config_address;
    if (!(a & 0x80000000u) || ((a >> 16) & 0xff) != 0)
        return false;
    *devfn = (a >> 8) & 0xff;
    *offset = (a & 0xfc) + (port & 3);
    return true;
}

static uint32_t cfc_read(void *opaque, uint16_t port, int size)
{
    struct pci_bus *pb = opaque;
    int devfn, offset;
    if (!target(pb, port, &devfn, &offset))
        return size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
    return pci_config_read(pb, devfn, offset, size);
}

static void cfc_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct pci_bus *pb = opaque;
    int devfn, offset;
    if (target(pb, port, &devfn, &offset))
        pci_config_write(pb, devfn, offset, val, size);
}

static void pci_bus_reset(void *opaque)
{
    struct pci_bus *pb = opaque;
    pb->config_address = 0;
    for (int k = 0; k < 256; k++) {
        struct pci_dev *d = pb->dev[k];
        if (!d)
            continue;
        /* Decode off, BARs back to their type bits: firmware assigns them again. */
        pci_set16(d, PCI_COMMAND, 0);
        for (int b = 0; b < PCI_BAR_COUNT; b++)
            if (d->bar[b].size)
                pci_set32(d, PCI_BAR0 + 4 * b, d->bar[b].io ? 1 : (d->bar[b].prefetch ? 8 : 0));
        if (d->rom.size)
            pci_set32(d, PCI_ROM_BAR, 0);
        d->config[0x3c] = 0;
        update_mappings(d);
        if (d->reset)
            d->reset(d);
    }
    /* INTx disable is clear again and the router back to its defaults. */
    for (int k = 0; k < 256; k++)
        if (pb->dev[k])
            update_intx(pb->dev[k]);
    update_isa_lines(pb);
}

/* The routing counts are saved too, although they follow from the
 * functions' INTx levels: loaded as they were, they match the levels the
 * loaded interrupt controllers hold, and no line moves in between. */
static const struct state_field pci_bus_fields[] = {
    STATE_FIELD(struct pci_bus, config_address), STATE_FIELD(struct pci_bus, pirq_level),
    STATE_FIELD(struct pci_bus, intx_pirq), STATE_FIELD(struct pci_bus, isa_driven),
    STATE_FIELD(struct pci_bus, pirq_driven),
};
static const struct state_table pci_bus_state = { "pci-bus", 1, pci_bus_fields, STATE_COUNT(pci_bus_fields), NULL };

struct pci_bus *pci_bus_new(struct bus *b)
{
    struct pci_bus *pb = xcalloc(1, sizeof(*pb));
    pb->bus = b;
    memset(pb->intx_pirq, -1, sizeof(pb->intx_pirq));
    bus_register_pio(b, 0xcf8, 4, pb, cf8_read, cf8_write);
    bus_register_pio(b, 0xcfc, 4, pb, cfc_read, cfc_write);
    struct device dev = { "pci-bus", pb, pci_bus_reset, &pci_bus_state };
    bus_add_device(b, &dev);
    return pb;
}

void pci_bus_free(struct pci_bus *pb)
{
    free(pb);
}

struct bus *pci_bus_isa(struct pci_bus *pb)
{
    return pb->bus;
}

void pci_bus_set_router(struct pci_bus *pb, pirq_route_fn fn, void *opaque)
{
    pb->route = fn;
    pb->route_opaque = opaque;
}

void pci_set_irq(struct pci_dev *d, int level)
{
    if (!d->bus)
        return;
    d->irq_level = !!level;
    update_intx(d);
}
