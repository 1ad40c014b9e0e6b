/*
 * The SDL2 window.  Runs on the main thread (ui_poll): one streaming
 * XRGB8888 texture the size of the guest mode, refreshed from the dirty
 * rows, scaled into the window with its aspect kept (letterboxed).
 *
 * Keyboard: physical keys (SDL scancodes) -> set 1 (ui/keymap.c), so the
 * guest's own layout applies.  Keys typed while the window has focus go to
 * the guest, grabbed or not; the keys still held are released when the
 * window loses focus, so none stays stuck down in the guest.
 *
 * Mouse: the guest's PS/2 mouse is relative, so the pointer is grabbed
 * (SDL relative mode, keyboard grabbed too) by a click in the window once
 * the guest has enabled its mouse; that click is not passed on.  Pressing
 * and releasing Ctrl+Alt with no other key in between releases the grab
 * (Ctrl+Alt+Del still reaches the guest).  The title says which applies.
 *
 * Hotkeys: Ctrl+Alt plus a key (ui/hotkeys.h).  Full screen and the mouse
 * release are the window's own; the others go to the machine through
 * ui_input.hotkey.  The title reads "NAME - retrovisor [STATE]", then the
 * mouse hint, then for a few seconds the last hotkey's result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <SDL.h>

#include "ui/frontend.h"
#include "ui/hotkeys.h"
#include "ui/keymap.h"
#include "hosted-driver/xalloc.h"

struct sdl_ui {
    struct ui_input in;
    SDL_Window *win;
    SDL_Renderer *ren;
    SDL_Texture *tex;
    unsigned w, h;              /* texture (guest mode) size; 0 = none yet */
    bool need_full;             /* upload the whole frame next poll */
    bool need_present;
    bool quit;

    uint8_t held[32];           /* keys down in the guest: bit (code | e0 << 7) */
    struct hotkey_filter hk;
    bool fullscreen;

    bool grabbed;
    int buttons, sent_buttons;  /* PS/2 bits: 0 left, 1 right, 2 middle */
    int swallow;                /* SDL buttons whose release belongs to the grab click */
    int dx, dy, dz;             /* motion not yet sent */

    char status[64];
    char name[64];
    char message[160];
    Uint64 message_until;       /* SDL_GetTicks64 when the message leaves the title */
    char title[400];
};

#define MESSAGE_MS 6000

#define HELD(s, bit) ((s)->held[(bit) / 8] & (1u << ((bit) % 8)))

static void send_key(struct sdl_ui *s, int code, bool e0, bool down)
{
    unsigned bit = (unsigned)code | (e0 ? 0x80 : 0);
    if (down)
        s->held[bit / 8] |= 1u << (bit % 8);
    else
        s->held[bit / 8] &= ~(1u << (bit % 8));
    if (s->in.key)
        s->in.key(s->in.opaque, code, e0, down);
}

static void release_all_keys(struct sdl_ui *s)
{
    for (unsigned bit = 0; bit < 256; bit++)
        if (HELD(s, bit))
            send_key(s, bit & 0x7f, bit & 0x80, false);
    hotkey_filter_reset(&s->hk);
}

static bool mouse_enabled(struct sdl_ui *s)
{
    return s->in.mouse_enabled && s->in.mouse_enabled(s->in.opaque);
}

static void update_title(struct sdl_ui *s)
{
    char t[sizeof(s->title)];
    const char *hint = s->grabbed ? " - Press Ctrl+Alt to release the mouse"
                     : mouse_enabled(s) ? " - click to grab the mouse" : "";
    if (s->message[0] && SDL_GetTicks64() >= s->message_until)
        s->message[0] = 0;
    snprintf(t, sizeof(t), "%s%sretrovisor [%s]%s%s%s", s->name, s->name[0] ? " - " : "",
             s->status, hint, s->message[0] ? " - " : "", s->message);
    if (strcmp(t, s->title)) {
        memcpy(s->title, t, sizeof(t));
        SDL_SetWindowTitle(s->win, t);
    }
}

static void flush_mouse(struct sdl_ui *s)
{
    if ((s->dx || s->dy || s->dz || s->buttons != s->sent_buttons) && s->in.mouse)
        s->in.mouse(s->in.opaque, s->dx, s->dy, s->dz, s->buttons);
    s->dx = s->dy = s->dz = 0;
    s->sent_buttons = s->buttons;
}

static void set_grab(struct sdl_ui *s, bool on)
{
    if (s->grabbed == on)
        return;
    if (!on) {
        flush_mouse(s);
        if (s->buttons) {       /* buttons held at release go up in the guest */
            s->buttons = 0;
            flush_mouse(s);
        }
    }
    s->grabbed = on;
    SDL_SetWindowGrab(s->win, on ? SDL_TRUE : SDL_FALSE);
    SDL_SetRelativeMouseMode(on ? SDL_TRUE : SDL_FALSE);
    update_title(s);
}

static void toggle_fullscreen(struct sdl_ui *s)
{
    bool on = !s->fullscreen;
    if (SDL_SetWindowFullscreen(s->win, on ? SDL_WINDOW_FULLSCREEN_DESKTOP : 0) != 0) {
        snprintf(s->message, sizeof(s->message), "full screen: %s", SDL_GetError());
        s->message_until = SDL_GetTicks64() + MESSAGE_MS;
        return;
    }
    s->fullscreen = on;
    s->need_present = true;
}

#define KEY_DEL 0x53    /* with E0 */

static void run_hotkey(struct sdl_ui *s, enum hotkey_action a)
{
    switch (a) {
    case HOTKEY_NONE:
    case HOTKEY_CTRL_ALT_DEL:       /* the keys themselves went to the guest */
        break;
    case HOTKEY_RELEASE_MOUSE:
        set_grab(s, false);
        break;
    case HOTKEY_FULLSCREEN:
        toggle_fullscreen(s);
        break;
    case HOTKEY_SEND_DEL:           /* Ctrl and Alt are down in the guest already */
        send_key(s, KEY_DEL, true, true);
        send_key(s, KEY_DEL, true, false);
        break;
    default:
        if (s->in.hotkey)
            s->in.hotkey(s->in.opaque, a);
        break;
    }
}

static void handle_key(struct sdl_ui *s, const SDL_KeyboardEvent *e)
{
    struct set1_key k;
    if (!keymap_sdl_scancode(e->keysym.scancode, &k))
        return;
    bool down = e->type == SDL_KEYDOWN;
    unsigned bit = k.code | (k.e0 ? 0x80 : 0);
    if (!down && !HELD(s, bit) && !(s->hk.eaten[bit / 8] & (1u << (bit % 8))))
        return;     /* already released (focus loss) */
    bool to_guest;
    enum hotkey_action a = hotkey_filter_key(&s->hk, k.code, k.e0, down, &to_guest);
    if (to_guest)
        send_key(s, k.code, k.e0, down);    /* repeats are the keyboard's typematic */
    run_hotkey(s, a);
}

static int ps2_button(Uint8 b)
{
    switch (b) {
    case SDL_BUTTON_LEFT: return 1;
    case SDL_BUTTON_RIGHT: return 2;
    case SDL_BUTTON_MIDDLE: return 4;
    default: return 0;
    }
}

static void handle_event(struct sdl_ui *s, const SDL_Event *ev)
{
    switch (ev->type) {
    case SDL_QUIT:
        s->quit = true;
        break;
    case SDL_WINDOWEVENT:
        switch (ev->window.event) {
        case SDL_WINDOWEVENT_CLOSE:
            s->quit = true;
            break;
        case SDL_WINDOWEVENT_FOCUS_LOST:
            release_all_keys(s);
            set_grab(s, false);
            break;
        case SDL_WINDOWEVENT_SIZE_CHANGED:
        case SDL_WINDOWEVENT_EXPOSED:
        case SDL_WINDOWEVENT_RESTORED:
            s->need_present = true;
            break;
        }
        break;
    case SDL_KEYDOWN:
    case SDL_KEYUP:
        handle_key(s, &ev->key);
        break;
    case SDL_MOUSEBUTTONDOWN:
        if (!s->grabbed) {
            if (ev->button.button == SDL_BUTTON_LEFT && mouse_enabled(s)) {
                s->swallow |= SDL_BUTTON(ev->button.button);
                set_grab(s, true);
            }
            break;
        }
        s->buttons |= ps2_button(ev->button.button);
        flush_mouse(s);
        break;
    case SDL_MOUSEBUTTONUP:
        if (s->swallow & SDL_BUTTON(ev->button.button)) {
            s->swallow &= ~SDL_BUTTON(ev->button.button);
            break;
        }
        if (s->grabbed) {
            s->buttons &= ~ps2_button(ev->button.button);
            flush_mouse(s);
        }
        break;
    case SDL_MOUSEMOTION:
        if (s->grabbed) {
            s->dx += ev->motion.xrel;
            s->dy += ev->motion.yrel;
        }
        break;
    case SDL_MOUSEWHEEL:
        if (s->grabbed) {
            int y = ev->wheel.direction == SDL_MOUSEWHEEL_FLIPPED ? -ev->wheel.y : ev->wheel.y;
            s->dz -= y;     /* SDL: positive away from the user; PS/2 dz: towards */
        }
        break;
    case SDL_RENDER_TARGETS_RESET:
    case SDL_RENDER_DEVICE_RESET:
        s->need_full = true;
        s->need_present = true;
        break;
    }
}

/* Window size for a guest mode: small modes doubled, big ones shrunk to fit. */
static void fit_window(struct sdl_ui *s, unsigned w, unsigned h)
{
    int ww = (int)w, wh = (int)h;
    if (w <= 400 && h <= 300) {
        ww *= 2;
        wh *= 2;
    }
    SDL_Rect usable;
    int di = SDL_GetWindowDisplayIndex(s->win);
    if (di >= 0 && SDL_GetDisplayUsableBounds(di, &usable) == 0 && usable.w > 0 && usable.h > 0) {
        int maxw = usable.w - 32, maxh = usable.h - 64;
        if (maxw > 0 && maxh > 0 && (ww > maxw || wh > maxh)) {
            if ((long)ww * maxh > (long)wh * maxw) {
                wh = (int)((long)wh * maxw / ww);
                ww = maxw;
            } else {
                ww = (int)((long)ww * maxh / wh);
                wh = maxh;
            }
        }
    }
    SDL_SetWindowSize(s->win, ww, wh);
}

/* Nearest-neighbour when the window is an exact multiple of the mode, else linear. */
static void pick_scale_mode(struct sdl_ui *s)
{
    int ow, oh;
    if (!s->tex || SDL_GetRendererOutputSize(s->ren, &ow, &oh) != 0)
        return;
    bool integer = ow % (int)s->w == 0 && oh % (int)s->h == 0 && ow / (int)s->w == oh / (int)s->h;
    SDL_SetTextureScaleMode(s->tex, integer ? SDL_ScaleModeNearest : SDL_ScaleModeLinear);
}

static void show_frame(struct sdl_ui *s, const struct render_frame *f)
{
    if (!f || !f->width || !f->height || !f->pixels)
        return;
    unsigned y0 = f->dirty_y0, y1 = f->dirty_y1;
    if (f->width != s->w || f->height != s->h || !s->tex) {
        if (s->tex)
            SDL_DestroyTexture(s->tex);
        s->tex = SDL_CreateTexture(s->ren, SDL_PIXELFORMAT_RGB888, SDL_TEXTUREACCESS_STREAMING,
                                   (int)f->width, (int)f->height);
        if (!s->tex) {
            s->w = s->h = 0;
            return;
        }
        bool resized = f->width != s->w || f->height != s->h;
        s->w = f->width;
        s->h = f->height;
        SDL_RenderSetLogicalSize(s->ren, (int)s->w, (int)s->h);
        if (resized)
            fit_window(s, s->w, s->h);
        s->need_full = true;
    }
    if (s->need_full) {
        y0 = 0;
        y1 = s->h;
        s->need_full = false;
    }
    if (y1 > s->h)
        y1 = s->h;
    if (y0 < y1) {
        SDL_Rect r = { 0, (int)y0, (int)s->w, (int)(y1 - y0) };
        SDL_UpdateTexture(s->tex, &r, f->pixels + (size_t)y0 * s->w, (int)s->w * 4);
        s->need_present = true;
    }
}

bool sdl_poll(struct sdl_ui *s, const struct render_frame *f)
{
    SDL_Event ev;
    while (SDL_PollEvent(&ev))
        handle_event(s, &ev);
    show_frame(s, f);
    flush_mouse(s);
    update_title(s);
    if (s->need_present && s->tex) {
        pick_scale_mode(s);
        SDL_SetRenderDrawColor(s->ren, 0, 0, 0, 255);
        SDL_RenderClear(s->ren);
        SDL_RenderCopy(s->ren, s->tex, NULL, NULL);
        SDL_RenderPresent(s->ren);
        s->need_present = false;
    }
    return !s->quit;
}

void sdl_set_status(struct sdl_ui *s, const char *status)
{
    snprintf(s->status, sizeof(s->status), "%s", status);
    update_title(s);
}

void sdl_set_name(struct sdl_ui *s, const char *name)
{
    snprintf(s->name, sizeof(s->name), "%s", name ? name : "");
    update_title(s);
}

void sdl_show_message(struct sdl_ui *s, const char *msg)
{
    snprintf(s->message, sizeof(s->message), "%s", msg ? msg : "");
    s->message_until = SDL_GetTicks64() + MESSAGE_MS;
    update_title(s);
}

struct sdl_ui *sdl_open(const char *opt, const struct ui_input *in, char *err, size_t errlen)
{
    if (opt && *opt) {
        snprintf(err, errlen, "-display sdl%s: sdl takes no options", opt);
        return NULL;
    }
    /* Leave SIGINT/SIGTERM to the monitor; grab the keyboard with the mouse
     * so Alt+Tab & co. reach the guest while grabbed. */
    SDL_SetHint(SDL_HINT_NO_SIGNAL_HANDLERS, "1");
    SDL_SetHint(SDL_HINT_GRAB_KEYBOARD, "1");
    SDL_SetHint(SDL_HINT_VIDEO_X11_NET_WM_BYPASS_COMPOSITOR, "0");
    SDL_SetHint(SDL_HINT_WINDOWS_NO_CLOSE_ON_ALT_F4, "1");
    if (SDL_InitSubSystem(SDL_INIT_VIDEO) != 0) {
        snprintf(err, errlen, "-display sdl: cannot open a window (%s); "
                 "use -display vnc=:0 or -display none", SDL_GetError());
        return NULL;
    }
    struct sdl_ui *s = xcalloc(1, sizeof(*s));
    if (in)
        s->in = *in;
    snprintf(s->status, sizeof(s->status), "starting");
    s->win = SDL_CreateWindow("retrovisor", SDL_WINDOWPOS_UNDEFINED, SDL_WINDOWPOS_UNDEFINED,
                              640, 480, SDL_WINDOW_RESIZABLE);
    if (s->win) {
        s->ren = SDL_CreateRenderer(s->win, -1, 0);
        if (!s->ren)
            s->ren = SDL_CreateRenderer(s->win, -1, SDL_RENDERER_SOFTWARE);
    }
    if (!s->win || !s->ren) {
        snprintf(err, errlen, "-display sdl: cannot open a window (%s); "
                 "use -display vnc=:0 or -display none", SDL_GetError());
        sdl_close(s);
        return NULL;
    }
    SDL_StopTextInput();        /* no IME: we want keys, not text */
    update_title(s);
    SDL_SetRenderDrawColor(s->ren, 0, 0, 0, 255);
    SDL_RenderClear(s->ren);
    SDL_RenderPresent(s->ren);
    return s;
}

void sdl_close(struct sdl_ui *s)
{
    if (!s)
        return;
    if (s->win) {
        release_all_keys(s);
        set_grab(s, false);
    }
    if (s->tex)
        SDL_DestroyTexture(s->tex);
    if (s->ren)
        SDL_DestroyRenderer(s->ren);
    if (s->win)
        SDL_DestroyWindow(s->win);
    free(s);
    SDL_QuitSubSystem(SDL_INIT_VIDEO);
}
