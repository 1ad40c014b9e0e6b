/*
 * The virtual clock: devices read time from here and schedule work with
 * timers.  Two modes:
 *   - realtime: virtual ns follow the host's CLOCK_MONOTONIC, minus time
 *     spent stopped and minus host time the guest was not shown: while the
 *     guest executes, one read is at most a bounded step past the previous
 *     one, so a descheduled VMM looks like a paused CPU (see vclock.c);
 *   - deterministic (-icount): virtual ns = executed instructions * ns_per_insn,
 *     so tests and traces are reproducible.  HLT skips ahead to the next timer.
 * Timer callbacks run from the run loop (vclock_run_timers), never from
 * inside an instruction.
 */
#ifndef RV_VCLOCK_H
#define RV_VCLOCK_H

#include <stdbool.h>
#include <stdint.h>

#define NS_PER_SEC 1000000000LL

struct vclock;
struct vtimer;
typedef void (*vtimer_fn)(void *opaque);

struct vclock *vclock_new(bool deterministic, int ns_per_insn);
void vclock_free(struct vclock *c);
bool vclock_deterministic(const struct vclock *c);

/* Current virtual time in ns since power-on. */
int64_t vclock_now(struct vclock *c);
/* Deterministic mode: the run loop reports executed instructions. */
void vclock_account_insns(struct vclock *c, uint64_t n);
/* Idle (HLT): move virtual time to `t` (deterministic) or sleep until it
 * (realtime), returning early if `wake` becomes true (checked by the caller). */
void vclock_advance_to(struct vclock *c, int64_t t);
/* Realtime: the guest CPU is halted until virtual time `t` (INT64_MAX: no
 * deadline), so the next read may show the host time that passed up to `t`
 * (and one bounded step beyond).  vclock_advance_to says so itself; a caller
 * that sleeps elsewhere, e.g. in poll(), says so first. */
void vclock_idle_until(struct vclock *c, int64_t t);
/* Realtime: host ns that were not shown to the guest, in total. */
int64_t vclock_dropped(const struct vclock *c);
/* Realtime: read the host's time from `fn` instead of CLOCK_MONOTONIC (NULL
 * puts that back); virtual time carries on from where it is.  For tests. */
typedef int64_t (*vclock_host_clock_fn)(void *opaque);
void vclock_set_host_clock(struct vclock *c, vclock_host_clock_fn fn, void *opaque);

/* Realtime mode: while stopped (a paused machine) virtual time stands still.
 * No effect in deterministic mode, where time only moves with instructions. */
void vclock_stop(struct vclock *c);
void vclock_start(struct vclock *c);
bool vclock_stopped(const struct vclock *c);
/* For snapshots: instructions accounted so far, and putting the clock back
 * to a saved moment (virtual now, and the instruction count behind it). */
uint64_t vclock_insns(const struct vclock *c);
void vclock_restore(struct vclock *c, int64_t now, uint64_t insns);

struct vtimer *vtimer_new(struct vclock *c, vtimer_fn fn, void *opaque);
void vtimer_free(struct vtimer *t);
/* Arm to fire at absolute virtual time `when` (ns). Re-arming moves it. */
void vtimer_mod(struct vtimer *t, int64_t when);
void vtimer_del(struct vtimer *t);
bool vtimer_pending(const struct vtimer *t);
int64_t vtimer_expiry(const struct vtimer *t);

/* Time of the earliest armed timer, or INT64_MAX. */
int64_t vclock_next_deadline(struct vclock *c);
/* Fire every timer whose time has come; returns how many fired. */
int vclock_run_timers(struct vclock *c);

#endif
