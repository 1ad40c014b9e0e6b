/*
 * Character backends for serial ports and the debug console:
 *   "stdio"   the terminal (raw mode when it is a tty; Ctrl-A X quits,
 *             Ctrl-A H lists the escapes, Ctrl-A A sends a literal Ctrl-A,
 *             Ctrl-A C switches to the monitor console with -monitor stdio),
 *   "file:F"  append-free write to file F (truncated at open; input never arrives),
 *   "none"    discard output, never any input,
 *   "null"    same as none.
 * Input is polled by the run loop (chardev_poll_all), which hands bytes to
 * the front end's receive callback only while it can accept them.  Output
 * is buffered until that poll (every 100k guest instructions, and whenever
 * the CPU halts), a full buffer, chardev_flush or chardev_close.
 */
#ifndef RV_CHARDEV_H
#define RV_CHARDEV_H

#include <stdbool.h>
#include <stddef.h>

struct chardev;
typedef int (*chardev_can_receive_fn)(void *opaque);            /* how many bytes it accepts now */
typedef void (*chardev_receive_fn)(void *opaque, const unsigned char *buf, int len);

/* Returns NULL and writes one line into err (naming spec and why) on failure. */
struct chardev *chardev_open(const char *spec, char *err, size_t errlen);
void chardev_close(struct chardev *cd);
void chardev_write(struct chardev *cd, const void *buf, size_t len);
/* Hand what the guest wrote to the host now. */
void chardev_flush(struct chardev *cd);
void chardev_set_handlers(struct chardev *cd, chardev_can_receive_fn can, chardev_receive_fn rx, void *opaque);
/* Flush every open chardev's output and poll it for input; returns true if
 * the user asked to quit (Ctrl-A X). */
bool chardev_poll_all(void);
/* Ctrl-A KEY (either case) on the terminal calls fn(opaque) from the run loop's poll (the
 * machine's removable-disk keys); help is its line in Ctrl-A H's list.  At
 * most 8; chardev_remove_escapes drops every key of one opaque. */
void chardev_add_escape(char key, void (*fn)(void *opaque), void *opaque, const char *help);
void chardev_remove_escapes(void *opaque);
/* The monitor console's share of the terminal (-monitor stdio): while
 * diverted, keyboard bytes go to fn(opaque, buf, len), called from the run
 * loop's poll, instead of the guest's serial port; Ctrl-A C toggles the
 * diversion (QEMU's mux).  `toggle` false: the monitor owns the terminal
 * alone (no stdio serial port), the diversion always on.  fn NULL removes it. */
void chardev_set_stdin_divert(void (*fn)(void *opaque, const unsigned char *buf, int len), void *opaque,
                              bool toggle);
/* Whether keyboard bytes go to the monitor now. */
bool chardev_stdin_diverted(void);
/* Restore terminal modes (also registered with atexit when stdio is a tty). */
void chardev_restore_terminal(void);

#endif
