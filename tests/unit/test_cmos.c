/* MC146818 RTC/CMOS through ports 0x70/0x71 on a deterministic clock. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "devices/bus.h"
#include "devices/cmos.h"
#include "hosted-driver/vclock.h"

struct env {
    struct vclock *clk;
    struct bus *b;
    struct cmos *c;
    int level8, edges8;
};

static void sink(void *opaque, int line, int level)
{
    struct env *e = opaque;
    if (line != 8)
        return;
    if (level && !e->level8)
        e->edges8++;
    e->level8 = level;
}

static time_t base_time(void)
{
    /* Thursday 2024-02-29 23:59:58 UTC: a leap day two seconds before March. */
    struct tm tm = { .tm_year = 124, .tm_mon = 1, .tm_mday = 29, .tm_hour = 23, .tm_min = 59, .tm_sec = 58 };
    return timegm(&tm);
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->clk = vclock_new(true, 1);
    e->b = bus_new(e->clk);
    bus_set_irq_sink(e->b, sink, e);
    e->c = cmos_new(e->b, base_time());
    bus_reset_devices(e->b);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    bus_free(e->b);
    cmos_free(e->c);
    vclock_free(e->clk);
    free(e);
    return 0;
}

static uint8_t rd(struct env *e, int idx)
{
    bus_pio_write(e->b, 0x70, idx, 1);
    return bus_pio_read(e->b, 0x71, 1);
}

static void wr(struct env *e, int idx, uint8_t v)
{
    bus_pio_write(e->b, 0x70, idx, 1);
    bus_pio_write(e->b, 0x71, v, 1);
}

static void run_until(struct env *e, int64_t ns)
{
    while (vclock_next_deadline(e->clk) <= ns) {
        vclock_advance_to(e->clk, vclock_next_deadline(e->clk));
        vclock_run_timers(e->clk);
    }
    vclock_advance_to(e->clk, ns);
    vclock_run_timers(e->clk);
}

static void test_time_bcd_and_rollover(void **state)
{
    struct env *e = *state;
    assert_int_equal(rd(e, 0x0a), 0x26);
    assert_int_equal(rd(e, 0x0b), 0x02);
    assert_int_equal(rd(e, 0x0d), 0x80);
    assert_int_equal(rd(e, 0), 0x58);
    assert_int_equal(rd(e, 2), 0x59);
    assert_int_equal(rd(e, 4), 0x23);
    assert_int_equal(rd(e, 6), 5);        /* Thursday, Sunday = 1 */
    assert_int_equal(rd(e, 7), 0x29);
    assert_int_equal(rd(e, 8), 0x02);
    assert_int_equal(rd(e, 9), 0x24);
    assert_int_equal(rd(e, 0x32), 0x20);
    run_until(e, 2 * NS_PER_SEC - 1);
    assert_int_equal(rd(e, 0), 0x59);
    run_until(e, 2 * NS_PER_SEC);
    assert_int_equal(rd(e, 0), 0x00);
    assert_int_equal(rd(e, 2), 0x00);
    assert_int_equal(rd(e, 4), 0x00);
    assert_int_equal(rd(e, 7), 0x01);
    assert_int_equal(rd(e, 8), 0x03);
    assert_int_equal(rd(e, 6), 6);
}

static void test_binary_and_12h(void **state)
{
    struct env *e = *state;
    wr(e, 0x0b, 0x06);                    /* binary, 24h */
    assert_int_equal(rd(e, 0), 58);
    assert_int_equal(rd(e, 4), 23);
    assert_int_equal(rd(e, 9), 24);
    wr(e, 0x0b, 0x00);                    /* BCD, 12h */
    assert_int_equal(rd(e, 4), 0x91);     /* 11 PM */
    run_until(e, 2 * NS_PER_SEC);
    assert_int_equal(rd(e, 4), 0x12);     /* 12 AM */
}

static void test_uip_window(void **state)
{
    struct env *e = *state;
    run_until(e, NS_PER_SEC - 300000);
    assert_int_equal(rd(e, 0x0a) & 0x80, 0);
    run_until(e, NS_PER_SEC - 200000);
    assert_int_equal(rd(e, 0x0a) & 0x80, 0x80);
    assert_int_equal(rd(e, 0), 0x58);     /* not yet updated */
    run_until(e, NS_PER_SEC);
    assert_int_equal(rd(e, 0x0a), 0x26);
    assert_int_equal(rd(e, 0), 0x59);
}

static void test_set_and_write_time(void **state)
{
    struct env *e = *state;
    wr(e, 0x0b, 0x82 | 0x10);             /* SET (UIE is dropped by SET) */
    assert_int_equal(rd(e, 0x0b), 0x82);
    wr(e, 0, 0x30);
    wr(e, 2, 0x15);
    wr(e, 4, 0x10);
    wr(e, 7, 0x31);
    wr(e, 8, 0x12);
    wr(e, 9, 0x99);
    wr(e, 0x32, 0x19);
    run_until(e, 5 * NS_PER_SEC);         /* stopped: no change */
    assert_int_equal(rd(e, 0), 0x30);
    assert_int_equal(rd(e, 0x0a) & 0x80, 0);
    wr(e, 0x0b, 0x02);
    run_until(e, 5 * NS_PER_SEC + NS_PER_SEC - 1);
    assert_int_equal(rd(e, 0), 0x30);
    run_until(e, 6 * NS_PER_SEC);
    assert_int_equal(rd(e, 0), 0x31);
    assert_int_equal(rd(e, 6), 6);        /* 1999-12-31 was a Friday */
    /* Writing while running keeps the phase and moves the time. */
    wr(e, 2, 0x59);
    wr(e, 4, 0x23);
    run_until(e, 6 * NS_PER_SEC + 29 * NS_PER_SEC);
    assert_int_equal(rd(e, 0), 0x00);
    assert_int_equal(rd(e, 9), 0x00);
    assert_int_equal(rd(e, 0x32), 0x20);
    assert_int_equal(rd(e, 8), 0x01);
}

static void test_periodic_irq(void **state)
{
    struct env *e = *state;
    wr(e, 0x0b, 0x42);                    /* PIE, 1024 Hz from reg A 0x26 */
    assert_int_equal(e->level8, 0);
    int64_t prev = 0;
    for (int i = 1; i <= 4; i++) {
        int64_t d = vclock_next_deadline(e->clk);
        /* 32 ticks of 32768 Hz = 976562.5 ns */
        assert_int_equal(d, (i * 32 * NS_PER_SEC + 32767) / 32768);
        assert_true(d > prev);
        prev = d;
        run_until(e, d);
        assert_int_equal(e->level8, 1);
        assert_int_equal(rd(e, 0x0c), 0xc0);
        assert_int_equal(e->level8, 0);
        assert_int_equal(rd(e, 0x0c), 0x00);
    }
    assert_int_equal(e->edges8, 4);
    /* Rate 15 = 2 Hz */
    wr(e, 0x0a, 0x2f);
    int64_t now = vclock_now(e->clk);
    assert_true(vclock_next_deadline(e->clk) - now <= NS_PER_SEC / 2);
    wr(e, 0x0b, 0x02);
    assert_int_equal(vclock_next_deadline(e->clk), INT64_MAX);
}

static void test_pf_without_interrupt(void **state)
{
    struct env *e = *state;
    rd(e, 0x0c);
    run_until(e, 2000000);                /* 2 ms at 1024 Hz */
    assert_int_equal(rd(e, 0x0c), 0x40);  /* PF, but no IRQF */
    assert_int_equal(e->edges8, 0);
    assert_int_equal(rd(e, 0x0c), 0x00);
}

static void test_update_and_alarm(void **state)
{
    struct env *e = *state;
    wr(e, 0x0a, 0x20);                    /* no periodic rate: PF stays clear */
    /* Alarm at 00:00:01 (3 s after power-on). */
    wr(e, 1, 0x01);
    wr(e, 3, 0x00);
    wr(e, 5, 0x00);
    wr(e, 0x0b, 0x22);                    /* AIE */
    run_until(e, 2 * NS_PER_SEC);
    assert_int_equal(e->level8, 0);
    assert_int_equal(rd(e, 0x0c), 0x10);  /* UF set, no interrupt */
    run_until(e, 3 * NS_PER_SEC);
    assert_int_equal(e->level8, 1);
    assert_int_equal(rd(e, 0x0c), 0xb0);  /* IRQF | AF | UF */
    assert_int_equal(e->level8, 0);
    /* Update-ended interrupts once per second. */
    wr(e, 0x0b, 0x12);
    run_until(e, 4 * NS_PER_SEC);
    assert_int_equal(rd(e, 0x0c), 0x90);
    run_until(e, 5 * NS_PER_SEC);
    assert_int_equal(e->edges8, 3);
    /* Don't-care alarm bytes: every second. */
    wr(e, 1, 0xff);
    wr(e, 3, 0xff);
    wr(e, 5, 0xff);
    rd(e, 0x0c);
    run_until(e, 6 * NS_PER_SEC);
    assert_int_equal(rd(e, 0x0c), 0xb0);
}

static void test_divider_reset(void **state)
{
    struct env *e = *state;
    wr(e, 0x0a, 0x76);                    /* hold divider in reset */
    run_until(e, 3 * NS_PER_SEC);
    assert_int_equal(rd(e, 0), 0x58);
    wr(e, 0x0a, 0x26);
    run_until(e, 3 * NS_PER_SEC + NS_PER_SEC / 2 - 1);
    assert_int_equal(rd(e, 0), 0x58);
    run_until(e, 3 * NS_PER_SEC + NS_PER_SEC / 2);
    assert_int_equal(rd(e, 0), 0x59);
}

static void test_ram_nmi_checksum(void **state)
{
    struct env *e = *state;
    wr(e, 0x80 | 0x40, 0x5a);             /* NMI masked, index 0x40 */
    assert_true(cmos_nmi_masked(e->c));
    assert_int_equal(rd(e, 0x40), 0x5a);
    assert_false(cmos_nmi_masked(e->c));
    assert_int_equal(cmos_get(e->c, 0x40), 0x5a);
    assert_int_equal(bus_pio_read(e->b, 0x70, 1), 0xff);
    cmos_set(e->c, 0x15, 0x80);
    cmos_set(e->c, 0x16, 0x02);
    cmos_set(e->c, 0x2d, 0xff);
    cmos_update_checksum(e->c);
    assert_int_equal(rd(e, 0x2e), 0x01);
    assert_int_equal(rd(e, 0x2f), 0x81);
    assert_int_equal(cmos_get(e->c, 0), 0x58);
    wr(e, 0x0d, 0);                       /* read-only */
    assert_int_equal(rd(e, 0x0d), 0x80);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_time_bcd_and_rollover),
        T(test_binary_and_12h),
        T(test_uip_window),
        T(test_set_and_write_time),
        T(test_periodic_irq),
        T(test_pf_without_interrupt),
        T(test_update_and_alarm),
        T(test_divider_reset),
        T(test_ram_nmi_checksum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
