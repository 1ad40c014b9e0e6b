/*
 * Display front ends: what the user of the VM sees and types into.
 *   "none"        no display (serial console on the terminal)
 *   "sdl"         an SDL2 window
 *   "vnc=[ADDR]:N" an RFB server on port 5900+N (libvncserver), 127.0.0.1
 *                 unless ADDR is given; ",password" reads the password from
 *                 the RETROVISOR_VNC_PASSWORD environment variable
 *                 (or ",password-file=PATH"); ",websocket=on" lets noVNC
 *                 connect (ui/vnc.c lists the other options).  The VNC
 *                 server runs on its own thread; ui_poll only hands it
 *                 frames and applies the input its clients queued.
 * The run loop calls ui_poll about every 10 ms of host time, from the main
 * thread (SDL requires it); the front end pulls a frame from the renderer
 * (ui/render.h), pushes changed lines to the window/clients, and turns
 * host keys and pointer motion into PS/2 events on the keyboard controller.
 */
#ifndef RV_UI_H
#define RV_UI_H

#include <stdbool.h>
#include <stddef.h>

struct vga;
struct kbc;
struct ui;

/* Opens the front end described by spec; NULL and one line in err on failure
 * (bad spec, no display available, port in use...). */
struct ui *ui_open(const char *spec, struct vga *vga, struct kbc *kbc, char *err, size_t errlen);
/* Input + screen refresh; returns false when the user asked to power off
 * (window closed). */
bool ui_poll(struct ui *ui);
/* Write the current guest screen to a PNG file. */
bool ui_screendump(struct ui *ui, const char *path, char *err, size_t errlen);
/* Ctrl+Alt+E in the window calls fn(opaque): the machine ejects the CD, or
 * puts the last disc back (machine_toggle_cdrom). */
void ui_set_cdrom_key(struct ui *ui, void (*fn)(void *opaque), void *opaque);
/* Ctrl+Alt+F in the window calls fn(opaque): the machine takes the disk out
 * of A:, or puts it back (machine_toggle_floppy). */
void ui_set_floppy_key(struct ui *ui, void (*fn)(void *opaque), void *opaque);
/* A short status for the window title ("running", "halted", "paused"...). */
void ui_set_status(struct ui *ui, const char *status);
/* The VM's name (-name), first in the window title and the VNC desktop name. */
void ui_set_name(struct ui *ui, const char *name);
/* Ctrl+Alt+P/S/R/Q in the window or from a VNC client (ui/hotkeys.h) call
 * fn(opaque, HOTKEY_PAUSE/SNAPSHOT/REVERT/POWER_OFF) on the machine's
 * thread.  fn returns false when it could not act; for POWER_OFF the run
 * then ends (ui_poll returns false) as if the window had been closed. */
typedef bool (*ui_hotkey_fn)(void *opaque, int action);
void ui_set_hotkeys(struct ui *ui, ui_hotkey_fn fn, void *opaque);
/* One line shown in the window title for a few seconds (a hotkey's result). */
void ui_show_message(struct ui *ui, const char *msg);
void ui_close(struct ui *ui);

#endif
