/*
 * AMD PCnet-PCI II driven through its I/O ports as a driver would, with a
 * fake network backend that records what the card sends: reset values,
 * WIO/DWIO, the initialization block, transmit and receive rings in
 * software styles 0, 2 and 3, ring wrap, CSR0/CSR3 interrupts, and guest
 * mistakes (rings and buffers outside RAM, endless frames, floods).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/pci.h"
#include "devices/pcnet.h"
#include "hosted-driver/net.h"
#include "hosted-driver/vclock.h"
#include "device_bench.h"

#define RAM_SIZE (1u << 20)
#define IO 0xc000
#define DEVFN (3 << 3)
#define RDP (IO + 0x10)
#define RAP16 (IO + 0x12)
#define RESET16 (IO + 0x14)
#define BDP16 (IO + 0x16)

#define INIT_BLOCK 0x1000
#define RX_RING 0x2000
#define TX_RING 0x3000
#define RX_BUFS 0x10000
#define TX_BUFS 0x20000
#define BUF_SIZE 1536

static const uint8_t MAC[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

struct sent {
    uint8_t data[2048];
    size_t len;
};

struct env {
    struct bench hw;
    struct netdev *nd;
    struct pcnet *card;
    struct sent sent[600];
    int nsent;
};

static void fake_send(struct netdev *nd, const uint8_t *frame, size_t len)
{
    struct env *e = nd->backend;
    if (e->nsent < (int)(sizeof(e->sent) / sizeof(e->sent[0]))) {
        memcpy(e->sent[e->nsent].data, frame, len);
        e->sent[e->nsent].len = len;
    }
    e->nsent++;
}

static const struct netdev_ops fake_ops = { .send = fake_send };

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    char err[128];
    bench_init(&e->hw, RAM_SIZE, true);
    e->nd = netdev_new("fake", &fake_ops, e, err, sizeof(err));
    assert_non_null(e->nd);
    e->card = pcnet_new(e->hw.b, e->hw.pb, DEVFN, MAC, e->nd, bench_ram_rw, &e->hw);
    bus_reset_devices(e->hw.b);
    pci_config_write(e->hw.pb, DEVFN, 0x10, IO | 1, 4);
    pci_config_write(e->hw.pb, DEVFN, 0x04, 0x0005, 2);     /* I/O decode, bus master */
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    pcnet_free(e->card);
    netdev_free(e->nd);
    bench_free(&e->hw);
    free(e);
    return 0;
}

/* ---- driver-side helpers (WIO) ---- */

static uint16_t csr_rd(struct env *e, int r)
{
    bus_pio_write(e->hw.b, RAP16, r, 2);
    return bus_pio_read(e->hw.b, RDP, 2);
}

static void csr_wr(struct env *e, int r, uint16_t v)
{
    bus_pio_write(e->hw.b, RAP16, r, 2);
    bus_pio_write(e->hw.b, RDP, v, 2);
}

static uint16_t bcr_rd(struct env *e, int r)
{
    bus_pio_write(e->hw.b, RAP16, r, 2);
    return bus_pio_read(e->hw.b, BDP16, 2);
}

static void bcr_wr(struct env *e, int r, uint16_t v)
{
    bus_pio_write(e->hw.b, RAP16, r, 2);
    bus_pio_write(e->hw.b, BDP16, v, 2);
}

static bool intx(struct env *e)
{
    return (pci_config_read(e->hw.pb, DEVFN, 0x06, 2) & 0x08) != 0;
}

static void put16(struct env *e, uint32_t a, uint16_t v) { memcpy(e->hw.ram + a, &v, 2); }
static void put32(struct env *e, uint32_t a, uint32_t v) { memcpy(e->hw.ram + a, &v, 4); }
static uint16_t get16(struct env *e, uint32_t a) { uint16_t v; memcpy(&v, e->hw.ram + a, 2); return v; }
static uint32_t get32(struct env *e, uint32_t a) { uint32_t v; memcpy(&v, e->hw.ram + a, 4); return v; }

/* Style 2/3 descriptors: 16 bytes; the buffer address is word 0 (style 2) or word 2 (style 3). */
static void desc32(struct env *e, int style, uint32_t at, uint32_t buf, uint16_t len, uint16_t status, uint32_t misc)
{
    put32(e, at + (style == 3 ? 8 : 0), buf);
    put32(e, at + 4, (uint32_t)status << 16 | (uint16_t)(0xf000 | (uint16_t)-len));
    put32(e, at + (style == 3 ? 0 : 8), misc);
}

static uint16_t desc32_status(struct env *e, uint32_t at) { return get32(e, at + 4) >> 16; }

/* The initialization block, 32-bit form, then INIT and wait for IDON. */
static void init32(struct env *e, int style, unsigned rlen_log2, unsigned tlen_log2, uint32_t rx, uint32_t tx)
{
    bcr_wr(e, 20, style);
    uint8_t *ib = e->hw.ram + INIT_BLOCK;
    memset(ib, 0, 28);
    ib[2] = rlen_log2 << 4;
    ib[3] = tlen_log2 << 4;
    memcpy(ib + 4, MAC, 6);
    put32(e, INIT_BLOCK + 20, rx);
    put32(e, INIT_BLOCK + 24, tx);
    csr_wr(e, 1, INIT_BLOCK & 0xffff);
    csr_wr(e, 2, INIT_BLOCK >> 16);
    csr_wr(e, 0, 0x0001);
}

static void give_rx(struct env *e, int style, int n)
{
    for (int k = 0; k < n; k++)
        desc32(e, style, RX_RING + 16 * k, RX_BUFS + BUF_SIZE * k, BUF_SIZE, 0x8000, 0);
}

static void frame_to(uint8_t *f, const uint8_t *dst, int seq, size_t len)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, "\x52\x55\x0a\x00\x02\x02", 6);
    f[12] = 0x08;
    f[13] = 0x00;
    for (size_t i = 14; i < len; i++)
        f[i] = (uint8_t)(seq * 31 + i);
}

static void deliver(struct env *e, const uint8_t *f, size_t len)
{
    netdev_deliver(e->nd, f, len);
    netdev_rx_kick(e->nd);
}

/* ---- tests ---- */

static void test_reset_values(void **state)
{
    struct env *e = *state;
    assert_int_equal(pci_config_read(e->hw.pb, DEVFN, 0x00, 4), 0x20001022);
    assert_int_equal(pci_config_read(e->hw.pb, DEVFN, 0x08, 4) >> 8, 0x020000);
    assert_int_equal(pci_config_read(e->hw.pb, DEVFN, 0x3d, 1), 1);
    for (int k = 0; k < 6; k++)
        assert_int_equal(bus_pio_read(e->hw.b, IO + k, 1), MAC[k]);
    assert_int_equal(bus_pio_read(e->hw.b, IO + 14, 2), 0x5757);
    uint16_t sum = 0;
    for (int k = 0; k < 12; k++)
        sum += bus_pio_read(e->hw.b, IO + k, 1);
    assert_int_equal(bus_pio_read(e->hw.b, IO + 12, 2), (uint16_t)(sum + 0x57 + 0x57));
    assert_int_equal(csr_rd(e, 0), 0x0004);          /* STOP */
    assert_int_equal(csr_rd(e, 3), 0x0000);
    assert_int_equal(csr_rd(e, 4), 0x0115);
    assert_int_equal(csr_rd(e, 88), 0x1003);
    assert_int_equal(csr_rd(e, 89), 0x0262);
    assert_int_equal(csr_rd(e, 12), MAC[0] | MAC[1] << 8);
    assert_int_equal(bcr_rd(e, 2), 0x0002);
    assert_int_equal(bcr_rd(e, 18), 0x9001);
    assert_int_equal(bcr_rd(e, 20), 0x0000);
    assert_int_equal(bcr_rd(e, 4), 0x80c0);          /* LED0 shows the link */
    bus_pio_write(e->hw.b, RAP16, 88, 2);
    assert_int_equal(bus_pio_read(e->hw.b, RAP16, 2), 88);
    assert_false(intx(e));
}

static void test_reset_port_and_dwio(void **state)
{
    struct env *e = *state;
    csr_wr(e, 3, 0x0700);
    assert_int_equal(csr_rd(e, 3), 0x0700);
    bus_pio_read(e->hw.b, RESET16, 2);
    assert_int_equal(csr_rd(e, 3), 0x0000);
    /* A dword write to RDP switches to 32-bit I/O: RAP moves to 0x14. */
    bus_pio_write(e->hw.b, RAP16, 3, 2);
    bus_pio_write(e->hw.b, RDP, 0x0500, 4);
    bus_pio_write(e->hw.b, IO + 0x14, 3, 4);
    assert_int_equal(bus_pio_read(e->hw.b, IO + 0x14, 4), 3);
    assert_int_equal(bus_pio_read(e->hw.b, RDP, 4), 0x0500);
    bus_pio_write(e->hw.b, IO + 0x14, 20, 4);
    bus_pio_write(e->hw.b, IO + 0x1c, 2, 4);
    assert_int_equal(bus_pio_read(e->hw.b, IO + 0x1c, 4), 0x0102);   /* style 2 with SSIZE32 */
    bus_pio_read(e->hw.b, IO + 0x18, 4);                              /* reset port in DWIO */
    bus_pio_write(e->hw.b, IO + 0x14, 0, 4);
    assert_int_equal(bus_pio_read(e->hw.b, RDP, 4), 0x0004);
}

static void test_init_block_and_interrupts(void **state)
{
    struct env *e = *state;
    csr_wr(e, 3, 0x0000);
    init32(e, 2, 3, 2, RX_RING, TX_RING);
    uint16_t c0 = csr_rd(e, 0);
    assert_true(c0 & 0x0100);                         /* IDON */
    assert_true(c0 & 0x0080);                         /* INTR */
    assert_false(intx(e));                            /* IENA is off */
    assert_int_equal(csr_rd(e, 24), RX_RING & 0xffff);
    assert_int_equal(csr_rd(e, 30), TX_RING & 0xffff);
    assert_int_equal((uint16_t)-csr_rd(e, 76), 8);
    assert_int_equal((uint16_t)-csr_rd(e, 78), 4);
    csr_wr(e, 0, 0x0040);                             /* IENA */
    assert_true(intx(e));
    csr_wr(e, 3, 0x0100);                             /* IDONM masks it */
    assert_false(csr_rd(e, 0) & 0x0080);
    assert_false(intx(e));
    csr_wr(e, 3, 0x0000);
    assert_true(intx(e));
    csr_wr(e, 0, 0x0140);                             /* write 1 to clear IDON */
    assert_false(csr_rd(e, 0) & 0x0100);
    assert_false(intx(e));
    csr_wr(e, 0, 0x0042);                             /* STRT */
    c0 = csr_rd(e, 0);
    assert_int_equal(c0 & 0x0037, 0x0032);            /* RXON TXON STRT, not STOP */
    csr_wr(e, 4, 0x0080);                             /* UINTCMD: a user interrupt */
    assert_true(csr_rd(e, 4) & 0x0040);
    assert_true(intx(e));
    csr_wr(e, 4, 0x0040 | 0x0115);
    assert_false(intx(e));
    csr_wr(e, 0, 0x0004);                             /* STOP */
    assert_int_equal(csr_rd(e, 0), 0x0004);
}

static void start(struct env *e, int style, unsigned rlog2, unsigned tlog2)
{
    init32(e, style, rlog2, tlog2, RX_RING, TX_RING);
    csr_wr(e, 0, 0x0142);                             /* ack IDON, IENA, STRT */
}

static void test_transmit_style2_and_3(void **state)
{
    struct env *e = *state;
    for (int style = 2; style <= 3; style++) {
        e->nsent = 0;
        start(e, style, 2, 2);
        uint8_t f[100];
        frame_to(f, (const uint8_t *)"\xff\xff\xff\xff\xff\xff", style, sizeof(f));
        /* A frame in two buffers, STP then ENP. */
        memcpy(e->hw.ram + TX_BUFS, f, 40);
        memcpy(e->hw.ram + TX_BUFS + 0x800, f + 40, 60);
        desc32(e, style, TX_RING + 16, TX_BUFS + 0x800, 60, 0x8000 | 0x0100, 0);
        desc32(e, style, TX_RING, TX_BUFS, 40, 0x8000 | 0x0200, 0);
        csr_wr(e, 0, 0x0048);                         /* TDMD */
        assert_int_equal(e->nsent, 1);
        assert_int_equal(e->sent[0].len, 100);
        assert_memory_equal(e->sent[0].data, f, 100);
        assert_false(desc32_status(e, TX_RING) & 0x8000);
        assert_false(desc32_status(e, TX_RING + 16) & 0x8000);
        assert_true(csr_rd(e, 0) & 0x0200);           /* TINT */
        assert_true(intx(e));
        csr_wr(e, 3, 0x0200);                         /* TINTM */
        assert_false(intx(e));
        csr_wr(e, 3, 0);
        csr_wr(e, 0, 0x0240);
        assert_false(intx(e));
        csr_wr(e, 0, 0x0004);
    }
}

static void test_transmit_pads_short_frames(void **state)
{
    struct env *e = *state;
    csr_wr(e, 4, 0x0915);                             /* APAD_XMT, as Linux sets it */
    start(e, 2, 2, 2);
    memset(e->hw.ram + TX_BUFS, 0xab, 20);
    desc32(e, 2, TX_RING, TX_BUFS, 20, 0x8000 | 0x0300, 0);
    csr_wr(e, 0, 0x0048);
    assert_int_equal(e->nsent, 1);
    assert_int_equal(e->sent[0].len, 60);
    assert_int_equal(e->sent[0].data[19], 0xab);
    assert_int_equal(e->sent[0].data[20], 0);
}

static void test_receive_ring_wrap(void **state)
{
    struct env *e = *state;
    start(e, 2, 2, 2);                                /* 4 receive descriptors */
    give_rx(e, 2, 4);
    uint8_t f[200];
    for (int n = 0; n < 10; n++) {
        int slot = n % 4;
        frame_to(f, MAC, n, 100 + n);
        deliver(e, f, 100 + n);
        uint32_t d = RX_RING + 16 * slot;
        uint16_t st = desc32_status(e, d);
        assert_false(st & 0x8000);                    /* the card gave it back */
        assert_int_equal(st & 0x0300, 0x0300);        /* STP and ENP */
        assert_true(st & 0x0040);                     /* PAM: our own address */
        assert_int_equal(get32(e, d + 8) & 0xfff, 100 + n + 4);   /* with the FCS */
        assert_memory_equal(e->hw.ram + RX_BUFS + BUF_SIZE * slot, f, 100 + n);
        assert_true(csr_rd(e, 0) & 0x0400);           /* RINT */
        assert_true(intx(e));
        csr_wr(e, 0, 0x0440);
        assert_false(intx(e));
        desc32(e, 2, d, RX_BUFS + BUF_SIZE * slot, BUF_SIZE, 0x8000, 0);   /* the driver refills */
    }
}

static void test_receive_waits_for_descriptors(void **state)
{
    struct env *e = *state;
    start(e, 2, 1, 1);                                /* 2 receive descriptors, none owned */
    uint8_t f[64];
    frame_to(f, MAC, 1, sizeof(f));
    deliver(e, f, sizeof(f));
    assert_int_equal(e->nd->q_count, 1);              /* held by the backend, not lost */
    assert_false(csr_rd(e, 0) & 0x0400);
    give_rx(e, 2, 2);
    csr_wr(e, 3, 0);                                  /* any register write lets it come */
    assert_int_equal(e->nd->q_count, 0);
    assert_true(csr_rd(e, 0) & 0x0400);
    assert_memory_equal(e->hw.ram + RX_BUFS, f, sizeof(f));
}

static void test_receive_filters_and_chaining(void **state)
{
    struct env *e = *state;
    start(e, 2, 2, 2);
    /* Buffers of 256 bytes: a 600-byte frame takes three descriptors. */
    for (int k = 0; k < 4; k++)
        desc32(e, 2, RX_RING + 16 * k, RX_BUFS + 256 * k, 256, 0x8000, 0);
    uint8_t f[600];
    frame_to(f, (const uint8_t *)"\x52\x54\x00\x99\x99\x99", 0, 100);
    deliver(e, f, 100);                               /* another station's unicast: ignored */
    assert_true(desc32_status(e, RX_RING) & 0x8000);
    frame_to(f, MAC, 7, sizeof(f));
    deliver(e, f, sizeof(f));
    assert_int_equal(desc32_status(e, RX_RING) & 0x8300, 0x0200);       /* STP */
    assert_int_equal(desc32_status(e, RX_RING + 16) & 0x8300, 0x0000);
    assert_int_equal(desc32_status(e, RX_RING + 32) & 0x8300, 0x0100);  /* ENP */
    assert_int_equal(get32(e, RX_RING + 32 + 8) & 0xfff, 604);
    assert_memory_equal(e->hw.ram + RX_BUFS, f, 600);
    /* Broadcast is taken unless DRCVBC. */
    frame_to(f, (const uint8_t *)"\xff\xff\xff\xff\xff\xff", 1, 64);
    deliver(e, f, 64);
    assert_int_equal(desc32_status(e, RX_RING + 48) & 0x8010, 0x0010);  /* BAM */
}

/* The LANCE logical address filter: the six high bits of the reflected
 * CRC-32 (no final inversion), computed bit by bit here. */
static unsigned reference_ladrf_bit(const uint8_t *addr)
{
    uint32_t crc = 0xffffffffu;
    for (int i = 0; i < 6; i++)
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ (((crc ^ (addr[i] >> b)) & 1) ? 0xedb88320u : 0);
    return crc >> 26;
}

static void test_receive_logical_address_filter(void **state)
{
    struct env *e = *state;
    static const uint8_t group[6] = { 0x33, 0x33, 0x00, 0x00, 0x00, 0x01 };
    unsigned bit = reference_ladrf_bit(group);
    init32(e, 2, 2, 2, RX_RING, TX_RING);
    csr_wr(e, 0, 0x0004);
    csr_wr(e, 8 + bit / 16, 1u << (bit % 16));          /* LADRF in CSR8-11 */
    csr_wr(e, 0, 0x0042);
    give_rx(e, 2, 4);
    uint8_t f[64];
    frame_to(f, group, 0, sizeof(f));
    deliver(e, f, sizeof(f));
    assert_int_equal(desc32_status(e, RX_RING) & 0x8020, 0x0020);   /* LAFM */
    uint8_t other[6] = { 0x33, 0x33, 0x00, 0x00, 0x00, 0x02 };
    while (reference_ladrf_bit(other) == bit)
        other[5]++;
    frame_to(f, other, 1, sizeof(f));
    deliver(e, f, sizeof(f));
    assert_true(desc32_status(e, RX_RING + 16) & 0x8000);            /* not taken */
    csr_wr(e, 0, 0x0004);
    csr_wr(e, 15, 0x8000);                                           /* PROM */
    csr_wr(e, 0, 0x0042);
    deliver(e, f, sizeof(f));
    assert_int_equal(desc32_status(e, RX_RING + 16) & 0x8070, 0x0000);   /* taken, no match bit */
}

static void test_style0_rings(void **state)
{
    struct env *e = *state;
    bcr_wr(e, 20, 0);
    uint8_t *ib = e->hw.ram + INIT_BLOCK;
    memset(ib, 0, 24);
    memcpy(ib + 2, MAC, 6);
    put16(e, INIT_BLOCK + 16, RX_RING & 0xffff);
    ib[18] = RX_RING >> 16;
    ib[19] = 1 << 5;                                  /* 2 receive descriptors */
    put16(e, INIT_BLOCK + 20, TX_RING & 0xffff);
    ib[22] = TX_RING >> 16;
    ib[23] = 1 << 5;
    csr_wr(e, 1, INIT_BLOCK);
    csr_wr(e, 2, 0);
    csr_wr(e, 0, 0x0001);
    assert_true(csr_rd(e, 0) & 0x0100);
    csr_wr(e, 0, 0x0142);
    /* 8-byte descriptors: addr[15:0], addr[23:16] | status << 8, -bcnt, misc */
    for (int k = 0; k < 2; k++) {
        put16(e, RX_RING + 8 * k, (RX_BUFS + BUF_SIZE * k) & 0xffff);
        put16(e, RX_RING + 8 * k + 2, 0x8000 | (RX_BUFS + BUF_SIZE * k) >> 16);
        put16(e, RX_RING + 8 * k + 4, 0xf000 | (uint16_t)-BUF_SIZE);
    }
    uint8_t f[80];
    for (int n = 0; n < 3; n++) {
        frame_to(f, MAC, n, sizeof(f));
        deliver(e, f, sizeof(f));
        int slot = n % 2;
        assert_int_equal(get16(e, RX_RING + 8 * slot + 2) & 0xff00, 0x0300);
        assert_int_equal(get16(e, RX_RING + 8 * slot + 6), 84);
        assert_memory_equal(e->hw.ram + RX_BUFS + BUF_SIZE * slot, f, sizeof(f));
        put16(e, RX_RING + 8 * slot + 2, 0x8000 | (RX_BUFS + BUF_SIZE * slot) >> 16);
    }
    memset(e->hw.ram + TX_BUFS, 0x5a, 70);
    put16(e, TX_RING, TX_BUFS & 0xffff);
    put16(e, TX_RING + 2, 0x8300 | TX_BUFS >> 16);
    put16(e, TX_RING + 4, 0xf000 | (uint16_t)-70);
    csr_wr(e, 0, 0x0048);
    assert_int_equal(e->nsent, 1);
    assert_int_equal(e->sent[0].len, 70);
    assert_false(get16(e, TX_RING + 2) & 0x8000);
}

static void test_descriptors_outside_ram(void **state)
{
    struct env *e = *state;
    start(e, 2, 2, 2);
    /* A transmit buffer beyond RAM: dropped, counted, ERR in the descriptor, MERR. */
    desc32(e, 2, TX_RING, 0xfff00000u, 100, 0x8300, 0);
    csr_wr(e, 0, 0x0048);
    assert_int_equal(e->nsent, 0);
    assert_int_equal(pcnet_dropped(e->card), 1);
    assert_true(desc32_status(e, TX_RING) & 0x4000);
    assert_false(desc32_status(e, TX_RING) & 0x8000);
    assert_true(csr_rd(e, 0) & 0x8800);              /* ERR, MERR */
    /* A receive buffer straddling the end of RAM. */
    desc32(e, 2, RX_RING, RAM_SIZE - 10, BUF_SIZE, 0x8000, 0);
    uint8_t f[64];
    frame_to(f, MAC, 0, sizeof(f));
    deliver(e, f, sizeof(f));
    assert_int_equal(pcnet_dropped(e->card), 2);
    assert_true(desc32_status(e, RX_RING) & 0x4000);
    /* Rings themselves outside RAM. */
    csr_wr(e, 0, 0x0004);
    init32(e, 2, 9, 9, 0xfffff000u, 0xffffe000u);
    csr_wr(e, 0, 0x0142);
    csr_wr(e, 0, 0x0048);
    deliver(e, f, sizeof(f));
    assert_true(pcnet_dropped(e->card) >= 4);
    /* An init block outside RAM. */
    csr_wr(e, 0, 0x0004);
    csr_wr(e, 1, 0xff00);
    csr_wr(e, 2, 0xffff);
    csr_wr(e, 0, 0x0001);
    assert_false(csr_rd(e, 0) & 0x0100);
    assert_true(csr_rd(e, 0) & 0x0800);
}

static void test_transmit_flood_and_babble(void **state)
{
    struct env *e = *state;
    start(e, 2, 2, 9);                                /* 512 transmit descriptors */
    for (int k = 0; k < 512; k++)
        desc32(e, 2, TX_RING + 16 * k, TX_BUFS, 64, 0x8300, 0);
    csr_wr(e, 0, 0x0048);
    assert_int_equal(e->nsent, 512);                  /* one lap, then it stops */
    csr_wr(e, 0, 0x0048);
    assert_int_equal(e->nsent, 512);
    /* A frame that never ends: 512 descriptors of 4 KiB without ENP. */
    e->nsent = 0;
    for (int k = 0; k < 511; k++)
        desc32(e, 2, TX_RING + 16 * k, TX_BUFS, 4096, 0x8000 | (k == 0 ? 0x0200 : 0), 0);
    desc32(e, 2, TX_RING + 16 * 511, TX_BUFS, 4096, 0x8100, 0);
    csr_wr(e, 0, 0x0048);
    assert_int_equal(e->nsent, 0);
    assert_true(csr_rd(e, 0) & 0x4000);               /* BABL */
    assert_true(desc32_status(e, TX_RING + 16 * 511) & 0x4000);
    assert_true(pcnet_dropped(e->card) >= 1);
}

static void test_boot_rom_bar(void **state)
{
    struct env *e = *state;
    uint8_t rom[3000];
    for (size_t i = 0; i < sizeof(rom); i++)
        rom[i] = (uint8_t)(i * 7);
    rom[0] = 0x55;
    rom[1] = 0xaa;
    rom[2] = 4;                                        /* 4 x 512 bytes in the image */
    /* A PCI data structure naming no device (as iPXE's shared images do),
     * and a first image whose bytes sum to 0. */
    rom[0x18] = 0x40;
    rom[0x19] = 0;
    memcpy(rom + 0x40, "PCIR\0\0\0\0", 8);
    uint8_t sum = 0;
    for (int i = 0; i < 2048; i++)
        sum += i == 6 ? 0 : rom[i];
    rom[6] = -sum;
    pcnet_set_rom(e->card, rom, sizeof(rom));
    pci_config_write(e->hw.pb, DEVFN, 0x30, 0xffffffff, 4);
    assert_int_equal(pci_config_read(e->hw.pb, DEVFN, 0x30, 4), 0xfffff001);   /* 4 KiB */
    pci_config_write(e->hw.pb, DEVFN, 0x30, 0xfebf0001, 4);
    pci_config_write(e->hw.pb, DEVFN, 0x04, 0x0007, 2);
    uint32_t v;
    assert_true(bus_mmio_read(e->hw.b, 0xfebf0000, 2, &v));
    assert_int_equal(v, 0xaa55);
    assert_true(bus_mmio_read(e->hw.b, 0xfebf0000 + 2999, 1, &v));
    assert_int_equal(v, (uint8_t)(2999 * 7));          /* beyond the first image: untouched */
    assert_true(bus_mmio_read(e->hw.b, 0xfebf0000 + 3500, 1, &v));
    assert_int_equal(v, 0);                            /* padding */
    assert_true(bus_mmio_read(e->hw.b, 0xfebf0040 + 4, 4, &v));
    assert_int_equal(v, 0x20001022);                   /* the ROM now names this card */
    uint8_t total = 0;
    for (uint32_t i = 0; i < 2048; i++) {
        assert_true(bus_mmio_read(e->hw.b, 0xfebf0000 + i, 1, &v));
        total += v;
    }
    assert_int_equal(total, 0);                        /* and still sums to 0 */
    /* Moved: the old place no longer answers. */
    pci_config_write(e->hw.pb, DEVFN, 0x30, 0xfebe0001, 4);
    assert_false(bus_mmio_read(e->hw.b, 0xfebf0000, 2, &v));
    assert_true(bus_mmio_read(e->hw.b, 0xfebe0000, 2, &v));
    assert_int_equal(v, 0xaa55);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_reset_values),
        T(test_reset_port_and_dwio),
        T(test_init_block_and_interrupts),
        T(test_transmit_style2_and_3),
        T(test_transmit_pads_short_frames),
        T(test_receive_ring_wrap),
        T(test_receive_waits_for_descriptors),
        T(test_receive_filters_and_chaining),
        T(test_receive_logical_address_filter),
        T(test_style0_rings),
        T(test_descriptors_outside_ram),
        T(test_transmit_flood_and_babble),
        T(test_boot_rom_bar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
