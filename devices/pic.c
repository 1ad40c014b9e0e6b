/*
 * 8259A master/slave pair (see pic.h).
 *
 * Modelling choices:
 *  - An edge-triggered input latches IRR on 0->1 and keeps it when the line
 *    drops before INTA, so devices may pulse a line (raise, then lower).
 *  - The master's cascade input (IR2) follows the slave's INT output as a
 *    level, whatever the ELCR says: that way a slave request still pending
 *    after an INTA (auto-EOI, back-to-back requests) is never lost for want
 *    of a fresh edge.
 *  - ISA IRQ2 does not exist on an AT bus: the pin is routed to IRQ9, and so
 *    is irq_set(2).
 */
#include "devices/pic.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "devices/bus.h"
#include "devices/state.h"
#include "hosted-driver/xalloc.h"

struct chip {
    uint8_t irr, isr, imr;
    uint8_t lines;          /* current input levels, for edge detection */
    uint8_t elcr, elcr_mask;
    uint8_t base;           /* ICW2: vector of IR0 */
    uint8_t prio;           /* IR that currently has the highest priority */
    uint8_t icw3;
    int init_step;          /* 0 operational, else the ICW expected next (2..4) */
    bool need_icw4, single, ltim;
    bool aeoi, rotate_aeoi, sfnm;
    bool special_mask, read_isr, poll;
};

struct pic {
    struct bus *bus;
    struct chip c[2];       /* 0 master, 1 slave */
    bool int_out;
};

#define MASTER 0
#define SLAVE 1

static bool is_level(const struct chip *c, int irq)
{
    return c->ltim || (c->elcr >> irq & 1);
}

/* Priority rank (0 = highest) of the best request in mask, 8 if none. */
static int best_rank(const struct chip *c, uint8_t mask)
{
    if (!mask)
        return 8;
    for (int r = 0; r < 8; r++)
        if (mask & (1 << ((r + c->prio) & 7)))
            return r;
    return 8;
}

/* The IR this chip would present on INTA now, or -1 when INT is low. */
static int chip_candidate(const struct chip *c, bool master)
{
    int r = best_rank(c, c->irr & ~c->imr);
    if (r == 8)
        return -1;
    uint8_t in_service = c->isr;
    /* Special mask mode: masked levels do not block lower priorities. */
    if (c->special_mask)
        in_service &= ~c->imr;
    /* Special fully nested mode: a slave already in service may still be
     * interrupted by a higher-priority slave request. */
    if (master && c->sfnm && !c->single)
        in_service &= ~(1 << 2);
    if (r < best_rank(c, in_service))
        return (r + c->prio) & 7;
    return -1;
}

static void update(struct pic *p)
{
    struct chip *m = &p->c[MASTER];
    if (!m->single) {
        bool slave_int = chip_candidate(&p->c[SLAVE], false) >= 0;
        if (slave_int) {
            m->irr |= 1 << 2;
            m->lines |= 1 << 2;
        } else {
            m->irr &= ~(1 << 2);
            m->lines &= ~(1 << 2);
        }
    }
    bool out = chip_candidate(m, true) >= 0;
    if (out != p->int_out) {
        p->int_out = out;
        bus_intr_output_changed(p->bus);
    }
}

static void chip_input(struct chip *c, int irq, int level)
{
    uint8_t mask = 1 << irq;
    if (is_level(c, irq)) {
        if (level)
            c->irr |= mask;
        else
            c->irr &= ~mask;
    } else if (level && !(c->lines & mask)) {
        c->irr |= mask;
    }
    if (level)
        c->lines |= mask;
    else
        c->lines &= ~mask;
}

static void pic_irq_sink(void *opaque, int line, int level)
{
    struct pic *p = opaque;
    if (line == 2)
        line = 9;
    if (line < 0 || line > 15)
        return;
    chip_input(&p->c[line >> 3], line & 7, level);
    update(p);
}

/* INTA on one chip for IR irq.  cascade: the master's IR2 while cascaded,
 * whose IRR simply follows the slave and must not be cleared here. */
static void chip_ack(struct chip *c, int irq, bool cascade)
{
    uint8_t mask = 1 << irq;
    if (!cascade && !is_level(c, irq))
        c->irr &= ~mask;
    if (c->aeoi) {
        if (c->rotate_aeoi)
            c->prio = (irq + 1) & 7;
    } else {
        c->isr |= mask;
    }
}

static bool pic_pending(void *opaque)
{
    return ((struct pic *)opaque)->int_out;
}

static int pic_ack(void *opaque)
{
    struct pic *p = opaque;
    struct chip *m = &p->c[MASTER], *s = &p->c[SLAVE];
    int vec, line = -1;
    int irq = chip_candidate(m, true);
    if (irq < 0) {
        /* The request went away before INTA: the 8259A answers with its
         * IR7 vector and sets no ISR bit (spurious IRQ7). */
        vec = m->base + 7;
    } else if (irq == 2 && !m->single) {
        chip_ack(m, 2, true);
        int sirq = chip_candidate(s, false);
        if (sirq < 0) {
            /* Spurious IRQ15: the master did see IR2 and keeps ISR2 set,
             * so the guest must EOI the master only. */
            vec = s->base + 7;
        } else {
            chip_ack(s, sirq, false);
            vec = s->base + sirq;
            line = 8 + sirq;
        }
    } else {
        chip_ack(m, irq, false);
        vec = m->base + irq;
        line = irq;
    }
    update(p);
    irq_acked(p->bus, line);                   /* after the update: the listener may raise the line again */
    return vec;
}

static void eoi_highest(struct chip *c, bool rotate)
{
    int r = best_rank(c, c->isr);
    if (r == 8)
        return;
    int irq = (r + c->prio) & 7;
    c->isr &= ~(1 << irq);
    if (rotate)
        c->prio = (irq + 1) & 7;
}

static void write_command(struct chip *c, uint8_t val)
{
    if (val & 0x10) {                       /* ICW1 */
        c->ltim = val & 0x08;
        c->single = val & 0x02;
        c->need_icw4 = val & 0x01;
        c->imr = 0;
        c->isr = 0;
        /* The edge-sense latches are cleared: an edge input needs a new
         * 0->1 transition, a level input is requested while it is high. */
        c->irr = 0;
        for (int i = 0; i < 8; i++)
            if (is_level(c, i) && (c->lines >> i & 1))
                c->irr |= 1 << i;
        c->prio = 0;
        c->special_mask = false;
        c->read_isr = false;
        c->poll = false;
        c->rotate_aeoi = false;
        if (!c->need_icw4) {
            c->aeoi = false;
            c->sfnm = false;
        }
        c->init_step = 2;
    } else if (val & 0x08) {                /* OCW3 */
        if (val & 0x04)
            c->poll = true;
        if (val & 0x02)
            c->read_isr = val & 0x01;
        if (val & 0x40)
            c->special_mask = val & 0x20;
    } else {                                /* OCW2 */
        int level = val & 7;
        switch (val >> 5) {
        case 0: c->rotate_aeoi = false; break;
        case 1: eoi_highest(c, false); break;
        case 2: break;
        case 3: c->isr &= ~(1 << level); break;
        case 4: c->rotate_aeoi = true; break;
        case 5: eoi_highest(c, true); break;
        case 6: c->prio = (level + 1) & 7; break;
        case 7:
            c->isr &= ~(1 << level);
            c->prio = (level + 1) & 7;
            break;
        }
    }
}

static void write_data(struct chip *c, uint8_t val)
{
    switch (c->init_step) {
    case 2:
        c->base = val & 0xf8;
        c->init_step = c->single ? (c->need_icw4 ? 4 : 0) : 3;
        break;
    case 3:
        c->icw3 = val;
        c->init_step = c->need_icw4 ? 4 : 0;
        break;
    case 4:
        /* bit0 (8086 mode) is assumed; buffered mode bits do not matter. */
        c->aeoi = val & 0x02;
        c->sfnm = val & 0x10;
        c->init_step = 0;
        break;
    default:
        c->imr = val;
        break;
    }
}

static uint32_t pic_read(void *opaque, uint16_t port, int size)
{
    struct pic *p = opaque;
    struct chip *c = &p->c[port >= 0xa0];
    uint8_t v;
    if (c->poll) {
        /* Poll mode: the read is the INTA; the answer says which IR. */
        c->poll = false;
        int irq = chip_candidate(c, c == &p->c[MASTER]);
        if (irq >= 0) {
            chip_ack(c, irq, c == &p->c[MASTER] && irq == 2 && !c->single);
            v = 0x80 | irq;
        } else {
            v = 0;
        }
        update(p);
        return v;
    }
    if (port & 1)
        v = c->imr;
    else
        v = c->read_isr ? c->isr : c->irr;
    return v;
}

static void pic_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct pic *p = opaque;
    struct chip *c = &p->c[port >= 0xa0];
    if (port & 1)
        write_data(c, val);
    else
        write_command(c, val);
    update(p);
}

static void set_elcr(struct chip *c, uint8_t val)
{
    c->elcr = val & c->elcr_mask;
    /* A line that just became level-triggered is requested while high. */
    for (int i = 0; i < 8; i++)
        if (is_level(c, i)) {
            if (c->lines >> i & 1)
                c->irr |= 1 << i;
            else
                c->irr &= ~(1 << i);
        }
}

static uint32_t elcr_read(void *opaque, uint16_t port, int size)
{
    struct pic *p = opaque;
    int i = port & 1;
    uint32_t v = p->c[i].elcr;
    if (size >= 2 && i == 0)
        v |= (uint32_t)p->c[1].elcr << 8;
    return v;
}

static void elcr_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct pic *p = opaque;
    int i = port & 1;
    set_elcr(&p->c[i], val & 0xff);
    if (size >= 2 && i == 0)
        set_elcr(&p->c[1], (val >> 8) & 0xff);
    /* The slave's cascade state may change the master's input. */
    update(p);
}

static void pic_reset(void *opaque)
{
    struct pic *p = opaque;
    for (int i = 0; i < 2; i++) {
        struct chip *c = &p->c[i];
        uint8_t lines = c->lines, mask = c->elcr_mask;
        *c = (struct chip){ 0 };
        c->lines = lines;
        c->elcr_mask = mask;
    }
    update(p);
}

/* int_out is loaded with the rest; the local APIC above listens for it. */
static void pic_post_load(void *opaque)
{
    struct pic *p = opaque;
    update(p);
    bus_intr_output_changed(p->bus);
}

#define PIC_CHIP(n) \
    STATE_FIELD(struct pic, c[n].irr), STATE_FIELD(struct pic, c[n].isr), STATE_FIELD(struct pic, c[n].imr), \
    STATE_FIELD(struct pic, c[n].lines), STATE_FIELD(struct pic, c[n].elcr), \
    STATE_FIELD(struct pic, c[n].elcr_mask), STATE_FIELD(struct pic, c[n].base), \
    STATE_FIELD(struct pic, c[n].prio), STATE_FIELD(struct pic, c[n].icw3), \
    STATE_FIELD(struct pic, c[n].init_step), STATE_FIELD(struct pic, c[n].need_icw4), \
    STATE_FIELD(struct pic, c[n].single), STATE_FIELD(struct pic, c[n].ltim), \
    STATE_FIELD(struct pic, c[n].aeoi), STATE_FIELD(struct pic, c[n].rotate_aeoi), \
    STATE_FIELD(struct pic, c[n].sfnm), STATE_FIELD(struct pic, c[n].special_mask), \
    STATE_FIELD(struct pic, c[n].read_isr), STATE_FIELD(struct pic, c[n].poll)
static const struct state_field pic_fields[] = {
    PIC_CHIP(0), PIC_CHIP(1), STATE_FIELD(struct pic, int_out),
};
static const struct state_table pic_state = { "pic", 1, pic_fields, STATE_COUNT(pic_fields), pic_post_load };

struct pic *pic_new(struct bus *b)
{
    struct pic *p = xcalloc(1, sizeof(*p));
    p->bus = b;
    /* PIIX3: IRQ 0, 1, 2, 8 and 13 are wired edge-only. */
    p->c[MASTER].elcr_mask = 0xf8;
    p->c[SLAVE].elcr_mask = 0xde;
    bus_register_pio(b, 0x20, 2, p, pic_read, pic_write);
    bus_register_pio(b, 0xa0, 2, p, pic_read, pic_write);
    bus_register_pio(b, 0x4d0, 2, p, elcr_read, elcr_write);
    bus_set_irq_sink(b, pic_irq_sink, p);
    bus_set_intr_controller(b, pic_pending, pic_ack, p);
    bus_set_intr_line(b, &p->int_out);
    bus_add_device(b, &(struct device){ .name = "pic", .opaque = p, .reset = pic_reset, .state = &pic_state });
    return p;
}

void pic_free(struct pic *p)
{
    free(p);
}

void pic_get_regs(const struct pic *p, int chip, struct pic_regs *out)
{
    const struct chip *c = &p->c[chip ? SLAVE : MASTER];
    out->irr = c->irr;
    out->isr = c->isr;
    out->imr = c->imr;
    out->elcr = c->elcr;
    out->vector_base = c->base;
}
