/* 8254 PIT driven through ports 0x40-0x43 and 0x61 on a deterministic clock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "devices/bus.h"
#include "devices/pic.h"
#include "devices/pit.h"
#include "hosted-driver/vclock.h"

struct env {
    struct vclock *clk;
    struct bus *b;
    struct pit *pit;
    int level0;
    int edges0;     /* 0->1 transitions of IRQ0 */
};

static void sink(void *opaque, int line, int level)
{
    struct env *e = opaque;
    if (line != 0)
        return;
    if (level && !e->level0)
        e->edges0++;
    e->level0 = level;
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->clk = vclock_new(true, 1);
    e->b = bus_new(e->clk);
    e->pit = pit_new(e->b);
    bus_set_irq_sink(e->b, sink, e);
    bus_reset_devices(e->b);
    e->edges0 = 0;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    bus_free(e->b);
    pit_free(e->pit);
    vclock_free(e->clk);
    free(e);
    return 0;
}

/* ns at which tick t has been reached (same rounding as the device). */
static int64_t tick_ns(int64_t t)
{
    return (t * NS_PER_SEC + PIT_HZ - 1) / PIT_HZ;
}

/* Move time to ns, firing timers as the idle run loop would. */
static void run_until(struct env *e, int64_t ns)
{
    while (vclock_next_deadline(e->clk) <= ns) {
        vclock_advance_to(e->clk, vclock_next_deadline(e->clk));
        vclock_run_timers(e->clk);
    }
    vclock_advance_to(e->clk, ns);
    vclock_run_timers(e->clk);
}

static uint16_t latch_read(struct bus *b, int ch)
{
    bus_pio_write(b, 0x43, ch << 6, 1);
    uint16_t lo = bus_pio_read(b, 0x40 + ch, 1);
    uint16_t hi = bus_pio_read(b, 0x40 + ch, 1);
    return lo | hi << 8;
}

static void program(struct bus *b, int ch, int mode, uint16_t count)
{
    bus_pio_write(b, 0x43, ch << 6 | 3 << 4 | mode << 1, 1);
    bus_pio_write(b, 0x40 + ch, count & 0xff, 1);
    bus_pio_write(b, 0x40 + ch, count >> 8, 1);
}

static void test_mode2_periodic(void **state)
{
    struct env *e = *state;
    program(e->b, 0, 2, 1193);
    assert_int_equal(e->edges0, 0);
    assert_int_equal(vclock_next_deadline(e->clk), tick_ns(1193));

    run_until(e, tick_ns(100));
    assert_int_equal(latch_read(e->b, 0), 1193 - 100);

    run_until(e, tick_ns(1193 * 10));
    assert_int_equal(e->edges0, 10);
    assert_int_equal(latch_read(e->b, 0), 1193);          /* just reloaded */
    run_until(e, tick_ns(1193 * 10 + 1192));
    assert_int_equal(latch_read(e->b, 0), 1);
    assert_int_equal(e->edges0, 10);
    assert_int_equal(vclock_next_deadline(e->clk), tick_ns(1193 * 11));

    /* Time jumps far ahead (host lagging): one pulse now, no burst... */
    vclock_advance_to(e->clk, tick_ns(1193 * 50 + 7));
    vclock_run_timers(e->clk);
    assert_int_equal(e->edges0, 11);
    assert_int_equal(vclock_next_deadline(e->clk), tick_ns(1193 * 51));
    /* ...and the 39 other edges that went by, one per ack of IRQ0. */
    for (int k = 1; k <= 39; k++) {
        irq_acked(e->b, 0);
        assert_int_equal(e->edges0, 11 + k);
    }
    irq_acked(e->b, 0);
    assert_int_equal(e->edges0, 50);
    run_until(e, tick_ns(1193 * 51));
    assert_int_equal(e->edges0, 51);
}

/* Reprogramming channel 0 forgives the ticks it owed. */
static void test_lost_ticks_forgiven(void **state)
{
    struct env *e = *state;
    program(e->b, 0, 2, 1193);
    vclock_advance_to(e->clk, tick_ns(1193 * 5));
    vclock_run_timers(e->clk);
    assert_int_equal(e->edges0, 1);
    program(e->b, 0, 2, 1193);
    irq_acked(e->b, 0);
    assert_int_equal(e->edges0, 1);
}

static void test_mode0_one_shot(void **state)
{
    struct env *e = *state;
    vclock_advance_to(e->clk, 1000000);
    int64_t t0 = 1000000 * (int64_t)PIT_HZ / NS_PER_SEC;   /* ticks at load */
    program(e->b, 0, 0, 500);
    assert_int_equal(e->level0, 0);
    run_until(e, tick_ns(t0 + 499));
    assert_int_equal(e->level0, 0);
    assert_int_equal(latch_read(e->b, 0), 1);
    run_until(e, tick_ns(t0 + 500));
    assert_int_equal(e->level0, 1);
    assert_int_equal(e->edges0, 1);
    /* The counter wraps and keeps counting; OUT stays high. */
    run_until(e, tick_ns(t0 + 510));
    assert_int_equal(latch_read(e->b, 0), 0xfff6);
    assert_int_equal(vclock_next_deadline(e->clk), INT64_MAX);
    /* A new control word drops OUT (and the level line). */
    bus_pio_write(e->b, 0x43, 0x30, 1);
    assert_int_equal(e->level0, 0);
}

static void test_mode0_then_periodic(void **state)
{
    struct env *e = *state;
    program(e->b, 0, 0, 10);
    run_until(e, tick_ns(20));
    assert_int_equal(e->level0, 1);
    /* Straight to mode 2 without going through a mode-0 control word:
     * the very first period must still produce an edge. */
    program(e->b, 0, 2, 100);
    assert_int_equal(e->level0, 0);
    run_until(e, tick_ns(20 + 100));
    assert_int_equal(e->edges0, 2);
}

static void test_latch_holds(void **state)
{
    struct env *e = *state;
    program(e->b, 0, 2, 0);              /* 65536 */
    run_until(e, tick_ns(1000));
    bus_pio_write(e->b, 0x43, 0x00, 1);
    run_until(e, tick_ns(3000));
    bus_pio_write(e->b, 0x43, 0x00, 1);  /* ignored: first latch not read yet */
    uint16_t lo = bus_pio_read(e->b, 0x40, 1);
    uint16_t hi = bus_pio_read(e->b, 0x40, 1);
    assert_int_equal(lo | hi << 8, 65536 - 1000);
    /* Unlatched reads are live. */
    lo = bus_pio_read(e->b, 0x40, 1);
    hi = bus_pio_read(e->b, 0x40, 1);
    assert_int_equal(lo | hi << 8, 65536 - 3000);
}

static void test_access_modes(void **state)
{
    struct env *e = *state;
    /* LSB only, mode 2, count 0x80 */
    bus_pio_write(e->b, 0x43, 0x14, 1);
    bus_pio_write(e->b, 0x40, 0x80, 1);
    run_until(e, tick_ns(0x10));
    assert_int_equal(bus_pio_read(e->b, 0x40, 1), 0x70);
    assert_int_equal(bus_pio_read(e->b, 0x40, 1), 0x70);
    /* MSB only, channel 1, mode 2, count 0x0200 */
    int64_t t = vclock_now(e->clk) * (int64_t)PIT_HZ / NS_PER_SEC;
    bus_pio_write(e->b, 0x43, 0x64, 1);
    bus_pio_write(e->b, 0x41, 0x02, 1);
    run_until(e, tick_ns(t + 0x101));
    assert_int_equal(bus_pio_read(e->b, 0x41, 1), 0x00);   /* 0x0200-0x101 = 0x00ff */
    bus_pio_write(e->b, 0x43, 0x40, 1);                    /* latch ch1 */
    assert_int_equal(bus_pio_read(e->b, 0x41, 1), 0x00);
}

static void test_readback(void **state)
{
    struct env *e = *state;
    bus_pio_write(e->b, 0x43, 0xb0, 1);  /* ch2, word, mode 0 */
    /* Status before the count: OUT low, null count, rw=3, mode 0. */
    bus_pio_write(e->b, 0x43, 0xe8, 1);  /* read-back status only, ch2 */
    assert_int_equal(bus_pio_read(e->b, 0x42, 1), 0x70);
    bus_pio_write(e->b, 0x42, 0x00, 1);
    bus_pio_write(e->b, 0x42, 0x10, 1);  /* 0x1000, gate still low */
    run_until(e, tick_ns(50));
    /* Gate low in mode 0: no counting. Latch count and status together. */
    bus_pio_write(e->b, 0x43, 0xc8, 1);
    assert_int_equal(bus_pio_read(e->b, 0x42, 1), 0x30);  /* status first */
    assert_int_equal(bus_pio_read(e->b, 0x42, 1), 0x00);
    assert_int_equal(bus_pio_read(e->b, 0x42, 1), 0x10);
}

static void test_channel2_gate_and_port61(void **state)
{
    struct env *e = *state;
    struct bus *b = e->b;
    assert_int_equal(bus_pio_read(b, 0x61, 1) & 0x2f, 0x00);
    /* SeaBIOS's TSC calibration: gate on, speaker off, mode 0, wait OUT2. */
    bus_pio_write(b, 0x61, (bus_pio_read(b, 0x61, 1) & ~0x02) | 0x01, 1);
    int64_t t0 = 0;
    program(b, 2, 0, 1000);
    assert_int_equal(bus_pio_read(b, 0x61, 1) & 0x20, 0);
    run_until(e, tick_ns(t0 + 999));
    assert_int_equal(bus_pio_read(b, 0x61, 1) & 0x20, 0);
    run_until(e, tick_ns(t0 + 1000));
    assert_int_equal(bus_pio_read(b, 0x61, 1) & 0x21, 0x21);
    assert_int_equal(e->edges0, 0);      /* channel 2 never reaches IRQ0 */

    /* Mode 2 with the gate pulled low: OUT forced high, counting frozen;
     * raising the gate reloads. */
    program(b, 2, 2, 100);
    int64_t t1 = tick_ns(t0 + 1000);
    (void)t1;
    run_until(e, tick_ns(t0 + 1000 + 30));
    assert_int_equal(latch_read(b, 2), 70);
    bus_pio_write(b, 0x61, 0x00, 1);
    run_until(e, tick_ns(t0 + 1000 + 80));
    assert_int_equal(latch_read(b, 2), 70);
    assert_int_equal(bus_pio_read(b, 0x61, 1) & 0x20, 0x20);
    bus_pio_write(b, 0x61, 0x03, 1);
    assert_int_equal(latch_read(b, 2), 100);
    assert_true(pit_speaker_active(e->pit));
}

static void test_refresh_toggle(void **state)
{
    struct env *e = *state;
    uint8_t a = bus_pio_read(e->b, 0x61, 1) & 0x10;
    vclock_advance_to(e->clk, 15085);
    uint8_t b = bus_pio_read(e->b, 0x61, 1) & 0x10;
    vclock_advance_to(e->clk, 2 * 15085);
    uint8_t c = bus_pio_read(e->b, 0x61, 1) & 0x10;
    assert_int_not_equal(a, b);
    assert_int_equal(a, c);
}

static void test_bcd(void **state)
{
    struct env *e = *state;
    bus_pio_write(e->b, 0x43, 0x35, 1);  /* ch0, word, mode 2, BCD */
    bus_pio_write(e->b, 0x40, 0x00, 1);
    bus_pio_write(e->b, 0x40, 0x10, 1);  /* 1000 decimal */
    run_until(e, tick_ns(1));
    assert_int_equal(latch_read(e->b, 0), 0x0999);
    run_until(e, tick_ns(1000 * 3));
    assert_int_equal(e->edges0, 3);
}

static void test_mode3_square(void **state)
{
    struct env *e = *state;
    program(e->b, 0, 3, 1000);
    bus_pio_write(e->b, 0x43, 0xe2, 1);  /* status ch0 */
    assert_int_equal(bus_pio_read(e->b, 0x40, 1) & 0x80, 0x80);
    run_until(e, tick_ns(250));
    assert_int_equal(latch_read(e->b, 0), 500);          /* counts by two */
    run_until(e, tick_ns(600));
    bus_pio_write(e->b, 0x43, 0xe2, 1);
    assert_int_equal(bus_pio_read(e->b, 0x40, 1) & 0x80, 0x00);  /* second half low */
    run_until(e, tick_ns(5000));
    assert_int_equal(e->edges0, 5);
}

static void test_irq0_through_pic(void **state)
{
    struct env *e = *state;
    struct pic *pic = pic_new(e->b);   /* replaces the test sink */
    bus_reset_devices(e->b);
    bus_pio_write(e->b, 0x20, 0x11, 1);
    bus_pio_write(e->b, 0x21, 0x08, 1);
    bus_pio_write(e->b, 0x21, 0x04, 1);
    bus_pio_write(e->b, 0x21, 0x01, 1);
    bus_pio_write(e->b, 0x21, 0xfe, 1);
    program(e->b, 0, 2, 11932);          /* 100 Hz */
    run_until(e, 9 * 1000 * 1000);
    assert_false(bus_intr_pending(e->b));
    run_until(e, 10 * 1000 * 1000 + 1000);
    assert_true(bus_intr_pending(e->b));
    assert_int_equal(bus_intr_ack(e->b), 0x08);
    /* Two periods late: the owed tick is the next interrupt, after the EOI. */
    vclock_advance_to(e->clk, 30 * 1000 * 1000 + 1000);
    vclock_run_timers(e->clk);
    assert_false(bus_intr_pending(e->b));            /* IRQ0 in service */
    bus_pio_write(e->b, 0x20, 0x20, 1);              /* EOI */
    assert_true(bus_intr_pending(e->b));
    assert_int_equal(bus_intr_ack(e->b), 0x08);
    bus_pio_write(e->b, 0x20, 0x20, 1);
    assert_true(bus_intr_pending(e->b));             /* the owed one */
    assert_int_equal(bus_intr_ack(e->b), 0x08);
    bus_pio_write(e->b, 0x20, 0x20, 1);
    assert_false(bus_intr_pending(e->b));
    pic_free(pic);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_mode2_periodic),
        T(test_lost_ticks_forgiven),
        T(test_mode0_one_shot),
        T(test_mode0_then_periodic),
        T(test_latch_holds),
        T(test_access_modes),
        T(test_readback),
        T(test_channel2_gate_and_port61),
        T(test_refresh_toggle),
        T(test_bcd),
        T(test_mode3_square),
        T(test_irq0_through_pic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
