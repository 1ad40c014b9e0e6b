/*
 * Intel 8042 keyboard controller at 0x60 (data) / 0x64 (status/command),
 * with a PS/2 keyboard (IRQ1) and a PS/2 mouse (IRQ12, aux port) behind it,
 * and the PIIX "System Control Port A" at 0x92 (bit1 fast A20, bit0 fast
 * reset).  The A20 gate and the reset line go to the bus (bus_set_a20,
 * bus_request(BUS_REQ_RESET)); whichever of the 8042 output port or port
 * 0x92 was written last decides A20, as on QEMU's PC.
 */
#ifndef RV_KBC_H
#define RV_KBC_H

#include <stdbool.h>
#include <stdint.h>

struct bus;
struct kbc;

struct kbc *kbc_new(struct bus *b);
void kbc_free(struct kbc *k);

/*
 * A key went down or up.  `code` is the PS/2 scan code set 1 make code
 * (0x01-0x7f) and `e0` says it carries the 0xE0 prefix (arrows, right
 * Ctrl/Alt, keypad Enter and /, Insert/Home/PgUp block, Windows keys).
 * Two keys have no single set-1 code and use these conventions:
 *   Print Screen = e0 + 0x37, Pause = e0 + 0x45 (only the press matters).
 * The keyboard converts to whatever scan code set the guest selected.
 */
void kbc_key_event(struct kbc *k, int code, bool e0, bool down);

/*
 * Relative mouse motion: dx right, dy down (screen convention), dz wheel
 * (positive = towards the user), buttons bit0 left, bit1 right, bit2 middle.
 */
void kbc_mouse_event(struct kbc *k, int dx, int dy, int dz, int buttons);

/* Whether the guest has enabled mouse data reporting (UI grab hint). */
bool kbc_mouse_enabled(struct kbc *k);
/* Keyboard LEDs as last set by the guest: bit0 Scroll, bit1 Num, bit2 Caps. */
uint8_t kbc_leds(struct kbc *k);

#endif
