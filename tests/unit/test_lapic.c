/* Local APIC driven through its MMIO page and IA32_APIC_BASE, with the 8259
 * below it, the way firmware and kernels program it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "devices/bus.h"
#include "devices/lapic.h"
#include "devices/pic.h"
#include "hosted-driver/vclock.h"

#define BASE LAPIC_DEFAULT_BASE
#define ID 0x20
#define VERSION 0x30
#define TPR 0x80
#define PPR 0xa0
#define EOI 0xb0
#define LDR 0xd0
#define DFR 0xe0
#define SVR 0xf0
#define ISR 0x100
#define TMR 0x180
#define IRR 0x200
#define ESR 0x280
#define ICR_LO 0x300
#define ICR_HI 0x310
#define LVT_TIMER 0x320
#define LVT_LINT0 0x350
#define LVT_LINT1 0x360
#define LVT_ERROR 0x370
#define TIMER_INIT 0x380
#define TIMER_CUR 0x390
#define TIMER_DIV 0x3e0

struct env {
    struct vclock *clk;
    struct bus *b;
    struct pic *pic;
    struct lapic *a;
    int eois[256];
    uint32_t moved_from, moved_to;
};

static void eoi_seen(void *opaque, uint8_t vector)
{
    struct env *e = opaque;
    e->eois[vector]++;
}

static void page_moved(void *opaque, uint32_t from, uint32_t to)
{
    struct env *e = opaque;
    e->moved_from = from;
    e->moved_to = to;
}

static void program_pic(struct bus *b)
{
    bus_pio_write(b, 0x20, 0x11, 1);
    bus_pio_write(b, 0xa0, 0x11, 1);
    bus_pio_write(b, 0x21, 0x08, 1);
    bus_pio_write(b, 0xa1, 0x70, 1);
    bus_pio_write(b, 0x21, 0x04, 1);
    bus_pio_write(b, 0xa1, 0x02, 1);
    bus_pio_write(b, 0x21, 0x01, 1);
    bus_pio_write(b, 0xa1, 0x01, 1);
    bus_pio_write(b, 0x21, 0x00, 1);
    bus_pio_write(b, 0xa1, 0x00, 1);
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->clk = vclock_new(true, 1);
    e->b = bus_new(e->clk);
    e->pic = pic_new(e->b);
    e->a = lapic_new(e->b, page_moved, e);
    bus_set_apic_eoi_listener(e->b, eoi_seen, e);
    bus_reset_devices(e->b);
    program_pic(e->b);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    lapic_free(e->a);
    pic_free(e->pic);
    bus_free(e->b);
    vclock_free(e->clk);
    free(e);
    return 0;
}

static uint32_t rd(struct env *e, uint32_t reg)
{
    uint32_t v = 0xdeadbeef;
    assert_true(bus_mmio_read(e->b, BASE + reg, 4, &v));
    return v;
}

static void wr(struct env *e, uint32_t reg, uint32_t v)
{
    assert_true(bus_mmio_write(e->b, BASE + reg, v, 4));
}

/* The polled flag (translated STI reads it) must always equal the call. */
static bool pending(struct env *e)
{
    bool p = bus_intr_pending(e->b);
    assert_int_equal(*bus_intr_line(e->b), p);
    return p;
}

static void self_ipi(struct env *e, uint8_t vector)
{
    wr(e, ICR_LO, 0x40000 | vector);        /* shorthand self, fixed, edge */
}

static void sw_enable(struct env *e)
{
    wr(e, SVR, 0x1ff);
}

static void advance(struct env *e, int64_t ns)
{
    vclock_account_insns(e->clk, ns);
    vclock_run_timers(e->clk);
}

static void test_reset_state(void **state)
{
    struct env *e = *state;
    assert_int_equal(lapic_get_base(e->a), 0xfee00900u);
    assert_int_equal(rd(e, VERSION), 0x50014);
    assert_int_equal(rd(e, ID), 0);
    assert_int_equal(rd(e, SVR), 0xff);
    assert_int_equal(rd(e, DFR), 0xffffffffu);
    assert_int_equal(rd(e, LVT_TIMER), 0x10000);
    assert_int_equal(rd(e, LVT_LINT0), 0x700);
    assert_int_equal(rd(e, LVT_LINT1), 0x10000);
    assert_int_equal(rd(e, TPR), 0);
    assert_false(pending(e));
}

/* LINT0 as ExtINT passes the 8259 through; masked it does not; the APIC
 * disabled in the MSR gives the CPU the 8259 straight. */
static void test_virtual_wire(void **state)
{
    struct env *e = *state;
    irq_set(e->b, 1, 1);
    assert_true(pending(e));
    wr(e, LVT_LINT0, 0x10700);
    assert_false(pending(e));
    assert_true(lapic_set_base(e->a, 0xfee00000u));
    assert_true(pending(e));
    assert_int_equal(bus_intr_ack(e->b), 0x09);
    irq_set(e->b, 1, 0);
    bus_pio_write(e->b, 0x20, 0x20, 1);
    assert_false(pending(e));
    /* Enabled again: back to its power-up state, LINT0 ExtINT. */
    assert_true(lapic_set_base(e->a, 0xfee00800u));
    irq_set(e->b, 3, 1);
    assert_true(pending(e));
    assert_int_equal(bus_intr_ack(e->b), 0x0b);
}

static void test_self_ipi_and_priority(void **state)
{
    struct env *e = *state;
    self_ipi(e, 0x40);
    assert_false(pending(e));                /* software-disabled: dropped */
    assert_int_equal(rd(e, IRR + 0x20), 0);
    sw_enable(e);
    assert_false(pending(e));
    self_ipi(e, 0x40);
    assert_int_equal(rd(e, IRR + 0x20), 1);  /* vector 0x40: IRR dword 2, bit 0 */
    assert_true(pending(e));
    self_ipi(e, 0x80);
    /* TPR class 9 holds back class 8 and below. */
    wr(e, TPR, 0x90);
    assert_int_equal(rd(e, PPR), 0x90);
    assert_false(pending(e));
    wr(e, TPR, 0x70);
    assert_true(pending(e));
    assert_int_equal(bus_intr_ack(e->b), 0x80);
    assert_int_equal(rd(e, ISR + 0x40), 1);
    assert_int_equal(rd(e, PPR), 0x80);
    /* 0x40 is below the class in service: it waits for the EOI. */
    assert_false(pending(e));
    wr(e, EOI, 0);
    assert_int_equal(rd(e, ISR + 0x40), 0);
    assert_int_equal(rd(e, PPR), 0x70);
    /* ... and for the TPR. */
    assert_false(pending(e));
    wr(e, TPR, 0);
    assert_true(pending(e));
    assert_int_equal(bus_intr_ack(e->b), 0x40);
    wr(e, EOI, 0);
    assert_false(pending(e));
    /* Edge-triggered vectors send no EOI to the I/O APIC. */
    assert_int_equal(e->eois[0x40] + e->eois[0x80], 0);
}

/* A higher class nests over one in service; EOI ends the highest first. */
static void test_nesting_and_eoi_order(void **state)
{
    struct env *e = *state;
    sw_enable(e);
    self_ipi(e, 0x51);
    assert_int_equal(bus_intr_ack(e->b), 0x51);
    self_ipi(e, 0x52);                        /* same class: not deliverable */
    assert_false(pending(e));
    self_ipi(e, 0x61);
    assert_int_equal(bus_intr_ack(e->b), 0x61);
    wr(e, EOI, 0);                            /* ends 0x61 */
    assert_int_equal(rd(e, ISR + 0x30), 0);           /* vectors 96-127 */
    assert_int_equal(rd(e, ISR + 0x20), 1u << 17);    /* 0x51 still in service */
    wr(e, EOI, 0);
    assert_int_equal(bus_intr_ack(e->b), 0x52);
}

/* ESR: errors collect internally; a write latches them, the read returns them. */
static void test_illegal_vectors_set_esr(void **state)
{
    struct env *e = *state;
    sw_enable(e);
    self_ipi(e, 0x05);
    assert_false(pending(e));
    assert_int_equal(rd(e, IRR), 0);
    assert_int_equal(rd(e, ESR), 0);          /* not latched yet */
    wr(e, ESR, 0);
    assert_int_equal(rd(e, ESR), 0x20);       /* send illegal vector */
    wr(e, ESR, 0);
    assert_int_equal(rd(e, ESR), 0);
    /* A timer LVT with vector 3: receive illegal vector when it fires. */
    wr(e, LVT_TIMER, 0x03);
    wr(e, TIMER_DIV, 0xb);                    /* divide by 1 */
    wr(e, TIMER_INIT, 10);
    advance(e, 20);
    assert_int_equal(rd(e, IRR), 0);
    wr(e, ESR, 0);
    assert_int_equal(rd(e, ESR), 0x40);
    /* A reserved register offset: illegal register address, and the error LVT fires. */
    wr(e, LVT_ERROR, 0xfe);
    wr(e, 0x3f0, 0x1234);
    assert_true(pending(e));
    assert_int_equal(bus_intr_ack(e->b), 0xfe);
    wr(e, ESR, 0);
    assert_int_equal(rd(e, ESR), 0x80);
}

static void test_timer_one_shot(void **state)
{
    struct env *e = *state;
    sw_enable(e);
    wr(e, LVT_TIMER, 0x30);
    wr(e, TIMER_DIV, 0x1);                    /* divide by 4 */
    wr(e, TIMER_INIT, 1000);                  /* 4000 ns */
    assert_int_equal(rd(e, TIMER_CUR), 1000);
    advance(e, 2000);
    assert_int_equal(rd(e, TIMER_CUR), 500);
    advance(e, 1999);
    assert_false(pending(e));
    advance(e, 1);
    assert_true(pending(e));
    assert_int_equal(rd(e, TIMER_CUR), 0);
    assert_int_equal(bus_intr_ack(e->b), 0x30);
    wr(e, EOI, 0);
    advance(e, 100000);
    assert_false(pending(e));                  /* one shot only */
    assert_int_equal(rd(e, TIMER_CUR), 0);
}

static void test_timer_periodic_and_divider(void **state)
{
    struct env *e = *state;
    sw_enable(e);
    wr(e, LVT_TIMER, 0x20031);                /* periodic, vector 0x31 */
    wr(e, TIMER_DIV, 0x3);                    /* divide by 16 */
    wr(e, TIMER_INIT, 100);                   /* 1600 ns */
    for (int k = 0; k < 3; k++) {
        advance(e, 1599);
        assert_false(pending(e));
        advance(e, 1);
        assert_true(pending(e));
        assert_int_equal(bus_intr_ack(e->b), 0x31);
        wr(e, EOI, 0);
        assert_int_equal(rd(e, TIMER_CUR), 100);   /* reloaded */
    }
    /* Half way through a period, divide by 2 instead: the other 50 ticks take 100 ns. */
    advance(e, 800);
    assert_int_equal(rd(e, TIMER_CUR), 50);
    wr(e, TIMER_DIV, 0x0);
    advance(e, 99);
    assert_false(pending(e));
    advance(e, 1);
    assert_true(pending(e));
    /* Masked: the count runs, nothing arrives. */
    assert_int_equal(bus_intr_ack(e->b), 0x31);
    wr(e, EOI, 0);
    wr(e, LVT_TIMER, 0x30031);
    advance(e, 1000);
    assert_false(pending(e));
    /* A zero count stops it. */
    wr(e, LVT_TIMER, 0x20031);
    wr(e, TIMER_INIT, 0);
    advance(e, 100000);
    assert_false(pending(e));
}

/* Expiries that go by while the last is still pending are owed and sent
 * one per acknowledgement; reprogramming forgives them. */
static void test_timer_periodic_owed(void **state)
{
    struct env *e = *state;
    sw_enable(e);
    wr(e, LVT_TIMER, 0x20031);
    wr(e, TIMER_DIV, 0xb);                    /* divide by 1 */
    wr(e, TIMER_INIT, 1000);
    advance(e, 1000);                         /* first expiry: pending */
    advance(e, 2500);                         /* two more go by, one at a time */
    int taken = 0;
    while (pending(e) && taken < 10) {
        assert_int_equal(bus_intr_ack(e->b), 0x31);
        wr(e, EOI, 0);
        taken++;
    }
    assert_int_equal(taken, 3);
    /* A long stall (one timer pass for all of it): owed all the same. */
    advance(e, 4600);                         /* expiries at 4000..8000: five */
    taken = 0;
    while (pending(e) && taken < 10) {
        assert_int_equal(bus_intr_ack(e->b), 0x31);
        wr(e, EOI, 0);
        taken++;
    }
    assert_int_equal(taken, 5);
    advance(e, 5000);
    wr(e, TIMER_INIT, 1000);                  /* reprogrammed: the debt is gone */
    assert_int_equal(bus_intr_ack(e->b), 0x31);
    wr(e, EOI, 0);
    assert_false(pending(e));
}

static void test_level_vector_eoi_broadcast(void **state)
{
    struct env *e = *state;
    sw_enable(e);
    struct apic_msg m = { .vector = 0x44, .delivery = APIC_DM_FIXED, .dest = 0, .level = true };
    bus_apic_send(e->b, &m);
    assert_int_equal(rd(e, TMR + 0x20), 0x10);
    assert_int_equal(bus_intr_ack(e->b), 0x44);
    wr(e, EOI, 0);
    assert_int_equal(e->eois[0x44], 1);
    assert_int_equal(rd(e, TMR + 0x20), 0);
    /* Addressed to another APIC ID (physical) or another logical group: ignored. */
    m.dest = 3;
    bus_apic_send(e->b, &m);
    assert_false(pending(e));
    wr(e, DFR, 0xffffffffu);                  /* flat */
    wr(e, LDR, 0x01000000u);
    m.logical = true;
    m.dest = 0x02;
    bus_apic_send(e->b, &m);
    assert_false(pending(e));
    m.dest = 0x03;
    bus_apic_send(e->b, &m);
    assert_true(pending(e));
}

static void test_nmi_and_init(void **state)
{
    struct env *e = *state;
    sw_enable(e);
    assert_false(*lapic_nmi_line(e->a));
    wr(e, ICR_LO, 0x40400);                   /* self, NMI */
    assert_true(*lapic_nmi_line(e->a));
    lapic_nmi_ack(e->a);
    assert_false(*lapic_nmi_line(e->a));
    /* INIT and SIPI to all others: there are none; nothing changes here. */
    wr(e, ICR_LO, 0xc4500);
    wr(e, ICR_LO, 0xc4608);
    assert_false(pending(e));
    assert_false(*lapic_nmi_line(e->a));
    assert_int_equal(rd(e, ICR_LO) & 0x1000, 0);    /* delivery status: idle */
}

/* Relocation moves the page; the MSR refuses reserved bits. */
static void test_relocate_and_bad_msr(void **state)
{
    struct env *e = *state;
    assert_true(lapic_set_base(e->a, 0x00100800u));        /* over RAM, as a guest may */
    assert_int_equal(e->moved_from, BASE);
    assert_int_equal(e->moved_to, 0x00100000u);
    uint32_t v;
    assert_false(bus_mmio_read(e->b, BASE + VERSION, 4, &v));
    assert_true(bus_mmio_read(e->b, 0x00100000u + VERSION, 4, &v));
    assert_int_equal(v, 0x50014);
    assert_false(lapic_set_base(e->a, 0xfee00c00u));       /* x2APIC enable */
    assert_false(lapic_set_base(e->a, 0xfee00801u));       /* bit 0 */
    assert_false(lapic_set_base(e->a, 0x1000fee00800ull));  /* beyond 36 bits */
    assert_int_equal(lapic_get_base(e->a), 0x00100900u);
    /* Above 4 GiB within 36 bits: accepted, and nothing here can reach it. */
    assert_true(lapic_set_base(e->a, 0x1fee00800ull));
    assert_int_equal(e->moved_to, ~0u);
    assert_false(bus_mmio_read(e->b, 0x00100000u + VERSION, 4, &v));
}

/* Garbage: narrow and misaligned writes are dropped, read-only registers
 * keep their values, software-disabled LVTs stay masked. */
static void test_garbage_writes(void **state)
{
    struct env *e = *state;
    assert_true(bus_mmio_write(e->b, BASE + TPR, 0xff, 1));
    assert_true(bus_mmio_write(e->b, BASE + TPR + 2, 0xffffffffu, 4));
    assert_int_equal(rd(e, TPR), 0);
    wr(e, VERSION, 0);
    wr(e, PPR, 0xff);
    wr(e, IRR, 0xffffffffu);
    wr(e, ISR + 0x70, 0xffffffffu);
    assert_int_equal(rd(e, VERSION), 0x50014);
    assert_int_equal(rd(e, PPR), 0);
    assert_int_equal(rd(e, IRR), 0);
    assert_false(pending(e));
    wr(e, LVT_TIMER, 0x20040);                /* software-disabled: stays masked */
    assert_int_equal(rd(e, LVT_TIMER), 0x30040);
    wr(e, SVR, 0xffffffffu);
    assert_int_equal(rd(e, SVR), 0x3ff);
    wr(e, ICR_LO, 0xffffffffu);               /* all-excluding-self shorthand: nobody */
    assert_false(pending(e));
    for (uint32_t off = 0; off < 0x1000; off += 4)
        bus_mmio_write(e->b, BASE + off, 0xa5a5a5a5u, 4);
    for (uint32_t off = 0; off < 0x1000; off += 1) {
        uint32_t v;
        bus_mmio_read(e->b, BASE + off, 1, &v);
    }
    /* Whatever the garbage did, the flag and the call agree. */
    pending(e);
}

/* Random register writes, MSR values, interrupts and acknowledgements:
 * never a crash, the flag always equals the call, an acknowledged vector
 * is always one that was deliverable (or the spurious one). */
static void test_random_storm(void **state)
{
    struct env *e = *state;
    uint32_t seed = 12345;
    int acks = 0;
    for (int k = 0; k < 200000; k++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t r = seed >> 8;
        seed = seed * 1103515245u + 12345u;
        uint32_t val = seed ^ (seed << 7);
        switch (r % 8) {
        case 0:
            bus_mmio_write(e->b, BASE + (r >> 4 & 0xff0), val, 4);
            break;
        case 1:
            bus_mmio_write(e->b, BASE + (r >> 4 & 0xfff), val, 1 + (r >> 20) % 4);
            break;
        case 2:                                /* a self-IPI, illegal vectors included */
            bus_mmio_write(e->b, BASE + ICR_LO, 0x40000 | (val & 0xff), 4);
            break;
        case 3:
            if ((r >> 4) & 1)
                bus_mmio_write(e->b, BASE + EOI, 0, 4);
            else
                bus_mmio_write(e->b, BASE + TPR, val & 0x7f, 4);
            break;
        case 4:
            if ((r >> 4) % 64 == 0)
                lapic_set_base(e->a, (uint64_t)val << ((r >> 12) % 8) | 0x800);
            else
                lapic_set_base(e->a, BASE | 0x800);
            sw_enable(e);
            break;
        case 5:
            irq_set(e->b, (r >> 4) % 16, (r >> 9) & 1);
            break;
        case 6:
            if (pending(e)) {
                int v = bus_intr_ack(e->b);
                assert_in_range(v, 0, 255);
                acks++;
            }
            break;
        case 7:
            advance(e, val % 5000);
            lapic_nmi_ack(e->a);
            break;
        }
        pending(e);
    }
    /* The storm did reach the CPU now and then. */
    print_message("%d interrupts taken\n", acks);
    assert_true(acks > 100);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_reset_state),
        T(test_virtual_wire),
        T(test_self_ipi_and_priority),
        T(test_nesting_and_eoi_order),
        T(test_illegal_vectors_set_esr),
        T(test_timer_one_shot),
        T(test_timer_periodic_and_divider),
        T(test_timer_periodic_owed),
        T(test_level_vector_eoi_broadcast),
        T(test_nmi_and_init),
        T(test_relocate_and_bad_msr),
        T(test_garbage_writes),
        T(test_random_storm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
