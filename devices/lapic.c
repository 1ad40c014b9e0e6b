/*
 * Local APIC (see lapic.h).  Register layout and rules from the Intel SDM,
 * vol. 3A, chapter 10 (xAPIC mode).
 *
 * Modelling choices:
 *  - The timer counts at 1 GHz before the divider (one tick per virtual
 *    ns, as QEMU's), so an initial count of N with divide-by-D lasts N*D ns.
 *  - Vectors 0-15 are illegal: a fixed IPI with one sets "send illegal
 *    vector" (ESR bit 5) and is not sent; one that arrives (LVT, I/O APIC)
 *    sets "receive illegal vector" (bit 6) and is not accepted.
 *  - Accesses must be aligned dwords at 16-byte boundaries; other reads
 *    see the bytes of the dword they fall in, narrower writes are ignored.
 *    A reserved offset sets "illegal register address" (bit 7).
 *  - Cleared IA32_APIC_BASE.EN puts the APIC in its power-up state and
 *    takes the register page away; setting it again brings it back (as a
 *    Pentium 4 allows; a P6 needed a reset).
 */
#include "devices/lapic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/state.h"
#include "hosted-driver/vclock.h"
#include "hosted-driver/xalloc.h"

enum {
    REG_ID = 0x02, REG_VERSION = 0x03, REG_TPR = 0x08, REG_APR = 0x09, REG_PPR = 0x0a, REG_EOI = 0x0b,
    REG_RRD = 0x0c, REG_LDR = 0x0d, REG_DFR = 0x0e, REG_SVR = 0x0f, REG_ISR = 0x10, REG_TMR = 0x18,
    REG_IRR = 0x20, REG_ESR = 0x28, REG_ICR_LO = 0x30, REG_ICR_HI = 0x31, REG_LVT = 0x32,
    REG_TIMER_INIT = 0x38, REG_TIMER_CUR = 0x39, REG_TIMER_DIV = 0x3e,
};

enum { LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR, LVT_COUNT };

#define LVT_MASKED (1u << 16)
#define LVT_PERIODIC (1u << 17)
#define LVT_LEVEL (1u << 15)
#define LVT_REMOTE_IRR (1u << 14)
#define SVR_ENABLE (1u << 8)
#define ICR_LEVEL_ASSERT (1u << 14)
#define ICR_TRIGGER_LEVEL (1u << 15)
#define ICR_DEST_LOGICAL (1u << 11)

#define ESR_SEND_ILLEGAL_VECTOR (1u << 5)
#define ESR_RECV_ILLEGAL_VECTOR (1u << 6)
#define ESR_ILLEGAL_REGISTER (1u << 7)

/* The bits software may write in each LVT entry (P6: no timer mode bit 18). */
static const uint32_t lvt_writable[LVT_COUNT] = {
    [LVT_TIMER] = 0x300ff, [LVT_THERMAL] = 0x107ff, [LVT_PERF] = 0x107ff,
    [LVT_LINT0] = 0x1a7ff, [LVT_LINT1] = 0x1a7ff, [LVT_ERROR] = 0x100ff,
};

struct lapic {
    struct bus *bus;
    lapic_map_fn map_page;
    void *map_opaque;
    uint64_t base_msr;
    uint32_t mapped;             /* where the register page is registered, ~0u: nowhere */

    uint8_t id;
    uint8_t tpr;
    uint32_t ldr, dfr, svr;
    uint32_t irr[8], isr[8], tmr[8];
    uint32_t esr, esr_pending;   /* latched by a write to ESR / collected since */
    uint32_t icr_lo, icr_hi;
    uint32_t lvt[LVT_COUNT];
    uint32_t timer_initial, timer_div;
    int64_t timer_start;         /* virtual ns when the count was (re)loaded */
    struct vtimer *timer;
    uint32_t timer_owed;         /* periodic expiries that went by while one was still pending */

    /* The 8259 below us (LINT0). */
    intr_pending_fn pic_pending;
    intr_ack_fn pic_ack;
    void *pic_opaque;
    const bool *pic_line;

    bool intr_out;               /* an interrupt is deliverable to the CPU now */
    bool nmi_out;
};

static void timer_acked(struct lapic *a, int vector);

/* ---- vector bitmaps ---- */

static void vec_set(uint32_t *map, int v) { map[v >> 5] |= 1u << (v & 31); }
static void vec_clear(uint32_t *map, int v) { map[v >> 5] &= ~(1u << (v & 31)); }
static bool vec_test(const uint32_t *map, int v) { return map[v >> 5] >> (v & 31) & 1; }

/* Highest vector set in map, -1 if none. */
static int vec_highest(const uint32_t *map)
{
    for (int k = 7; k >= 0; k--)
        if (map[k])
            return k * 32 + 31 - __builtin_clz(map[k]);
    return -1;
}

/* ---- priorities and the CPU's interrupt line ---- */

static bool hw_enabled(const struct lapic *a) { return a->base_msr & MSR_APIC_BASE_ENABLE; }
static bool sw_enabled(const struct lapic *a) { return a->svr & SVR_ENABLE; }

static uint8_t ppr(const struct lapic *a)
{
    int isrv = vec_highest(a->isr);
    if (isrv < 0)
        isrv = 0;
    return (a->tpr >> 4) >= (isrv >> 4) ? a->tpr : (uint8_t)(isrv & 0xf0);
}

/* The vector the APIC itself would hand the CPU now, -1 if none. */
static int own_deliverable(const struct lapic *a)
{
    if (!hw_enabled(a) || !sw_enabled(a))
        return -1;
    int v = vec_highest(a->irr);
    if (v < 0 || (v >> 4) <= (ppr(a) >> 4))
        return -1;
    return v;
}

/* LINT0 in ExtINT mode passes the 8259's INTR through (virtual wire). */
static bool extint_open(const struct lapic *a)
{
    uint32_t l = a->lvt[LVT_LINT0];
    return !hw_enabled(a) || (!(l & LVT_MASKED) && ((l >> 8) & 7) == APIC_DM_EXTINT);
}

static bool pic_intr(const struct lapic *a)
{
    return a->pic_line ? *a->pic_line : a->pic_pending && a->pic_pending(a->pic_opaque);
}

static void update(struct lapic *a)
{
    a->intr_out = own_deliverable(a) >= 0 || (extint_open(a) && pic_intr(a));
}

static void pic_changed(void *opaque)
{
    update(opaque);
}

static bool lapic_pending(void *opaque)
{
    return ((struct lapic *)opaque)->intr_out;
}

/* INTA: the APIC's own vector first (as QEMU's CPU asks), then the 8259's
 * through LINT0; when neither is there any more, the spurious vector. */
static int lapic_ack(void *opaque)
{
    struct lapic *a = opaque;
    int v = own_deliverable(a);
    if (v >= 0) {
        vec_clear(a->irr, v);
        vec_set(a->isr, v);
        timer_acked(a, v);
        update(a);
        bus_apic_ack(a->bus, (uint8_t)v);
        return v;
    }
    /* Disabled in the MSR, the APIC is not there: INTA is the 8259's alone. */
    if (a->pic_ack && ((extint_open(a) && pic_intr(a)) || !hw_enabled(a))) {
        int pv = a->pic_ack(a->pic_opaque);
        update(a);
        return pv;
    }
    return a->svr & 0xff;
}

/* ---- accepting interrupts ---- */

static void raise_error(struct lapic *a, uint32_t bits);

static void accept_fixed(struct lapic *a, uint8_t vector, bool level)
{
    /* Software-disabled, the APIC takes NMI, INIT and SIPI only (as KVM's,
     * which kvm-unit-tests hold to hardware): a fixed vector is dropped. */
    if (!sw_enabled(a))
        return;
    if (vector < 16) {
        raise_error(a, ESR_RECV_ILLEGAL_VECTOR);
        return;
    }
    vec_set(a->irr, vector);
    if (level)
        vec_set(a->tmr, vector);
    else
        vec_clear(a->tmr, vector);
    update(a);
}

static void accept(struct lapic *a, int delivery, uint8_t vector, bool level)
{
    switch (delivery) {
    case APIC_DM_FIXED:
    case APIC_DM_LOWEST:
        accept_fixed(a, vector, level);
        break;
    case APIC_DM_NMI:
        a->nmi_out = true;
        break;
    default:
        /* SMI, INIT, SIPI and ExtINT messages: no SMM, one CPU already running. */
        break;
    }
}

/* An LVT entry fires (timer, error): its vector goes to IRR unless masked. */
static void local_deliver(struct lapic *a, int lvt)
{
    uint32_t l = a->lvt[lvt];
    if (l & LVT_MASKED)
        return;
    accept(a, (l >> 8) & 7, l & 0xff, false);
}

static void raise_error(struct lapic *a, uint32_t bits)
{
    bool fresh = (a->esr_pending & bits) != bits;
    a->esr_pending |= bits;
    /* An illegal vector in the error LVT itself must not recurse. */
    if (fresh && (a->lvt[LVT_ERROR] & 0xff) >= 16)
        local_deliver(a, LVT_ERROR);
}

static bool dest_matches(const struct lapic *a, uint8_t dest, bool logical)
{
    if (!logical)
        return dest == 0xff || dest == a->id;
    if (dest == 0xff)
        return true;
    uint8_t ldr = a->ldr >> 24;
    if ((a->dfr >> 28) == 0xf)                /* flat model */
        return (ldr & dest) != 0;
    /* cluster model: high nibble the cluster (15 = all), low nibble the members */
    return ((dest >> 4) == 15 || (dest >> 4) == (ldr >> 4)) && (dest & ldr & 0x0f);
}

static void apic_bus_receive(void *opaque, const struct apic_msg *msg)
{
    struct lapic *a = opaque;
    if (!hw_enabled(a) || !dest_matches(a, msg->dest, msg->logical))
        return;
    accept(a, msg->delivery, msg->vector, msg->level);
}

/* ---- IPIs ---- */

static void send_ipi(struct lapic *a)
{
    uint32_t lo = a->icr_lo;
    int delivery = (lo >> 8) & 7;
    uint8_t vector = lo & 0xff;
    int shorthand = (lo >> 18) & 3;
    bool level = lo & ICR_TRIGGER_LEVEL;
    if ((delivery == APIC_DM_FIXED || delivery == APIC_DM_LOWEST) && vector < 16) {
        raise_error(a, ESR_SEND_ILLEGAL_VECTOR);
        return;
    }
    /* INIT level de-assert only resynchronises arbitration IDs. */
    if (delivery == APIC_DM_INIT && level && !(lo & ICR_LEVEL_ASSERT))
        return;
    bool to_self;
    switch (shorthand) {
    case 1: to_self = true; break;                       /* self */
    case 2: to_self = true; break;                       /* all including self */
    case 3: to_self = false; break;                      /* all excluding self: nobody else here */
    default: to_self = dest_matches(a, a->icr_hi >> 24, lo & ICR_DEST_LOGICAL); break;
    }
    /* INIT and SIPI to ourselves would restart the running CPU: the BSP
     * ignores them, and there are no other processors to wake. */
    if (to_self && delivery != APIC_DM_INIT && delivery != APIC_DM_STARTUP)
        accept(a, delivery, vector, level);
}

/* ---- timer ---- */

static int64_t tick_ns(const struct lapic *a)
{
    uint32_t d = (a->timer_div & 3) | ((a->timer_div >> 1) & 4);
    return (int64_t)1 << ((d + 1) & 7);
}

static int64_t now(const struct lapic *a)
{
    return vclock_now(bus_clock(a->bus));
}

static bool timer_periodic(const struct lapic *a)
{
    return a->lvt[LVT_TIMER] & LVT_PERIODIC;
}

/* The count has run down from timer_start (a one-shot stays at 0). */
static uint32_t timer_current(const struct lapic *a)
{
    if (!a->timer_initial)
        return 0;
    int64_t ticks = (now(a) - a->timer_start) / tick_ns(a);
    if (ticks < 0)
        ticks = 0;
    if (timer_periodic(a))
        return a->timer_initial - (uint32_t)(ticks % a->timer_initial);
    return ticks >= a->timer_initial ? 0 : a->timer_initial - (uint32_t)ticks;
}

/* At most a second of periodic expiries is owed (as the PIT does). */
static uint32_t most_owed(const struct lapic *a)
{
    int64_t period = (int64_t)a->timer_initial * tick_ns(a);
    int64_t n = period > 0 ? NS_PER_SEC / period : 0;
    return n > 100000 ? 100000 : (uint32_t)n;
}

/*
 * When the host falls behind, periodic expiries go by faster than the guest
 * takes them.  Those that find the last one still pending are owed and sent
 * one per acknowledgement, like the PIT's IRQ0: Linux checks the APIC
 * timer against PIT jiffies, and dropping one but not the other failed that
 * check ("APIC timer disabled due to verification failure").
 */
static void timer_arm(struct lapic *a)
{
    if (!a->timer_initial) {
        vtimer_del(a->timer);
        return;
    }
    int64_t period = (int64_t)a->timer_initial * tick_ns(a);
    int64_t when = a->timer_start + period;
    if (timer_periodic(a) && when <= now(a)) {
        int64_t missed = (now(a) - a->timer_start) / period;
        uint64_t owed = (uint64_t)a->timer_owed + (uint64_t)missed;
        a->timer_owed = owed < most_owed(a) ? (uint32_t)owed : most_owed(a);
        a->timer_start += missed * period;
        when = a->timer_start + period;
    } else if (!timer_periodic(a) && timer_current(a) == 0 && !vtimer_pending(a->timer)) {
        return;
    }
    vtimer_mod(a->timer, when);
}

static bool timer_vector_waiting(const struct lapic *a)
{
    return vec_test(a->irr, a->lvt[LVT_TIMER] & 0xff);
}

static void timer_fired(void *opaque)
{
    struct lapic *a = opaque;
    if (timer_periodic(a) && timer_vector_waiting(a) && !(a->lvt[LVT_TIMER] & LVT_MASKED)) {
        if (a->timer_owed < most_owed(a))
            a->timer_owed++;
    } else {
        local_deliver(a, LVT_TIMER);
    }
    if (timer_periodic(a)) {
        a->timer_start += (int64_t)a->timer_initial * tick_ns(a);
        timer_arm(a);
    }
}

/* The CPU took the timer's vector: an owed expiry goes out now (taken after its EOI). */
static void timer_acked(struct lapic *a, int vector)
{
    if (a->timer_owed && vector == (int)(a->lvt[LVT_TIMER] & 0xff) && timer_periodic(a)) {
        a->timer_owed--;
        local_deliver(a, LVT_TIMER);
    }
}

static void timer_load(struct lapic *a, uint32_t count)
{
    a->timer_owed = 0;
    a->timer_initial = count;
    a->timer_start = now(a);
    vtimer_del(a->timer);
    if (count)
        vtimer_mod(a->timer, a->timer_start + (int64_t)count * tick_ns(a));
}

/* A new divider keeps the current count and runs it down at the new rate. */
static void timer_set_divider(struct lapic *a, uint32_t val)
{
    uint32_t cur = timer_current(a);
    bool running = a->timer_initial && (cur || timer_periodic(a));
    int64_t elapsed_ticks = (int64_t)(a->timer_initial - cur);
    a->timer_div = val & 0xb;
    if (!running)
        return;
    a->timer_start = now(a) - elapsed_ticks * tick_ns(a);
    vtimer_mod(a->timer, a->timer_start + (int64_t)a->timer_initial * tick_ns(a));
}

/* ---- registers ---- */

static void reset_registers(struct lapic *a)
{
    a->tpr = 0;
    a->ldr = 0;
    a->dfr = 0xffffffffu;
    a->svr = 0xff;
    memset(a->irr, 0, sizeof(a->irr));
    memset(a->isr, 0, sizeof(a->isr));
    memset(a->tmr, 0, sizeof(a->tmr));
    a->esr = a->esr_pending = 0;
    a->icr_lo = a->icr_hi = 0;
    for (int k = 0; k < LVT_COUNT; k++)
        a->lvt[k] = LVT_MASKED;
    /* The BSP's LINT0 starts as ExtINT, as QEMU sets it: firmware and
     * kernels that never touch the APIC keep the 8259 (virtual wire). */
    a->lvt[LVT_LINT0] = APIC_DM_EXTINT << 8;
    a->timer_initial = 0;
    a->timer_div = 0;
    a->timer_owed = 0;
    a->nmi_out = false;
    if (a->timer)
        vtimer_del(a->timer);
}

static void write_svr(struct lapic *a, uint32_t val)
{
    /* Bits 0-3 of the spurious vector are hardwired to 1 on a P6. */
    a->svr = (val & 0x3f0) | 0xf;
    if (!sw_enabled(a))
        for (int k = 0; k < LVT_COUNT; k++)
            a->lvt[k] |= LVT_MASKED;
}

static void write_lvt(struct lapic *a, int k, uint32_t val)
{
    uint32_t keep = a->lvt[k] & ~lvt_writable[k];
    a->lvt[k] = keep | (val & lvt_writable[k]);
    if (k == LVT_TIMER)
        a->timer_owed = 0;               /* reprogramming forgives the debt */
    /* Masks cannot be cleared while the APIC is software-disabled. */
    if (!sw_enabled(a))
        a->lvt[k] |= LVT_MASKED;
    if (k == LVT_TIMER)
        timer_arm(a);
}

static void eoi(struct lapic *a)
{
    int v = vec_highest(a->isr);
    if (v < 0)
        return;
    vec_clear(a->isr, v);
    if (vec_test(a->tmr, v)) {
        vec_clear(a->tmr, v);
        bus_apic_eoi(a->bus, (uint8_t)v);
    }
}

uint32_t lapic_reg_read(struct lapic *a, uint32_t offset)
{
    int r = (offset >> 4) & 0xff;
    switch (r) {
    case REG_ID: return (uint32_t)a->id << 24;
    case REG_VERSION: return LAPIC_VERSION;
    case REG_TPR: return a->tpr;
    case REG_APR: return 0;
    case REG_PPR: return ppr(a);
    case REG_EOI: return 0;
    case REG_LDR: return a->ldr;
    case REG_DFR: return a->dfr;
    case REG_SVR: return a->svr;
    case REG_ESR: return a->esr;
    case REG_ICR_LO: return a->icr_lo & ~(1u << 12);     /* delivery status: always idle */
    case REG_ICR_HI: return a->icr_hi;
    case REG_TIMER_INIT: return a->timer_initial;
    case REG_TIMER_CUR: return timer_current(a);
    case REG_TIMER_DIV: return a->timer_div;
    }
    if (r >= REG_ISR && r < REG_ISR + 8)
        return a->isr[r - REG_ISR];
    if (r >= REG_TMR && r < REG_TMR + 8)
        return a->tmr[r - REG_TMR];
    if (r >= REG_IRR && r < REG_IRR + 8)
        return a->irr[r - REG_IRR];
    if (r >= REG_LVT && r < REG_LVT + LVT_COUNT)
        return a->lvt[r - REG_LVT];
    if (r == REG_RRD)
        return 0;
    raise_error(a, ESR_ILLEGAL_REGISTER);
    update(a);
    return 0;
}

void lapic_reg_write(struct lapic *a, uint32_t offset, uint32_t val)
{
    int r = (offset >> 4) & 0xff;
    switch (r) {
    case REG_ID: a->id = val >> 24; break;
    case REG_TPR: a->tpr = val & 0xff; break;
    case REG_EOI: eoi(a); break;
    case REG_LDR: a->ldr = val & 0xff000000u; break;
    case REG_DFR: a->dfr = val | 0x0fffffffu; break;
    case REG_SVR: write_svr(a, val); break;
    case REG_ESR:
        /* A write latches the errors collected since the last one. */
        a->esr = a->esr_pending;
        a->esr_pending = 0;
        break;
    case REG_ICR_LO:
        a->icr_lo = val & 0x000ccfffu;
        send_ipi(a);
        break;
    case REG_ICR_HI: a->icr_hi = val & 0xff000000u; break;
    case REG_TIMER_INIT: timer_load(a, val); break;
    case REG_TIMER_DIV: timer_set_divider(a, val); break;
    case REG_VERSION: case REG_APR: case REG_PPR: case REG_RRD: case REG_TIMER_CUR:
        break;                                           /* read-only: the write is ignored */
    default:
        if (r >= REG_LVT && r < REG_LVT + LVT_COUNT)
            write_lvt(a, r - REG_LVT, val);
        else if (!(r >= REG_ISR && r < REG_IRR + 8))
            raise_error(a, ESR_ILLEGAL_REGISTER);
        break;
    }
    update(a);
}

static uint32_t mmio_read(void *opaque, uint32_t addr, int size)
{
    struct lapic *a = opaque;
    if ((addr & 0xf) + size > 4)
        return 0;
    return lapic_reg_read(a, addr & 0xff0) >> (8 * (addr & 3));
}

static void mmio_write(void *opaque, uint32_t addr, uint32_t val, int size)
{
    struct lapic *a = opaque;
    if (size != 4 || (addr & 0xf))
        return;
    lapic_reg_write(a, addr & 0xff0, val);
}

/* ---- IA32_APIC_BASE ---- */

static void place_page(struct lapic *a)
{
    /* A page above 4 GiB is out of this machine's reach: nothing answers. */
    bool reachable = hw_enabled(a) && !(a->base_msr >> 32);
    uint32_t want = reachable ? (uint32_t)(a->base_msr & 0xfffff000u) : ~0u;
    if (want == a->mapped)
        return;
    if (a->mapped != ~0u)
        bus_unregister_mmio(a->bus, a->mapped, 0x1000);
    if (want != ~0u)
        bus_register_mmio(a->bus, want, 0x1000, a, mmio_read, mmio_write);
    uint32_t old = a->mapped;
    a->mapped = want;
    if (a->map_page)
        a->map_page(a->map_opaque, old, want);
}

uint64_t lapic_get_base(const struct lapic *a)
{
    return a->base_msr;
}

bool lapic_enabled(const struct lapic *a)
{
    return hw_enabled(a);
}

bool lapic_set_base(struct lapic *a, uint64_t val)
{
    /* Bits 0-7, 9, 10 (x2APIC) and 36-63 are reserved on this part;
     * bits 32-35 name a page above 4 GiB, which nothing here can reach. */
    if (val & ~0xffffff900ull)
        return false;
    bool was = hw_enabled(a);
    a->base_msr = (val & ~(uint64_t)MSR_APIC_BASE_BSP) | MSR_APIC_BASE_BSP;
    /* Disabled, the APIC forgets its state and passes the 8259 straight through. */
    if (was && !hw_enabled(a))
        reset_registers(a);
    place_page(a);
    update(a);
    return true;
}

const bool *lapic_nmi_line(const struct lapic *a)
{
    return &a->nmi_out;
}

void lapic_nmi_ack(struct lapic *a)
{
    a->nmi_out = false;
}

/* ---- device ---- */

static void lapic_reset(void *opaque)
{
    struct lapic *a = opaque;
    a->id = 0;
    reset_registers(a);
    a->base_msr = LAPIC_DEFAULT_BASE | MSR_APIC_BASE_BSP | MSR_APIC_BASE_ENABLE;
    place_page(a);
    update(a);
}

/* The register page follows IA32_APIC_BASE; INTR follows the registers
 * and the 8259 below (whose post_load ran first). */
static void lapic_post_load(void *opaque)
{
    struct lapic *a = opaque;
    place_page(a);
    update(a);
}

static const struct state_field lapic_fields[] = {
    STATE_FIELD(struct lapic, base_msr), STATE_FIELD(struct lapic, id), STATE_FIELD(struct lapic, tpr),
    STATE_FIELD(struct lapic, ldr), STATE_FIELD(struct lapic, dfr), STATE_FIELD(struct lapic, svr),
    STATE_FIELD(struct lapic, irr), STATE_FIELD(struct lapic, isr), STATE_FIELD(struct lapic, tmr),
    STATE_FIELD(struct lapic, esr), STATE_FIELD(struct lapic, esr_pending), STATE_FIELD(struct lapic, icr_lo),
    STATE_FIELD(struct lapic, icr_hi), STATE_FIELD(struct lapic, lvt), STATE_FIELD(struct lapic, timer_initial),
    STATE_FIELD(struct lapic, timer_div), STATE_FIELD(struct lapic, timer_start), STATE_TIMER(struct lapic, timer),
    STATE_FIELD(struct lapic, timer_owed), STATE_FIELD(struct lapic, intr_out), STATE_FIELD(struct lapic, nmi_out),
};
static const struct state_table lapic_state = { "lapic", 1, lapic_fields, STATE_COUNT(lapic_fields), lapic_post_load };

struct lapic *lapic_new(struct bus *b, lapic_map_fn map_page, void *map_opaque)
{
    struct lapic *a = xcalloc(1, sizeof(*a));
    a->bus = b;
    a->map_page = map_page;
    a->map_opaque = map_opaque;
    a->mapped = ~0u;
    a->timer = vtimer_new(bus_clock(b), timer_fired, a);
    bus_get_intr_controller(b, &a->pic_pending, &a->pic_ack, &a->pic_opaque);
    a->pic_line = bus_intr_line(b);
    bus_set_intr_controller(b, lapic_pending, lapic_ack, a);
    bus_set_intr_line(b, &a->intr_out);
    bus_set_intr_output_listener(b, pic_changed, a);
    bus_set_apic_receiver(b, apic_bus_receive, a);
    bus_add_device(b, &(struct device){ .name = "lapic", .opaque = a, .reset = lapic_reset, .state = &lapic_state });
    lapic_reset(a);
    return a;
}

void lapic_free(struct lapic *a)
{
    if (!a)
        return;
    vtimer_free(a->timer);
    free(a);
}
