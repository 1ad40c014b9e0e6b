#include "devices/ne2k.h"
#include "devices/bus.h"
#include "devices/state.h"
#include "devices/pci.h"
#include "hosted-driver/net.h"
#include "hosted-driver/xalloc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* CR */
#define CR_STP 0x01
#define CR_STA 0x02
#define CR_TXP 0x04
#define CR_RD_MASK 0x38
#define CR_RD_READ 0x08
#define CR_RD_WRITE 0x10
#define CR_RD_SEND 0x18
#define CR_RD_ABORT 0x20
#define CR_PAGE(cr) ((cr) >> 6)

/* ISR / IMR */
#define ISR_PRX 0x01
#define ISR_PTX 0x02
#define ISR_RXE 0x04
#define ISR_TXE 0x08
#define ISR_OVW 0x10
#define ISR_CNT 0x20
#define ISR_RDC 0x40
#define ISR_RST 0x80

/* RCR */
#define RCR_AB 0x04
#define RCR_AM 0x08
#define RCR_PRO 0x10
#define RCR_MON 0x20

/* DCR */
#define DCR_WTS 0x01

/* TCR loopback modes (bits 2:1) */
#define TCR_LB_MASK 0x06

/* RSR */
#define RSR_PRX 0x01
#define RSR_PHY 0x20

/* TSR */
#define TSR_PTX 0x01
#define TSR_ABT 0x08

#define IO_SIZE 32
#define PORT_DATA 0x10
#define PORT_RESET 0x18
#define MEM_START 0x4000
#define MEM_END 0x8000
#define PROM_SIZE 32
#define PAGE 256
#define RX_HEADER 4
#define MIN_FRAME 60

struct ne2k {
    struct pci_dev pci;
    struct bus *bus;
    struct netdev *nd;
    uint32_t iobase;
    uint8_t cr, isr, imr, rcr, tcr, dcr, tsr, rsr, ncr;
    uint8_t pstart, pstop, bnry, curr, tpsr;
    uint16_t tbcr, rsar, rbcr, crda;
    uint8_t par[6], mar[8];
    uint8_t cntr[3];
    uint8_t prom[PROM_SIZE];
    uint8_t mem[MEM_END - MEM_START];
    uint64_t dropped;
    char name[24];              /* ne2k_pci-SLOT: two cards need two names */
};

static void update_irq(struct ne2k *s)
{
    pci_set_irq(&s->pci, (s->isr & s->imr & 0x7f) != 0);
}

static void raise_isr(struct ne2k *s, uint8_t bits)
{
    s->isr |= bits;
    update_irq(s);
}

/* ---- buffer memory (bounded: anything outside the card reads as ones) ---- */

static uint8_t mem_read_byte(const struct ne2k *s, uint16_t addr)
{
    if (addr < PROM_SIZE)
        return s->prom[addr];
    if (addr >= MEM_START && addr < MEM_END)
        return s->mem[addr - MEM_START];
    return 0xff;
}

static void mem_write_byte(struct ne2k *s, uint16_t addr, uint8_t v)
{
    if (addr >= MEM_START && addr < MEM_END)
        s->mem[addr - MEM_START] = v;
}

/* ---- transmit ---- */

static void transmit(struct ne2k *s)
{
    uint8_t frame[NET_MAX_FRAME];
    size_t len = s->tbcr;
    s->cr &= ~CR_TXP;
    if (len > NET_MAX_FRAME || len == 0) {
        s->dropped++;
        s->tsr = TSR_ABT;
        raise_isr(s, ISR_TXE);
        return;
    }
    for (size_t i = 0; i < len; i++)
        frame[i] = mem_read_byte(s, (uint16_t)((s->tpsr << 8) + i));
    /* Loopback modes keep the frame on the card; drivers use them only for self-tests. */
    if (!(s->tcr & TCR_LB_MASK))
        netdev_send(s->nd, frame, len);
    s->tsr = TSR_PTX;
    s->ncr = 0;
    raise_isr(s, ISR_PTX);
}

/* ---- receive ---- */

static bool ring_valid(const struct ne2k *s)
{
    return s->pstart >= MEM_START / PAGE && s->pstop <= MEM_END / PAGE && s->pstart < s->pstop &&
           s->curr >= s->pstart && s->curr < s->pstop;
}

/* Whole pages free between CURR and BNRY (CURR may never catch up with BNRY). */
static unsigned free_pages(const struct ne2k *s)
{
    unsigned size = s->pstop - s->pstart;
    unsigned bnry = s->bnry;
    /* Linux writes PSTART-1 after reading the ring's last page: the page
     * before PSTART is, around the ring, PSTOP-1. */
    if (bnry == s->pstart - 1u)
        bnry = s->pstop - 1;
    if (bnry < s->pstart || bnry >= s->pstop)
        return 0;
    if (s->curr < bnry)
        return bnry - s->curr;
    return size - (s->curr - bnry);
}

/* Room for the largest frame, its header and FCS, without reaching BNRY. */
static bool room_for_any_frame(const struct ne2k *s)
{
    return free_pages(s) > (NET_MAX_FRAME + RX_HEADER + 4 + PAGE - 1) / PAGE;
}

/* Unread frames, whichever way the driver keeps BNRY: as the last page it
 * read (Linux: empty when BNRY+1 is CURR) or as the next one (empty when
 * BNRY is CURR). */
static bool ring_has_frames(const struct ne2k *s)
{
    unsigned after_bnry = s->bnry + 1u >= s->pstop ? s->pstart : s->bnry + 1u;
    return s->bnry != s->curr && after_bnry != s->curr;
}

static bool receiving(const struct ne2k *s)
{
    return (s->cr & (CR_STA | CR_STP)) == CR_STA && !(s->rcr & RCR_MON);
}

static bool ne2k_can_receive(void *opaque)
{
    struct ne2k *s = opaque;
    if (!receiving(s) || !ring_valid(s))
        return true;        /* dropped at once */
    return room_for_any_frame(s);
}

static unsigned multicast_bit(const uint8_t *dst)
{
    /* The DP8390 hashes with the CRC's six most significant bits in
     * big-endian bit order: the reversed low six bits of the reflected CRC. */
    uint32_t crc = ~net_crc32(dst, 6);
    unsigned bit = 0;
    for (int k = 0; k < 6; k++)
        bit |= ((crc >> k) & 1) << (5 - k);
    return bit;
}

static bool accept(const struct ne2k *s, const uint8_t *dst, uint8_t *rsr)
{
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    if (s->rcr & RCR_PRO) {
        *rsr |= dst[0] & 1 ? RSR_PHY : 0;
        return true;
    }
    if (!memcmp(dst, bcast, 6)) {
        *rsr |= RSR_PHY;
        return (s->rcr & RCR_AB) != 0;
    }
    if (dst[0] & 1) {
        unsigned bit = multicast_bit(dst);
        *rsr |= RSR_PHY;
        return (s->rcr & RCR_AM) && (s->mar[bit >> 3] >> (bit & 7) & 1);
    }
    return !memcmp(dst, s->par, 6);
}

static void ne2k_receive(void *opaque, const uint8_t *frame, size_t len)
{
    struct ne2k *s = opaque;
    if (!receiving(s) || len < 14 || len > NET_MAX_FRAME + 4)
        return;
    uint8_t rsr = RSR_PRX;
    if (!accept(s, frame, &rsr))
        return;
    if (!ring_valid(s)) {
        s->dropped++;
        return;
    }
    size_t data_len = len < MIN_FRAME ? MIN_FRAME : len;
    unsigned total = data_len + RX_HEADER;
    unsigned pages = (total + 4 + PAGE - 1) / PAGE;    /* room for the FCS the chip would store */
    if (free_pages(s) <= pages) {
        s->dropped++;
        if (s->cntr[2] < 0xff)
            s->cntr[2]++;       /* missed packets */
        raise_isr(s, ISR_OVW);
        return;
    }
    unsigned next = s->curr + pages;
    if (next >= s->pstop)
        next -= s->pstop - s->pstart;
    uint8_t hdr[RX_HEADER] = { rsr, (uint8_t)next, (uint8_t)total, (uint8_t)(total >> 8) };
    unsigned addr = s->curr * PAGE;
    unsigned ring_start = s->pstart * PAGE, ring_end = s->pstop * PAGE;
    for (unsigned i = 0; i < total; i++) {
        uint8_t b = i < RX_HEADER ? hdr[i] : (i - RX_HEADER < len ? frame[i - RX_HEADER] : 0);
        mem_write_byte(s, (uint16_t)addr, b);
        if (++addr == ring_end)
            addr = ring_start;
    }
    s->curr = next;
    s->rsr = rsr;
    raise_isr(s, ISR_PRX);
}

/* ---- remote DMA ---- */

static void rdma_advance(struct ne2k *s, unsigned n)
{
    s->rsar += n;
    /* Reads of a received frame wrap around the ring, as on the chip. */
    if (s->pstop > s->pstart && s->rsar == s->pstop * PAGE)
        s->rsar = s->pstart * PAGE;
    s->rbcr = s->rbcr > n ? s->rbcr - n : 0;
    if (!s->rbcr && (s->cr & CR_RD_MASK) != CR_RD_ABORT) {
        s->cr = (s->cr & ~CR_RD_MASK) | CR_RD_ABORT;
        raise_isr(s, ISR_RDC);
    }
}

static uint32_t data_read(struct ne2k *s, int size)
{
    unsigned n = (s->dcr & DCR_WTS) && size == 1 ? 2 : size;
    uint32_t v = 0;
    for (unsigned k = 0; k < n; k++) {
        uint16_t a = s->rsar + k;
        v |= (uint32_t)mem_read_byte(s, a) << (8 * k);
    }
    rdma_advance(s, n);
    return size == 4 ? v : v & ((1u << (8 * size)) - 1);
}

static void data_write(struct ne2k *s, uint32_t v, int size)
{
    unsigned n = (s->dcr & DCR_WTS) && size == 1 ? 2 : size;
    for (unsigned k = 0; k < n; k++)
        mem_write_byte(s, (uint16_t)(s->rsar + k), v >> (8 * k));
    rdma_advance(s, n);
}

/* ---- registers ---- */

static void command_write(struct ne2k *s, uint8_t v)
{
    uint8_t run = s->cr & (CR_STA | CR_STP);
    if (v & CR_STP) {
        run = CR_STP;
        s->isr |= ISR_RST;
    } else if (v & CR_STA) {
        run = CR_STA;
        s->isr &= ~ISR_RST;
    }
    s->cr = (v & ~(CR_TXP | CR_STA | CR_STP)) | run;
    if ((v & CR_RD_MASK) == CR_RD_SEND) {
        /* "Send packet": point remote DMA at the frame after BNRY. */
        s->rsar = s->bnry * PAGE;
        s->rbcr = mem_read_byte(s, s->rsar + 2) | mem_read_byte(s, s->rsar + 3) << 8;
    }
    if ((v & CR_RD_MASK) && (v & CR_RD_MASK) < CR_RD_ABORT && s->rbcr == 0 && (v & CR_RD_MASK) != CR_RD_SEND)
        raise_isr(s, ISR_RDC);      /* a zero-length transfer completes at once */
    if ((v & CR_TXP) && (s->cr & CR_STA))
        transmit(s);
    update_irq(s);
}

static uint8_t page0_read(struct ne2k *s, unsigned r)
{
    switch (r) {
    case 0x01: return 0;            /* CLDA0 */
    case 0x02: return 0;
    case 0x03: return s->bnry;
    case 0x04: return s->tsr;
    case 0x05: return s->ncr;
    case 0x06: return 0;            /* FIFO */
    case 0x07: return s->isr;
    case 0x08: return s->rsar;      /* CRDA: the current remote address */
    case 0x09: return s->rsar >> 8;
    case 0x0a: return 0x50;         /* RTL8029 ID0 'P' */
    case 0x0b: return 0x43;         /* RTL8029 ID1 'C' */
    case 0x0c: return s->rsr;
    case 0x0d: return s->cntr[0];
    case 0x0e: return s->cntr[1];
    case 0x0f: return s->cntr[2];
    }
    return 0xff;
}

static void page0_write(struct ne2k *s, unsigned r, uint8_t v)
{
    switch (r) {
    case 0x01: s->pstart = v; break;
    case 0x02: s->pstop = v; break;
    case 0x03: s->bnry = v; break;
    case 0x04: s->tpsr = v; break;
    case 0x05: s->tbcr = (s->tbcr & 0xff00) | v; break;
    case 0x06: s->tbcr = (s->tbcr & 0x00ff) | v << 8; break;
    case 0x07:
        s->isr &= ~(v & 0x7f);      /* RST is not cleared by a write */
        /* "Received" stays while frames remain in the ring: Linux's 8390
         * driver reads at most ten frames per interrupt and acknowledges,
         * counting on the next arrival to bring it back, and here frames
         * arrive in bursts, so the rest would wait for a retransmission. */
        if (receiving(s) && ring_valid(s) && ring_has_frames(s))
            s->isr |= ISR_PRX;
        update_irq(s);
        break;
    case 0x08: s->rsar = (s->rsar & 0xff00) | v; break;
    case 0x09: s->rsar = (s->rsar & 0x00ff) | v << 8; break;
    case 0x0a: s->rbcr = (s->rbcr & 0xff00) | v; break;
    case 0x0b: s->rbcr = (s->rbcr & 0x00ff) | v << 8; break;
    case 0x0c: s->rcr = v & 0x3f; break;
    case 0x0d: s->tcr = v & 0x1f; break;
    case 0x0e: s->dcr = v & 0x7f; break;
    case 0x0f:
        s->imr = v & 0x7f;
        update_irq(s);
        break;
    }
}

static uint8_t page1_read(struct ne2k *s, unsigned r)
{
    if (r <= 6)
        return s->par[r - 1];
    if (r == 7)
        return s->curr;
    return s->mar[r - 8];
}

static void page1_write(struct ne2k *s, unsigned r, uint8_t v)
{
    if (r <= 6)
        s->par[r - 1] = v;
    else if (r == 7)
        s->curr = v;
    else
        s->mar[r - 8] = v;
}

static uint8_t page2_read(struct ne2k *s, unsigned r)
{
    switch (r) {
    case 0x01: return s->pstart;
    case 0x02: return s->pstop;
    case 0x04: return s->tpsr;
    case 0x0c: return s->rcr | 0xc0;
    case 0x0d: return s->tcr | 0xe0;
    case 0x0e: return s->dcr | 0x80;
    case 0x0f: return s->imr | 0x80;
    }
    return 0;
}

static uint8_t reg_read(struct ne2k *s, unsigned r)
{
    if (r == 0)
        return s->cr;
    switch (CR_PAGE(s->cr)) {
    case 0: return page0_read(s, r);
    case 1: return page1_read(s, r);
    case 2: return page2_read(s, r);
    default: return 0;              /* page 3: RTL8029 configuration, all defaults */
    }
}

static void reg_write(struct ne2k *s, unsigned r, uint8_t v)
{
    if (r == 0) {
        command_write(s, v);
        return;
    }
    switch (CR_PAGE(s->cr)) {
    case 0: page0_write(s, r, v); break;
    case 1: page1_write(s, r, v); break;
    default: break;                 /* page 2 is for diagnostics, page 3 read-only here */
    }
}

static void soft_reset(struct ne2k *s)
{
    s->cr = CR_STP | CR_RD_ABORT;
    s->isr = ISR_RST;
    s->imr = 0;
    s->dcr = 0;
    s->rcr = 0;
    s->tcr = 0;
    s->tsr = 0;
    s->rsr = 0;
    s->rbcr = 0;
    update_irq(s);
}

static void hard_reset(void *opaque)
{
    struct ne2k *s = opaque;
    s->pstart = s->pstop = s->bnry = s->curr = s->tpsr = 0;
    s->tbcr = s->rsar = 0;
    memset(s->mar, 0, sizeof(s->mar));
    memset(s->cntr, 0, sizeof(s->cntr));
    soft_reset(s);
}

static uint32_t io_read(void *opaque, uint16_t port, int size)
{
    struct ne2k *s = opaque;
    unsigned off = port - s->iobase;
    uint32_t v;
    if (off < PORT_DATA) {
        v = 0;
        for (int k = 0; k < size && off + k < PORT_DATA; k++)
            v |= (uint32_t)reg_read(s, off + k) << (8 * k);
    } else if (off < PORT_RESET) {
        v = data_read(s, size);
    } else {
        soft_reset(s);
        v = 0;
    }
    return v;
}

static void io_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct ne2k *s = opaque;
    unsigned off = port - s->iobase;
    if (off < PORT_DATA) {
        for (int k = 0; k < size && off + k < PORT_DATA; k++)
            reg_write(s, off + k, val >> (8 * k));
    } else if (off < PORT_RESET) {
        data_write(s, val, size);
    }
    /* BNRY moved or the receiver started: waiting frames may fit now. */
    netdev_rx_kick(s->nd);
}

static void io_map(struct pci_dev *pd, int bar, uint32_t base)
{
    struct ne2k *s = pd->opaque;
    if (s->iobase != PCI_BAR_UNMAPPED)
        bus_unregister_pio(s->bus, (uint16_t)s->iobase, IO_SIZE);
    s->iobase = PCI_BAR_UNMAPPED;
    if (base == PCI_BAR_UNMAPPED || base > 0x10000 - IO_SIZE)
        return;
    s->iobase = base;
    bus_register_pio(s->bus, (uint16_t)base, IO_SIZE, s, io_read, io_write);
}

static void ne2k_post_load(void *opaque)
{
    struct ne2k *s = opaque;
    pci_dev_post_load(&s->pci);
}

/* The PROM is the MAC the command line gave; PAR0-5 hold the guest's copy. */
static const struct state_field ne2k_fields[] = {
    STATE_FIELD(struct ne2k, pci.config), STATE_FIELD(struct ne2k, pci.irq_level),
    STATE_FIELD(struct ne2k, cr), STATE_FIELD(struct ne2k, isr), STATE_FIELD(struct ne2k, imr),
    STATE_FIELD(struct ne2k, rcr), STATE_FIELD(struct ne2k, tcr), STATE_FIELD(struct ne2k, dcr),
    STATE_FIELD(struct ne2k, tsr), STATE_FIELD(struct ne2k, rsr), STATE_FIELD(struct ne2k, ncr),
    STATE_FIELD(struct ne2k, pstart), STATE_FIELD(struct ne2k, pstop), STATE_FIELD(struct ne2k, bnry),
    STATE_FIELD(struct ne2k, curr), STATE_FIELD(struct ne2k, tpsr), STATE_FIELD(struct ne2k, tbcr),
    STATE_FIELD(struct ne2k, rsar), STATE_FIELD(struct ne2k, rbcr), STATE_FIELD(struct ne2k, crda),
    STATE_FIELD(struct ne2k, par), STATE_FIELD(struct ne2k, mar), STATE_FIELD(struct ne2k, cntr),
    STATE_FIELD(struct ne2k, mem), STATE_FIELD(struct ne2k, dropped),
};
static const struct state_table ne2k_state = { "ne2k_pci", 1, ne2k_fields, STATE_COUNT(ne2k_fields), ne2k_post_load };

struct ne2k *ne2k_new(struct bus *b, struct pci_bus *pb, int devfn, const uint8_t mac[6], struct netdev *nd)
{
    struct ne2k *s = xcalloc(1, sizeof(*s));
    s->bus = b;
    s->nd = nd;
    s->iobase = PCI_BAR_UNMAPPED;
    for (int k = 0; k < 6; k++)
        s->prom[2 * k] = s->prom[2 * k + 1] = mac[k];
    /* "WW" where word-wide NE2000 clones keep it (bytes 14-15, doubled). */
    s->prom[28] = s->prom[29] = s->prom[30] = s->prom[31] = 0x57;

    struct pci_dev *pd = &s->pci;
    pci_dev_init(pd, "ne2k_pci", devfn, 0x10ec, 0x8029, 0x020000, 0x00);
    pd->opaque = s;
    pd->config[0x3d] = 1;                 /* INTERRUPT_PIN: INTA# */
    pci_set_bar(pd, 0, IO_SIZE, true, io_map);
    pci_register(pb, pd);

    if (nd)
        netdev_attach(nd, ne2k_can_receive, ne2k_receive, s);
    snprintf(s->name, sizeof(s->name), "ne2k_pci-%d", devfn >> 3);
    bus_add_device(b, &(struct device){ .name = s->name, .opaque = s, .reset = hard_reset, .state = &ne2k_state });
    hard_reset(s);
    return s;
}

void ne2k_set_rom(struct ne2k *s, const uint8_t *img, uint32_t len)
{
    pci_set_rom_image(&s->pci, img, len);
}

void ne2k_free(struct ne2k *s)
{
    if (s)
        free(s->pci.rom_image);
    free(s);
}

uint64_t ne2k_dropped(const struct ne2k *s)
{
    return s->dropped;
}
