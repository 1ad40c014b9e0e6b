/*
 * The gdb stub: GDB's remote serial protocol over TCP (-gdb tcp:[HOST]:PORT,
 * -s for tcp:127.0.0.1:1234), one client at a time.  The socket lives on a
 * thread of its own; every packet that reads or changes the machine runs on
 * the machine's thread through machine_call (monitor/control.h), between
 * slices.  Stops (a breakpoint, a finished single-step, a watchpoint, Ctrl-C)
 * pause the machine with reason "debug" and reach gdb as stop replies.
 */
#ifndef RV_GDBSTUB_H
#define RV_GDBSTUB_H

#include <stdbool.h>
#include <stddef.h>

struct machine;
struct gdbstub;

/* The spec of -s. */
#define GDBSTUB_DEFAULT_SPEC "tcp:127.0.0.1:1234"

/* Listen on spec ("tcp:[HOST]:PORT"; no host: 127.0.0.1) and serve from a
 * thread; m->gdb is set.  On failure NULL with one line in err. */
struct gdbstub *gdbstub_new(struct machine *m, const char *spec, char *err, size_t errlen);
/* After machine_run: tell a waiting client the machine has exited, close. */
void gdbstub_free(struct gdbstub *g);

/* The run loop's hook, on the machine's thread, with the slice's budget set:
 * while a single-step is asked for or breakpoints/watchpoints are set, run
 * the slice here (breakpoints checked before each instruction, watchpoints'
 * accesses after it, under the interpreter while any watchpoint is set) and
 * return true; otherwise false, and the engine runs it as usual. */
bool gdbstub_run_slice(struct gdbstub *g);

#endif
