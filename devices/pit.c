/*
 * 8254 PIT (see pit.h).
 *
 * Each channel remembers when its counter element started counting (t0, in
 * PIT ticks since power-on) and what it started from; reads compute the
 * current value from the virtual clock.  Only channel 0 needs a timer, armed
 * for the next OUT transition that matters to the PIC.
 *
 * IRQ0 modelling: in modes 0 and 1 OUT is a level that stays high after the
 * terminal count, so the line follows OUT.  In modes 2-5 the PIC only cares
 * about OUT's rising edges, so the line is pulsed (raised and lowered) once
 * per edge instead of following OUT: half the timer callbacks, same IRQs.
 *
 * Lost ticks.  When the host falls behind (a descheduled VMM, a long
 * translation), the timer fires after more than one period of modes 2/3
 * has gone by.  The edges that went by are owed, and re-sent one at a time
 * as the CPU takes IRQ0 (the PIC's ack), like KVM's PIT: a guest that
 * counts ticks (jiffies, and Linux's PIT clocksource built on them) must
 * see as many as the periods that passed, or its clock falls behind its
 * TSC and the kernel marks the TSC unstable.  At most a second's worth is
 * owed; reprogramming channel 0 forgives the debt.
 */
#include "devices/pit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "devices/bus.h"
#include "devices/state.h"
#include "hosted-driver/vclock.h"
#include "hosted-driver/xalloc.h"

enum { RW_LATCH = 0, RW_LSB = 1, RW_MSB = 2, RW_WORD = 3 };

struct chan {
    struct pit *pit;
    int idx;
    uint8_t mode;           /* 0-5 (6, 7 folded onto 2, 3) */
    bool bcd;
    uint8_t rw;
    uint32_t reload;        /* programmed count, 1..modulus */
    bool loaded;            /* a count was written since the control word */
    bool null_count;

    bool write_msb_next;
    uint8_t write_lsb;
    bool read_msb_next;

    bool latched;
    uint16_t latch_val;
    bool latch_msb_next;
    bool status_latched;
    uint8_t status;

    bool gate;
    bool counting;
    int64_t t0;             /* tick at which counting (re)started */
    int64_t s;              /* one-shot modes: ticks from t0 to terminal count */
    uint32_t frozen;        /* value shown while not counting */
    bool out_frozen;        /* OUT while not counting */
};

struct pit {
    struct bus *bus;
    struct vclock *clock;
    struct chan ch[3];
    struct vtimer *timer;   /* channel 0 */
    int64_t armed;          /* the tick of the OUT event the timer is armed for, or -1 */
    uint32_t owed;          /* periodic IRQ0 edges that went by unsent (see above) */
    uint8_t port61;         /* bits 0-3 as written */
};

static int64_t ns_to_tick(int64_t ns)
{
    return (int64_t)(((__int128)ns * PIT_HZ) / NS_PER_SEC);
}

/* First ns at which the tick count has reached t. */
static int64_t tick_to_ns(int64_t t)
{
    return (int64_t)(((__int128)t * NS_PER_SEC + PIT_HZ - 1) / PIT_HZ);
}

static int64_t now_tick(struct pit *p)
{
    return ns_to_tick(vclock_now(p->clock));
}

static uint32_t modulus(const struct chan *c)
{
    return c->bcd ? 10000 : 65536;
}

static uint32_t posmod(int64_t v, uint32_t m)
{
    int64_t r = v % (int64_t)m;
    return (uint32_t)(r < 0 ? r + m : r);
}

static uint16_t to_bcd(uint32_t v)
{
    v %= 10000;
    return (uint16_t)((v / 1000) << 12 | (v / 100 % 10) << 8 | (v / 10 % 10) << 4 | (v % 10));
}

static uint32_t from_bcd(uint16_t v)
{
    /* Non-decimal digits are a guest mistake; take them at face value. */
    return (v >> 12 & 15) * 1000 + (v >> 8 & 15) * 100 + (v >> 4 & 15) * 10 + (v & 15);
}

/* Counter value (binary, 0..modulus-1) and OUT at tick T. */
static void eval(const struct chan *c, int64_t T, uint32_t *val, bool *out)
{
    if (!c->counting) {
        *val = c->frozen;
        *out = c->out_frozen;
        return;
    }
    int64_t d = T - c->t0;
    if (d < 0)
        d = 0;
    uint32_t M = modulus(c), n = c->reload;
    switch (c->mode) {
    case 0:
    case 1:
        *val = posmod(c->s - d, M);
        *out = c->s - d <= 0;
        break;
    case 4:
    case 5:
        /* OUT drops for the one clock in which the count is zero. */
        *val = posmod(c->s - d, M);
        *out = c->s - d != 0;
        break;
    case 2: {
        int64_t ph = d % n;
        *val = posmod(n - ph, M);
        *out = n < 2 || ph != n - 1;
        break;
    }
    default: {                                  /* 3: square wave */
        int64_t ph = d % n, half = (n + 1) / 2;
        bool high = ph < half;
        int64_t q = high ? ph : ph - half;
        *val = posmod((n - 2 * q) & ~(int64_t)1, M);
        *out = high;
        break;
    }
    }
}

static uint16_t current_value(const struct chan *c, int64_t T, bool *out)
{
    uint32_t v;
    bool o;
    eval(c, T, &v, &o);
    if (out)
        *out = o;
    return c->bcd ? to_bcd(v) : (uint16_t)v;
}

/* Tick of the next OUT event of channel 0 that must reach the PIC, strictly
 * after T, or -1. */
static int64_t next_event(const struct chan *c, int64_t T)
{
    if (!c->counting)
        return -1;
    int64_t d = T - c->t0;
    int64_t n = c->reload;
    switch (c->mode) {
    case 0:
    case 1:
        return c->s - d > 0 ? c->t0 + c->s : -1;
    case 4:
    case 5:
        return c->s + 1 > 0 && d < c->s + 1 ? c->t0 + c->s + 1 : -1;
    default:                                    /* 2, 3: each reload */
        if (n < 2)
            return -1;                          /* illegal count: OUT never toggles */
        return c->t0 + (d / n + 1) * n;
    }
}

static bool level_mode(const struct chan *c)
{
    return c->mode == 0 || c->mode == 1;
}

static void ch0_update(struct pit *p, bool pulse)
{
    struct chan *c = &p->ch[0];
    int64_t T = now_tick(p);
    if (level_mode(c)) {
        bool out;
        current_value(c, T, &out);
        irq_set(p->bus, 0, out);
    } else {
        /* Pulsed modes rest low, also after leaving a level mode. */
        if (pulse)
            irq_set(p->bus, 0, 1);
        irq_set(p->bus, 0, 0);
    }
    int64_t e = next_event(c, T);
    p->armed = e;
    if (e < 0)
        vtimer_del(p->timer);
    else
        vtimer_mod(p->timer, tick_to_ns(e));
}

static bool periodic_mode(const struct chan *c)
{
    return (c->mode == 2 || c->mode == 3) && c->reload >= 2;
}

static void ch0_timer(void *opaque)
{
    struct pit *p = opaque;
    struct chan *c = &p->ch[0];
    int64_t T = now_tick(p);
    if (periodic_mode(c) && p->armed >= 0 && T >= p->armed) {
        /* Edges after the one the timer was armed for, up to now. */
        uint64_t missed = (uint64_t)((T - p->armed) / c->reload);
        uint64_t most = PIT_HZ / c->reload + 1;
        p->owed = (uint32_t)(p->owed + missed < most ? p->owed + missed : most);
    }
    ch0_update(p, true);
}

/* The CPU took IRQ0: an owed tick goes out now, to be taken after this one's EOI. */
static void ch0_acked(void *opaque)
{
    struct pit *p = opaque;
    if (!p->owed || !periodic_mode(&p->ch[0]))
        return;
    p->owed--;
    irq_set(p->bus, 0, 1);
    irq_set(p->bus, 0, 0);
}

static void chan_changed(struct chan *c)
{
    if (c->idx == 0) {
        c->pit->owed = 0;
        ch0_update(c->pit, false);
    }
}

static void start_counting(struct chan *c, int64_t T)
{
    c->counting = true;
    c->t0 = T;
}

static void stop_counting(struct chan *c, int64_t T, bool force_out_high)
{
    if (!c->counting)
        return;
    uint32_t v;
    bool out;
    eval(c, T, &v, &out);
    c->frozen = v;
    c->out_frozen = force_out_high ? true : out;
    c->s -= T - c->t0;                          /* resume from here */
    c->counting = false;
}

static void load_count(struct chan *c, uint16_t raw)
{
    int64_t T = now_tick(c->pit);
    uint32_t n = c->bcd ? from_bcd(raw) : raw;
    if (n == 0)
        n = modulus(c);
    c->reload = n;
    c->loaded = true;
    c->null_count = false;
    switch (c->mode) {
    case 0:
    case 4:
        c->s = n;
        c->counting = false;
        c->frozen = n % modulus(c);
        c->out_frozen = c->mode == 4;
        if (c->gate)
            start_counting(c, T);
        break;
    case 1:
    case 5:
        /* Waits for a gate trigger; an armed one-shot keeps its cycle. */
        break;
    default:
        /* Modes 2/3 should switch at the end of the current period; starting
         * the new period now is indistinguishable for software that writes
         * the control word first, which is all software we know of. */
        c->counting = false;
        c->frozen = n % modulus(c);
        c->out_frozen = true;
        if (c->gate)
            start_counting(c, T);
        break;
    }
    chan_changed(c);
}

static void set_gate(struct chan *c, bool g)
{
    if (c->gate == g)
        return;
    int64_t T = now_tick(c->pit);
    c->gate = g;
    switch (c->mode) {
    case 0:
    case 4:
        if (!g)
            stop_counting(c, T, false);
        else if (c->loaded && !c->counting)
            start_counting(c, T);
        break;
    case 1:
    case 5:
        if (g && c->loaded) {
            c->s = c->reload;
            start_counting(c, T);
        }
        break;
    default:
        if (!g) {
            stop_counting(c, T, true);
        } else if (c->loaded) {
            start_counting(c, T);
        }
        break;
    }
    chan_changed(c);
}

static void latch_count(struct chan *c, int64_t T)
{
    if (c->latched)
        return;             /* further latches are ignored until read */
    c->latch_val = current_value(c, T, NULL);
    c->latched = true;
    c->latch_msb_next = c->rw == RW_MSB;
}

static void latch_status(struct chan *c, int64_t T)
{
    if (c->status_latched)
        return;
    bool out;
    current_value(c, T, &out);
    c->status = (uint8_t)(out << 7 | c->null_count << 6 | c->rw << 4 | c->mode << 1 | c->bcd);
    c->status_latched = true;
}

static void control_word(struct pit *p, uint8_t val)
{
    int64_t T = now_tick(p);
    int sc = val >> 6;
    if (sc == 3) {                              /* read-back */
        for (int i = 0; i < 3; i++) {
            if (!(val & (2 << i)))
                continue;
            if (!(val & 0x20))
                latch_count(&p->ch[i], T);
            if (!(val & 0x10))
                latch_status(&p->ch[i], T);
        }
        return;
    }
    struct chan *c = &p->ch[sc];
    int rw = (val >> 4) & 3;
    if (rw == RW_LATCH) {
        latch_count(c, T);
        return;
    }
    uint32_t v;
    bool out;
    eval(c, T, &v, &out);
    c->mode = (val >> 1) & 7;
    if (c->mode > 5)
        c->mode -= 4;
    c->bcd = val & 1;
    c->rw = rw;
    c->write_msb_next = false;
    c->read_msb_next = false;
    c->latched = false;
    c->status_latched = false;
    c->null_count = true;
    c->loaded = false;
    c->counting = false;
    c->frozen = v % modulus(c);
    /* OUT's initial state: low in mode 0, high in every other mode. */
    c->out_frozen = c->mode != 0;
    chan_changed(c);
}

static uint8_t counter_read(struct chan *c)
{
    if (c->status_latched) {
        c->status_latched = false;
        return c->status;
    }
    if (c->latched) {
        uint8_t b;
        if (c->latch_msb_next) {
            b = c->latch_val >> 8;
            c->latched = false;
        } else {
            b = c->latch_val & 0xff;
            if (c->rw == RW_WORD)
                c->latch_msb_next = true;
            else
                c->latched = false;
        }
        return b;
    }
    uint16_t v = current_value(c, now_tick(c->pit), NULL);
    switch (c->rw) {
    case RW_MSB:
        return v >> 8;
    case RW_WORD:
        c->read_msb_next = !c->read_msb_next;
        return c->read_msb_next ? v & 0xff : v >> 8;
    default:
        return v & 0xff;
    }
}

static void counter_write(struct chan *c, uint8_t val)
{
    switch (c->rw) {
    case RW_LSB:
        load_count(c, val);
        break;
    case RW_MSB:
        load_count(c, (uint16_t)(val << 8));
        break;
    case RW_WORD:
        if (!c->write_msb_next) {
            c->write_lsb = val;
            c->write_msb_next = true;
            if (c->mode == 0) {
                /* Mode 0: the first byte stops the count and drops OUT. */
                stop_counting(c, now_tick(c->pit), false);
                c->out_frozen = false;
                chan_changed(c);
            }
        } else {
            c->write_msb_next = false;
            load_count(c, (uint16_t)(c->write_lsb | val << 8));
        }
        break;
    default:
        break;  /* no access mode programmed yet */
    }
}

static uint32_t pit_read(void *opaque, uint16_t port, int size)
{
    struct pit *p = opaque;
    if ((port & 3) == 3)
        return 0xff;        /* the control word register is write-only */
    return counter_read(&p->ch[port & 3]);
}

static void pit_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct pit *p = opaque;
    if ((port & 3) == 3)
        control_word(p, val);
    else
        counter_write(&p->ch[port & 3], val);
}

/* DRAM refresh request toggle: one flip per 15.085 us refresh cycle. */
#define REFRESH_NS 15085

static uint32_t port61_read(void *opaque, uint16_t port, int size)
{
    struct pit *p = opaque;
    int64_t now = vclock_now(p->clock);
    bool out2;
    current_value(&p->ch[2], ns_to_tick(now), &out2);
    return (p->port61 & 0x0f) | ((now / REFRESH_NS) & 1) << 4 | out2 << 5;
}

static void port61_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct pit *p = opaque;
    p->port61 = val & 0x0f;
    set_gate(&p->ch[2], val & 1);
}

bool pit_speaker_active(struct pit *p)
{
    bool out2;
    current_value(&p->ch[2], now_tick(p), &out2);
    return (p->port61 & 3) == 3 && out2;
}

static void pit_reset(void *opaque)
{
    struct pit *p = opaque;
    for (int i = 0; i < 3; i++) {
        struct chan *c = &p->ch[i];
        *c = (struct chan){ .pit = p, .idx = i };
        c->rw = RW_WORD;
        c->reload = 65536;
        /* Channels 0 and 1 have GATE tied high on a PC. */
        c->gate = i != 2;
    }
    p->port61 = 0;
    p->owed = 0;
    p->armed = -1;
    vtimer_del(p->timer);
    irq_set(p->bus, 0, 0);
}

#define PIT_CHAN(n) \
    STATE_FIELD(struct pit, ch[n].mode), STATE_FIELD(struct pit, ch[n].bcd), STATE_FIELD(struct pit, ch[n].rw), \
    STATE_FIELD(struct pit, ch[n].reload), STATE_FIELD(struct pit, ch[n].loaded), \
    STATE_FIELD(struct pit, ch[n].null_count), STATE_FIELD(struct pit, ch[n].write_msb_next), \
    STATE_FIELD(struct pit, ch[n].write_lsb), STATE_FIELD(struct pit, ch[n].read_msb_next), \
    STATE_FIELD(struct pit, ch[n].latched), STATE_FIELD(struct pit, ch[n].latch_val), \
    STATE_FIELD(struct pit, ch[n].latch_msb_next), STATE_FIELD(struct pit, ch[n].status_latched), \
    STATE_FIELD(struct pit, ch[n].status), STATE_FIELD(struct pit, ch[n].gate), \
    STATE_FIELD(struct pit, ch[n].counting), STATE_FIELD(struct pit, ch[n].t0), STATE_FIELD(struct pit, ch[n].s), \
    STATE_FIELD(struct pit, ch[n].frozen), STATE_FIELD(struct pit, ch[n].out_frozen)
/* The counters' phases are kept as ticks of the virtual clock, which the
 * snapshot restores first: nothing to recompute after a load. */
static const struct state_field pit_fields[] = {
    PIT_CHAN(0), PIT_CHAN(1), PIT_CHAN(2),
    STATE_TIMER(struct pit, timer), STATE_FIELD(struct pit, armed), STATE_FIELD(struct pit, owed),
    STATE_FIELD(struct pit, port61),
};
static const struct state_table pit_state = { "pit", 1, pit_fields, STATE_COUNT(pit_fields), NULL };

struct pit *pit_new(struct bus *b)
{
    struct pit *p = xcalloc(1, sizeof(*p));
    p->bus = b;
    p->clock = bus_clock(b);
    p->timer = vtimer_new(p->clock, ch0_timer, p);
    bus_set_irq_ack_notifier(b, 0, ch0_acked, p);
    pit_reset(p);
    bus_register_pio(b, 0x40, 4, p, pit_read, pit_write);
    bus_register_pio(b, 0x61, 1, p, port61_read, port61_write);
    bus_add_device(b, &(struct device){ .name = "pit", .opaque = p, .reset = pit_reset, .state = &pit_state });
    return p;
}

void pit_free(struct pit *p)
{
    if (!p)
        return;
    vtimer_free(p->timer);
    free(p);
}
