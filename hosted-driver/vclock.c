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
    /* realtime */
    int64_t host_start;
    int64_t last;          /* never let virtual time run backwards */
    bool stopped;
    int64_t stopped_at;    /* virtual time when vclock_stop froze it */

    struct vtimer *head;
};

static int64_t host_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

struct vclock *vclock_new(bool deterministic, int ns_per_insn)
{
    struct vclock *c = xcalloc(1, sizeof(*c));
    c->deterministic = deterministic;
    c->ns_per_insn = ns_per_insn > 0 ? ns_per_insn : 1;
    c->host_start = host_ns();
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

int64_t vclock_now(struct vclock *c)
{
    if (c->deterministic)
        return (int64_t)(c->insns * (uint64_t)c->ns_per_insn) + c->skipped;
    if (c->stopped)
        return c->stopped_at;
    int64_t now = host_ns() - c->host_start;
    if (now < c->last)
        now = c->last;
    c->last = now;
    return now;
}

void vclock_account_insns(struct vclock *c, uint64_t n)
{
    c->insns += n;
}

void vclock_advance_to(struct vclock *c, int64_t t)
{
    int64_t now = vclock_now(c);
    if (t <= now)
        return;
    if (c->deterministic) {
        c->skipped += t - now;
        return;
    }
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
    c->host_start = host_ns() - c->stopped_at;
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
    if (c->stopped)
        c->stopped_at = now;
    else
        c->host_start = host_ns() - now;
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
