/*
 * PCI bus 0 (configuration mechanism #1), the i440FX host bridge and the
 * PIIX3 ISA bridge, driven through ports 0xCF8/0xCFC-0xCFF/0xCF9 the way
 * SeaBIOS and Linux do.  A test function ("nic", 03.0) with an I/O BAR,
 * two memory BARs and an expansion ROM stands in for an add-in card.
 *
 * References: PCI Local Bus Specification 3.0 (3.2.2.3.2 configuration
 * mechanism #1, 6.2 configuration header, 6.2.5 BARs); Intel 82441FX PAM
 * registers; Intel 82371SB (PIIX3) PIRQRC[A:D] and RC (0xCF9); the PIRQ
 * wiring of QEMU's PC as SeaBIOS computes it (piix_pci_slot_get_irq:
 * PIRQ = (slot - 1 + pin - 1) & 3).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/i440fx.h"
#include "devices/pci.h"
#include "devices/piix3.h"
#include "hosted-driver/vclock.h"

#define NIC_SLOT 3
#define NIC2_SLOT 4
#define ROM_SLOT PCI_BAR_COUNT

#define CMD_IO 0x0001
#define CMD_MEM 0x0002
#define CMD_MASTER 0x0004
#define CMD_INTX_DISABLE 0x0400
#define STATUS_INTX 0x0008

#define MAX_LOG 64

struct map_call {
    int bar;
    uint32_t base;
};

struct pam_state {
    bool seen;
    uint32_t len;
    bool read_ram, write_ram;
};

struct env {
    struct vclock *clk;
    struct bus *b;
    struct pci_bus *pb;
    struct i440fx *host;
    struct piix3 *isa;
    struct pci_dev nic, nic2;
    struct map_call maps[MAX_LOG];
    int nmaps;
    /* PAM: last state reported per 16 KiB block of 0xC0000-0xFFFFF. */
    struct pam_state pam[16];
    int pam_calls;
    int level[BUS_IRQ_LINES];    /* 0-15 ISA IRQs, 16-19 PIRQA-D as the I/O APIC sees them */
    int edges[BUS_IRQ_LINES];
};

/* ---- fixtures ---- */

static void sink(void *opaque, int line, int level)
{
    struct env *e = opaque;
    assert_in_range(line, 0, BUS_IRQ_PIRQ_BASE + 3);
    if (level && !e->level[line])
        e->edges[line]++;
    e->level[line] = level;
}

static void pam_cb(void *opaque, uint32_t base, uint32_t len, bool read_ram, bool write_ram)
{
    struct env *e = opaque;
    assert_true(base >= 0xc0000 && base + len <= 0x100000);
    assert_int_equal(base & 0x3fff, 0);
    assert_int_equal(len & 0x3fff, 0);
    for (uint32_t a = base; a < base + len; a += 0x4000) {
        struct pam_state *s = &e->pam[(a - 0xc0000) >> 14];
        s->seen = true;
        s->len = len;
        s->read_ram = read_ram;
        s->write_ram = write_ram;
    }
    e->pam_calls++;
}

static struct env *env_of(struct pci_dev *d)
{
    return d->opaque;
}

static void nic_map(struct pci_dev *d, int bar, uint32_t base)
{
    struct env *e = env_of(d);
    assert_true(e->nmaps < MAX_LOG);
    e->maps[e->nmaps++] = (struct map_call){ bar, base };
}

/* A device lowers its INTx pin when it is reset. */
static void nic_reset(struct pci_dev *d)
{
    pci_set_irq(d, 0);
}

static void make_nic(struct env *e, struct pci_dev *d, int slot)
{
    memset(d, 0, sizeof(*d));
    pci_dev_init(d, "nic", slot << 3, 0x10ec, 0x8029, 0x020000, 0x00);
    d->opaque = e;
    d->config[0x3d] = 1;                      /* INTA# */
    pci_set_bar(d, 0, 32, true, nic_map);
    pci_set_bar(d, 1, 4096, false, nic_map);
    d->bar[2].prefetch = true;
    pci_set_bar(d, 2, 1 << 20, false, nic_map);
    pci_set_rom(d, 64 << 10, nic_map);
    d->reset = nic_reset;
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->clk = vclock_new(true, 1);
    e->b = bus_new(e->clk);
    bus_set_irq_sink(e->b, sink, e);
    e->pb = pci_bus_new(e->b);
    e->host = i440fx_new(e->pb, pam_cb, e);
    e->isa = piix3_new(e->pb, e->b);
    make_nic(e, &e->nic, NIC_SLOT);
    pci_register(e->pb, &e->nic);
    make_nic(e, &e->nic2, NIC2_SLOT);
    pci_register(e->pb, &e->nic2);
    bus_reset_devices(e->b);
    e->nmaps = 0;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    pci_bus_free(e->pb);
    bus_free(e->b);
    vclock_free(e->clk);
    free(e->host);      /* the bridges have no destructor: their first member is the pci_dev */
    free(e->isa);
    free(e);
    return 0;
}

/* ---- guest-side helpers: configuration mechanism #1 ---- */

static uint32_t cfg_addr(int bus, int dev, int fn, int reg)
{
    return 0x80000000u | (uint32_t)bus << 16 | (uint32_t)dev << 11 | (uint32_t)fn << 8 | (reg & 0xfc);
}

static void select_reg(struct env *e, int dev, int fn, int reg)
{
    bus_pio_write(e->b, 0xcf8, cfg_addr(0, dev, fn, reg), 4);
}

static uint32_t cfg_read(struct env *e, int dev, int fn, int reg, int size)
{
    select_reg(e, dev, fn, reg);
    return bus_pio_read(e->b, 0xcfc + (reg & 3), size);
}

static void cfg_write(struct env *e, int dev, int fn, int reg, uint32_t val, int size)
{
    select_reg(e, dev, fn, reg);
    bus_pio_write(e->b, 0xcfc + (reg & 3), val, size);
}

static uint32_t rd32(struct env *e, int dev, int reg) { return cfg_read(e, dev, 0, reg, 4); }
static uint32_t rd16(struct env *e, int dev, int reg) { return cfg_read(e, dev, 0, reg, 2); }
static uint32_t rd8(struct env *e, int dev, int reg) { return cfg_read(e, dev, 0, reg, 1); }
static void wr32(struct env *e, int dev, int reg, uint32_t v) { cfg_write(e, dev, 0, reg, v, 4); }
static void wr16(struct env *e, int dev, int reg, uint32_t v) { cfg_write(e, dev, 0, reg, v, 2); }
static void wr8(struct env *e, int dev, int reg, uint32_t v) { cfg_write(e, dev, 0, reg, v, 1); }

/* The map calls since the last check must be exactly `n` of these, in order. */
static void expect_maps(struct env *e, int n, const struct map_call *want)
{
    assert_int_equal(e->nmaps, n);
    for (int k = 0; k < n; k++) {
        assert_int_equal(e->maps[k].bar, want[k].bar);
        assert_int_equal(e->maps[k].base, want[k].base);
    }
    e->nmaps = 0;
}

/* BAR sizing as SeaBIOS and Linux do it: save, write all ones, read, restore. */
static uint32_t size_bar(struct env *e, int dev, int reg, uint32_t ones)
{
    uint32_t old = rd32(e, dev, reg);
    wr32(e, dev, reg, ones);
    uint32_t v = rd32(e, dev, reg);
    wr32(e, dev, reg, old);
    return v;
}

/* ---- configuration mechanism #1 ---- */

static void test_config_address_register(void **state)
{
    struct env *e = *state;
    bus_pio_write(e->b, 0xcf8, 0x80000000, 4);
    assert_int_equal(bus_pio_read(e->b, 0xcf8, 4), 0x80000000);
    bus_pio_write(e->b, 0xcf8, cfg_addr(0, 3, 0, 0x3c), 4);
    assert_int_equal(bus_pio_read(e->b, 0xcf8, 4), 0x8000183c);
    bus_pio_write(e->b, 0xcf8, cfg_addr(0xab, 0x1f, 7, 0xfc), 4);
    assert_int_equal(bus_pio_read(e->b, 0xcf8, 4), 0x80abfffc);
    bus_pio_write(e->b, 0xcf8, 0x00001234, 4);
    assert_int_equal(bus_pio_read(e->b, 0xcf8, 4), 0x00001234);
    /* Bits 30:24 are reserved and bits 1:0 read-only: they read as 0. */
    bus_pio_write(e->b, 0xcf8, 0xff000803, 4);
    assert_int_equal(bus_pio_read(e->b, 0xcf8, 4), 0x80000800);
}

static void test_config_address_needs_dword(void **state)
{
    struct env *e = *state;
    bus_pio_write(e->b, 0xcf8, 0x80000000, 4);
    /* Byte and word accesses to 0xCF8-0xCFB are not CONFIG_ADDRESS. */
    bus_pio_write(e->b, 0xcf8, 0x00, 1);
    bus_pio_write(e->b, 0xcfa, 0x00, 1);
    bus_pio_write(e->b, 0xcfb, 0x00, 1);
    bus_pio_write(e->b, 0xcf8, 0x0000, 2);
    bus_pio_write(e->b, 0xcfa, 0x0000, 2);
    assert_int_equal(bus_pio_read(e->b, 0xcf8, 4), 0x80000000);
    /* Linux's mechanism #2 probe (outb 0 to 0xCFB/0xCF8/0xCFA, both read back 0) must fail. */
    bool conf2 = bus_pio_read(e->b, 0xcf8, 1) == 0 && bus_pio_read(e->b, 0xcfa, 1) == 0;
    assert_false(conf2);
    /* Linux's mechanism #1 probe. */
    bus_pio_write(e->b, 0xcfb, 0x01, 1);
    uint32_t saved = bus_pio_read(e->b, 0xcf8, 4);
    bus_pio_write(e->b, 0xcf8, 0x80000000, 4);
    assert_int_equal(bus_pio_read(e->b, 0xcf8, 4), 0x80000000);
    bus_pio_write(e->b, 0xcf8, saved, 4);
    assert_int_equal(bus_pio_read(e->b, 0xcf8, 4), saved);
}

static void test_data_port_widths(void **state)
{
    struct env *e = *state;
    /* Reads of the host bridge's id dword at every width and byte lane. */
    assert_int_equal(rd32(e, 0, 0x00), 0x12378086);
    assert_int_equal(rd16(e, 0, 0x00), 0x8086);
    assert_int_equal(rd16(e, 0, 0x02), 0x1237);
    assert_int_equal(rd8(e, 0, 0x00), 0x86);
    assert_int_equal(rd8(e, 0, 0x01), 0x80);
    assert_int_equal(rd8(e, 0, 0x02), 0x37);
    assert_int_equal(rd8(e, 0, 0x03), 0x12);
    /* Writes of each width land on their byte lane only. */
    wr32(e, NIC_SLOT, 0x0c, 0);
    wr8(e, NIC_SLOT, 0x0d, 0x40);                 /* latency timer via 0xCFD */
    assert_int_equal(rd32(e, NIC_SLOT, 0x0c) & 0xffff, 0x4000);
    wr8(e, NIC_SLOT, 0x0c, 0x08);                 /* cache line size via 0xCFC */
    assert_int_equal(rd32(e, NIC_SLOT, 0x0c) & 0xffff, 0x4008);
    wr16(e, NIC_SLOT, 0x0c, 0x2010);
    assert_int_equal(rd32(e, NIC_SLOT, 0x0c) & 0xffff, 0x2010);
    wr8(e, NIC_SLOT, 0x3c, 0x0b);                 /* interrupt line, byte 0 of 0x3C */
    assert_int_equal(rd8(e, NIC_SLOT, 0x3c), 0x0b);
    assert_int_equal(rd8(e, NIC_SLOT, 0x3d), 0x01); /* interrupt pin via 0xCFD */
    assert_int_equal(rd16(e, NIC_SLOT, 0x3c), 0x010b);
    /* A word at 0xCFE reaches offset 2 of the selected dword. */
    select_reg(e, NIC_SLOT, 0, 0x00);
    assert_int_equal(bus_pio_read(e->b, 0xcfe, 2), 0x8029);
    assert_int_equal(bus_pio_read(e->b, 0xcfc, 2), 0x10ec);
}

static void test_absent_functions_read_ones(void **state)
{
    struct env *e = *state;
    int absent[][2] = { { 0, 1 }, { 0, 7 }, { 1, 3 }, { 2, 0 }, { 5, 0 }, { 31, 7 } };
    for (size_t k = 0; k < sizeof(absent) / sizeof(absent[0]); k++) {
        int dev = absent[k][0], fn = absent[k][1];
        assert_int_equal(cfg_read(e, dev, fn, 0x00, 4), 0xffffffff);
        assert_int_equal(cfg_read(e, dev, fn, 0x02, 2), 0xffff);
        assert_int_equal(cfg_read(e, dev, fn, 0x0e, 1), 0xff);
        cfg_write(e, dev, fn, 0x04, 0xffffffff, 4);   /* goes nowhere */
        assert_int_equal(cfg_read(e, dev, fn, 0x04, 4), 0xffffffff);
    }
    /* Type 1 cycles: there is no bus behind bus 0. */
    for (int bus = 1; bus < 256; bus += 127) {
        bus_pio_write(e->b, 0xcf8, cfg_addr(bus, 0, 0, 0), 4);
        assert_int_equal(bus_pio_read(e->b, 0xcfc, 4), 0xffffffff);
        bus_pio_write(e->b, 0xcf8, cfg_addr(bus, NIC_SLOT, 0, 0), 4);
        assert_int_equal(bus_pio_read(e->b, 0xcfc, 4), 0xffffffff);
    }
    /* Nothing reached the devices that are present. */
    assert_int_equal(rd32(e, 0, 0x00), 0x12378086);
    assert_int_equal(rd16(e, NIC_SLOT, 0x04), 0);
}

static void test_enable_bit_clear_not_decoded(void **state)
{
    struct env *e = *state;
    /* Bit 31 clear: CONFIG_DATA is not a configuration access. */
    bus_pio_write(e->b, 0xcf8, 0x00000000, 4);
    assert_int_equal(bus_pio_read(e->b, 0xcfc, 4), 0xffffffff);
    assert_int_equal(bus_pio_read(e->b, 0xcfc, 2), 0xffff);
    assert_int_equal(bus_pio_read(e->b, 0xcfd, 1), 0xff);
    bus_pio_write(e->b, 0xcf8, cfg_addr(0, NIC_SLOT, 0, 0x3c) & 0x7fffffff, 4);
    bus_pio_write(e->b, 0xcfc, 0x0a, 1);
    bus_pio_write(e->b, 0xcf8, cfg_addr(0, NIC_SLOT, 0, 0x04) & 0x7fffffff, 4);
    bus_pio_write(e->b, 0xcfc, CMD_IO | CMD_MEM, 2);
    bus_pio_write(e->b, 0xcf8, cfg_addr(0, 0, 0, 0x58) & 0x7fffffff, 4);
    int before = e->pam_calls;
    bus_pio_write(e->b, 0xcfd, 0x30, 1);
    assert_int_equal(e->pam_calls, before);
    assert_int_equal(rd8(e, NIC_SLOT, 0x3c), 0);
    assert_int_equal(rd16(e, NIC_SLOT, 0x04), 0);
    assert_int_equal(rd8(e, 0, 0x59), 0);
    assert_int_equal(e->nmaps, 0);
}

static void test_read_only_header_fields(void **state)
{
    struct env *e = *state;
    int devs[] = { 0, 1, NIC_SLOT };
    for (size_t k = 0; k < 3; k++) {
        int d = devs[k];
        uint32_t id = rd32(e, d, 0x00), rev_class = rd32(e, d, 0x08);
        uint32_t hdr = rd8(e, d, 0x0e), subsys = rd32(e, d, 0x2c), pin = rd8(e, d, 0x3d);
        uint16_t status = rd16(e, d, 0x06);
        wr32(e, d, 0x00, 0xffffffff);
        wr32(e, d, 0x08, 0xffffffff);
        wr8(e, d, 0x0e, 0xff);
        wr32(e, d, 0x2c, 0xffffffff);
        wr8(e, d, 0x3d, 0xff);
        wr16(e, d, 0x06, 0xffff);       /* status: write 1 clears, never sets */
        assert_int_equal(rd32(e, d, 0x00), id);
        assert_int_equal(rd32(e, d, 0x08), rev_class);
        assert_int_equal(rd8(e, d, 0x0e), hdr);
        assert_int_equal(rd32(e, d, 0x2c), subsys);
        assert_int_equal(rd8(e, d, 0x3d), pin);
        assert_int_equal(rd16(e, d, 0x06) & ~status, 0);
    }
}

static void test_command_register(void **state)
{
    struct env *e = *state;
    assert_int_equal(rd16(e, NIC_SLOT, 0x04), 0);
    wr16(e, NIC_SLOT, 0x04, 0xffff);
    uint16_t cmd = rd16(e, NIC_SLOT, 0x04);
    /* I/O, memory, bus master and interrupt disable are implemented; 11-15 reserved. */
    assert_int_equal(cmd & (CMD_IO | CMD_MEM | CMD_MASTER | CMD_INTX_DISABLE),
                     CMD_IO | CMD_MEM | CMD_MASTER | CMD_INTX_DISABLE);
    assert_int_equal(cmd & 0xf800, 0);
    wr16(e, NIC_SLOT, 0x04, 0);
    assert_int_equal(rd16(e, NIC_SLOT, 0x04), 0);
    /* A byte write to the high half of COMMAND leaves the low half alone. */
    wr16(e, NIC_SLOT, 0x04, CMD_MASTER);
    wr8(e, NIC_SLOT, 0x05, CMD_INTX_DISABLE >> 8);
    assert_int_equal(rd16(e, NIC_SLOT, 0x04), CMD_MASTER | CMD_INTX_DISABLE);
}

/* ---- BARs ---- */

static void test_bar_sizing(void **state)
{
    struct env *e = *state;
    /* Type bits before any assignment. */
    assert_int_equal(rd32(e, NIC_SLOT, 0x10), 0x00000001);
    assert_int_equal(rd32(e, NIC_SLOT, 0x14), 0x00000000);
    assert_int_equal(rd32(e, NIC_SLOT, 0x18), 0x00000008);
    /* 32-byte I/O, 4 KiB memory, 1 MiB prefetchable memory. */
    assert_int_equal(size_bar(e, NIC_SLOT, 0x10, 0xffffffff), 0xffffffe1);
    assert_int_equal(size_bar(e, NIC_SLOT, 0x14, 0xffffffff), 0xfffff000);
    assert_int_equal(size_bar(e, NIC_SLOT, 0x18, 0xffffffff), 0xfff00008);
    /* Unimplemented BARs are hardwired to 0. */
    for (int reg = 0x1c; reg <= 0x24; reg += 4)
        assert_int_equal(size_bar(e, NIC_SLOT, reg, 0xffffffff), 0);
    for (int reg = 0x10; reg <= 0x24; reg += 4) {
        assert_int_equal(size_bar(e, 0, reg, 0xffffffff), 0);
        assert_int_equal(size_bar(e, 1, reg, 0xffffffff), 0);
    }
    /* The restore put the type bits back. */
    assert_int_equal(rd32(e, NIC_SLOT, 0x10), 0x00000001);
    assert_int_equal(rd32(e, NIC_SLOT, 0x18), 0x00000008);
    /* Assignment keeps the type bits and drops the bits below the size. */
    wr32(e, NIC_SLOT, 0x10, 0xc10f);
    assert_int_equal(rd32(e, NIC_SLOT, 0x10), 0xc101);
    wr32(e, NIC_SLOT, 0x14, 0xfebf1fff);
    assert_int_equal(rd32(e, NIC_SLOT, 0x14), 0xfebf1000);
    wr32(e, NIC_SLOT, 0x18, 0xfd0fffff);
    assert_int_equal(rd32(e, NIC_SLOT, 0x18), 0xfd000008);
    /* No decode enabled: no mapping. */
    assert_int_equal(e->nmaps, 0);
}

static void test_bar_map_follows_command(void **state)
{
    struct env *e = *state;
    wr32(e, NIC_SLOT, 0x10, 0xc100);
    wr32(e, NIC_SLOT, 0x14, 0xfebf0000);
    wr32(e, NIC_SLOT, 0x18, 0xfd000000);
    assert_int_equal(e->nmaps, 0);

    wr16(e, NIC_SLOT, 0x04, CMD_IO);
    expect_maps(e, 1, (struct map_call[]){ { 0, 0xc100 } });
    wr16(e, NIC_SLOT, 0x04, CMD_IO | CMD_MEM);
    expect_maps(e, 2, (struct map_call[]){ { 1, 0xfebf0000 }, { 2, 0xfd000000 } });
    /* Rewriting the same value maps nothing again. */
    wr16(e, NIC_SLOT, 0x04, CMD_IO | CMD_MEM);
    wr32(e, NIC_SLOT, 0x14, 0xfebf0000);
    expect_maps(e, 0, NULL);
    /* Bus master does not change decoding. */
    wr16(e, NIC_SLOT, 0x04, CMD_IO | CMD_MEM | CMD_MASTER);
    expect_maps(e, 0, NULL);

    /* Moving BARs while decoding. */
    wr32(e, NIC_SLOT, 0x10, 0xc200);
    expect_maps(e, 1, (struct map_call[]){ { 0, 0xc200 } });
    wr32(e, NIC_SLOT, 0x14, 0xfebe0000);
    expect_maps(e, 1, (struct map_call[]){ { 1, 0xfebe0000 } });

    /* I/O decode off: only the I/O BAR goes away. */
    wr16(e, NIC_SLOT, 0x04, CMD_MEM | CMD_MASTER);
    expect_maps(e, 1, (struct map_call[]){ { 0, PCI_BAR_UNMAPPED } });
    /* Moving a BAR whose decode is off maps nothing... */
    wr32(e, NIC_SLOT, 0x10, 0xc300);
    expect_maps(e, 0, NULL);
    /* ...until decode comes back, at the new place. */
    wr16(e, NIC_SLOT, 0x04, CMD_IO | CMD_MEM);
    expect_maps(e, 1, (struct map_call[]){ { 0, 0xc300 } });

    /* Sizing with decode on: the all-ones pattern decodes nothing; the restore maps back. */
    wr32(e, NIC_SLOT, 0x14, 0xffffffff);
    expect_maps(e, 1, (struct map_call[]){ { 1, PCI_BAR_UNMAPPED } });
    wr32(e, NIC_SLOT, 0x14, 0xfebe0000);
    expect_maps(e, 1, (struct map_call[]){ { 1, 0xfebe0000 } });

    /* Memory decode off: both memory BARs go. */
    wr16(e, NIC_SLOT, 0x04, CMD_IO);
    expect_maps(e, 2, (struct map_call[]){ { 1, PCI_BAR_UNMAPPED }, { 2, PCI_BAR_UNMAPPED } });
    /* Byte write to COMMAND's low byte turning everything off. */
    wr8(e, NIC_SLOT, 0x04, 0);
    expect_maps(e, 1, (struct map_call[]){ { 0, PCI_BAR_UNMAPPED } });
    /* The other device saw nothing of this. */
    assert_int_equal(rd16(e, NIC2_SLOT, 0x04), 0);
}

static void test_bar_byte_writes(void **state)
{
    struct env *e = *state;
    wr16(e, NIC_SLOT, 0x04, CMD_MEM);
    expect_maps(e, 0, NULL);
    /* Programming a BAR a byte at a time (each intermediate value is a BAR move). */
    wr8(e, NIC_SLOT, 0x17, 0xfe);
    wr8(e, NIC_SLOT, 0x16, 0xbf);
    wr8(e, NIC_SLOT, 0x15, 0x20);
    assert_int_equal(rd32(e, NIC_SLOT, 0x14), 0xfebf2000);
    assert_true(e->nmaps > 0);
    assert_int_equal(e->maps[e->nmaps - 1].bar, 1);
    assert_int_equal(e->maps[e->nmaps - 1].base, 0xfebf2000);
    e->nmaps = 0;
    /* A word write at 0xCFE moves the upper half. */
    wr16(e, NIC_SLOT, 0x16, 0xfeb0);
    expect_maps(e, 1, (struct map_call[]){ { 1, 0xfeb02000 } });
}

static void test_rom_bar(void **state)
{
    struct env *e = *state;
    assert_int_equal(rd32(e, NIC_SLOT, 0x30), 0);
    /* Sizing as SeaBIOS does it (enable bit clear): a 64 KiB ROM. */
    assert_int_equal(size_bar(e, NIC_SLOT, 0x30, 0xfffffffe), 0xffff0000);
    /* With the enable bit in the pattern, the enable bit reads back; 10:1 stay 0. */
    assert_int_equal(size_bar(e, NIC_SLOT, 0x30, 0xffffffff), 0xffff0001);
    /* Functions without a ROM hardwire the register to 0. */
    assert_int_equal(size_bar(e, 0, 0x30, 0xffffffff), 0);
    assert_int_equal(size_bar(e, 1, 0x30, 0xffffffff), 0);

    /* The ROM decodes only with both COMMAND.MEM and its own enable bit. */
    wr32(e, NIC_SLOT, 0x30, 0xfeb80000);
    assert_int_equal(rd32(e, NIC_SLOT, 0x30), 0xfeb80000);
    wr16(e, NIC_SLOT, 0x04, CMD_MEM);
    expect_maps(e, 0, NULL);
    wr32(e, NIC_SLOT, 0x30, 0xfeb80001);
    expect_maps(e, 1, (struct map_call[]){ { ROM_SLOT, 0xfeb80000 } });
    wr16(e, NIC_SLOT, 0x04, CMD_IO);          /* memory decode off */
    expect_maps(e, 1, (struct map_call[]){ { ROM_SLOT, PCI_BAR_UNMAPPED } });
    wr16(e, NIC_SLOT, 0x04, CMD_MEM);
    expect_maps(e, 1, (struct map_call[]){ { ROM_SLOT, 0xfeb80000 } });
    wr32(e, NIC_SLOT, 0x30, 0xfea00001);      /* move */
    expect_maps(e, 1, (struct map_call[]){ { ROM_SLOT, 0xfea00000 } });
    wr8(e, NIC_SLOT, 0x30, 0x00);             /* ROM enable off by a byte write */
    expect_maps(e, 1, (struct map_call[]){ { ROM_SLOT, PCI_BAR_UNMAPPED } });
    assert_int_equal(rd32(e, NIC_SLOT, 0x30), 0xfea00000);
}

static void test_rom_bar_unassigned_not_decoded(void **state)
{
    struct env *e = *state;
    wr16(e, NIC_SLOT, 0x04, CMD_MEM);
    /* Enable bit with no address assigned: as for BARs, address 0 decodes nothing
     * (it would shadow the real-mode IVT). */
    wr32(e, NIC_SLOT, 0x30, 0x00000001);
    expect_maps(e, 0, NULL);
    /* Sizing with the enable bit set while memory decode is on: the pattern
     * must not map the ROM over the BIOS at 0xFFFF0000. */
    wr32(e, NIC_SLOT, 0x30, 0xffffffff);
    assert_int_equal(rd32(e, NIC_SLOT, 0x30), 0xffff0001);
    expect_maps(e, 0, NULL);
    wr32(e, NIC_SLOT, 0x30, 0xfeb80001);
    expect_maps(e, 1, (struct map_call[]){ { ROM_SLOT, 0xfeb80000 } });
}

static void test_bus_reset_unmaps(void **state)
{
    struct env *e = *state;
    wr32(e, NIC_SLOT, 0x10, 0xc100);
    wr32(e, NIC_SLOT, 0x14, 0xfebf0000);
    wr32(e, NIC_SLOT, 0x18, 0xfd000000);
    wr32(e, NIC_SLOT, 0x30, 0xfeb80001);
    wr8(e, NIC_SLOT, 0x3c, 11);
    wr16(e, NIC_SLOT, 0x04, CMD_IO | CMD_MEM);
    assert_int_equal(e->nmaps, 4);
    e->nmaps = 0;
    bus_pio_write(e->b, 0xcf8, cfg_addr(0, NIC_SLOT, 0, 0x10), 4);
    bus_reset_devices(e->b);
    /* Every mapping went away; the registers are back to their power-on values. */
    assert_int_equal(e->nmaps, 4);
    for (int k = 0; k < 4; k++)
        assert_int_equal(e->maps[k].base, PCI_BAR_UNMAPPED);
    e->nmaps = 0;
    assert_int_equal(bus_pio_read(e->b, 0xcf8, 4), 0);
    assert_int_equal(rd16(e, NIC_SLOT, 0x04), 0);
    assert_int_equal(rd32(e, NIC_SLOT, 0x10), 0x00000001);
    assert_int_equal(rd32(e, NIC_SLOT, 0x14), 0x00000000);
    assert_int_equal(rd32(e, NIC_SLOT, 0x18), 0x00000008);
    assert_int_equal(rd32(e, NIC_SLOT, 0x30), 0);
    assert_int_equal(rd8(e, NIC_SLOT, 0x3c), 0);
    assert_int_equal(rd32(e, NIC_SLOT, 0x00), 0x802910ec);
}

/* ---- i440FX ---- */

static void test_i440fx_identity(void **state)
{
    struct env *e = *state;
    assert_int_equal(rd16(e, 0, 0x00), 0x8086);
    assert_int_equal(rd16(e, 0, 0x02), 0x1237);
    assert_int_equal(rd32(e, 0, 0x08) >> 8, 0x060000);   /* host bridge */
    assert_int_equal(rd8(e, 0, 0x0e) & 0x7f, 0x00);      /* type 0 header */
    assert_int_equal(rd8(e, 0, 0x3d), 0);                /* no interrupt pin */
    assert_int_equal(rd8(e, 0, 0x72), 0x02);             /* SMRAM: C_BASE_SEG = 0xA0000 */
}

/* The state of every 16 KiB block after power-on: everything to the ROM/PCI side. */
static void test_pam_power_on(void **state)
{
    struct env *e = *state;
    memset(e->pam, 0, sizeof(e->pam));
    e->pam_calls = 0;
    bus_reset_devices(e->b);
    assert_true(e->pam_calls > 0);
    for (int k = 0; k < 16; k++) {
        assert_true(e->pam[k].seen);
        assert_false(e->pam[k].read_ram);
        assert_false(e->pam[k].write_ram);
    }
    for (int r = 0x59; r <= 0x5f; r++)
        assert_int_equal(rd8(e, 0, r), 0);
}

static void check_pam(struct env *e, uint32_t base, uint32_t len, bool re, bool we)
{
    for (uint32_t a = base; a < base + len; a += 0x4000) {
        const struct pam_state *s = &e->pam[(a - 0xc0000) >> 14];
        if (!s->seen || s->read_ram != re || s->write_ram != we)
            fail_msg("PAM block %#x: seen %d re %d we %d, want re %d we %d", a, s->seen, s->read_ram,
                     s->write_ram, re, we);
    }
}

static void test_pam_registers(void **state)
{
    struct env *e = *state;
    /* PAM0 high nibble: the 64 KiB BIOS area 0xF0000-0xFFFFF. */
    memset(e->pam, 0, sizeof(e->pam));
    wr8(e, 0, 0x59, 0x30);
    check_pam(e, 0xf0000, 0x10000, true, true);
    assert_int_equal(e->pam[(0xf0000 - 0xc0000) >> 14].len, 0x10000);
    assert_int_equal(rd8(e, 0, 0x59) & 0xf0, 0x30);
    wr8(e, 0, 0x59, 0x10);                      /* read from RAM, writes to ROM side */
    check_pam(e, 0xf0000, 0x10000, true, false);
    wr8(e, 0, 0x59, 0x20);                      /* writes to RAM, reads from ROM side */
    check_pam(e, 0xf0000, 0x10000, false, true);
    wr8(e, 0, 0x59, 0x00);
    check_pam(e, 0xf0000, 0x10000, false, false);

    /* PAM1-6: low nibble the lower 16 KiB, high nibble the upper 16 KiB of 32 KiB from 0xC0000. */
    for (int reg = 0x5a; reg <= 0x5f; reg++) {
        uint32_t lo = 0xc0000 + (reg - 0x5a) * 0x8000, hi = lo + 0x4000;
        memset(e->pam, 0, sizeof(e->pam));
        wr8(e, 0, reg, 0x21);                   /* lo: read RAM; hi: write RAM */
        check_pam(e, lo, 0x4000, true, false);
        check_pam(e, hi, 0x4000, false, true);
        assert_int_equal(e->pam[(lo - 0xc0000) >> 14].len, 0x4000);
        assert_int_equal(e->pam[(hi - 0xc0000) >> 14].len, 0x4000);
        assert_int_equal(rd8(e, 0, reg), 0x21);
        wr8(e, 0, reg, 0x13);
        check_pam(e, lo, 0x4000, true, true);
        check_pam(e, hi, 0x4000, true, false);
        /* Everything else unchanged. */
        for (int other = 0x5a; other <= 0x5f; other++) {
            if (other == reg)
                continue;
            uint32_t olo = 0xc0000 + (other - 0x5a) * 0x8000;
            if (e->pam[(olo - 0xc0000) >> 14].seen)
                check_pam(e, olo, 0x8000, false, false);
        }
        wr8(e, 0, reg, 0x00);
        check_pam(e, lo, 0x8000, false, false);
    }

    /* SeaBIOS's shadowing: all of 0xC0000-0xFFFFF read/write RAM with one dword and a few bytes. */
    memset(e->pam, 0, sizeof(e->pam));
    wr8(e, 0, 0x59, 0x30);
    wr32(e, 0, 0x5c, 0x33333333);
    wr16(e, 0, 0x5a, 0x3333);
    check_pam(e, 0xc0000, 0x40000, true, true);
    assert_int_equal(rd32(e, 0, 0x5c), 0x33333333);
    assert_int_equal(rd32(e, 0, 0x58) >> 8, 0x333330);
    /* Then read-only ("make_bios_readonly"). */
    wr8(e, 0, 0x59, 0x10);
    wr32(e, 0, 0x5c, 0x11111111);
    wr16(e, 0, 0x5a, 0x1111);
    check_pam(e, 0xc0000, 0x40000, true, false);
    /* Reserved bits (7:6, 3:2) read as 0. */
    wr8(e, 0, 0x5a, 0xff);
    assert_int_equal(rd8(e, 0, 0x5a), 0x33);
}

static void test_pam_reset(void **state)
{
    struct env *e = *state;
    wr8(e, 0, 0x59, 0x30);
    wr32(e, 0, 0x5c, 0x33333333);
    memset(e->pam, 0, sizeof(e->pam));
    bus_reset_devices(e->b);
    check_pam(e, 0xc0000, 0x40000, false, false);
    assert_int_equal(rd8(e, 0, 0x59), 0);
    assert_int_equal(rd32(e, 0, 0x5c), 0);
}

/* ---- PIIX3 ---- */

static void test_piix3_identity(void **state)
{
    struct env *e = *state;
    assert_int_equal(rd16(e, 1, 0x00), 0x8086);
    assert_int_equal(rd16(e, 1, 0x02), 0x7000);
    assert_int_equal(rd32(e, 1, 0x08) >> 8, 0x060100);   /* PCI-to-ISA bridge */
    assert_int_equal(rd8(e, 1, 0x0e), 0x80);             /* multi-function, type 0 */
    /* PIRQRC[A:D] come up disabled (80h). */
    assert_int_equal(rd32(e, 1, 0x60), 0x80808080);
}

/* The ISA IRQ SeaBIOS writes into INTERRUPT_LINE for a slot/pin on this board. */
static int seabios_irq(const uint8_t routes[4], int slot, int pin)
{
    return routes[(pin - 1 + slot - 1) & 3];
}

static void program_pirqs(struct env *e, const uint8_t routes[4])
{
    for (int k = 0; k < 4; k++)
        wr8(e, 1, 0x60 + k, routes[k]);
}

static void test_pirq_routing(void **state)
{
    struct env *e = *state;
    static const uint8_t routes[4] = { 5, 9, 10, 11 };
    program_pirqs(e, routes);
    assert_int_equal(rd32(e, 1, 0x60), 0x0b0a0905);

    /* Each slot/pin lands on the IRQ the firmware wrote into INTERRUPT_LINE. */
    for (int slot = NIC_SLOT; slot <= NIC2_SLOT; slot++) {
        struct pci_dev *d = slot == NIC_SLOT ? &e->nic : &e->nic2;
        for (int pin = 1; pin <= 4; pin++) {
            d->config[0x3d] = pin;
            int irq = seabios_irq(routes, slot, pin);
            memset(e->edges, 0, sizeof(e->edges));
            pci_set_irq(d, 1);
            for (int l = 0; l < 16; l++) {
                if (l == irq) {
                    if (!e->level[l] || e->edges[l] != 1)
                        fail_msg("slot %d INT%c: IRQ %d not raised", slot, 'A' + pin - 1, irq);
                } else if (e->level[l]) {
                    fail_msg("slot %d INT%c: IRQ %d raised, want %d", slot, 'A' + pin - 1, l, irq);
                }
            }
            pci_set_irq(d, 1);                  /* still asserted: no second edge */
            assert_int_equal(e->edges[irq], 1);
            pci_set_irq(d, 0);
            assert_int_equal(e->level[irq], 0);
        }
    }

    /* The canonical QEMU/SeaBIOS wiring, spelled out: slot 3 INTA = PIRQC, slot 4 INTA = PIRQD. */
    e->nic.config[0x3d] = 1;
    e->nic2.config[0x3d] = 1;
    pci_set_irq(&e->nic, 1);
    assert_int_equal(e->level[10], 1);
    pci_set_irq(&e->nic, 0);
    pci_set_irq(&e->nic2, 1);
    assert_int_equal(e->level[11], 1);
    pci_set_irq(&e->nic2, 0);
}

static void test_pirq_disabled_and_reserved(void **state)
{
    struct env *e = *state;
    /* Power-on: every PIRQ disabled, nothing reaches ISA; the I/O APIC's
     * PIRQ pin (16-19) follows the device whatever the router says. */
    pci_set_irq(&e->nic, 1);
    for (int l = 0; l < 16; l++)
        assert_int_equal(e->level[l], 0);
    int pirq_pins = 0;
    for (int l = BUS_IRQ_PIRQ_BASE; l < BUS_IRQ_PIRQ_BASE + 4; l++)
        pirq_pins += e->level[l];
    assert_int_equal(pirq_pins, 1);
    pci_set_irq(&e->nic, 0);
    for (int l = BUS_IRQ_PIRQ_BASE; l < BUS_IRQ_PIRQ_BASE + 4; l++)
        assert_int_equal(e->level[l], 0);
    /* Bit 7 disables routing whatever the IRQ field holds. */
    wr8(e, 1, 0x62, 0x8a);
    pci_set_irq(&e->nic, 1);
    assert_int_equal(e->level[10], 0);
    pci_set_irq(&e->nic, 0);
    /* Reserved IRQ values (0-2, 8, 13) route nowhere. */
    static const uint8_t reserved[] = { 0, 1, 2, 8, 13 };
    for (size_t k = 0; k < sizeof(reserved); k++) {
        wr8(e, 1, 0x62, reserved[k]);
        pci_set_irq(&e->nic, 1);
        for (int l = 0; l < 16; l++)
            assert_int_equal(e->level[l], 0);
        pci_set_irq(&e->nic, 0);
    }
    /* Bits 6:4 are reserved and read 0. */
    wr8(e, 1, 0x62, 0x7b);
    assert_int_equal(rd8(e, 1, 0x62), 0x0b);
}

static void test_pirq_shared_line(void **state)
{
    struct env *e = *state;
    /* SeaBIOS's default: PIRQA/B -> 10, PIRQC/D -> 11. */
    wr32(e, 1, 0x60, 0x0b0b0a0a);
    e->nic.config[0x3d] = 1;    /* slot 3 INTA: PIRQC */
    e->nic2.config[0x3d] = 1;   /* slot 4 INTA: PIRQD */
    pci_set_irq(&e->nic, 1);
    assert_int_equal(e->level[11], 1);
    pci_set_irq(&e->nic2, 1);
    assert_int_equal(e->level[11], 1);
    assert_int_equal(e->edges[11], 1);
    pci_set_irq(&e->nic, 0);
    assert_int_equal(e->level[11], 1);          /* the other device still asserts */
    pci_set_irq(&e->nic2, 0);
    assert_int_equal(e->level[11], 0);
    assert_int_equal(e->level[10], 0);
}

static void test_pirq_reroute_while_asserted(void **state)
{
    struct env *e = *state;
    wr8(e, 1, 0x62, 10);                        /* PIRQC -> IRQ 10 */
    pci_set_irq(&e->nic, 1);                    /* slot 3 INTA = PIRQC */
    assert_int_equal(e->level[10], 1);
    /* The router is a multiplexer: moving the route moves the asserted level. */
    wr8(e, 1, 0x62, 11);
    assert_int_equal(e->level[10], 0);
    assert_int_equal(e->level[11], 1);
    wr8(e, 1, 0x62, 0x80 | 11);                 /* disable */
    assert_int_equal(e->level[11], 0);
    wr8(e, 1, 0x62, 5);
    assert_int_equal(e->level[5], 1);
    pci_set_irq(&e->nic, 0);
    assert_int_equal(e->level[5], 0);
    for (int l = 0; l < 16; l++)
        assert_int_equal(e->level[l], 0);
}

static void test_intx_disable(void **state)
{
    struct env *e = *state;
    wr8(e, 1, 0x62, 10);
    /* COMMAND bit 10: the function may not drive INTx#; STATUS bit 3 still shows it. */
    wr16(e, NIC_SLOT, 0x04, CMD_INTX_DISABLE);
    pci_set_irq(&e->nic, 1);
    assert_int_equal(e->level[10], 0);
    assert_int_equal(rd16(e, NIC_SLOT, 0x06) & STATUS_INTX, STATUS_INTX);
    wr16(e, NIC_SLOT, 0x04, 0);
    assert_int_equal(e->level[10], 1);
    wr16(e, NIC_SLOT, 0x04, CMD_INTX_DISABLE);
    assert_int_equal(e->level[10], 0);
    pci_set_irq(&e->nic, 0);
    assert_int_equal(rd16(e, NIC_SLOT, 0x06) & STATUS_INTX, 0);
    wr16(e, NIC_SLOT, 0x04, 0);
    assert_int_equal(e->level[10], 0);
    /* Interrupt Status is read-only. */
    wr16(e, NIC_SLOT, 0x06, STATUS_INTX);
    assert_int_equal(rd16(e, NIC_SLOT, 0x06) & STATUS_INTX, 0);
    pci_set_irq(&e->nic, 1);
    wr16(e, NIC_SLOT, 0x06, STATUS_INTX);
    assert_int_equal(rd16(e, NIC_SLOT, 0x06) & STATUS_INTX, STATUS_INTX);
    assert_int_equal(e->level[10], 1);
}

static void test_irq_across_reset(void **state)
{
    struct env *e = *state;
    wr8(e, 1, 0x62, 10);
    pci_set_irq(&e->nic, 1);
    assert_int_equal(e->level[10], 1);
    /* Machine reset: routes disabled and the device's reset lowers its pin. */
    bus_reset_devices(e->b);
    assert_int_equal(e->level[10], 0);
    assert_int_equal(rd8(e, 1, 0x62), 0x80);
    /* After the firmware routes again, the device's interrupts arrive as before. */
    wr8(e, 1, 0x62, 10);
    memset(e->edges, 0, sizeof(e->edges));
    pci_set_irq(&e->nic, 1);
    assert_int_equal(e->level[10], 1);
    assert_int_equal(e->edges[10], 1);
    pci_set_irq(&e->nic, 0);
    assert_int_equal(e->level[10], 0);
    pci_set_irq(&e->nic, 1);
    assert_int_equal(e->edges[10], 2);
}

static void test_reset_control_register(void **state)
{
    struct env *e = *state;
    assert_int_equal(bus_pio_read(e->b, 0xcf9, 1), 0);
    bus_pio_write(e->b, 0xcf8, cfg_addr(0, 1, 0, 0x60), 4);
    /* SYS_RST alone selects hard reset; no reset yet. */
    bus_pio_write(e->b, 0xcf9, 0x02, 1);
    assert_int_equal(bus_pending_request(e->b, NULL), BUS_REQ_NONE);
    assert_int_equal(bus_pio_read(e->b, 0xcf9, 1) & 0x06, 0x02);
    /* 0xCF9 is not part of CONFIG_ADDRESS. */
    assert_int_equal(bus_pio_read(e->b, 0xcf8, 4), cfg_addr(0, 1, 0, 0x60));
    /* RST_CPU 0 -> 1: reset (what SeaBIOS, Linux "reboot=pci" and Windows write). */
    bus_pio_write(e->b, 0xcf9, 0x06, 1);
    assert_int_equal(bus_pending_request(e->b, NULL), BUS_REQ_RESET);
    bus_clear_request(e->b);
    bus_reset_devices(e->b);
    assert_int_equal(bus_pio_read(e->b, 0xcf9, 1), 0);
    /* A soft reset request (RST_CPU only) resets too. */
    bus_pio_write(e->b, 0xcf9, 0x04, 1);
    assert_int_equal(bus_pending_request(e->b, NULL), BUS_REQ_RESET);
    bus_clear_request(e->b);
    /* A dword write to 0xCF8 never reaches the reset control register. */
    bus_pio_write(e->b, 0xcf8, 0x80000600, 4);
    assert_int_equal(bus_pending_request(e->b, NULL), BUS_REQ_NONE);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_config_address_register),
        T(test_config_address_needs_dword),
        T(test_data_port_widths),
        T(test_absent_functions_read_ones),
        T(test_enable_bit_clear_not_decoded),
        T(test_read_only_header_fields),
        T(test_command_register),
        T(test_bar_sizing),
        T(test_bar_map_follows_command),
        T(test_bar_byte_writes),
        T(test_rom_bar),
        T(test_rom_bar_unassigned_not_decoded),
        T(test_bus_reset_unmaps),
        T(test_i440fx_identity),
        T(test_pam_power_on),
        T(test_pam_registers),
        T(test_pam_reset),
        T(test_piix3_identity),
        T(test_pirq_routing),
        T(test_pirq_disabled_and_reserved),
        T(test_pirq_shared_line),
        T(test_pirq_reroute_while_asserted),
        T(test_intx_disable),
        T(test_irq_across_reset),
        T(test_reset_control_register),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
