/*
 * NE2000 PCI (RTL8029) driven through its ports as the 8390 drivers do, with
 * a fake backend: reset values and the PROM, remote DMA, transmit, the
 * receive ring with its wrap and boundary, ISR/IMR, the multicast hash
 * (checked against a bitwise big-endian CRC written here), and guest
 * mistakes (a ring set up wrongly, an oversized transmit).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/ne2k.h"
#include "devices/pci.h"
#include "hosted-driver/net.h"
#include "hosted-driver/vclock.h"

#define IO 0xc100
#define DEVFN (4 << 3)
#define CR IO
#define DATA (IO + 0x10)
#define RESET (IO + 0x18)
/* page 0 */
#define PSTART (IO + 1)
#define PSTOP (IO + 2)
#define BNRY (IO + 3)
#define TPSR (IO + 4)
#define TBCR0 (IO + 5)
#define TBCR1 (IO + 6)
#define ISR (IO + 7)
#define RSAR0 (IO + 8)
#define RSAR1 (IO + 9)
#define RBCR0 (IO + 10)
#define RBCR1 (IO + 11)
#define RCR (IO + 12)
#define TCR (IO + 13)
#define DCR (IO + 14)
#define IMR (IO + 15)
/* page 1 */
#define CURR (IO + 7)
#define MAR0 (IO + 8)

#define CR_STOP 0x21
#define CR_START 0x22
#define CR_RREAD 0x0a
#define CR_RWRITE 0x12
#define CR_TXP 0x26
#define PAGE1 0x40

static const uint8_t MAC[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x57 };

struct env {
    struct vclock *clk;
    struct bus *b;
    struct pci_bus *pb;
    struct netdev *nd;
    struct ne2k *card;
    uint8_t sent[4][2048];
    size_t sent_len[4];
    int nsent;
};

static void fake_send(struct netdev *nd, const uint8_t *frame, size_t len)
{
    struct env *e = nd->backend;
    if (e->nsent < 4) {
        memcpy(e->sent[e->nsent], frame, len);
        e->sent_len[e->nsent] = len;
    }
    e->nsent++;
}

static const struct netdev_ops fake_ops = { .send = fake_send };

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    char err[128];
    e->clk = vclock_new(true, 1);
    e->b = bus_new(e->clk);
    e->pb = pci_bus_new(e->b);
    e->nd = netdev_new("fake", &fake_ops, e, err, sizeof(err));
    assert_non_null(e->nd);
    e->card = ne2k_new(e->b, e->pb, DEVFN, MAC, e->nd);
    bus_reset_devices(e->b);
    pci_config_write(e->pb, DEVFN, 0x10, IO | 1, 4);
    pci_config_write(e->pb, DEVFN, 0x04, 0x0001, 2);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    ne2k_free(e->card);
    netdev_free(e->nd);
    pci_bus_free(e->pb);
    bus_free(e->b);
    vclock_free(e->clk);
    free(e);
    return 0;
}

static void outb(struct env *e, uint16_t port, uint8_t v) { bus_pio_write(e->b, port, v, 1); }
static uint8_t inb(struct env *e, uint16_t port) { return bus_pio_read(e->b, port, 1); }

static bool intx(struct env *e)
{
    return (pci_config_read(e->pb, DEVFN, 0x06, 2) & 0x08) != 0;
}

static void remote(struct env *e, uint8_t cmd, uint16_t addr, uint16_t count)
{
    outb(e, RBCR0, count);
    outb(e, RBCR1, count >> 8);
    outb(e, RSAR0, addr);
    outb(e, RSAR1, addr >> 8);
    outb(e, CR, cmd);
}

static void remote_read(struct env *e, uint16_t addr, uint8_t *buf, uint16_t count)
{
    remote(e, CR_RREAD, addr, count);
    for (uint16_t i = 0; i < count; i++)
        buf[i] = inb(e, DATA);
}

/* The open sequence of Linux's 8390 driver: byte-wide DMA, ring PSTART..PSTOP. */
static void open_card(struct env *e, uint8_t pstart, uint8_t pstop, uint8_t rcr)
{
    outb(e, CR, CR_STOP);
    outb(e, DCR, 0x48);
    outb(e, RBCR0, 0);
    outb(e, RBCR1, 0);
    outb(e, RCR, rcr);
    outb(e, TCR, 0x02);
    outb(e, PSTART, pstart);
    outb(e, PSTOP, pstop);
    outb(e, BNRY, pstart);
    outb(e, CR, CR_STOP | PAGE1);
    for (int k = 0; k < 6; k++)
        outb(e, IO + 1 + k, MAC[k]);
    outb(e, CURR, pstart + 1);
    outb(e, CR, CR_STOP);
    outb(e, ISR, 0xff);
    outb(e, IMR, 0x3f);
    outb(e, CR, CR_START);
    outb(e, TCR, 0x00);
}

static void frame_to(uint8_t *f, const uint8_t *dst, int seq, size_t len)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, "\x52\x55\x0a\x00\x02\x02", 6);
    f[12] = 0x08;
    f[13] = 0x00;
    for (size_t i = 14; i < len; i++)
        f[i] = (uint8_t)(seq * 17 + i * 3);
}

static void deliver(struct env *e, const uint8_t *f, size_t len)
{
    netdev_deliver(e->nd, f, len);
    netdev_rx_kick(e->nd);
}

static uint8_t curr(struct env *e)
{
    outb(e, CR, CR_START | PAGE1);
    uint8_t v = inb(e, CURR);
    outb(e, CR, CR_START);
    return v;
}

/* ---- tests ---- */

static void test_reset_values_and_prom(void **state)
{
    struct env *e = *state;
    assert_int_equal(pci_config_read(e->pb, DEVFN, 0x00, 4), 0x802910ec);
    assert_int_equal(inb(e, CR), 0x21);
    assert_int_equal(inb(e, ISR) & 0x80, 0x80);                 /* RST */
    assert_int_equal(inb(e, IO + 0x0a), 0x50);                  /* RTL8029 ID 'P' */
    assert_int_equal(inb(e, IO + 0x0b), 0x43);                  /* 'C' */
    outb(e, DCR, 0x48);
    uint8_t prom[32];
    remote_read(e, 0, prom, 32);
    for (int k = 0; k < 6; k++) {
        assert_int_equal(prom[2 * k], MAC[k]);
        assert_int_equal(prom[2 * k + 1], MAC[k]);
    }
    assert_true(inb(e, ISR) & 0x40);                            /* RDC */
    /* Word mode: one byte read moves two (what Linux's ne2k-pci relies on). */
    outb(e, DCR, 0x49);
    remote(e, CR_RREAD, 0, 12);
    for (int k = 0; k < 6; k++)
        assert_int_equal(inb(e, DATA), MAC[k]);
    /* The reset port. */
    outb(e, CR, CR_START);
    assert_false(inb(e, ISR) & 0x80);
    inb(e, RESET);
    assert_true(inb(e, ISR) & 0x80);
    assert_int_equal(inb(e, CR) & 0x03, 0x01);
    assert_false(intx(e));
}

static void test_remote_dma_and_transmit(void **state)
{
    struct env *e = *state;
    open_card(e, 0x4c, 0x80, 0x04);
    uint8_t f[120];
    frame_to(f, (const uint8_t *)"\xff\xff\xff\xff\xff\xff", 3, sizeof(f));
    remote(e, CR_RWRITE, 0x4000, sizeof(f));
    for (size_t i = 0; i < sizeof(f); i += 2)
        bus_pio_write(e->b, DATA, f[i] | f[i + 1] << 8, 2);
    assert_true(inb(e, ISR) & 0x40);                            /* RDC */
    outb(e, ISR, 0x40);
    uint8_t back[120];
    remote_read(e, 0x4000, back, sizeof(back));
    assert_memory_equal(back, f, sizeof(f));
    outb(e, ISR, 0x40);
    outb(e, TPSR, 0x40);
    outb(e, TBCR0, sizeof(f));
    outb(e, TBCR1, 0);
    outb(e, CR, CR_TXP);
    assert_int_equal(e->nsent, 1);
    assert_int_equal(e->sent_len[0], sizeof(f));
    assert_memory_equal(e->sent[0], f, sizeof(f));
    assert_true(inb(e, ISR) & 0x02);                            /* PTX */
    assert_int_equal(inb(e, IO + 4) & 0x01, 0x01);              /* TSR PTX */
    assert_true(intx(e));
    outb(e, ISR, 0x02);
    assert_false(intx(e));
}

static void test_isr_imr(void **state)
{
    struct env *e = *state;
    open_card(e, 0x4c, 0x80, 0x04);
    outb(e, IMR, 0x00);
    outb(e, TPSR, 0x40);
    outb(e, TBCR0, 60);
    outb(e, TBCR1, 0);
    outb(e, CR, CR_TXP);
    assert_true(inb(e, ISR) & 0x02);
    assert_false(intx(e));                                      /* masked */
    outb(e, IMR, 0x02);
    assert_true(intx(e));
    outb(e, CR, CR_START | 0x80);                               /* page 2 reads IMR back */
    assert_int_equal(inb(e, IMR) & 0x7f, 0x02);
    outb(e, CR, CR_START);
    outb(e, ISR, 0x01);                                         /* clearing another bit changes nothing */
    assert_true(intx(e));
    outb(e, ISR, 0x02);
    assert_false(intx(e));
}

static void test_receive_ring_wrap(void **state)
{
    struct env *e = *state;
    open_card(e, 0x4c, 0x54, 0x04);                             /* 8 pages */
    uint8_t f[400], hdr[4], data[400];
    uint8_t bnry = 0x4c;
    for (int n = 0; n < 12; n++) {
        size_t len = 300 + n * 8;                              /* 2 pages each with the header */
        frame_to(f, MAC, n, len);
        uint8_t at = curr(e);
        deliver(e, f, len);
        assert_true(inb(e, ISR) & 0x01);                        /* PRX */
        assert_true(intx(e));
        remote_read(e, at << 8, hdr, 4);
        assert_int_equal(hdr[0] & 0x01, 0x01);                  /* RSR: received intact */
        unsigned total = hdr[2] | hdr[3] << 8;
        assert_int_equal(total, len + 4);
        unsigned next = at + 2 >= 0x54 ? at + 2 - 8 : at + 2;
        assert_int_equal(hdr[1], next);
        assert_int_equal(curr(e), next);
        /* Reading the frame wraps from PSTOP to PSTART like the chip's DMA. */
        remote_read(e, (at << 8) + 4, data, len);
        assert_memory_equal(data, f, len);
        outb(e, ISR, 0x01);                                     /* acknowledged before BNRY moved: */
        assert_true(inb(e, ISR) & 0x01);                        /* the frame is still there */
        bnry = next == 0x4c ? 0x53 : next - 1;                  /* Linux's convention: last page read */
        outb(e, BNRY, bnry);
        outb(e, ISR, 0x41);
        assert_false(intx(e));
    }
}

static void test_ring_full_holds_frames(void **state)
{
    struct env *e = *state;
    open_card(e, 0x4c, 0x5c, 0x04);                             /* 16 pages: two full-size frames */
    uint8_t f[1514];
    for (int n = 0; n < 4; n++) {
        frame_to(f, MAC, n, sizeof(f));
        deliver(e, f, sizeof(f));
    }
    assert_true(e->nd->q_count >= 2);                           /* waiting, not dropped */
    assert_int_equal(ne2k_dropped(e->card), 0);
    outb(e, ISR, 0x01);
    assert_true(inb(e, ISR) & 0x01);                            /* still frames to come */
    uint8_t c = curr(e);
    outb(e, BNRY, c == 0x4c ? 0x5b : c - 1);                    /* the driver read everything */
    assert_true(e->nd->q_count < 2);
}

/* The DP8390's hash: the six most significant bits of the big-endian CRC-32. */
static unsigned reference_hash(const uint8_t *addr)
{
    uint32_t crc = 0xffffffffu;
    for (int i = 0; i < 6; i++)
        for (int b = 0; b < 8; b++) {
            int bit = (addr[i] >> b) & 1;
            crc = (crc << 1) ^ ((((crc >> 31) & 1) ^ bit) ? 0x04c11db7u : 0);
        }
    return crc >> 26;
}

static void test_multicast_hash(void **state)
{
    struct env *e = *state;
    open_card(e, 0x4c, 0x80, 0x0c);                             /* AB | AM */
    static const uint8_t group[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb };
    uint8_t f[64];
    frame_to(f, group, 0, sizeof(f));
    deliver(e, f, sizeof(f));
    assert_false(inb(e, ISR) & 0x01);                           /* filter empty */
    unsigned bit = reference_hash(group);
    outb(e, CR, CR_START | PAGE1);
    outb(e, MAR0 + (bit >> 3), 1 << (bit & 7));
    outb(e, CR, CR_START);
    deliver(e, f, sizeof(f));
    assert_true(inb(e, ISR) & 0x01);
    outb(e, BNRY, curr(e) - 1);                                 /* the driver read it */
    outb(e, ISR, 0x01);
    /* A different group that hashes elsewhere stays out. */
    uint8_t other[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 };
    for (int k = 2; reference_hash(other) == bit; k++)
        other[5] = k;
    frame_to(f, other, 1, sizeof(f));
    deliver(e, f, sizeof(f));
    assert_false(inb(e, ISR) & 0x01);
    /* Promiscuous takes anything. */
    outb(e, RCR, 0x10);
    frame_to(f, (const uint8_t *)"\x52\x54\x00\x00\x00\x09", 2, sizeof(f));
    deliver(e, f, sizeof(f));
    assert_true(inb(e, ISR) & 0x01);
}

static void test_guest_mistakes(void **state)
{
    struct env *e = *state;
    /* PSTART above PSTOP: frames are dropped and counted. */
    open_card(e, 0x70, 0x50, 0x04);
    uint8_t f[100];
    frame_to(f, MAC, 0, sizeof(f));
    deliver(e, f, sizeof(f));
    assert_int_equal(ne2k_dropped(e->card), 1);
    assert_false(inb(e, ISR) & 0x01);
    /* A ring outside the card's memory. */
    open_card(e, 0x90, 0xff, 0x04);
    deliver(e, f, sizeof(f));
    assert_int_equal(ne2k_dropped(e->card), 2);
    /* A transmit longer than any Ethernet frame: TXE, nothing sent. */
    open_card(e, 0x4c, 0x80, 0x04);
    outb(e, TPSR, 0x40);
    outb(e, TBCR0, 0xff);
    outb(e, TBCR1, 0xff);
    outb(e, CR, CR_TXP);
    assert_int_equal(e->nsent, 0);
    assert_true(inb(e, ISR) & 0x08);
    assert_int_equal(ne2k_dropped(e->card), 3);
    /* A transmit from pages beyond the memory reads ones, never outside the card. */
    outb(e, ISR, 0xff);
    outb(e, TPSR, 0xff);
    outb(e, TBCR0, 0x00);
    outb(e, TBCR1, 0x02);
    outb(e, CR, CR_TXP);
    assert_int_equal(e->nsent, 1);
    assert_int_equal(e->sent[0][0], 0xff);
    /* Remote DMA anywhere in the 64 KiB space stays bounded. */
    remote(e, CR_RWRITE, 0xfff0, 64);
    for (int i = 0; i < 64; i++)
        outb(e, DATA, 0xaa);
    uint8_t b[4];
    remote_read(e, 0xfffe, b, 4);
    assert_int_equal(b[0], 0xff);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_reset_values_and_prom),
        T(test_remote_dma_and_transmit),
        T(test_isr_imr),
        T(test_receive_ring_wrap),
        T(test_ring_full_holds_frames),
        T(test_multicast_hash),
        T(test_guest_mistakes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
