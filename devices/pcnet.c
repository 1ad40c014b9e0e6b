#include "devices/pcnet.h"
#include "devices/bus.h"
#include "devices/state.h"
#include "devices/pci.h"
#include "hosted-driver/net.h"
#include "hosted-driver/vclock.h"
#include "hosted-driver/xalloc.h"

#include <stdlib.h>
#include <string.h>

/* CSR0 */
#define C0_INIT 0x0001
#define C0_STRT 0x0002
#define C0_STOP 0x0004
#define C0_TDMD 0x0008
#define C0_TXON 0x0010
#define C0_RXON 0x0020
#define C0_IENA 0x0040
#define C0_INTR 0x0080
#define C0_IDON 0x0100
#define C0_TINT 0x0200
#define C0_RINT 0x0400
#define C0_MERR 0x0800
#define C0_MISS 0x1000
#define C0_CERR 0x2000
#define C0_BABL 0x4000
#define C0_ERR 0x8000
#define C0_W1C (C0_BABL | C0_CERR | C0_MISS | C0_MERR | C0_RINT | C0_TINT | C0_IDON)

/* CSR3: masks for the CSR0 interrupt sources (same bit positions) */
#define C3_MASKS (C0_BABL | C0_MISS | C0_MERR | C0_RINT | C0_TINT | C0_IDON)

/* CSR4 */
#define C4_JABM 0x0001
#define C4_JAB 0x0002
#define C4_TXSTRTM 0x0004
#define C4_TXSTRT 0x0008
#define C4_RCVCCOM 0x0010
#define C4_RCVCCO 0x0020
#define C4_UINT 0x0040
#define C4_UINTCMD 0x0080
#define C4_MFCOM 0x0100
#define C4_MFCO 0x0200
#define C4_ASTRP_RCV 0x0400
#define C4_APAD_XMT 0x0800
#define C4_DPOLL 0x1000
#define C4_W1C (C4_JAB | C4_TXSTRT | C4_RCVCCO | C4_UINT | C4_MFCO)

/* CSR15 (mode) */
#define C15_DRX 0x0001
#define C15_DTX 0x0002
#define C15_LOOP 0x0004
#define C15_DRCVPA 0x2000
#define C15_DRCVBC 0x4000
#define C15_PROM 0x8000

/* Descriptor status, as the high half of word 1 in style 2 (style 0 has the high byte). */
#define D_OWN 0x8000
#define D_ERR 0x4000
#define D_RX_FRAM 0x2000
#define D_RX_OFLO 0x1000
#define D_RX_CRC 0x0800
#define D_RX_BUFF 0x0400
#define D_TX_MORE 0x1000
#define D_STP 0x0200
#define D_ENP 0x0100
#define D_RX_PAM 0x0040
#define D_RX_LAFM 0x0020
#define D_RX_BAM 0x0010
/* What the card reports about a received buffer (cleared before it writes them). */
#define D_RX_REPORTED (D_OWN | D_ERR | D_RX_FRAM | D_RX_OFLO | D_RX_CRC | D_RX_BUFF | D_STP | D_ENP | \
                       D_RX_PAM | D_RX_LAFM | D_RX_BAM)
/* The TX descriptor's third word (style 2): BUFF and UFLO end a frame with an error. */
#define TX_MISC_BUFF 0x80000000u
#define TX_MISC_UFLO 0x40000000u

#define CHIP_ID 0x02621003u     /* CSR88/89: part 0x2621 (Am79C970A), AMD */
#define IO_SIZE 32
#define TX_POLL_NS 1600000      /* the chip polls the transmit ring every 1.6 ms unless DPOLL */
#define MAX_RING 512
#define TXBUF_SIZE 4096         /* a frame longer than this is a babbling guest */
#define LINK_UP 0x0040          /* BCR4-7 status input: link OK */

struct desc {
    uint32_t addr;
    uint16_t status;
    uint16_t bcnt;              /* buffer size in bytes (1..4096), decoded */
    uint32_t misc;              /* RX: message byte count; TX: error word */
};

struct pcnet {
    struct pci_dev pci;
    struct bus *bus;
    struct netdev *nd;
    guest_phys_rw_fn rw;
    void *rw_opaque;
    struct vtimer *tx_poll;
    uint32_t iobase;
    uint8_t prom[16];
    uint16_t csr[128];
    uint16_t bcr[32];
    uint32_t rap;
    bool dwio;
    uint32_t rx_base, tx_base;  /* descriptor rings (guest-physical) */
    unsigned rx_len, tx_len;    /* entries */
    unsigned rx_cur, tx_cur;
    uint8_t txbuf[TXBUF_SIZE];
    size_t txlen;
    bool tx_in_frame, tx_frame_bad;
    uint64_t dropped;
    char name[24];              /* pcnet-SLOT: two cards need two names */
};

static bool style_32(const struct pcnet *s)
{
    return (s->bcr[20] & 0xff) != 0;
}

static unsigned style(const struct pcnet *s)
{
    return s->bcr[20] & 0xff;
}

/* 24-bit (style 0) addresses take their top byte from CSR2's high byte. */
static uint32_t phys_addr(const struct pcnet *s, uint32_t a)
{
    return style_32(s) ? a : (a & 0x00ffffff) | ((uint32_t)(s->csr[2] & 0xff00) << 16);
}

static bool mem_read(struct pcnet *s, uint32_t gpa, void *buf, uint32_t len)
{
    return s->rw(s->rw_opaque, gpa, buf, len, false);
}

static bool mem_write(struct pcnet *s, uint32_t gpa, const void *buf, uint32_t len)
{
    return s->rw(s->rw_opaque, gpa, (void *)buf, len, true);
}

/* ---- interrupts ---- */

static uint16_t csr0_value(const struct pcnet *s)
{
    uint16_t c0 = s->csr[0] & ~(C0_ERR | C0_INTR);
    if (c0 & (C0_BABL | C0_CERR | C0_MISS | C0_MERR))
        c0 |= C0_ERR;
    uint16_t pending = c0 & C3_MASKS & ~(s->csr[3] & C3_MASKS);
    uint16_t c4 = s->csr[4];
    bool c4_pending = (c4 & C4_UINT) || ((c4 & C4_MFCO) && !(c4 & C4_MFCOM)) ||
                      ((c4 & C4_RCVCCO) && !(c4 & C4_RCVCCOM)) || ((c4 & C4_TXSTRT) && !(c4 & C4_TXSTRTM)) ||
                      ((c4 & C4_JAB) && !(c4 & C4_JABM));
    if (pending || c4_pending)
        c0 |= C0_INTR;
    return c0;
}

static void update_irq(struct pcnet *s)
{
    uint16_t c0 = csr0_value(s);
    pci_set_irq(&s->pci, (c0 & C0_INTR) && (c0 & C0_IENA));
}

/* ---- descriptors ---- */

static unsigned desc_size(const struct pcnet *s)
{
    return style_32(s) ? 16 : 8;
}

static uint16_t decode_bcnt(uint16_t raw)
{
    uint16_t n = (uint16_t)(-raw) & 0x0fff;
    return n ? n : 4096;
}

static bool read_desc(struct pcnet *s, uint32_t at, struct desc *d)
{
    if (style_32(s)) {
        uint32_t w[4];
        if (!mem_read(s, at, w, 16))
            return false;
        bool swapped = style(s) == 3;
        d->addr = swapped ? w[2] : w[0];
        d->misc = swapped ? w[0] : w[2];
        d->status = w[1] >> 16;
        d->bcnt = decode_bcnt(w[1] & 0xffff);
    } else {
        uint16_t h[4];
        if (!mem_read(s, at, h, 8))
            return false;
        d->addr = phys_addr(s, h[0] | (uint32_t)(h[1] & 0xff) << 16);
        d->status = h[1] & 0xff00;
        d->bcnt = decode_bcnt(h[2]);
        d->misc = h[3];
    }
    return true;
}

/* Writes back the status and the misc word (RX byte count, TX errors). */
static bool write_desc(struct pcnet *s, uint32_t at, const struct desc *d)
{
    if (style_32(s)) {
        bool swapped = style(s) == 3;
        uint32_t misc = d->misc;
        uint16_t status = d->status;
        return mem_write(s, at + (swapped ? 0 : 8), &misc, 4) && mem_write(s, at + 6, &status, 2);
    }
    uint16_t misc = d->misc;
    uint8_t status = d->status >> 8;
    return mem_write(s, at + 6, &misc, 2) && mem_write(s, at + 3, &status, 1);
}

static uint32_t rx_desc_at(const struct pcnet *s, unsigned idx)
{
    return s->rx_base + idx * desc_size(s);
}

static uint32_t tx_desc_at(const struct pcnet *s, unsigned idx)
{
    return s->tx_base + idx * desc_size(s);
}

/* A guest memory access failed: a bus error in the chip's terms. */
static void memory_error(struct pcnet *s)
{
    s->csr[0] |= C0_MERR;
    s->dropped++;
}

/* ---- transmit ---- */

static bool tx_running(const struct pcnet *s)
{
    return (s->csr[0] & (C0_TXON | C0_STOP)) == C0_TXON;
}

static void send_frame(struct pcnet *s)
{
    size_t len = s->txlen;
    if (len < 60 && (s->csr[4] & C4_APAD_XMT)) {
        memset(s->txbuf + len, 0, 60 - len);
        len = 60;
    }
    /* Loopback (CSR15 LOOP) would return the frame to ourselves; drivers use it
     * only for self-tests, which we let pass by sending nothing outside. */
    if (!(s->csr[15] & C15_LOOP))
        netdev_send(s->nd, s->txbuf, len);
}

/* Walk the transmit ring from tx_cur while the guest owns nothing but
 * descriptors it handed to us: at most one lap, so a flood cannot keep the
 * monitor here. */
static void transmit(struct pcnet *s)
{
    if (!tx_running(s) || !s->tx_len)
        return;
    bool sent = false;
    for (unsigned n = 0; n < s->tx_len; n++) {
        uint32_t at = tx_desc_at(s, s->tx_cur);
        struct desc d;
        if (!read_desc(s, at, &d)) {
            memory_error(s);
            break;
        }
        if (!(d.status & D_OWN))
            break;
        if (d.status & D_STP) {
            s->txlen = 0;
            s->tx_in_frame = true;
            s->tx_frame_bad = false;
        }
        d.misc = 0;
        if (!s->tx_in_frame) {
            /* A middle descriptor without a start: hand it back with an error. */
            d.status |= D_ERR;
            d.misc = TX_MISC_BUFF;
            s->dropped++;
        } else if (s->txlen + d.bcnt > sizeof(s->txbuf)) {
            s->tx_frame_bad = true;
            s->csr[0] |= C0_BABL;
        } else if (!mem_read(s, d.addr, s->txbuf + s->txlen, d.bcnt)) {
            s->tx_frame_bad = true;
            s->csr[0] |= C0_MERR;
        } else {
            s->txlen += d.bcnt;
        }
        if (s->tx_in_frame && (d.status & D_ENP)) {
            if (s->tx_frame_bad) {
                d.status |= D_ERR;
                d.misc = TX_MISC_BUFF | TX_MISC_UFLO;
                s->dropped++;
            } else {
                send_frame(s);
            }
            s->tx_in_frame = false;
            sent = true;
        }
        d.status &= ~D_OWN;
        if (!style_32(s))
            d.misc >>= 16;       /* style 0 keeps the error bits in a 16-bit word */
        if (!write_desc(s, at, &d)) {
            memory_error(s);
            break;
        }
        s->tx_cur = (s->tx_cur + 1) % s->tx_len;
    }
    if (sent)
        s->csr[0] |= C0_TINT;
    update_irq(s);
}

static void tx_poll_fire(void *opaque)
{
    struct pcnet *s = opaque;
    if (!tx_running(s))
        return;
    transmit(s);
    if (!(s->csr[4] & C4_DPOLL))
        vtimer_mod(s->tx_poll, vclock_now(bus_clock(s->bus)) + TX_POLL_NS);
}

/* ---- receive ---- */

static bool rx_running(const struct pcnet *s)
{
    return (s->csr[0] & (C0_RXON | C0_STOP)) == C0_RXON && s->rx_len;
}

static bool pcnet_can_receive(void *opaque)
{
    struct pcnet *s = opaque;
    if (!rx_running(s))
        return true;         /* dropped at once, as a stopped receiver would */
    struct desc d;
    if (!read_desc(s, rx_desc_at(s, s->rx_cur), &d))
        return true;         /* counted as a memory error when the frame comes */
    return (d.status & D_OWN) != 0;
}

static uint64_t ladrf(const struct pcnet *s)
{
    return s->csr[8] | (uint64_t)s->csr[9] << 16 | (uint64_t)s->csr[10] << 32 | (uint64_t)s->csr[11] << 48;
}

/* Whether the address filters take a frame for dst; *how is the
 * descriptor's match bit (none when only promiscuous mode took it). */
static bool address_match(const struct pcnet *s, const uint8_t *dst, uint16_t *how)
{
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    uint16_t mode = s->csr[15];
    uint8_t padr[6];
    for (int k = 0; k < 3; k++) {
        padr[2 * k] = s->csr[12 + k];
        padr[2 * k + 1] = s->csr[12 + k] >> 8;
    }
    *how = 0;
    if (!(mode & C15_DRCVPA) && !memcmp(dst, padr, 6))
        *how = D_RX_PAM;
    else if (!memcmp(dst, bcast, 6))
        *how = mode & C15_DRCVBC ? 0 : D_RX_BAM;
    else if ((dst[0] & 1) && (ladrf(s) >> (~net_crc32(dst, 6) >> 26) & 1))
        *how = D_RX_LAFM;
    return *how || (mode & C15_PROM);
}

static void pcnet_receive(void *opaque, const uint8_t *frame, size_t len)
{
    struct pcnet *s = opaque;
    if (!rx_running(s) || (s->csr[15] & C15_DRX) || len < 14)
        return;
    uint16_t match;
    if (!address_match(s, frame, &match))
        return;
    /* What the wire carries: padded to 60 bytes, then the FCS. */
    uint8_t buf[NET_MAX_FRAME + 8 + 60];
    if (len > NET_MAX_FRAME + 4)
        len = NET_MAX_FRAME + 4;
    memcpy(buf, frame, len);
    if (len < 60) {
        memset(buf + len, 0, 60 - len);
        len = 60;
    }
    uint32_t fcs = net_crc32(buf, len);
    memcpy(buf + len, &fcs, 4);
    len += 4;

    size_t done = 0;
    bool first = true;
    for (unsigned n = 0; n < s->rx_len; n++) {
        uint32_t at = rx_desc_at(s, s->rx_cur);
        struct desc d;
        if (!read_desc(s, at, &d)) {
            memory_error(s);
            break;
        }
        if (!(d.status & D_OWN)) {
            if (first) {
                s->csr[0] |= C0_MISS;
                s->csr[112]++;
                s->dropped++;
            } else {
                /* Out of buffers mid-frame: the last one we filled says so. */
                s->dropped++;
            }
            break;
        }
        size_t chunk = len - done < d.bcnt ? len - done : d.bcnt;
        d.status &= ~D_RX_REPORTED;
        if (first)
            d.status |= D_STP | match;
        if (!mem_write(s, d.addr, buf + done, chunk)) {
            d.status |= D_ERR | D_RX_BUFF;
            s->csr[0] |= C0_MERR;
            s->dropped++;
            done = len;
        } else {
            done += chunk;
        }
        d.misc = 0;
        if (done == len) {
            d.status |= D_ENP;
            d.misc = len;
        }
        if (!write_desc(s, at, &d)) {
            memory_error(s);
            break;
        }
        s->rx_cur = (s->rx_cur + 1) % s->rx_len;
        first = false;
        if (done == len) {
            s->csr[0] |= C0_RINT;
            break;
        }
    }
    update_irq(s);
}

/* ---- initialization, start, stop ---- */

static unsigned ring_entries(unsigned log2len, unsigned max_log2)
{
    return 1u << (log2len > max_log2 ? max_log2 : log2len);
}

static void set_rings(struct pcnet *s)
{
    s->rx_base = s->csr[24] | (uint32_t)s->csr[25] << 16;
    s->tx_base = s->csr[30] | (uint32_t)s->csr[31] << 16;
    s->rx_len = (uint16_t)-s->csr[76];
    s->tx_len = (uint16_t)-s->csr[78];
    if (!s->rx_len || s->rx_len > MAX_RING)
        s->rx_len = MAX_RING;
    if (!s->tx_len || s->tx_len > MAX_RING)
        s->tx_len = MAX_RING;
    s->rx_cur = s->tx_cur = 0;
    s->tx_in_frame = false;
}

static void read_init_block(struct pcnet *s)
{
    uint32_t iadr = s->csr[1] | (uint32_t)s->csr[2] << 16;
    uint8_t ib[28];
    uint16_t mode;
    const uint8_t *padr, *ladr;
    uint32_t rdra, tdra;
    unsigned rlen, tlen;
    if (style_32(s)) {
        if (!mem_read(s, iadr, ib, 28)) {
            memory_error(s);
            return;
        }
        mode = ib[0] | ib[1] << 8;
        rlen = ring_entries(ib[2] >> 4, 9);
        tlen = ring_entries(ib[3] >> 4, 9);
        padr = ib + 4;
        ladr = ib + 12;
        memcpy(&rdra, ib + 20, 4);
        memcpy(&tdra, ib + 24, 4);
    } else {
        iadr = phys_addr(s, iadr);
        if (!mem_read(s, iadr, ib, 24)) {
            memory_error(s);
            return;
        }
        mode = ib[0] | ib[1] << 8;
        padr = ib + 2;
        ladr = ib + 8;
        rdra = phys_addr(s, ib[16] | ib[17] << 8 | (uint32_t)ib[18] << 16);
        rlen = ring_entries(ib[19] >> 5, 7);
        tdra = phys_addr(s, ib[20] | ib[21] << 8 | (uint32_t)ib[22] << 16);
        tlen = ring_entries(ib[23] >> 5, 7);
    }
    s->csr[15] = mode;
    for (int k = 0; k < 3; k++)
        s->csr[12 + k] = padr[2 * k] | padr[2 * k + 1] << 8;
    for (int k = 0; k < 4; k++)
        s->csr[8 + k] = ladr[2 * k] | ladr[2 * k + 1] << 8;
    s->csr[24] = rdra;
    s->csr[25] = rdra >> 16;
    s->csr[30] = tdra;
    s->csr[31] = tdra >> 16;
    s->csr[76] = -rlen;
    s->csr[78] = -tlen;
    set_rings(s);
    s->csr[0] |= C0_IDON;
    s->csr[0] &= ~C0_STOP;
}

static void start(struct pcnet *s)
{
    if (!s->rx_len)
        set_rings(s);
    s->csr[0] &= ~C0_STOP;
    s->csr[0] |= C0_STRT;
    if (!(s->csr[15] & C15_DTX))
        s->csr[0] |= C0_TXON;
    if (!(s->csr[15] & C15_DRX))
        s->csr[0] |= C0_RXON;
    if (!(s->csr[4] & C4_DPOLL))
        vtimer_mod(s->tx_poll, vclock_now(bus_clock(s->bus)) + TX_POLL_NS);
}

static void stop(struct pcnet *s)
{
    s->csr[0] = C0_STOP;
    s->csr[4] &= ~C4_W1C;
    vtimer_del(s->tx_poll);
}

/* S_RESET: what reading the RESET port does. */
static void soft_reset(struct pcnet *s)
{
    s->rap = 0;
    stop(s);
    s->csr[3] = 0;
    s->csr[4] = C4_MFCOM | C4_RCVCCOM | C4_TXSTRTM | C4_JABM;
    s->csr[5] = 0;
    s->csr[15] &= 0x21c4;
    s->csr[112] = 0;
    s->rx_len = s->tx_len = 0;
    s->tx_in_frame = false;
}

/* H_RESET: the PCI reset line. */
static void hard_reset(void *opaque)
{
    struct pcnet *s = opaque;
    memset(s->csr, 0, sizeof(s->csr));
    memset(s->bcr, 0, sizeof(s->bcr));
    s->dwio = false;
    soft_reset(s);
    for (int k = 0; k < 3; k++)
        s->csr[12 + k] = s->prom[2 * k] | s->prom[2 * k + 1] << 8;
    s->csr[88] = CHIP_ID & 0xffff;
    s->csr[89] = CHIP_ID >> 16;
    s->bcr[0] = 0x0005;
    s->bcr[1] = 0x0005;
    s->bcr[2] = 0x0002;            /* ASEL: media chosen automatically */
    s->bcr[4] = 0x00c0;            /* LED0: link status */
    s->bcr[5] = 0x0084;
    s->bcr[6] = 0x0088;
    s->bcr[7] = 0x0090;
    s->bcr[18] = 0x9001;
    s->bcr[22] = 0xff06;
    update_irq(s);
}

/* ---- registers ---- */

static uint16_t csr_read(struct pcnet *s, unsigned r)
{
    switch (r) {
    case 0:
        return csr0_value(s);
    case 58:
        return s->bcr[20];
    default:
        return r < 128 ? s->csr[r] : 0;
    }
}

static void csr0_write(struct pcnet *s, uint16_t v)
{
    uint16_t c0 = s->csr[0];
    c0 &= ~(v & C0_W1C);
    c0 = (c0 & ~C0_IENA) | (v & C0_IENA);
    s->csr[0] = c0;
    if (v & C0_STOP) {
        stop(s);
        return;
    }
    if (v & C0_INIT)
        read_init_block(s);
    if (v & C0_STRT)
        start(s);                   /* STRT alone also leaves the stopped state */
    if ((v & C0_TDMD) && tx_running(s))
        transmit(s);
}

static void csr_write(struct pcnet *s, unsigned r, uint16_t v)
{
    switch (r) {
    case 0:
        csr0_write(s, v);
        break;
    case 3:
        s->csr[3] = v & 0x5f7c;
        break;
    case 4:
        s->csr[4] = (s->csr[4] & C4_W1C & ~v) | (v & ~C4_W1C & ~C4_UINTCMD);
        if (v & C4_UINTCMD)
            s->csr[4] |= C4_UINT;
        break;
    case 58:
        s->bcr[20] = v & 0x03ff;
        break;
    case 88:
    case 89:
        break;                      /* chip id: read-only */
    default:
        if (r < 128)
            s->csr[r] = v;
        if (r == 76 || r == 78 || (r >= 24 && r <= 31 && r != 26 && r != 27))
            if (s->csr[0] & C0_STOP)
                set_rings(s);
        break;
    }
    update_irq(s);
}

static uint16_t bcr_read(struct pcnet *s, unsigned r)
{
    if (r >= 32)
        return 0;
    uint16_t v = s->bcr[r];
    if (r >= 4 && r <= 7) {
        v &= 0x7fff;
        if (v & 0x017f & LINK_UP)
            v |= 0x8000;        /* LEDOUT: an enabled status input is active */
    }
    if (r == 20 && (v & 0xff))
        v |= 0x0100;            /* SSIZE32 follows the software style */
    return v;
}

static void bcr_write(struct pcnet *s, unsigned r, uint16_t v)
{
    switch (r) {
    case 0:
    case 1:
    case 3:
    case 8:
    case 10:
    case 11:
    case 12:
    case 13:
    case 14:
    case 15:
        break;                      /* reserved or read-only */
    case 20:
        s->bcr[20] = v & 0x03ff & ~0x0100;
        /* Styles beyond 3 are reserved: treat them as style 2. */
        if ((s->bcr[20] & 0xff) > 3)
            s->bcr[20] = (s->bcr[20] & ~0xff) | 2;
        break;
    default:
        if (r < 32)
            s->bcr[r] = v;
        break;
    }
}

/* The register window's layout depends on the I/O mode. */
enum io_reg { IO_RDP, IO_RAP, IO_RESET, IO_BDP, IO_NONE };

static enum io_reg io_reg_at(const struct pcnet *s, unsigned off)
{
    if (s->dwio) {
        switch (off) {
        case 0x10: return IO_RDP;
        case 0x14: return IO_RAP;
        case 0x18: return IO_RESET;
        case 0x1c: return IO_BDP;
        }
    } else {
        switch (off) {
        case 0x10: return IO_RDP;
        case 0x12: return IO_RAP;
        case 0x14: return IO_RESET;
        case 0x16: return IO_BDP;
        }
    }
    return IO_NONE;
}

static uint32_t io_read(void *opaque, uint16_t port, int size)
{
    struct pcnet *s = opaque;
    unsigned off = port - s->iobase;
    if (off < 16) {
        uint32_t v = 0;
        for (int k = 0; k < size && off + k < 16; k++)
            v |= (uint32_t)s->prom[off + k] << (8 * k);
        return v;
    }
    uint32_t v;
    switch (io_reg_at(s, off)) {
    case IO_RDP:
        v = csr_read(s, s->rap);
        break;
    case IO_RAP:
        v = s->rap;
        break;
    case IO_RESET:
        soft_reset(s);
        update_irq(s);
        v = 0;
        break;
    case IO_BDP:
        v = bcr_read(s, s->rap);
        break;
    default:
        return size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
    }
    return v;
}

static void io_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct pcnet *s = opaque;
    unsigned off = port - s->iobase;
    if (off < 16)
        return;                     /* APROM writes need APROMWE; the PROM stays */
    if (!s->dwio && size == 4 && off == 0x10)
        s->dwio = true;             /* a dword write to RDP switches to 32-bit I/O */
    switch (io_reg_at(s, off)) {
    case IO_RDP:
        csr_write(s, s->rap, val);
        break;
    case IO_RAP:
        s->rap = val & 0x7f;
        break;
    case IO_RESET:
        soft_reset(s);
        update_irq(s);
        break;
    case IO_BDP:
        bcr_write(s, s->rap, val);
        break;
    default:
        break;
    }
    /* The guest may have handed buffers back (drivers write CSR0 or CSR3
     * after their receive work): frames waiting in the backend can come. */
    netdev_rx_kick(s->nd);
}

static void io_map(struct pci_dev *pd, int bar, uint32_t base)
{
    struct pcnet *s = pd->opaque;
    if (s->iobase != PCI_BAR_UNMAPPED)
        bus_unregister_pio(s->bus, (uint16_t)s->iobase, IO_SIZE);
    s->iobase = PCI_BAR_UNMAPPED;
    if (base == PCI_BAR_UNMAPPED || base > 0x10000 - IO_SIZE)
        return;
    s->iobase = base;
    bus_register_pio(s->bus, (uint16_t)base, IO_SIZE, s, io_read, io_write);
}

static void fill_prom(struct pcnet *s, const uint8_t mac[6])
{
    memcpy(s->prom, mac, 6);
    memset(s->prom + 6, 0, 8);
    s->prom[14] = s->prom[15] = 'W';   /* what PCnet drivers look for after the checksum */
    uint16_t sum = 0;
    for (int k = 0; k < 16; k++)
        sum += s->prom[k];
    s->prom[12] = sum;
    s->prom[13] = sum >> 8;
}

static void pcnet_post_load(void *opaque)
{
    struct pcnet *s = opaque;
    pci_dev_post_load(&s->pci);
}

/* The PROM is the MAC the command line gave; CSR12-14 hold the guest's copy.
 * The ring registers (CSR24-25, 30-31, 76, 78) are in csr[], their decoded
 * bases and positions beside them. */
static const struct state_field pcnet_fields[] = {
    STATE_FIELD(struct pcnet, pci.config), STATE_FIELD(struct pcnet, pci.irq_level),
    STATE_TIMER(struct pcnet, tx_poll), STATE_FIELD(struct pcnet, csr), STATE_FIELD(struct pcnet, bcr),
    STATE_FIELD(struct pcnet, rap), STATE_FIELD(struct pcnet, dwio), STATE_FIELD(struct pcnet, rx_base),
    STATE_FIELD(struct pcnet, tx_base), STATE_FIELD(struct pcnet, rx_len), STATE_FIELD(struct pcnet, tx_len),
    STATE_FIELD(struct pcnet, rx_cur), STATE_FIELD(struct pcnet, tx_cur), STATE_FIELD(struct pcnet, txbuf),
    STATE_FIELD(struct pcnet, txlen), STATE_FIELD(struct pcnet, tx_in_frame), STATE_FIELD(struct pcnet, tx_frame_bad),
    STATE_FIELD(struct pcnet, dropped),
};
static const struct state_table pcnet_state = { "pcnet", 1, pcnet_fields, STATE_COUNT(pcnet_fields), pcnet_post_load };

struct pcnet *pcnet_new(struct bus *b, struct pci_bus *pb, int devfn, const uint8_t mac[6], struct netdev *nd,
                        guest_phys_rw_fn rw, void *rw_opaque)
{
    struct pcnet *s = xcalloc(1, sizeof(*s));
    s->bus = b;
    s->nd = nd;
    s->rw = rw;
    s->rw_opaque = rw_opaque;
    s->iobase = PCI_BAR_UNMAPPED;
    s->tx_poll = vtimer_new(bus_clock(b), tx_poll_fire, s);
    fill_prom(s, mac);

    struct pci_dev *pd = &s->pci;
    pci_dev_init(pd, "pcnet", devfn, 0x1022, 0x2000, 0x020000, 0x10);
    pd->opaque = s;
    pci_set16(pd, 0x06, 0x0280);          /* status: medium DEVSEL, fast back-to-back */
    pd->config[0x3d] = 1;                 /* INTERRUPT_PIN: INTA# */
    pd->config[0x3e] = 0x06;              /* MIN_GNT */
    pd->config[0x3f] = 0xff;              /* MAX_LAT */
    pci_set_bar(pd, 0, IO_SIZE, true, io_map);
    pci_register(pb, pd);

    if (nd)
        netdev_attach(nd, pcnet_can_receive, pcnet_receive, s);
    snprintf(s->name, sizeof(s->name), "pcnet-%d", devfn >> 3);
    bus_add_device(b, &(struct device){ .name = s->name, .opaque = s, .reset = hard_reset, .state = &pcnet_state });
    hard_reset(s);
    return s;
}

void pcnet_set_rom(struct pcnet *s, const uint8_t *img, uint32_t len)
{
    pci_set_rom_image(&s->pci, img, len);
}

void pcnet_free(struct pcnet *s)
{
    if (!s)
        return;
    vtimer_free(s->tx_poll);
    free(s->pci.rom_image);
    free(s);
}

uint64_t pcnet_dropped(const struct pcnet *s)
{
    return s->dropped;
}
