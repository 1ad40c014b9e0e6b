/* Unit tests for the virtual clock and its timers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "devices/acpi_pm.h"
#include "devices/bus.h"
#include "devices/pci.h"
#include "devices/pit.h"
#include "hosted-driver/vclock.h"

#define MS (1000 * 1000LL)
#define US 1000LL

struct fire_log {
    int order[16];
    int n;
};
struct tctx {
    struct fire_log *log;
    int id;
    struct vtimer *self;
    int64_t rearm_period;
    int count;
};

static void cb(void *opaque)
{
    struct tctx *t = opaque;
    t->log->order[t->log->n++ % 16] = t->id;
    t->count++;
    if (t->rearm_period)
        vtimer_mod(t->self, t->rearm_period * (t->count + 1));
}

static void test_deterministic_time(void **state)
{
    struct vclock *c = vclock_new(true, 3);
    assert_true(vclock_deterministic(c));
    assert_int_equal(vclock_now(c), 0);
    vclock_account_insns(c, 1000);
    assert_int_equal(vclock_now(c), 3000);
    vclock_advance_to(c, 10000);
    assert_int_equal(vclock_now(c), 10000);
    vclock_advance_to(c, 5000);          /* never backwards */
    assert_int_equal(vclock_now(c), 10000);
    vclock_account_insns(c, 1);
    assert_int_equal(vclock_now(c), 10003);
    vclock_free(c);
}

static void test_timer_order(void **state)
{
    struct vclock *c = vclock_new(true, 1);
    struct fire_log log = { 0 };
    struct tctx a = { &log, 1 }, b = { &log, 2 }, d = { &log, 3 };
    a.self = vtimer_new(c, cb, &a);
    b.self = vtimer_new(c, cb, &b);
    d.self = vtimer_new(c, cb, &d);
    vtimer_mod(a.self, 300);
    vtimer_mod(b.self, 100);
    vtimer_mod(d.self, 200);
    assert_int_equal(vclock_next_deadline(c), 100);
    assert_true(vtimer_pending(b.self));
    assert_int_equal(vtimer_expiry(d.self), 200);

    vclock_advance_to(c, 99);
    assert_int_equal(vclock_run_timers(c), 0);
    vclock_advance_to(c, 200);
    assert_int_equal(vclock_run_timers(c), 2);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.order[0], 2);
    assert_int_equal(log.order[1], 3);
    assert_false(vtimer_pending(b.self));
    assert_int_equal(vclock_next_deadline(c), 300);

    /* Re-arming moves; deleting removes. */
    vtimer_mod(a.self, 1000);
    assert_int_equal(vclock_next_deadline(c), 1000);
    vtimer_del(a.self);
    assert_false(vtimer_pending(a.self));
    assert_int_equal(vclock_next_deadline(c), INT64_MAX);
    vclock_advance_to(c, 5000);
    assert_int_equal(vclock_run_timers(c), 0);

    vtimer_free(a.self);
    vtimer_free(b.self);
    vtimer_free(d.self);
    vclock_free(c);
}

static void test_periodic_rearm(void **state)
{
    struct vclock *c = vclock_new(true, 1);
    struct fire_log log = { 0 };
    struct tctx p = { &log, 7 };
    p.self = vtimer_new(c, cb, &p);
    p.rearm_period = 1000;
    vtimer_mod(p.self, 1000);
    int total = 0;
    /* Drive it like an idle run loop: jump to each deadline, fire. */
    while (vclock_next_deadline(c) <= 10000) {
        vclock_advance_to(c, vclock_next_deadline(c));
        total += vclock_run_timers(c);
    }
    assert_int_equal(total, 10);
    assert_int_equal(p.count, 10);
    assert_int_equal(vclock_next_deadline(c), 11000);
    vtimer_free(p.self);
    assert_int_equal(vclock_next_deadline(c), INT64_MAX);
    vclock_free(c);
}

static void test_realtime_advances(void **state)
{
    struct vclock *c = vclock_new(false, 0);
    assert_false(vclock_deterministic(c));
    int64_t t0 = vclock_now(c);
    vclock_advance_to(c, t0 + 2 * 1000 * 1000);  /* 2 ms */
    int64_t t1 = vclock_now(c);
    assert_true(t1 - t0 >= 2 * 1000 * 1000);
    /* A far deadline sleeps at most ~10 ms per call. */
    vclock_advance_to(c, t1 + 5 * NS_PER_SEC);
    int64_t t2 = vclock_now(c);
    assert_true(t2 - t1 < NS_PER_SEC);
    assert_true(t2 - t1 >= 9 * 1000 * 1000);
    vclock_free(c);
}

/* A host clock the test moves by hand. */
static int64_t fake_host_ns;

static int64_t fake_host(void *opaque)
{
    return fake_host_ns;
}

static struct vclock *realtime_on_fake_host(void)
{
    fake_host_ns = 1000 * NS_PER_SEC;
    struct vclock *c = vclock_new(false, 0);
    vclock_set_host_clock(c, fake_host, NULL);
    return c;
}

/* A running guest sees host time step by step, but a host stall between two
 * reads reaches it as at most one bounded step: the rest is dropped, not owed. */
static void test_running_guest_sees_a_stall_as_a_pause(void **state)
{
    struct vclock *c = realtime_on_fake_host();
    int64_t t0 = vclock_now(c);
    fake_host_ns += 500 * US;
    assert_int_equal(vclock_now(c) - t0, 500 * US);
    fake_host_ns += 30 * MS;                     /* descheduled */
    int64_t t1 = vclock_now(c);
    assert_true(t1 - t0 > 500 * US);
    assert_true(t1 - t0 <= 500 * US + 1 * MS);
    assert_int_equal(vclock_dropped(c), 30 * MS - (t1 - t0 - 500 * US));
    fake_host_ns += 200 * US;                    /* then at the host's pace again */
    assert_int_equal(vclock_now(c) - t1, 200 * US);
    vclock_free(c);
}

/* A halted guest sees host time pass up to the deadline it waits for (and
 * one step more); had the VMM run, the guest would have woken up there. */
static void test_idle_guest_sees_time_up_to_its_deadline(void **state)
{
    struct vclock *c = realtime_on_fake_host();
    int64_t t0 = vclock_now(c);
    vclock_idle_until(c, t0 + 30 * MS);
    fake_host_ns += 30 * MS;
    int64_t t1 = vclock_now(c);
    assert_int_equal(t1 - t0, 30 * MS);
    assert_int_equal(vclock_dropped(c), 0);
    fake_host_ns += 30 * MS;                     /* running again: bounded */
    int64_t t2 = vclock_now(c);
    assert_true(t2 - t1 <= 1 * MS);
    vclock_idle_until(c, t2 + 4 * MS);           /* overslept its tick */
    fake_host_ns += 50 * MS;
    int64_t t3 = vclock_now(c);
    assert_true(t3 - t2 >= 4 * MS);
    assert_true(t3 - t2 <= 5 * MS);
    vclock_idle_until(c, INT64_MAX);             /* no deadline at all */
    fake_host_ns += 10 * NS_PER_SEC;
    assert_int_equal(vclock_now(c) - t3, 10 * NS_PER_SEC);
    vclock_free(c);
}

/* vclock_advance_to's own look at the clock is not a guest read: the
 * allowance it sets lasts until the guest reads after the sleep. */
static void test_advance_to_keeps_the_idle_allowance(void **state)
{
    struct vclock *c = realtime_on_fake_host();
    int64_t t0 = vclock_now(c);
    vclock_idle_until(c, t0 + 20 * MS);
    fake_host_ns += 2 * MS;
    vclock_advance_to(c, t0 + 1 * MS);           /* already past: no sleep */
    fake_host_ns += 18 * MS;
    assert_int_equal(vclock_now(c) - t0, 20 * MS);
    vclock_free(c);
}

static void count_fire(void *opaque)
{
    (*(int *)opaque)++;
}

/* Dropped time delays timers in host time; they still fire at their
 * virtual deadlines, and time never runs backwards, even if the host's does. */
static void test_timers_fire_after_a_stall(void **state)
{
    struct vclock *c = realtime_on_fake_host();
    int fired = 0;
    struct vtimer *t = vtimer_new(c, count_fire, &fired);
    int64_t t0 = vclock_now(c);
    vtimer_mod(t, t0 + 5 * MS);
    fake_host_ns += 50 * MS;
    assert_int_equal(vclock_run_timers(c), 0);
    int64_t last = vclock_now(c);
    while (!fired) {
        fake_host_ns += 100 * US;
        vclock_run_timers(c);
        int64_t now = vclock_now(c);
        assert_true(now >= last);
        last = now;
    }
    assert_true(last >= t0 + 5 * MS);
    assert_true(last < t0 + 5 * MS + 200 * US);
    fake_host_ns -= 10 * MS;
    assert_true(vclock_now(c) >= last);
    vtimer_free(t);
    vclock_free(c);
}

/* Pause/resume and snapshot restore keep virtual time where they put it,
 * and the bound still holds afterwards. */
static void test_stop_start_and_restore_with_the_bound(void **state)
{
    struct vclock *c = realtime_on_fake_host();
    fake_host_ns += 700 * US;
    int64_t t0 = vclock_now(c);
    vclock_stop(c);
    fake_host_ns += 5 * NS_PER_SEC;
    assert_int_equal(vclock_now(c), t0);
    vclock_start(c);
    assert_int_equal(vclock_now(c), t0);
    assert_int_equal(vclock_dropped(c), 0);
    vclock_idle_until(c, INT64_MAX);             /* halted when loadvm came */
    vclock_restore(c, 42 * NS_PER_SEC, 1234);
    assert_int_equal(vclock_now(c), 42 * NS_PER_SEC);
    assert_int_equal(vclock_insns(c), 1234);
    fake_host_ns += 20 * MS;
    assert_true(vclock_now(c) <= 42 * NS_PER_SEC + 1 * MS);
    vclock_free(c);
}

/* -icount never looks at the host clock. */
static void test_deterministic_ignores_the_host(void **state)
{
    fake_host_ns = 0;
    struct vclock *c = vclock_new(true, 2);
    vclock_set_host_clock(c, fake_host, NULL);
    vclock_account_insns(c, 10);
    fake_host_ns += 30 * MS;
    assert_int_equal(vclock_now(c), 20);
    assert_int_equal(vclock_dropped(c), 0);
    vclock_free(c);
}

/* Linux's verify_pmtmr_rate (drivers/clocksource/acpi_pm.c), replayed: PIT
 * channel 2 counts 0xffff ticks (~55 ms) in mode 0 while the guest polls
 * OUT2 on port 0x61; the PM timer must have moved by the same time, within
 * 5%.  Each poll costs 2 us of host time, and the host deschedules the VMM
 * for 30 ms right after the last poll that still saw OUT2 low. */
#define PMBA 0x600
static void test_pm_timer_rate_check_survives_a_stall(void **state)
{
    struct vclock *c = realtime_on_fake_host();
    struct bus *b = bus_new(c);
    struct pci_bus *pb = pci_bus_new(b);
    struct acpi_pm *pm = acpi_pm_new(pb, b);
    struct pit *pit = pit_new(b);
    bus_reset_devices(b);
    pci_config_write(pb, ACPI_PM_DEVFN, 0x40, PMBA | 1, 4);
    pci_config_write(pb, ACPI_PM_DEVFN, 0x80, 1, 1);

    bus_pio_write(b, 0x61, (bus_pio_read(b, 0x61, 1) & ~0x02) | 0x01, 1);
    bus_pio_write(b, 0x43, 0xb0, 1);
    bus_pio_write(b, 0x42, 0xff, 1);
    bus_pio_write(b, 0x42, 0xff, 1);
    uint32_t v1 = bus_pio_read(b, PMBA + ACPI_PM_TMR_OFF, 4);
    int64_t gate_ns = 0xffffLL * NS_PER_SEC / 1193182;
    int64_t start = fake_host_ns;
    bool stalled = false;
    while (!(bus_pio_read(b, 0x61, 1) & 0x20)) {
        fake_host_ns += 2 * US;
        if (!stalled && fake_host_ns - start + 2 * US >= gate_ns) {
            fake_host_ns += 30 * MS;
            stalled = true;
        }
    }
    uint32_t v2 = bus_pio_read(b, PMBA + ACPI_PM_TMR_OFF, 4);
    uint32_t delta = (v2 - v1) & 0xffffff;
    uint32_t expected = 0xffffu * (3579545 >> 10) / (1193182 >> 10);
    assert_true(stalled);
    assert_true(delta >= expected * 19 / 20);
    assert_true(delta <= expected * 21 / 20);

    pit_free(pit);
    acpi_pm_free(pm);
    pci_bus_free(pb);
    bus_free(b);
    vclock_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic_time),
        cmocka_unit_test(test_timer_order),
        cmocka_unit_test(test_periodic_rearm),
        cmocka_unit_test(test_realtime_advances),
        cmocka_unit_test(test_running_guest_sees_a_stall_as_a_pause),
        cmocka_unit_test(test_idle_guest_sees_time_up_to_its_deadline),
        cmocka_unit_test(test_advance_to_keeps_the_idle_allowance),
        cmocka_unit_test(test_timers_fire_after_a_stall),
        cmocka_unit_test(test_stop_start_and_restore_with_the_bound),
        cmocka_unit_test(test_deterministic_ignores_the_host),
        cmocka_unit_test(test_pm_timer_rate_check_survives_a_stall),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
