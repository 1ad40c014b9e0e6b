/*
 * The window's hotkeys: Ctrl+Alt (either Ctrl, either Alt) plus a key, as
 * VMware and QEMU spell them.  Shared by the SDL window and the VNC server,
 * which both see keys as set-1 codes (ui/keymap.h) before they reach the
 * guest; the filter decides, per key event, whether it goes to the guest
 * and which action (if any) it asks for.
 *
 *   Ctrl+Alt (pressed and released alone)  release the mouse
 *   Ctrl+Alt+Enter   full screen on/off (VMware's key: Ctrl+Alt+F, QEMU's,
 *                    has been the floppy's since before the hotkeys)
 *   Ctrl+Alt+Del     goes to the guest as it is (the three keys' scancodes)
 *   Ctrl+Alt+Insert  sends the guest a Del press with Ctrl+Alt held, for
 *                    hosts that keep Ctrl+Alt+Del for themselves (VMware's)
 *   Ctrl+Alt+P       pause / resume
 *   Ctrl+Alt+S       take a snapshot
 *   Ctrl+Alt+R       revert to the last snapshot
 *   Ctrl+Alt+Q       power off: the ACPI power button, and at once if pressed again
 *   Ctrl+Alt+F       take the disk out of A: or put it back
 *   Ctrl+Alt+E       eject the CD or put it back
 *
 * The Ctrl and Alt keys themselves always reach the guest (the filter
 * cannot know yet what follows); the action key's press, repeats and
 * release do not.
 */
#ifndef RV_UI_HOTKEYS_H
#define RV_UI_HOTKEYS_H

#include <stdbool.h>
#include <stdint.h>

enum hotkey_action {
    HOTKEY_NONE,
    HOTKEY_RELEASE_MOUSE,
    HOTKEY_FULLSCREEN,
    HOTKEY_CTRL_ALT_DEL,    /* Ctrl+Alt+Del went to the guest */
    HOTKEY_SEND_DEL,        /* Ctrl+Alt+Insert: the front end sends Del down + up */
    HOTKEY_PAUSE,
    HOTKEY_SNAPSHOT,
    HOTKEY_REVERT,
    HOTKEY_POWER_OFF,
    HOTKEY_FLOPPY,
    HOTKEY_CDROM,
};

struct hotkey_filter {
    bool lctrl, rctrl, lalt, ralt;
    bool alone;             /* Ctrl+Alt went down with no other key since */
    uint8_t eaten[32];      /* action keys held: their release is not the guest's either */
};

/* Feeds one key event (set-1 code + E0 flag; a repeat is a second down).
 * *to_guest says whether the event goes on to the guest. */
enum hotkey_action hotkey_filter_key(struct hotkey_filter *f, int code, bool e0, bool down,
                                     bool *to_guest);

/* Focus lost: forget the keys held (the front end releases them in the guest). */
void hotkey_filter_reset(struct hotkey_filter *f);

/* A name for messages ("pause", "snapshot", ...). */
const char *hotkey_action_name(enum hotkey_action a);

#endif
