/*
 * Host keys -> PS/2 scan code set 1, shared by the SDL window and the VNC
 * server.  A key is its set-1 make code plus the 0xE0 prefix flag, exactly
 * what kbc_key_event() takes (devices/kbc.h), including its two conventions:
 * Print Screen = e0 + 0x37, Pause = e0 + 0x45.
 *
 * SDL reports physical keys (SDL_Scancode, USB HID usages), so that table is
 * layout-independent: the guest's own keyboard layout applies.
 *
 * VNC clients send X11 keysyms, i.e. the *character* the client's layout
 * produced ('!' rather than "Shift + 1").  The server assumes the guest uses
 * a US layout and maps every keysym to the US key that produces it, with a
 * note saying whether Shift must be held for it (keymap_keysym).  The
 * tracker (keymap_keysym_event) then makes the guest see the right
 * character whatever modifiers the client reported: it remembers which Shift
 * keys the client holds and, when a character needs the other Shift state,
 * synthesises the difference around the key press
 *     '!' without Shift held  ->  LShift down, 1 down, LShift up
 *     '1' with Shift held     ->  (held) Shift up, 1 down, Shift down again
 * Letters follow the guest's Caps Lock LED (upper case = Shift xor Caps).
 * AltGr sent as ISO_Level3_Shift (a non-US client layout composing a
 * character) is lifted the same way around character keys, so '@' typed as
 * AltGr+Q on a German client reaches a US guest as Shift+2.
 * Keypad keysyms go to the keypad keys as they are; the guest's Num Lock
 * decides whether they are digits or cursor keys.
 */
#ifndef RV_UI_KEYMAP_H
#define RV_UI_KEYMAP_H

#include <stdbool.h>
#include <stdint.h>

struct set1_key {
    uint8_t code;   /* set-1 make code 0x01-0x7f; 0 = no such key */
    bool e0;        /* carries the 0xE0 prefix */
};

/* SDL_Scancode (passed as int so callers need no SDL header) -> key.
 * Returns false for scancodes with no PC key. */
bool keymap_sdl_scancode(int scancode, struct set1_key *out);

/* Whether the keysym is a character produced with Shift on a US layout. */
enum keysym_shift {
    KEYSYM_NOT_CHAR = -1,   /* modifier, function or editing key: sent as is */
    KEYSYM_UNSHIFTED = 0,
    KEYSYM_SHIFTED = 1,
    KEYSYM_LETTER = 2,      /* a-z/A-Z: shifted iff upper case xor Caps Lock */
};

/* X11 keysym -> the US key that produces it.  Returns false for keysyms no
 * US key produces (dead keys, Latin-1 letters, ...). */
bool keymap_keysym(uint32_t keysym, struct set1_key *out, enum keysym_shift *shift);

/* Per-connection state of the keysym -> key translation. */
struct keysym_tracker {
    bool lshift, rshift;    /* Shift keys the client holds (as sent to the guest) */
    bool altgr;             /* ISO_Level3_Shift held (sent to the guest as right Alt) */
};

typedef void (*keymap_emit_fn)(void *opaque, int code, bool e0, bool down);

/* Turns one keysym press/release into key events for the guest, calling emit
 * once per key event in order (see the header comment).  guest_leds is
 * kbc_leds(): bit2 = Caps Lock.  Returns false if the keysym was ignored. */
bool keymap_keysym_event(struct keysym_tracker *t, uint32_t keysym, bool down,
                         uint8_t guest_leds, keymap_emit_fn emit, void *opaque);

#endif
