/*
 * ui/ui.h dispatch: parses the -display spec, owns the renderer and points
 * the back ends' input at the keyboard controller.
 *
 * Each poll renders one frame and hands it, whole, to the back end with the
 * rows that changed since the back end's previous poll (a screendump in
 * between renders too, so the dirty rows are accumulated here).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devices/kbc.h"
#include "ui/frontend.h"
#include "ui/hotkeys.h"
#include "ui/render.h"
#include "ui/screendump.h"
#include "ui/ui.h"
#include "hosted-driver/xalloc.h"

enum ui_kind { UI_NONE, UI_SDL, UI_VNC };

struct ui {
    enum ui_kind kind;
    struct vga *vga;
    struct kbc *kbc;
    struct renderer *r;
    uint32_t *blank;            /* frame shown when there is no VGA */
    struct render_frame blank_frame;
    unsigned pend_y0, pend_y1;  /* dirty rows not yet shown by the back end */
    struct sdl_ui *sdl;
    struct vnc_ui *vnc;
    void (*cdrom_key)(void *opaque);
    void *cdrom_key_opaque;
    void (*floppy_key)(void *opaque);
    void *floppy_key_opaque;
    ui_hotkey_fn hotkey;
    void *hotkey_opaque;
    bool quit;                  /* a power-off hotkey found no other way: end the run */
};

/* ---- input -> keyboard controller ---- */

static void in_key(void *opaque, int code, bool e0, bool down)
{
    struct ui *ui = opaque;
    if (ui->kbc)
        kbc_key_event(ui->kbc, code, e0, down);
}

static void in_mouse(void *opaque, int dx, int dy, int dz, int buttons)
{
    struct ui *ui = opaque;
    if (ui->kbc)
        kbc_mouse_event(ui->kbc, dx, dy, dz, buttons);
}

static bool in_mouse_enabled(void *opaque)
{
    struct ui *ui = opaque;
    return ui->kbc && kbc_mouse_enabled(ui->kbc);
}

static uint8_t in_leds(void *opaque)
{
    struct ui *ui = opaque;
    return ui->kbc ? kbc_leds(ui->kbc) : 0;
}


void ui_set_cdrom_key(struct ui *ui, void (*fn)(void *opaque), void *opaque)
{
    ui->cdrom_key = fn;
    ui->cdrom_key_opaque = opaque;
}

/* The machine's hotkeys, from either back end (on the machine's thread). */
static void in_hotkey(void *opaque, int action)
{
    struct ui *ui = opaque;
    switch (action) {
    case HOTKEY_CDROM:
        if (ui->cdrom_key)
            ui->cdrom_key(ui->cdrom_key_opaque);
        return;
    case HOTKEY_FLOPPY:
        if (ui->floppy_key)
            ui->floppy_key(ui->floppy_key_opaque);
        return;
    case HOTKEY_PAUSE:
    case HOTKEY_SNAPSHOT:
    case HOTKEY_REVERT:
    case HOTKEY_POWER_OFF:
        if (ui->hotkey && ui->hotkey(ui->hotkey_opaque, action))
            return;
        if (action == HOTKEY_POWER_OFF)
            ui->quit = true;
        return;
    }
}

void ui_set_hotkeys(struct ui *ui, ui_hotkey_fn fn, void *opaque)
{
    if (!ui)
        return;
    ui->hotkey = fn;
    ui->hotkey_opaque = opaque;
}

void ui_set_name(struct ui *ui, const char *name)
{
    if (ui && ui->sdl)
        sdl_set_name(ui->sdl, name);
    if (ui && ui->vnc)
        vnc_set_name(ui->vnc, name);
}

void ui_show_message(struct ui *ui, const char *msg)
{
    if (ui && ui->sdl)
        sdl_show_message(ui->sdl, msg);
}

void ui_set_floppy_key(struct ui *ui, void (*fn)(void *opaque), void *opaque)
{
    ui->floppy_key = fn;
    ui->floppy_key_opaque = opaque;
}

/* ---- frames ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Renders the current screen; NULL only if there is nothing to show at all. */
static const struct render_frame *render(struct ui *ui)
{
    const struct render_frame *f = NULL;
    if (ui->vga && !ui->r)
        ui->r = render_new(ui->vga);
    if (ui->r)
        f = render_update(ui->r, now_ms());
    if (!f) {
        if (!ui->blank) {
            ui->blank = xcalloc(640 * 480, sizeof(uint32_t));
            ui->blank_frame = (struct render_frame){ 640, 480, ui->blank, 0, 480 };
        }
        f = &ui->blank_frame;
    }
    if (f->dirty_y0 < f->dirty_y1) {
        if (ui->pend_y0 >= ui->pend_y1) {
            ui->pend_y0 = f->dirty_y0;
            ui->pend_y1 = f->dirty_y1;
        } else {
            if (f->dirty_y0 < ui->pend_y0)
                ui->pend_y0 = f->dirty_y0;
            if (f->dirty_y1 > ui->pend_y1)
                ui->pend_y1 = f->dirty_y1;
        }
    }
    if (f == &ui->blank_frame)
        ui->blank_frame.dirty_y0 = ui->blank_frame.dirty_y1 = 0;
    return f;
}

/* ---- ui.h ---- */

struct ui *ui_open(const char *spec, struct vga *vga, struct kbc *kbc, char *err, size_t errlen)
{
    if (!spec)
        spec = "none";
    struct ui *ui = xcalloc(1, sizeof(*ui));
    ui->vga = vga;
    ui->kbc = kbc;
    struct ui_input in = {
        .opaque = ui,
        .key = in_key,
        .mouse = in_mouse,
        .mouse_enabled = in_mouse_enabled,
        .leds = in_leds,
        .hotkey = in_hotkey,
    };
    if (!strcmp(spec, "none")) {
        ui->kind = UI_NONE;
    } else if (!strncmp(spec, "sdl", 3) && (spec[3] == 0 || spec[3] == ',')) {
        ui->kind = UI_SDL;
        ui->sdl = sdl_open(spec + 3, &in, err, errlen);
        if (!ui->sdl)
            goto fail;
    } else if (!strncmp(spec, "vnc=", 4)) {
        ui->kind = UI_VNC;
        ui->vnc = vnc_open(spec + 4, &in, err, errlen);
        if (!ui->vnc)
            goto fail;
    } else {
        snprintf(err, errlen, "-display %s: unknown display (use sdl, vnc=[ADDR]:N or none)", spec);
        goto fail;
    }
    return ui;
fail:
    free(ui);
    return NULL;
}

bool ui_poll(struct ui *ui)
{
    if (!ui || ui->kind == UI_NONE)
        return true;
    const struct render_frame *f = render(ui);
    struct render_frame shown;
    if (f) {
        shown = *f;
        shown.dirty_y0 = ui->pend_y0;
        shown.dirty_y1 = ui->pend_y1;
        ui->pend_y0 = ui->pend_y1 = 0;
        f = &shown;
    }
    switch (ui->kind) {
    case UI_SDL:
        return sdl_poll(ui->sdl, f) && !ui->quit;
    case UI_VNC:
        vnc_poll(ui->vnc, f);
        return !ui->quit;
    default:
        return true;
    }
}

bool ui_screendump(struct ui *ui, const char *path, char *err, size_t errlen)
{
    const struct render_frame *f = ui ? render(ui) : NULL;
    if (!f) {
        snprintf(err, errlen, "screendump %s: no screen to dump", path);
        return false;
    }
    return screendump_png(f, path, err, errlen);
}

void ui_set_status(struct ui *ui, const char *status)
{
    if (!ui || !status)
        return;
    if (ui->sdl)
        sdl_set_status(ui->sdl, status);
    if (ui->vnc)
        vnc_set_status(ui->vnc, status);
}

void ui_close(struct ui *ui)
{
    if (!ui)
        return;
    sdl_close(ui->sdl);
    vnc_close(ui->vnc);
    if (ui->r)
        render_free(ui->r);
    free(ui->blank);
    free(ui);
}
