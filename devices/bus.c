/*
 * The machine bus (see bus.h).  Port I/O goes through a 64K table of small
 * handler indexes so an IN/OUT costs two loads; MMIO is a short list because
 * a PC has only a handful of MMIO regions (VGA window, PCI BARs, APIC later).
 *
 * Both keep every live registration, not only the winner of each address, so
 * that when a PCI BAR moves away from legacy ports or memory the legacy owner
 * decodes again.  Who wins an address: a positive decoder (a PCI BAR) beats a
 * subtractive one (the ISA devices behind the PIIX), and within a class the
 * later registration wins.  A registration that is removed frees its slot for
 * the next one, so a guest that moves BARs or toggles decode forever costs no
 * memory: the tables hold at most the live registrations.
 */
#include "devices/bus.h"
#include "hosted-driver/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pio_handler {
    void *opaque;
    pio_read_fn rd;
    pio_write_fn wr;
    uint32_t base, len;
    uint64_t seq;               /* registration order: later wins within a class */
    enum bus_decode decode;
    bool live;
};

struct mmio_region {
    uint32_t base, len;
    void *opaque;
    mmio_read_fn rd;
    mmio_write_fn wr;
    enum bus_decode decode;
};

struct bus {
    struct vclock *clock;

    /* Index 0 means "nobody".  port_owner caches the winner of each port
     * among the live registrations in pio[]; dead slots are reused. */
    uint16_t port_owner[65536];
    struct pio_handler *pio;
    int npio, cappio;
    uint64_t pio_seq;
    /* The class of the registrations made now (PCI sets positive around BAR moves). */
    enum bus_decode decode;

    /* Sorted by class (positive first), then newest first: the first match wins. */
    struct mmio_region *mmio;
    int nmmio, capmmio;

    struct device *devs;
    int ndevs, capdevs;

    irq_sink_fn irq_sink;
    void *irq_opaque;
    irq_sink_fn irq_listener[4];
    void *irq_listener_opaque[4];
    int nirq_listeners;
    irq_ack_fn irq_ack[16];
    void *irq_ack_opaque[16];

    intr_pending_fn intr_pending;
    intr_ack_fn intr_ack;
    void *intr_opaque;
    const bool *intr_line;
    intr_change_fn intr_change;
    void *intr_change_opaque;

    apic_msg_fn apic_rx;
    void *apic_rx_opaque;
    apic_eoi_fn apic_eoi;
    void *apic_eoi_opaque;
    apic_eoi_fn apic_ack;
    void *apic_ack_opaque;

    enum bus_request req;
    int req_status;

    bool a20;
    a20_change_fn a20_fn;
    void *a20_opaque;
};

static void *grow(void *p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return p;
    int ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    void *np = realloc(p, (size_t)ncap * elem);
    if (!np) {
        fprintf(stderr, "retrovisor: out of memory growing the bus tables\n");
        exit(1);
    }
    *cap = ncap;
    return np;
}

struct bus *bus_new(struct vclock *clock)
{
    struct bus *b = xcalloc(1, sizeof(*b));
    b->clock = clock;
    /* Slot 0 is the "unclaimed" sentinel. */
    b->pio = grow(NULL, &b->cappio, 1, sizeof(*b->pio));
    memset(&b->pio[0], 0, sizeof(b->pio[0]));
    b->npio = 1;
    /* A PC's A20 gate is open at power-on; firmware decides from there. */
    b->a20 = true;
    return b;
}

void bus_free(struct bus *b)
{
    if (!b)
        return;
    free(b->pio);
    free(b->mmio);
    free(b->devs);
    free(b);
}

struct vclock *bus_clock(struct bus *b)
{
    return b->clock;
}

void bus_add_device(struct bus *b, const struct device *d)
{
    b->devs = grow(b->devs, &b->capdevs, b->ndevs + 1, sizeof(*b->devs));
    b->devs[b->ndevs++] = *d;
}

int bus_device_count(const struct bus *b)
{
    return b->ndevs;
}

const struct device *bus_device(const struct bus *b, int i)
{
    return i >= 0 && i < b->ndevs ? &b->devs[i] : NULL;
}

void bus_reset_devices(struct bus *b)
{
    for (int i = 0; i < b->ndevs; i++)
        if (b->devs[i].reset)
            b->devs[i].reset(b->devs[i].opaque);
}

/* ---- port I/O ---- */

enum bus_decode bus_set_decode(struct bus *b, enum bus_decode decode)
{
    enum bus_decode old = b->decode;
    b->decode = decode;
    return old;
}

static bool pio_beats(const struct pio_handler *a, const struct pio_handler *b)
{
    return a->decode != b->decode ? a->decode > b->decode : a->seq > b->seq;
}

/* Recompute the owner of each port in [base, base+len) from the live registrations. */
static void pio_resolve(struct bus *b, uint32_t base, uint32_t len)
{
    uint32_t end = base + len > 65536 ? 65536 : base + len;
    for (uint32_t p = base; p < end; p++)
        b->port_owner[p] = 0;
    for (int i = 1; i < b->npio; i++) {
        const struct pio_handler *h = &b->pio[i];
        if (!h->live || h->base >= end || h->base + h->len <= base)
            continue;
        uint32_t lo = h->base > base ? h->base : base;
        uint32_t hi = h->base + h->len < end ? h->base + h->len : end;
        for (uint32_t p = lo; p < hi; p++)
            if (!b->port_owner[p] || pio_beats(h, &b->pio[b->port_owner[p]]))
                b->port_owner[p] = (uint16_t)i;
    }
}

static int pio_free_slot(struct bus *b)
{
    for (int i = 1; i < b->npio; i++)
        if (!b->pio[i].live)
            return i;
    if (b->npio >= 65535) {
        fprintf(stderr, "retrovisor: too many port I/O registrations\n");
        exit(1);
    }
    b->pio = grow(b->pio, &b->cappio, b->npio + 1, sizeof(*b->pio));
    return b->npio++;
}

void bus_register_pio(struct bus *b, uint16_t base, uint16_t len, void *opaque,
                      pio_read_fn rd, pio_write_fn wr)
{
    if (!len)
        return;
    int idx = 0;
    /* The same claim again (a BAR re-enabled in place) takes its old slot. */
    for (int i = 1; i < b->npio && !idx; i++) {
        const struct pio_handler *h = &b->pio[i];
        if (h->live && h->base == base && h->len == len && h->opaque == opaque && h->rd == rd &&
            h->wr == wr && h->decode == b->decode)
            idx = i;
    }
    if (!idx)
        idx = pio_free_slot(b);
    b->pio[idx] = (struct pio_handler){ opaque, rd, wr, base, len, ++b->pio_seq, b->decode, true };
    pio_resolve(b, base, len);
}

/* The registration of exactly [base, base+len) that an unregister means: the
 * caller's own class first (a BAR map callback removes its BAR, not the
 * legacy device under it), newest first. */
static int pio_find_claim(struct bus *b, uint16_t base, uint16_t len)
{
    int best = 0;
    for (int i = 1; i < b->npio; i++) {
        const struct pio_handler *h = &b->pio[i];
        if (!h->live || h->base != base || h->len != len)
            continue;
        if (!best)
            best = i;
        else {
            const struct pio_handler *cur = &b->pio[best];
            bool h_mine = h->decode == b->decode, cur_mine = cur->decode == b->decode;
            if (h_mine != cur_mine ? h_mine : h->seq > cur->seq)
                best = i;
        }
    }
    return best;
}

void bus_unregister_pio(struct bus *b, uint16_t base, uint16_t len)
{
    int idx = pio_find_claim(b, base, len);
    if (!idx)
        return;
    b->pio[idx].live = false;
    pio_resolve(b, base, len);
}

bool bus_pio_claimed(struct bus *b, uint16_t port)
{
    return b->port_owner[port] != 0;
}

int bus_pio_slots(const struct bus *b)
{
    return b->npio;
}

static uint32_t ones(int size)
{
    return size >= 4 ? 0xffffffffu : size == 2 ? 0xffffu : 0xffu;
}

uint32_t bus_pio_read(struct bus *b, uint16_t port, int size)
{
    const struct pio_handler *h = &b->pio[b->port_owner[port]];
    if (!h->rd)
        return ones(size);
    return h->rd(h->opaque, port, size) & ones(size);
}

void bus_pio_write(struct bus *b, uint16_t port, uint32_t val, int size)
{
    const struct pio_handler *h = &b->pio[b->port_owner[port]];
    if (h->wr)
        h->wr(h->opaque, port, val & ones(size), size);
}

/* ---- MMIO ---- */

static int mmio_find_claim(struct bus *b, uint32_t base, uint32_t len, bool same_class_only)
{
    int any = -1;
    for (int i = 0; i < b->nmmio; i++) {
        const struct mmio_region *r = &b->mmio[i];
        if (r->base != base || r->len != len)
            continue;
        if (r->decode == b->decode)
            return i;            /* newest of the caller's class */
        if (any < 0 && !same_class_only)
            any = i;
    }
    return any;
}

static void mmio_remove(struct bus *b, int i)
{
    memmove(&b->mmio[i], &b->mmio[i + 1], (size_t)(b->nmmio - i - 1) * sizeof(*b->mmio));
    b->nmmio--;
}

void bus_register_mmio(struct bus *b, uint32_t base, uint32_t len, void *opaque,
                       mmio_read_fn rd, mmio_write_fn wr)
{
    if (!len)
        return;
    /* The same claim again replaces the old entry instead of stacking on it. */
    int old = mmio_find_claim(b, base, len, true);
    if (old >= 0 && b->mmio[old].opaque == opaque && b->mmio[old].rd == rd && b->mmio[old].wr == wr)
        mmio_remove(b, old);
    b->mmio = grow(b->mmio, &b->capmmio, b->nmmio + 1, sizeof(*b->mmio));
    /* In front of its class, so that a later registration over the same
     * range wins, as it does for ports, and positive decoders stay first. */
    int at = 0;
    while (at < b->nmmio && b->mmio[at].decode > b->decode)
        at++;
    memmove(&b->mmio[at + 1], &b->mmio[at], (size_t)(b->nmmio - at) * sizeof(*b->mmio));
    b->mmio[at] = (struct mmio_region){ base, len, opaque, rd, wr, b->decode };
    b->nmmio++;
}

void bus_unregister_mmio(struct bus *b, uint32_t base, uint32_t len)
{
    int i = mmio_find_claim(b, base, len, false);
    if (i >= 0)
        mmio_remove(b, i);
}

int bus_mmio_regions(const struct bus *b)
{
    return b->nmmio;
}

static const struct mmio_region *mmio_find(struct bus *b, uint32_t addr)
{
    for (int i = 0; i < b->nmmio; i++) {
        const struct mmio_region *r = &b->mmio[i];
        /* Unsigned subtraction keeps regions that end at 4G correct. */
        if (addr - r->base < r->len)
            return r;
    }
    return NULL;
}

bool bus_mmio_read(struct bus *b, uint32_t addr, int size, uint32_t *val)
{
    const struct mmio_region *r = mmio_find(b, addr);
    if (!r)
        return false;
    *val = r->rd ? r->rd(r->opaque, addr - r->base, size) & ones(size) : ones(size);
    return true;
}

bool bus_mmio_write(struct bus *b, uint32_t addr, uint32_t val, int size)
{
    const struct mmio_region *r = mmio_find(b, addr);
    if (!r)
        return false;
    if (r->wr)
        r->wr(r->opaque, addr - r->base, val & ones(size), size);
    return true;
}

/* ---- interrupts ---- */

void irq_set(struct bus *b, int line, int level)
{
    if (b->irq_sink)
        b->irq_sink(b->irq_opaque, line, level ? 1 : 0);
    for (int k = 0; k < b->nirq_listeners; k++)
        b->irq_listener[k](b->irq_listener_opaque[k], line, level ? 1 : 0);
}

void bus_add_irq_listener(struct bus *b, irq_sink_fn fn, void *opaque)
{
    if (b->nirq_listeners >= 4) {
        fprintf(stderr, "retrovisor: too many interrupt-line listeners\n");
        exit(1);
    }
    b->irq_listener[b->nirq_listeners] = fn;
    b->irq_listener_opaque[b->nirq_listeners++] = opaque;
}

void bus_set_irq_sink(struct bus *b, irq_sink_fn fn, void *opaque)
{
    b->irq_sink = fn;
    b->irq_opaque = opaque;
}

void bus_set_irq_ack_notifier(struct bus *b, int line, irq_ack_fn fn, void *opaque)
{
    b->irq_ack[line] = fn;
    b->irq_ack_opaque[line] = opaque;
}

void irq_acked(struct bus *b, int line)
{
    if (line >= 0 && line < 16 && b->irq_ack[line])
        b->irq_ack[line](b->irq_ack_opaque[line]);
}

void bus_set_intr_controller(struct bus *b, intr_pending_fn pending, intr_ack_fn ack, void *opaque)
{
    b->intr_pending = pending;
    b->intr_ack = ack;
    b->intr_opaque = opaque;
}

void bus_set_intr_line(struct bus *b, const bool *line)
{
    b->intr_line = line;
}

const bool *bus_intr_line(const struct bus *b)
{
    return b->intr_line;
}

void bus_get_intr_controller(struct bus *b, intr_pending_fn *pending, intr_ack_fn *ack, void **opaque)
{
    *pending = b->intr_pending;
    *ack = b->intr_ack;
    *opaque = b->intr_opaque;
}

void bus_set_intr_output_listener(struct bus *b, intr_change_fn fn, void *opaque)
{
    b->intr_change = fn;
    b->intr_change_opaque = opaque;
}

void bus_intr_output_changed(struct bus *b)
{
    if (b->intr_change)
        b->intr_change(b->intr_change_opaque);
}

/* ---- the APIC bus ---- */

void bus_set_apic_receiver(struct bus *b, apic_msg_fn fn, void *opaque)
{
    b->apic_rx = fn;
    b->apic_rx_opaque = opaque;
}

void bus_apic_send(struct bus *b, const struct apic_msg *msg)
{
    if (b->apic_rx)
        b->apic_rx(b->apic_rx_opaque, msg);
}

void bus_set_apic_eoi_listener(struct bus *b, apic_eoi_fn fn, void *opaque)
{
    b->apic_eoi = fn;
    b->apic_eoi_opaque = opaque;
}

void bus_apic_eoi(struct bus *b, uint8_t vector)
{
    if (b->apic_eoi)
        b->apic_eoi(b->apic_eoi_opaque, vector);
}

void bus_set_apic_ack_listener(struct bus *b, apic_eoi_fn fn, void *opaque)
{
    b->apic_ack = fn;
    b->apic_ack_opaque = opaque;
}

void bus_apic_ack(struct bus *b, uint8_t vector)
{
    if (b->apic_ack)
        b->apic_ack(b->apic_ack_opaque, vector);
}

bool bus_intr_pending(struct bus *b)
{
    return b->intr_pending && b->intr_pending(b->intr_opaque);
}

/* -1 when no interrupt controller is installed (INTR can then never be
 * pending, so a well-behaved caller never sees it). */
int bus_intr_ack(struct bus *b)
{
    return b->intr_ack ? b->intr_ack(b->intr_opaque) : -1;
}

/* ---- machine requests ---- */

/* Several requests can land before the run loop looks; keep the most
 * drastic one (exit > power off > reset), which the enum order encodes. */
void bus_request(struct bus *b, enum bus_request req, int status)
{
    if (req > b->req) {
        b->req = req;
        b->req_status = status;
    }
}

enum bus_request bus_pending_request(struct bus *b, int *status)
{
    if (status)
        *status = b->req_status;
    return b->req;
}

void bus_clear_request(struct bus *b)
{
    b->req = BUS_REQ_NONE;
    b->req_status = 0;
}

void bus_set_a20(struct bus *b, bool enabled)
{
    if (b->a20 == enabled)
        return;
    b->a20 = enabled;
    if (b->a20_fn)
        b->a20_fn(b->a20_opaque, enabled);
}

bool bus_a20(struct bus *b)
{
    return b->a20;
}

void bus_set_a20_listener(struct bus *b, a20_change_fn fn, void *opaque)
{
    b->a20_fn = fn;
    b->a20_opaque = opaque;
}
