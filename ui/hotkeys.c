/* Ctrl+Alt hotkeys on set-1 key events (see ui/hotkeys.h). */
#include "ui/hotkeys.h"

#include <string.h>

/* set-1 make codes */
#define SC_CTRL   0x1d    /* right Ctrl: e0 1d */
#define SC_ALT    0x38    /* right Alt (AltGr): e0 38 */
#define SC_ENTER  0x1c    /* keypad Enter: e0 1c */
#define SC_DEL    0x53    /* with e0; without it is keypad '.' */
#define SC_INSERT 0x52    /* with e0 */
#define SC_P      0x19
#define SC_S      0x1f
#define SC_R      0x13
#define SC_Q      0x10
#define SC_F      0x21
#define SC_E      0x12

static unsigned key_bit(int code, bool e0)
{
    return ((unsigned)code & 0x7f) | (e0 ? 0x80 : 0);
}

static bool ctrl_alt_held(const struct hotkey_filter *f)
{
    return (f->lctrl || f->rctrl) && (f->lalt || f->ralt);
}

/* The action a key asks for with Ctrl+Alt held; NONE for the guest's keys. */
static enum hotkey_action action_of(int code, bool e0)
{
    if (e0) {
        switch (code) {
        case SC_ENTER: return HOTKEY_FULLSCREEN;
        case SC_DEL: return HOTKEY_CTRL_ALT_DEL;
        case SC_INSERT: return HOTKEY_SEND_DEL;
        default: return HOTKEY_NONE;
        }
    }
    switch (code) {
    case SC_ENTER: return HOTKEY_FULLSCREEN;
    case SC_P: return HOTKEY_PAUSE;
    case SC_S: return HOTKEY_SNAPSHOT;
    case SC_R: return HOTKEY_REVERT;
    case SC_Q: return HOTKEY_POWER_OFF;
    case SC_F: return HOTKEY_FLOPPY;
    case SC_E: return HOTKEY_CDROM;
    default: return HOTKEY_NONE;
    }
}

static enum hotkey_action modifier_event(struct hotkey_filter *f, int code, bool e0, bool down)
{
    bool was_held = ctrl_alt_held(f);
    bool *k = code == SC_CTRL ? (e0 ? &f->rctrl : &f->lctrl) : (e0 ? &f->ralt : &f->lalt);
    bool repeat = down && *k;
    *k = down;
    if (down) {
        if (!repeat && !was_held)
            f->alone = ctrl_alt_held(f);
        return HOTKEY_NONE;
    }
    if (f->alone && was_held) {
        f->alone = false;
        return HOTKEY_RELEASE_MOUSE;
    }
    return HOTKEY_NONE;
}

enum hotkey_action hotkey_filter_key(struct hotkey_filter *f, int code, bool e0, bool down,
                                     bool *to_guest)
{
    *to_guest = true;
    if (code == SC_CTRL || code == SC_ALT)
        return modifier_event(f, code, e0, down);
    unsigned bit = key_bit(code, e0);
    uint8_t mask = (uint8_t)(1u << (bit % 8));
    if (f->eaten[bit / 8] & mask) {
        *to_guest = false;          /* repeat or release of an action key */
        if (!down)
            f->eaten[bit / 8] &= (uint8_t)~mask;
        return HOTKEY_NONE;
    }
    if (!down)
        return HOTKEY_NONE;
    f->alone = false;
    enum hotkey_action a = ctrl_alt_held(f) ? action_of(code, e0) : HOTKEY_NONE;
    if (a != HOTKEY_NONE && a != HOTKEY_CTRL_ALT_DEL) {
        f->eaten[bit / 8] |= mask;
        *to_guest = false;
    }
    return a;
}

void hotkey_filter_reset(struct hotkey_filter *f)
{
    memset(f, 0, sizeof(*f));
}

const char *hotkey_action_name(enum hotkey_action a)
{
    static const char *const names[] = {
        [HOTKEY_NONE] = "none",
        [HOTKEY_RELEASE_MOUSE] = "release the mouse",
        [HOTKEY_FULLSCREEN] = "full screen",
        [HOTKEY_CTRL_ALT_DEL] = "Ctrl+Alt+Del",
        [HOTKEY_SEND_DEL] = "send Ctrl+Alt+Del",
        [HOTKEY_PAUSE] = "pause",
        [HOTKEY_SNAPSHOT] = "snapshot",
        [HOTKEY_REVERT] = "revert",
        [HOTKEY_POWER_OFF] = "power off",
        [HOTKEY_FLOPPY] = "floppy",
        [HOTKEY_CDROM] = "CD-ROM",
    };
    return (unsigned)a < sizeof(names) / sizeof(names[0]) && names[a] ? names[a] : "?";
}
