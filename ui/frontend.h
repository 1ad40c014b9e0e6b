/*
 * Internal interface between ui/ui.c (which owns the renderer and the
 * keyboard controller) and the display back ends ui/sdl.c and ui/vnc.c.
 * A back end never sees struct vga or struct kbc: it is handed the whole
 * current frame on every poll and sends input through struct ui_input, so
 * it can be tested with a fake frame and a fake keyboard.
 */
#ifndef RV_UI_FRONTEND_H
#define RV_UI_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ui/render.h"

/* Where input goes; ui.c points these at kbc_key_event & co. */
struct ui_input {
    void *opaque;
    /* set-1 make code + E0 flag, as kbc_key_event */
    void (*key)(void *opaque, int code, bool e0, bool down);
    /* relative motion, dz > 0 towards the user, buttons bit0 L, bit1 R, bit2 M */
    void (*mouse)(void *opaque, int dx, int dy, int dz, int buttons);
    bool (*mouse_enabled)(void *opaque);
    uint8_t (*leds)(void *opaque);      /* bit2 Caps Lock */
    /* A Ctrl+Alt hotkey for the machine (enum hotkey_action, ui/hotkeys.h):
     * pause, snapshot, revert, power off, floppy, CD-ROM (may be NULL).
     * The front end handles the mouse release and full screen itself. */
    void (*hotkey)(void *opaque, int action);
};

/*
 * Every poll passes the complete current frame (all width*height pixels are
 * valid for the duration of the call); dirty_y0..dirty_y1 are the rows that
 * changed since the previous poll of this back end.
 */

/* ---- SDL2 window (ui/sdl.c) ---- */
struct sdl_ui;
/* opt: what followed "sdl" in the -display spec ("" or ",..."); errors are
 * one line that names -display sdl. */
struct sdl_ui *sdl_open(const char *opt, const struct ui_input *in, char *err, size_t errlen);
/* Shows the frame and handles window events; false when the user closed the window. */
bool sdl_poll(struct sdl_ui *s, const struct render_frame *f);
void sdl_set_status(struct sdl_ui *s, const char *status);
/* The VM's name, first in the title. */
void sdl_set_name(struct sdl_ui *s, const char *name);
/* A line shown in the title for a few seconds (a hotkey's result). */
void sdl_show_message(struct sdl_ui *s, const char *msg);
void sdl_close(struct sdl_ui *s);

/* ---- VNC server (ui/vnc.c) ---- */
struct vnc_ui;
/* opt: what followed "vnc=" ("[ADDR]:N[,password][,password-file=PATH]
 * [,websocket=on][,websocket-origins=...][,max-clients=N][,insecure]").
 * Starts the VNC thread; `in` is only ever called from vnc_poll. */
struct vnc_ui *vnc_open(const char *opt, const struct ui_input *in, char *err, size_t errlen);
/* Hands the changed rows to the VNC thread and applies the input its
 * clients queued; never waits for the VNC thread or a client. */
void vnc_poll(struct vnc_ui *v, const struct render_frame *f);
void vnc_set_status(struct vnc_ui *v, const char *status);
/* The VM's name, before the status in the desktop name (from the next status). */
void vnc_set_name(struct vnc_ui *v, const char *name);
int vnc_port(const struct vnc_ui *v);      /* the TCP port listened on */
void vnc_close(struct vnc_ui *v);

#endif
