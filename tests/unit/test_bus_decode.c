/*
 * Overlapping decode on the bus (issue 26 #3 and #5): a guest that moves PCI
 * BARs or toggles their decode forever must not grow the bus's tables, and
 * the legacy ports and memory a BAR covered decode again when it leaves.
 * Priority, as on the PIIX: a BAR (positive decode) beats the subtractive
 * ISA devices; within a class the later registration wins.
 *
 * The machine here is the real PCI bus, i440FX, PIIX3 (0xCF9), the PIIX3
 * IDE function (its bus-master BAR4) and isa-debug-exit (0xF4), plus a test
 * card whose I/O and memory BARs answer with a recognisable pattern.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/debugexit.h"
#include "devices/i440fx.h"
#include "devices/ide.h"
#include "devices/pci.h"
#include "devices/piix3.h"
#include "hosted-driver/vclock.h"

#define CARD_SLOT 5
#define CARD_DEVFN (CARD_SLOT << 3)
#define CARD_IO_SIZE 16
#define CARD_MEM_SIZE 0x20000
#define CARD_PATTERN 0xa5
#define LEGACY_MMIO 0xa0000
#define LEGACY_MMIO_VALUE 0x11

#define CMD_IO 0x1
#define CMD_MEM 0x2

struct env {
    struct vclock *clk;
    struct bus *b;
    struct pci_bus *pb;
    struct pci_dev card;
    uint32_t io_base, mem_base;
    int card_writes;
    struct ide *ide;
};

static uint32_t card_io_read(void *opaque, uint16_t port, int size)
{
    return CARD_PATTERN * 0x01010101u;
}

static void card_io_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct env *e = opaque;
    e->card_writes++;
}

static uint32_t card_mem_read(void *opaque, uint32_t addr, int size)
{
    return CARD_PATTERN * 0x01010101u;
}

static uint32_t legacy_mem_read(void *opaque, uint32_t addr, int size)
{
    return LEGACY_MMIO_VALUE;
}

/* The map callbacks every device writes: drop the old claim, make the new one. */
static void card_io_map(struct pci_dev *d, int bar, uint32_t base)
{
    struct env *e = d->opaque;
    if (e->io_base != PCI_BAR_UNMAPPED)
        bus_unregister_pio(e->b, (uint16_t)e->io_base, CARD_IO_SIZE);
    e->io_base = base > 0x10000 - CARD_IO_SIZE ? PCI_BAR_UNMAPPED : base;
    if (e->io_base != PCI_BAR_UNMAPPED)
        bus_register_pio(e->b, (uint16_t)base, CARD_IO_SIZE, e, card_io_read, card_io_write);
}

static void card_mem_map(struct pci_dev *d, int bar, uint32_t base)
{
    struct env *e = d->opaque;
    if (e->mem_base != PCI_BAR_UNMAPPED)
        bus_unregister_mmio(e->b, e->mem_base, CARD_MEM_SIZE);
    e->mem_base = base;
    if (base != PCI_BAR_UNMAPPED)
        bus_register_mmio(e->b, base, CARD_MEM_SIZE, e, card_mem_read, NULL);
}

static bool no_dma(void *opaque, uint64_t gpa, void *buf, uint32_t len, bool write)
{
    return false;
}

static void no_pam(void *opaque, uint32_t base, uint32_t len, bool read_ram, bool write_ram)
{
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->clk = vclock_new(true, 1);
    e->b = bus_new(e->clk);
    e->pb = pci_bus_new(e->b);
    i440fx_new(e->pb, no_pam, NULL);
    piix3_new(e->pb, e->b);
    debugexit_new(e->b, 0xf4);
    e->ide = ide_new(e->b, e->pb, no_dma, NULL);
    bus_register_mmio(e->b, LEGACY_MMIO, CARD_MEM_SIZE, e, legacy_mem_read, NULL);
    pci_dev_init(&e->card, "card", CARD_DEVFN, 0x1234, 0x5678, 0x020000, 0);
    e->card.opaque = e;
    e->io_base = e->mem_base = PCI_BAR_UNMAPPED;
    pci_set_bar(&e->card, 0, CARD_IO_SIZE, true, card_io_map);
    pci_set_bar(&e->card, 1, CARD_MEM_SIZE, false, card_mem_map);
    pci_register(e->pb, &e->card);
    bus_reset_devices(e->b);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    bus_free(e->b);
    vclock_free(e->clk);
    free(e);
    return 0;
}

/* Configuration cycles as the guest makes them, through 0xCF8/0xCFC. */
static void cfg_write(struct env *e, int devfn, int off, uint32_t val, int size)
{
    bus_pio_write(e->b, 0xcf8, 0x80000000u | (devfn << 8) | (off & 0xfc), 4);
    bus_pio_write(e->b, 0xcfc + (off & 3), val, size);
}

static uint32_t cfg_read(struct env *e, int devfn, int off, int size)
{
    bus_pio_write(e->b, 0xcf8, 0x80000000u | (devfn << 8) | (off & 0xfc), 4);
    return bus_pio_read(e->b, 0xcfc + (off & 3), size);
}

/* Toggling the IDE function's I/O decode used to append a port handler each
 * time, until "too many port I/O registrations" ended the VMM (~65,000). */
static void test_ide_decode_toggles_keep_tables_bounded(void **state)
{
    struct env *e = *state;
    cfg_write(e, IDE_PCI_DEVFN, 0x20, 0xc000, 4);
    cfg_write(e, IDE_PCI_DEVFN, 0x04, CMD_IO, 2);
    assert_true(bus_pio_claimed(e->b, 0xc000));
    int slots = bus_pio_slots(e->b);
    for (int k = 0; k < 1000000; k++) {
        cfg_write(e, IDE_PCI_DEVFN, 0x04, 0, 2);
        assert_false(bus_pio_claimed(e->b, 0xc000));
        cfg_write(e, IDE_PCI_DEVFN, 0x04, CMD_IO, 2);
    }
    assert_int_equal(bus_pio_slots(e->b), slots);
    assert_true(bus_pio_claimed(e->b, 0xc00f));
    /* The bus-master status register (offset 2) answers, not the all-ones of nobody. */
    assert_int_not_equal(bus_pio_read(e->b, 0xc002, 1), 0xff);
}

static void test_bar_moves_keep_tables_bounded(void **state)
{
    struct env *e = *state;
    cfg_write(e, CARD_DEVFN, 0x04, CMD_IO | CMD_MEM, 2);
    cfg_write(e, IDE_PCI_DEVFN, 0x04, CMD_IO, 2);
    cfg_write(e, CARD_DEVFN, 0x10, 0x1000, 4);
    cfg_write(e, CARD_DEVFN, 0x14, 0xe0000000u, 4);
    cfg_write(e, IDE_PCI_DEVFN, 0x20, 0x2000, 4);
    int slots = bus_pio_slots(e->b), regions = bus_mmio_regions(e->b);
    uint32_t seed = 12345;
    for (int k = 0; k < 1000000; k++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t port = (seed >> 8) & 0xfff0;
        /* Directly: a BAR that lands on 0xCF8 hides the configuration ports. */
        pci_config_write(e->pb, k & 1 ? CARD_DEVFN : IDE_PCI_DEVFN, k & 1 ? 0x10 : 0x20, port, 4);
        if ((k & 7) == 0)
            pci_config_write(e->pb, CARD_DEVFN, 0x14, seed & ~(CARD_MEM_SIZE - 1u), 4);
    }
    assert_int_equal(bus_pio_slots(e->b), slots);
    assert_int_equal(bus_mmio_regions(e->b), regions);
    /* The guest can still reach configuration space and the legacy ports. */
    pci_config_write(e->pb, CARD_DEVFN, 0x10, 0x1000, 4);
    pci_config_write(e->pb, IDE_PCI_DEVFN, 0x20, 0x2000, 4);
    assert_int_equal(cfg_read(e, CARD_DEVFN, 0x00, 4), 0x56781234);
    assert_int_equal(bus_pio_read(e->b, 0x1004, 1), CARD_PATTERN);
}

/* A guest that hides configuration space under a BAR gets it back at reset,
 * which is what lets SeaBIOS find the host bridge after a reboot. */
static void test_reset_unhides_configuration_space(void **state)
{
    struct env *e = *state;
    cfg_write(e, CARD_DEVFN, 0x04, CMD_IO, 2);
    cfg_write(e, CARD_DEVFN, 0x10, 0xcf0, 4);
    assert_int_equal(cfg_read(e, 0, 0x00, 4), CARD_PATTERN * 0x01010101u);
    bus_reset_devices(e->b);
    assert_int_equal(cfg_read(e, 0, 0x00, 4), 0x12378086);
}

/* Move the card's I/O BAR with a configuration cycle that does not go
 * through the ports it may be covering. */
static void place_io_bar(struct env *e, uint32_t base)
{
    pci_config_write(e->pb, CARD_DEVFN, 0x10, base, 4);
}

static void test_config_ports_return_after_a_bar_leaves(void **state)
{
    struct env *e = *state;
    cfg_write(e, CARD_DEVFN, 0x04, CMD_IO, 2);
    place_io_bar(e, 0xcf0);               /* covers 0xCF8-0xCFF */
    assert_int_equal(bus_pio_read(e->b, 0xcf8, 4), CARD_PATTERN * 0x01010101u);
    assert_int_equal(bus_pio_read(e->b, 0xcfc, 2), CARD_PATTERN * 0x0101u);
    place_io_bar(e, 0x1000);
    assert_int_equal(cfg_read(e, CARD_DEVFN, 0x00, 4), 0x56781234);
    bus_pio_write(e->b, 0xcf8, 0x80001234u & ~3u, 4);
    assert_int_equal(bus_pio_read(e->b, 0xcf8, 4), 0x80001234u & ~3u);
    assert_int_equal(bus_pio_read(e->b, 0x1000, 1), CARD_PATTERN);
}

static void test_reset_control_returns_after_a_bar_leaves(void **state)
{
    struct env *e = *state;
    cfg_write(e, CARD_DEVFN, 0x04, CMD_IO, 2);
    bus_pio_write(e->b, 0xcf9, 0x02, 1);    /* SYS_RST without RST_CPU: no reset */
    assert_int_equal(bus_pio_read(e->b, 0xcf9, 1), 0x02);
    place_io_bar(e, 0xcf0);
    assert_int_equal(bus_pio_read(e->b, 0xcf9, 1), CARD_PATTERN);
    bus_pio_write(e->b, 0xcf9, 0x06, 1);    /* reaches the card, not the reset line */
    assert_int_equal(bus_pending_request(e->b, NULL), BUS_REQ_NONE);
    /* Disabling decode takes the BAR away just as moving it does. */
    pci_config_write(e->pb, CARD_DEVFN, 0x04, 0, 2);
    assert_int_equal(bus_pio_read(e->b, 0xcf9, 1), 0x02);
    bus_pio_write(e->b, 0xcf9, 0x06, 1);
    assert_int_equal(bus_pending_request(e->b, NULL), BUS_REQ_RESET);
}

static void test_debug_exit_returns_after_a_bar_leaves(void **state)
{
    struct env *e = *state;
    cfg_write(e, CARD_DEVFN, 0x04, CMD_IO, 2);
    place_io_bar(e, 0xf0);                /* covers 0xF4 */
    int writes = e->card_writes;
    bus_pio_write(e->b, 0xf4, 0x21, 1);
    assert_int_equal(e->card_writes, writes + 1);
    assert_int_equal(bus_pending_request(e->b, NULL), BUS_REQ_NONE);
    place_io_bar(e, 0x2000);
    int status = 0;
    bus_pio_write(e->b, 0xf4, 0x21, 1);
    assert_int_equal(bus_pending_request(e->b, &status), BUS_REQ_EXIT);
    assert_int_equal(status, (0x21 << 1) | 1);
}

/* The IDE bus-master BAR over the legacy IDE command block and back. */
static void test_legacy_ide_ports_return_after_bm_bar_leaves(void **state)
{
    struct env *e = *state;
    uint32_t before = bus_pio_read(e->b, 0x1f7, 1);    /* status, no drive */
    cfg_write(e, IDE_PCI_DEVFN, 0x04, CMD_IO, 2);
    cfg_write(e, IDE_PCI_DEVFN, 0x20, 0x1f0, 4);
    cfg_write(e, IDE_PCI_DEVFN, 0x20, 0xc040, 4);
    assert_int_equal(bus_pio_read(e->b, 0x1f7, 1), before);
    assert_true(bus_pio_claimed(e->b, 0x1f0));
    assert_true(bus_pio_claimed(e->b, 0xc040));
    assert_false(bus_pio_claimed(e->b, 0x1f8));
}

static void test_legacy_memory_returns_after_a_bar_leaves(void **state)
{
    struct env *e = *state;
    uint32_t v = 0;
    cfg_write(e, CARD_DEVFN, 0x04, CMD_MEM, 2);
    cfg_write(e, CARD_DEVFN, 0x14, LEGACY_MMIO, 4);
    assert_true(bus_mmio_read(e->b, LEGACY_MMIO + 8, 1, &v));
    assert_int_equal(v, CARD_PATTERN);
    cfg_write(e, CARD_DEVFN, 0x14, 0xe0000000u, 4);
    assert_true(bus_mmio_read(e->b, LEGACY_MMIO + 8, 1, &v));
    assert_int_equal(v, LEGACY_MMIO_VALUE);
    assert_true(bus_mmio_read(e->b, 0xe0000000u, 1, &v));
    assert_int_equal(v, CARD_PATTERN);
    cfg_write(e, CARD_DEVFN, 0x04, 0, 2);
    assert_false(bus_mmio_read(e->b, 0xe0000000u, 1, &v));
}

/* A BAR wins even when the ISA device registered after it (positive over
 * subtractive decode is not a matter of order). */
static void test_positive_decode_beats_later_isa_claim(void **state)
{
    struct env *e = *state;
    cfg_write(e, CARD_DEVFN, 0x04, CMD_IO, 2);
    place_io_bar(e, 0x3000);
    debugexit_new(e->b, 0x3004);
    assert_int_equal(bus_pio_read(e->b, 0x3004, 1), CARD_PATTERN);
    place_io_bar(e, 0x4000);
    bus_pio_write(e->b, 0x3004, 1, 1);
    assert_int_equal(bus_pending_request(e->b, NULL), BUS_REQ_EXIT);
}

/* What the CPU decodes itself (the local APIC) is never hidden by a BAR. */
static void test_processor_decode_beats_a_bar(void **state)
{
    struct env *e = *state;
    uint32_t v = 0;
    enum bus_decode old = bus_set_decode(e->b, BUS_DECODE_PROCESSOR);
    bus_register_mmio(e->b, 0xfee00000u, 0x1000, e, legacy_mem_read, NULL);
    bus_set_decode(e->b, old);
    cfg_write(e, CARD_DEVFN, 0x04, CMD_MEM, 2);
    cfg_write(e, CARD_DEVFN, 0x14, 0xfee00000u, 4);
    assert_true(bus_mmio_read(e->b, 0xfee00010u, 4, &v));
    assert_int_equal(v, LEGACY_MMIO_VALUE);
    assert_true(bus_mmio_read(e->b, 0xfee01000u, 1, &v));
    assert_int_equal(v, CARD_PATTERN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ide_decode_toggles_keep_tables_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bar_moves_keep_tables_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_ports_return_after_a_bar_leaves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_unhides_configuration_space, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_control_returns_after_a_bar_leaves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_debug_exit_returns_after_a_bar_leaves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_ide_ports_return_after_bm_bar_leaves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_memory_returns_after_a_bar_leaves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_positive_decode_beats_later_isa_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_processor_decode_beats_a_bar, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
