/* pc-testdev (see pctestdev.h). */
#include "devices/pctestdev.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/state.h"
#include "hosted-driver/xalloc.h"

#define DATA_PORT 0xe0
#define FLUSH_PORT 0xe4
#define IRQ_PORT 0x2000

struct pctestdev {
    struct bus *bus;
    uint32_t irq_levels;    /* lines held by writes to IRQ_PORT + n */
    uint32_t data;
    uint8_t iomem[PCTESTDEV_IORAM_LEN];
};

static uint32_t width_mask(int size)
{
    return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

static uint32_t data_read(void *opaque, uint16_t port, int size)
{
    struct pctestdev *t = opaque;
    return t->data >> (8 * (port & 3));
}

static void data_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct pctestdev *t = opaque;
    int shift = 8 * (port & 3);
    uint32_t mask = width_mask(size) << shift;
    t->data = (t->data & ~mask) | ((val << shift) & mask);
}

static void irq_line_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct pctestdev *t = opaque;
    int line = port - IRQ_PORT;
    if (val)
        t->irq_levels |= 1u << line;
    else
        t->irq_levels &= ~(1u << line);
    irq_set(t->bus, line, val != 0);
}

static uint32_t iomem_read(void *opaque, uint32_t addr, int size)
{
    struct pctestdev *t = opaque;
    uint32_t v = 0;
    if (addr < PCTESTDEV_IORAM_LEN && size <= (int)(PCTESTDEV_IORAM_LEN - addr))
        memcpy(&v, t->iomem + addr, size);
    return v;
}

static void iomem_write(void *opaque, uint32_t addr, uint32_t val, int size)
{
    struct pctestdev *t = opaque;
    if (addr < PCTESTDEV_IORAM_LEN && size <= (int)(PCTESTDEV_IORAM_LEN - addr))
        memcpy(t->iomem + addr, &val, size);
}

static void pctestdev_reset(void *opaque)
{
    struct pctestdev *t = opaque;
    t->data = 0;
}

static void pctestdev_post_load(void *opaque)
{
    struct pctestdev *t = opaque;
    for (int line = 0; line < BUS_IRQ_LINES; line++)
        if (t->irq_levels & (1u << line))
            irq_set(t->bus, line, 1);
}

static const struct state_field pctestdev_fields[] = {
    STATE_FIELD(struct pctestdev, irq_levels), STATE_FIELD(struct pctestdev, data),
    STATE_FIELD(struct pctestdev, iomem),
};
static const struct state_table pctestdev_state = { "pc-testdev", 1, pctestdev_fields,
                                                    STATE_COUNT(pctestdev_fields), pctestdev_post_load };

struct pctestdev *pctestdev_new(struct bus *b)
{
    struct pctestdev *t = xcalloc(1, sizeof(*t));
    t->bus = b;
    bus_register_pio(b, DATA_PORT, 4, t, data_read, data_write);
    bus_register_pio(b, FLUSH_PORT, 4, t, NULL, NULL);
    bus_register_pio(b, IRQ_PORT, BUS_IRQ_LINES, t, NULL, irq_line_write);
    bus_register_mmio(b, PCTESTDEV_IORAM_BASE, PCTESTDEV_IORAM_LEN, t, iomem_read, iomem_write);
    bus_add_device(b, &(struct device){ .name = "pc-testdev", .opaque = t, .reset = pctestdev_reset, .state = &pctestdev_state });
    return t;
}

void pctestdev_free(struct pctestdev *t)
{
    free(t);
}
