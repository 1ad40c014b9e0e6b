/*
 * Test helper: the bench a device's unit test drives it on, through its ports
 * as a driver would.  A deterministic virtual clock, a bus, a PCI bus when
 * asked for, fake guest RAM that devices reach only through bench_ram_rw
 * (bounds-checked as machine.c's guest_phys_rw is, so DMA past its end
 * fails), and an IRQ sink recording each line's level and rising edges.
 * A test's struct env holds one as `hw` and passes &e->hw as the opaque of
 * bench_ram_rw.
 */
#ifndef RV_TEST_DEVICE_BENCH_H
#define RV_TEST_DEVICE_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/pci.h"
#include "hosted-driver/vclock.h"

struct bench {
    struct vclock *clk;
    struct bus *b;
    struct pci_bus *pb;         /* NULL unless asked for */
    uint8_t *ram;
    uint32_t ram_size;
    int level[BUS_IRQ_LINES];
    int edges[BUS_IRQ_LINES];   /* rising edges since the last reset of the count */
};

static inline bool bench_ram_rw(void *opaque, uint64_t gpa, void *buf, uint32_t len, bool write)
{
    struct bench *t = opaque;
    if (gpa > t->ram_size || len > t->ram_size - gpa)
        return false;
    if (write)
        memcpy(t->ram + gpa, buf, len);
    else
        memcpy(buf, t->ram + gpa, len);
    return true;
}

static inline void bench_irq_sink(void *opaque, int line, int level)
{
    struct bench *t = opaque;
    if (line < 0 || line >= BUS_IRQ_LINES)
        return;
    if (level && !t->level[line])
        t->edges[line]++;
    t->level[line] = level;
}

static inline void bench_init(struct bench *t, uint32_t ram_size, bool with_pci)
{
    memset(t, 0, sizeof(*t));
    t->ram = calloc(1, ram_size);
    t->ram_size = ram_size;
    t->clk = vclock_new(true, 1);
    t->b = bus_new(t->clk);
    bus_set_irq_sink(t->b, bench_irq_sink, t);
    if (with_pci)
        t->pb = pci_bus_new(t->b);
}

/* After the devices on it are freed. */
static inline void bench_free(struct bench *t)
{
    if (t->pb)
        pci_bus_free(t->pb);
    bus_free(t->b);
    vclock_free(t->clk);
    free(t->ram);
}

#endif
