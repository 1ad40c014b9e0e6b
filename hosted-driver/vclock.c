/*
 * The virtual clock (see vclock.h).  Timers live in one list sorted by
 * expiry: a PC has a dozen timers at most, and the run loop only ever needs
 * the head, so a heap would buy nothing.
 */
#define _GNU_SOURCE
#include "hosted-driver/vclock.h"
#include "hosted-driver/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Longest single nanosleep in realtime mode: the run loop must get control
 * back often enough to poll terminal input and the UI. */
#define MAX_SLEEP_NS (10 * 1000 * 1000LL)

/* Realtime mode: the most virtual time may advance between two reads while
 * the guest CPU is executing.  The host deschedules this thread for 5-50 ms
 * at a time when it is loaded; had that time reached the guest in one step,
 * it could land between two reads of a calibration loop (Linux's PM-timer
 * rate check polls port 0x61 for the PIT's 55 ms gate and fails beyond 5%,
 * i.e. 2.75 ms): the PM timer was rejected, and the clocksource watchdog left
 * (jiffies) could then mark the TSC unstable.  Beyond this step the host's
 * time is dropped: to the guest the CPU was paused, which every clock (all
 * read from here) agrees on.  A halted CPU (vclock_idle_until) sees time pass
 * up to the deadline it waits for, plus this step: had the VMM been running,
 * the guest would have woken up there. */
#define MAX_RUNNING_STEP_NS (1000 * 1000LL)

/* A timer that keeps re-arming itself in the past would otherwise spin
 * vclock_run_timers forever; past this many firings we return to the run
 * loop and let it come back. */
#define MAX_FIRES_PER_RUN 100000

struct vtimer {
    struct vclock *clock;
    vtimer_fn fn;
    void *opaque;
    int64_t when;
    bool pending;
    struct vtimer *next;
};

struct vclock {
    bool deterministic;
    int ns_per_insn;
    /* deterministic */
    uint64_t insns;
    int64_t skipped;
    /* realtime: virtual = host - host_start, host_start moving forward by
     * every stretch of host time the guest was not shown */
    int64_t host_start;
    int64_t last;          /* never let virtual time run backwards */
    int64_t idle_until;    /* halted since the last read, waiting for this */
    int64_t dropped;       /* host ns left out (MAX_RUNNING_STEP_NS) */
    bool stopped;
    int64_t stopped_at;    /* virtual time when vclock_stop froze it */
    vclock_host_clock_fn host_clock;
    void *host_opaque;

    struct vtimer *head;
};

static int64_t monotonic_ns(void *opaque)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static int64_t host_ns(const struct vclock *c)
{
    return c->host_clock(c->host_opaque);
}

struct vclock *vclock_new(bool deterministic, int ns_per_insn)
{
    struct vclock *c = xcalloc(1, sizeof(*c));
    c->deterministic = deterministic;
    c->ns_per_insn = ns_per_insn > 0 ? ns_per_insn : 1;
    c->host_clock = monotonic_ns;
    c->host_start = host_ns(c);
    return c;
}

void vclock_free(struct vclock *c)
{
    if (!c)
        return;
    /* Timers belong to their devices; just detach them so a late
     * vtimer_free does not touch freed memory through the list. */
    for (struct vtimer *t = c->head, *n; t; t = n) {
        n = t->next;
        t->pending = false;
        t->next = NULL;
        t->clock = NULL;
    }
    free(c);
}

bool vclock_deterministic(const struct vclock *c)
{
    return c->deterministic;
}

void vclock_set_host_clock(struct vclock *c, vclock_host_clock_fn fn, void *opaque)
{
    int64_t now = c->stopped ? c->stopped_at : c->last;
    c->host_clock = fn ? fn : monotonic_ns;
    c->host_opaque = opaque;
    c->host_start = host_ns(c) - now;
}

static int64_t step_limit(const struct vclock *c)
{
    int64_t from = c->idle_until > c->last ? c->idle_until : c->last;
    return from > INT64_MAX - MAX_RUNNING_STEP_NS ? INT64_MAX : from + MAX_RUNNING_STEP_NS;
}

/* Host time beyond the step limit is left out of virtual time for good. */
static int64_t bounded_step(struct vclock *c, int64_t now)
{
    int64_t limit = step_limit(c);
    if (now <= limit)
        return now;
    c->host_start += now - limit;
    c->dropped += now - limit;
    return limit;
}

/* Realtime virtual time as the host clock has it, before any bound. */
static int64_t unbounded_now(const struct vclock *c)
{
    int64_t now = host_ns(c) - c->host_start;
    return now < c->last ? c->last : now;
}

int64_t vclock_now(struct vclock *c)
{
    if (c->deterministic)
        return (int64_t)(c->insns * (uint64_t)c->ns_per_insn) + c->skipped;
    if (c->stopped)
        return c->stopped_at;
    int64_t now = bounded_step(c, unbounded_now(c));
    c->idle_until = 0;
    c->last = now;
    return now;
}

void vclock_idle_until(struct vclock *c, int64_t t)
{
    if (t > c->idle_until)
        c->idle_until = t;
}

int64_t vclock_dropped(const struct vclock *c)
{
    return c->dropped;
}

void vclock_account_insns(struct vclock *c, uint64_t n)
{
    c->insns += n;
}

void vclock_advance_to(struct vclock *c, int64_t t)
{
    if (c->deterministic) {
        int64_t now = vclock_now(c);
        if (t > now)
            c->skipped += t - now;
        return;
    }
    /* Not a read the guest sees: it must not use up the idle allowance. */
    int64_t now = c->stopped ? c->stopped_at : unbounded_now(c);
    if (t <= now)
        return;
    vclock_idle_until(c, t);
    int64_t d = t - now;
    if (d > MAX_SLEEP_NS)
        d = MAX_SLEEP_NS;
    struct timespec ts = { d / NS_PER_SEC, d % NS_PER_SEC };
    /* An interrupted sleep is fine: the caller re-evaluates and calls again. */
    nanosleep(&ts, NULL);
}

void vclock_stop(struct vclock *c)
{
    if (c->deterministic || c->stopped)
        return;
    c->stopped_at = vclock_now(c);
    c->stopped = true;
}

void vclock_start(struct vclock *c)
{
    if (!c->stopped)
        return;
    c->stopped = false;
    c->host_start = host_ns(c) - c->stopped_at;
    c->last = c->stopped_at;
}

bool vclock_stopped(const struct vclock *c)
{
    return c->stopped;
}

uint64_t vclock_insns(const struct vclock *c)
{
    return c->insns;
}

void vclock_restore(struct vclock *c, int64_t now, uint64_t insns)
{
    c->insns = insns;
    if (c->deterministic) {
        c->skipped = now - (int64_t)(insns * (uint64_t)c->ns_per_insn);
        return;
    }
    c->last = now;
    c->idle_until = 0;     /* the halt it was waiting in belongs to another timeline */
    if (c->stopped)
        c->stopped_at = now;
    else
        c->host_start = host_ns(c) - now;
}

/* ---- timers ---- */

struct vtimer *vtimer_new(struct vclock *c, vtimer_fn fn, void *opaque)
{
    struct vtimer *t = xcalloc(1, sizeof(*t));
    t->clock = c;
    t->fn = fn;
    t->opaque = opaque;
    return t;
}

static void unlink_timer(struct vtimer *t)
{
    if (!t->pending || !t->clock)
        return;
    for (struct vtimer **pp = &t->clock->head; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    t->next = NULL;
    t->pending = false;
}

void vtimer_free(struct vtimer *t)
{
    if (!t)
        return;
    unlink_timer(t);
    free(t);
}

void vtimer_mod(struct vtimer *t, int64_t when)
{
    if (!t->clock)
        return;
    unlink_timer(t);
    t->when = when;
    t->pending = true;
    /* Equal expiries fire in arming order (insert after equals). */
    struct vtimer **pp = &t->clock->head;
    while (*pp && (*pp)->when <= when)
        pp = &(*pp)->next;
    t->next = *pp;
    *pp = t;
}

void vtimer_del(struct vtimer *t)
{
    unlink_timer(t);
}

bool vtimer_pending(const struct vtimer *t)
{
    return t->pending;
}

int64_t vtimer_expiry(const struct vtimer *t)
{
    return t->pending ? t->when : INT64_MAX;
}

int64_t vclock_next_deadline(struct vclock *c)
{
    return c->head ? c->head->when : INT64_MAX;
}

int vclock_run_timers(struct vclock *c)
{
    int fired = 0;
    int64_t now = vclock_now(c);
    while (c->head && c->head->when <= now && fired < MAX_FIRES_PER_RUN) {
        struct vtimer *t = c->head;
        c->head = t->next;
        t->next = NULL;
        t->pending = false;
        fired++;
        /* The callback may re-arm this timer or touch any other one; the
         * list is consistent again before we call it. */
        t->fn(t->opaque);
        /* Realtime: later timers may have come due while we ran. */
        if (!c->deterministic)
            now = vclock_now(c);
    }
    return fired;
}
