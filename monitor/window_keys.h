/*
 * The window's machine controls: what Ctrl+Alt+P/S/R/Q in the SDL window (or
 * from a VNC client) do to the machine, and the VM's name in the title.
 * ui/hotkeys.h has the keys; this is the machine's side of them.
 */
#ifndef RV_WINDOW_KEYS_H
#define RV_WINDOW_KEYS_H

#include <stddef.h>

struct machine;
struct machine_config;

/* The name -name gives the VM: "NAME", "guest=NAME", then QEMU's
 * ",process=P" and ",debug-threads=on|off", accepted and unused.  NULL and
 * one line in err for anything else. */
const char *window_parse_name(const char *arg, char *buf, size_t len, char *err, size_t errlen);

/* The name without -name: the first disk's (or CD's, floppy's, -kernel's)
 * file name without its directory and extension; "" without any. */
const char *window_default_name(const struct machine_config *cfg, char *buf, size_t len);

/* Points m->ui's hotkeys at the machine and puts name in the title. */
void window_keys_attach(struct machine *m, const char *name);

#endif
