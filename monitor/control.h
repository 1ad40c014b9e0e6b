/*
 * Machine control: whether the guest runs or is paused, and work that other
 * threads (the monitor console, the gdb stub) hand to the machine's thread.
 * Such work runs between slices, never inside an instruction, so it sees a
 * consistent machine and may change it (load a snapshot, write memory,
 * reset).  While paused, the run loop keeps serving work and the display,
 * but the CPU and the virtual clock stand still.
 */
#ifndef RV_CONTROL_H
#define RV_CONTROL_H

#include <stdbool.h>

struct machine;

typedef void (*machine_work_fn)(struct machine *m, void *arg);

/* Any thread but the machine's: run fn(m, arg) on the machine's thread and
 * wait until it has run.  False when the run loop has ended (fn did not run). */
bool machine_call(struct machine *m, machine_work_fn fn, void *arg);

/* Machine thread only (work run by machine_call, UI hotkeys, the run loop). */
void machine_pause(struct machine *m, const char *reason);
void machine_resume(struct machine *m);
bool machine_paused(const struct machine *m);
/* Why the machine is paused ("user", "debug", "snapshot"...); "" when running. */
const char *machine_pause_reason(const struct machine *m);

/* Told of every change of the run state, on the machine's thread. */
typedef void (*run_state_fn)(void *opaque, bool paused, const char *reason);
void machine_add_run_state_listener(struct machine *m, run_state_fn fn, void *opaque);

/* The run loop's side: create/free, run queued work, sleep while paused. */
struct control;
struct control *control_new(void);
void control_free(struct control *c);
/* Run every queued piece of work; returns how many ran. */
int control_service(struct machine *m);
/* Wait up to timeout_ms for work to arrive (the paused loop's sleep). */
void control_wait(struct machine *m, int timeout_ms);
/* The run loop has ended: queued and later calls fail instead of waiting. */
void control_shutdown(struct machine *m);

#endif
