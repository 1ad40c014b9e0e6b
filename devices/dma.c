/*
 * 8237A DMA controllers and page registers (see dma.h).
 *
 * The cascade (DMA1 reaching the bus through DMA2's channel 4) is not
 * enforced: firmware always programs it, and a guest that forgot would only
 * lose its ISA DMA, which helps nobody.
 */
#include "devices/dma.h"

#include <stdlib.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/state.h"
#include "hosted-driver/xalloc.h"

/* Mode register */
#define MODE_TYPE(m) (((m) >> 2) & 3)
#define TYPE_VERIFY 0
#define TYPE_TO_MEMORY 1     /* the 8237's "write transfer" */
#define TYPE_FROM_MEMORY 2   /* its "read transfer" */
#define MODE_AUTOINIT 0x10
#define MODE_DECREMENT 0x20
#define MODE_SELECT(m) (((m) >> 6) & 3)
#define SELECT_CASCADE 3

/* Command register */
#define CMD_DISABLE 0x04

/* Registers, numbered as on DMA1's ports (DMA2's are twice as far apart). */
enum {
    REG_STATUS_COMMAND = 8,
    REG_REQUEST = 9,
    REG_SINGLE_MASK = 10,
    REG_MODE = 11,
    REG_CLEAR_FLIPFLOP = 12,
    REG_TEMP_MASTER_CLEAR = 13,
    REG_CLEAR_MASK = 14,
    REG_ALL_MASK = 15,
};

struct channel {
    uint16_t base_addr, base_count;
    uint16_t addr, count;
    uint8_t mode;
    bool dreq;
    bool in_service;
    dma_service_fn service;
    void *opaque;
};

struct controller {
    struct channel ch[4];
    uint8_t command;
    uint8_t tc_bits;        /* status bits 0-3, cleared when status is read */
    uint8_t request;        /* software requests, bits 0-3 */
    uint8_t mask;           /* bits 0-3 */
    uint8_t temp;
    bool flipflop;          /* false: the next byte is the low one */
};

struct dma {
    struct bus *bus;
    guest_phys_rw_fn rw;
    void *rw_opaque;
    struct controller ctl[2];
    uint8_t page[16];       /* ports 0x80-0x8F; index 0 is unused (POST) */
};

/* Page register port (low nibble) of each channel. */
static const uint8_t page_port[DMA_CHANNELS] = { 0x7, 0x3, 0x1, 0x2, 0xf, 0xb, 0x9, 0xa };

static struct controller *ctl_of(struct dma *d, int ch)
{
    return &d->ctl[ch >> 2];
}

static struct channel *chan(struct dma *d, int ch)
{
    return &d->ctl[ch >> 2].ch[ch & 3];
}

static bool channel_may_run(struct dma *d, int ch)
{
    struct controller *c = ctl_of(d, ch);
    struct channel *h = chan(d, ch);
    return !(c->mask & (1u << (ch & 3))) && !(c->command & CMD_DISABLE) &&
           MODE_SELECT(h->mode) != SELECT_CASCADE;
}

static void service(struct dma *d, int ch)
{
    struct channel *h = chan(d, ch);
    if (!h->dreq || !h->service || h->in_service || !channel_may_run(d, ch))
        return;
    h->in_service = true;
    h->service(h->opaque, ch);
    h->in_service = false;
}

/* The guest changed something that may let a waiting channel go. */
static void service_all(struct dma *d)
{
    for (int ch = 0; ch < DMA_CHANNELS; ch++)
        service(d, ch);
}

static void master_clear(struct controller *c)
{
    c->command = 0;
    c->tc_bits = 0;
    c->request = 0;
    c->temp = 0;
    c->flipflop = false;
    c->mask = 0x0f;
}

static void dma_reset(void *opaque)
{
    struct dma *d = opaque;
    for (int k = 0; k < 2; k++) {
        master_clear(&d->ctl[k]);
        for (int i = 0; i < 4; i++) {
            struct channel *h = &d->ctl[k].ch[i];
            h->base_addr = h->base_count = h->addr = h->count = 0;
            h->mode = 0;
        }
    }
    memset(d->page, 0, sizeof(d->page));
}

/* ---- the transfer engine ---- */

static uint64_t byte_address(struct dma *d, int ch, uint16_t addr)
{
    uint8_t page = d->page[page_port[ch]];
    if (ch >= 4)
        return ((uint64_t)(page & 0xfe) << 16) | ((uint32_t)addr << 1);
    return ((uint64_t)page << 16) | addr;
}

/* Memory side of one run: RAM through the accessor, a byte at a time where a
 * run leaves RAM (writes there are dropped, reads give 0xFF). */
static void memory_run(struct dma *d, uint64_t gpa, uint8_t *buf, uint32_t len, bool to_memory)
{
    if (d->rw(d->rw_opaque, gpa, buf, len, to_memory))
        return;
    for (uint32_t i = 0; i < len; i++)
        if (!d->rw(d->rw_opaque, gpa + i, buf + i, 1, to_memory) && !to_memory)
            buf[i] = 0xff;
}

/* Units (bytes or words) the channel can move in one contiguous run. */
static uint32_t run_units(const struct channel *h, uint32_t want)
{
    uint32_t left = (uint32_t)h->count + 1;
    uint32_t to_wrap = h->mode & MODE_DECREMENT ? 1 : 0x10000u - h->addr;
    uint32_t n = want < left ? want : left;
    return n < to_wrap ? n : to_wrap;
}

static uint32_t transfer(struct dma *d, int ch, uint8_t *buf, uint32_t len, bool to_memory, bool *tc)
{
    if (tc)
        *tc = false;
    if (ch < 0 || ch >= DMA_CHANNELS)
        return 0;
    struct controller *c = ctl_of(d, ch);
    struct channel *h = chan(d, ch);
    unsigned unit = ch >= 4 ? 2 : 1;
    bool touch = MODE_TYPE(h->mode) == (to_memory ? TYPE_TO_MEMORY : TYPE_FROM_MEMORY);
    uint32_t done = 0;
    while (len - done >= unit) {
        uint32_t units = run_units(h, (len - done) / unit);
        uint32_t bytes = units * unit;
        if (touch)
            memory_run(d, byte_address(d, ch, h->addr), buf + done, bytes, to_memory);
        else if (!to_memory)
            memset(buf + done, 0xff, bytes);
        done += bytes;
        h->addr += h->mode & MODE_DECREMENT ? -(int)units : (int)units;
        bool terminal = units == (uint32_t)h->count + 1;
        h->count -= units;
        if (terminal) {
            c->tc_bits |= 1u << (ch & 3);
            c->request &= ~(1u << (ch & 3));
            if (h->mode & MODE_AUTOINIT) {
                h->addr = h->base_addr;
                h->count = h->base_count;
            } else {
                c->mask |= 1u << (ch & 3);
            }
            if (tc)
                *tc = true;
            break;
        }
    }
    return done;
}

uint32_t dma_to_memory(struct dma *d, int channel, const void *buf, uint32_t len, bool *tc)
{
    return transfer(d, channel, (uint8_t *)buf, len, true, tc);
}

uint32_t dma_from_memory(struct dma *d, int channel, void *buf, uint32_t len, bool *tc)
{
    return transfer(d, channel, buf, len, false, tc);
}

uint32_t dma_bytes_left(struct dma *d, int channel)
{
    if (channel < 0 || channel >= DMA_CHANNELS)
        return 0;
    return ((uint32_t)chan(d, channel)->count + 1) * (channel >= 4 ? 2 : 1);
}

void dma_attach(struct dma *d, int channel, dma_service_fn fn, void *opaque)
{
    if (channel < 0 || channel >= DMA_CHANNELS)
        return;
    chan(d, channel)->service = fn;
    chan(d, channel)->opaque = opaque;
}

void dma_set_dreq(struct dma *d, int channel, bool held)
{
    if (channel < 0 || channel >= DMA_CHANNELS)
        return;
    chan(d, channel)->dreq = held;
    if (held)
        service(d, channel);
}

/* ---- ports ---- */

static uint8_t status_read(struct controller *c)
{
    uint8_t pending = c->request;
    for (int i = 0; i < 4; i++)
        if (c->ch[i].dreq)
            pending |= 1u << i;
    uint8_t v = c->tc_bits | (pending << 4);
    c->tc_bits = 0;
    return v;
}

static uint8_t reg_read(struct dma *d, int k, int reg)
{
    struct controller *c = &d->ctl[k];
    if (reg < 8) {
        struct channel *h = &c->ch[reg >> 1];
        uint16_t v = reg & 1 ? h->count : h->addr;
        bool high = c->flipflop;
        c->flipflop = !c->flipflop;
        return high ? v >> 8 : v & 0xff;
    }
    switch (reg) {
    case REG_STATUS_COMMAND:
        return status_read(c);
    case REG_REQUEST:
        return 0xf0 | c->request;
    case REG_TEMP_MASTER_CLEAR:
        return c->temp;
    case REG_ALL_MASK:
        return 0xf0 | c->mask;
    default:
        return 0xff;
    }
}

static void write_addr_count(struct controller *c, int reg, uint8_t val)
{
    struct channel *h = &c->ch[reg >> 1];
    uint16_t *base = reg & 1 ? &h->base_count : &h->base_addr;
    uint16_t *cur = reg & 1 ? &h->count : &h->addr;
    if (c->flipflop)
        *base = (*base & 0x00ff) | (val << 8);
    else
        *base = (*base & 0xff00) | val;
    *cur = *base;
    c->flipflop = !c->flipflop;
}

static void reg_write(struct dma *d, int k, int reg, uint8_t val)
{
    struct controller *c = &d->ctl[k];
    if (reg < 8) {
        write_addr_count(c, reg, val);
        return;
    }
    switch (reg) {
    case REG_STATUS_COMMAND:
        c->command = val;
        break;
    case REG_REQUEST:
        if (val & 4)
            c->request |= 1u << (val & 3);
        else
            c->request &= ~(1u << (val & 3));
        break;
    case REG_SINGLE_MASK:
        if (val & 4)
            c->mask |= 1u << (val & 3);
        else
            c->mask &= ~(1u << (val & 3));
        break;
    case REG_MODE:
        c->ch[val & 3].mode = val;
        break;
    case REG_CLEAR_FLIPFLOP:
        c->flipflop = false;
        break;
    case REG_TEMP_MASTER_CLEAR:
        master_clear(c);
        break;
    case REG_CLEAR_MASK:
        c->mask = 0;
        break;
    case REG_ALL_MASK:
        c->mask = val & 0x0f;
        break;
    }
    service_all(d);
}

static uint32_t dma1_read(void *opaque, uint16_t port, int size)
{
    return reg_read(opaque, 0, port & 0x0f);
}

static void dma1_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    reg_write(opaque, 0, port & 0x0f, val);
}

/* DMA2 sits on the even ports 0xC0-0xDE; the odd ones are not decoded. */
static uint32_t dma2_read(void *opaque, uint16_t port, int size)
{
    if (port & 1)
        return 0xff;
    return reg_read(opaque, 1, (port - 0xc0) >> 1);
}

static void dma2_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    if (!(port & 1))
        reg_write(opaque, 1, (port - 0xc0) >> 1, val);
}

static uint32_t page_read(void *opaque, uint16_t port, int size)
{
    struct dma *d = opaque;
    return d->page[port & 0x0f];
}

static void page_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct dma *d = opaque;
    d->page[port & 0x0f] = val;
}

#define DMA_CHAN(c, n) \
    STATE_FIELD(struct dma, ctl[c].ch[n].base_addr), STATE_FIELD(struct dma, ctl[c].ch[n].base_count), \
    STATE_FIELD(struct dma, ctl[c].ch[n].addr), STATE_FIELD(struct dma, ctl[c].ch[n].count), \
    STATE_FIELD(struct dma, ctl[c].ch[n].mode), STATE_FIELD(struct dma, ctl[c].ch[n].dreq), \
    STATE_FIELD(struct dma, ctl[c].ch[n].in_service)
#define DMA_CTL(c) \
    DMA_CHAN(c, 0), DMA_CHAN(c, 1), DMA_CHAN(c, 2), DMA_CHAN(c, 3), \
    STATE_FIELD(struct dma, ctl[c].command), STATE_FIELD(struct dma, ctl[c].tc_bits), \
    STATE_FIELD(struct dma, ctl[c].request), STATE_FIELD(struct dma, ctl[c].mask), \
    STATE_FIELD(struct dma, ctl[c].temp), STATE_FIELD(struct dma, ctl[c].flipflop)
/* The channels' service hooks are wiring, not state: the FDC sets its own. */
static const struct state_field dma_fields[] = { DMA_CTL(0), DMA_CTL(1), STATE_FIELD(struct dma, page) };
static const struct state_table dma_state = { "dma", 1, dma_fields, STATE_COUNT(dma_fields), NULL };

struct dma *dma_new(struct bus *b, guest_phys_rw_fn rw, void *rw_opaque)
{
    struct dma *d = xcalloc(1, sizeof(*d));
    d->bus = b;
    d->rw = rw;
    d->rw_opaque = rw_opaque;
    bus_register_pio(b, 0x00, 16, d, dma1_read, dma1_write);
    bus_register_pio(b, 0xc0, 32, d, dma2_read, dma2_write);
    bus_register_pio(b, 0x81, 15, d, page_read, page_write);
    bus_add_device(b, &(struct device){ .name = "dma", .opaque = d, .reset = dma_reset, .state = &dma_state });
    dma_reset(d);
    return d;
}

void dma_free(struct dma *d)
{
    free(d);
}
