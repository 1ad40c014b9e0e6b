/* Unit tests for the virtual clock and its timers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hosted-driver/vclock.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic_time),
        cmocka_unit_test(test_timer_order),
        cmocka_unit_test(test_periodic_rearm),
        cmocka_unit_test(test_realtime_advances),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
