/* Host key -> PS/2 set-1 tables (ui/keymap.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <SDL2/SDL_scancode.h>
#include <rfb/keysym.h>

#include "ui/keymap.h"

static void expect_sdl(int sc, int code, bool e0)
{
    struct set1_key k = { 0, false };
    if (!keymap_sdl_scancode(sc, &k))
        fail_msg("SDL scancode %d unmapped", sc);
    if (k.code != code || k.e0 != e0)
        fail_msg("SDL scancode %d: got %s%02x, want %s%02x", sc, k.e0 ? "e0 " : "", k.code,
                 e0 ? "e0 " : "", code);
}

/* Spot checks against the set-1 table of Microsoft's scan code spec. */
static void sdl_spot_checks(void **state)
{
    expect_sdl(SDL_SCANCODE_ESCAPE, 0x01, false);
    expect_sdl(SDL_SCANCODE_1, 0x02, false);
    expect_sdl(SDL_SCANCODE_0, 0x0b, false);
    expect_sdl(SDL_SCANCODE_BACKSPACE, 0x0e, false);
    expect_sdl(SDL_SCANCODE_Q, 0x10, false);
    expect_sdl(SDL_SCANCODE_RETURN, 0x1c, false);
    expect_sdl(SDL_SCANCODE_LCTRL, 0x1d, false);
    expect_sdl(SDL_SCANCODE_A, 0x1e, false);
    expect_sdl(SDL_SCANCODE_L, 0x26, false);
    expect_sdl(SDL_SCANCODE_GRAVE, 0x29, false);
    expect_sdl(SDL_SCANCODE_LSHIFT, 0x2a, false);
    expect_sdl(SDL_SCANCODE_BACKSLASH, 0x2b, false);
    expect_sdl(SDL_SCANCODE_Z, 0x2c, false);
    expect_sdl(SDL_SCANCODE_M, 0x32, false);
    expect_sdl(SDL_SCANCODE_SLASH, 0x35, false);
    expect_sdl(SDL_SCANCODE_RSHIFT, 0x36, false);
    expect_sdl(SDL_SCANCODE_KP_MULTIPLY, 0x37, false);
    expect_sdl(SDL_SCANCODE_LALT, 0x38, false);
    expect_sdl(SDL_SCANCODE_SPACE, 0x39, false);
    expect_sdl(SDL_SCANCODE_CAPSLOCK, 0x3a, false);
    expect_sdl(SDL_SCANCODE_F1, 0x3b, false);
    expect_sdl(SDL_SCANCODE_F10, 0x44, false);
    expect_sdl(SDL_SCANCODE_F11, 0x57, false);
    expect_sdl(SDL_SCANCODE_F12, 0x58, false);
    expect_sdl(SDL_SCANCODE_NUMLOCKCLEAR, 0x45, false);
    expect_sdl(SDL_SCANCODE_SCROLLLOCK, 0x46, false);
    expect_sdl(SDL_SCANCODE_KP_7, 0x47, false);
    expect_sdl(SDL_SCANCODE_KP_MINUS, 0x4a, false);
    expect_sdl(SDL_SCANCODE_KP_5, 0x4c, false);
    expect_sdl(SDL_SCANCODE_KP_PLUS, 0x4e, false);
    expect_sdl(SDL_SCANCODE_KP_1, 0x4f, false);
    expect_sdl(SDL_SCANCODE_KP_0, 0x52, false);
    expect_sdl(SDL_SCANCODE_KP_PERIOD, 0x53, false);
    expect_sdl(SDL_SCANCODE_NONUSBACKSLASH, 0x56, false);
    /* E0 keys */
    expect_sdl(SDL_SCANCODE_KP_ENTER, 0x1c, true);
    expect_sdl(SDL_SCANCODE_RCTRL, 0x1d, true);
    expect_sdl(SDL_SCANCODE_KP_DIVIDE, 0x35, true);
    expect_sdl(SDL_SCANCODE_RALT, 0x38, true);
    expect_sdl(SDL_SCANCODE_HOME, 0x47, true);
    expect_sdl(SDL_SCANCODE_UP, 0x48, true);
    expect_sdl(SDL_SCANCODE_PAGEUP, 0x49, true);
    expect_sdl(SDL_SCANCODE_LEFT, 0x4b, true);
    expect_sdl(SDL_SCANCODE_RIGHT, 0x4d, true);
    expect_sdl(SDL_SCANCODE_END, 0x4f, true);
    expect_sdl(SDL_SCANCODE_DOWN, 0x50, true);
    expect_sdl(SDL_SCANCODE_PAGEDOWN, 0x51, true);
    expect_sdl(SDL_SCANCODE_INSERT, 0x52, true);
    expect_sdl(SDL_SCANCODE_DELETE, 0x53, true);
    expect_sdl(SDL_SCANCODE_LGUI, 0x5b, true);
    expect_sdl(SDL_SCANCODE_RGUI, 0x5c, true);
    expect_sdl(SDL_SCANCODE_APPLICATION, 0x5d, true);
    /* kbc.h conventions */
    expect_sdl(SDL_SCANCODE_PRINTSCREEN, 0x37, true);
    expect_sdl(SDL_SCANCODE_PAUSE, 0x45, true);

    struct set1_key k;
    assert_false(keymap_sdl_scancode(SDL_SCANCODE_UNKNOWN, &k));
    assert_false(keymap_sdl_scancode(-1, &k));
    assert_false(keymap_sdl_scancode(SDL_NUM_SCANCODES, &k));
}

/* The 104-key layout: every key present, no two keys share a code (the ISO
 * key left of Enter is the only alias, of backslash). */
static void sdl_104_keys_distinct(void **state)
{
    static const int keys[] = {
        SDL_SCANCODE_ESCAPE, SDL_SCANCODE_F1, SDL_SCANCODE_F2, SDL_SCANCODE_F3, SDL_SCANCODE_F4,
        SDL_SCANCODE_F5, SDL_SCANCODE_F6, SDL_SCANCODE_F7, SDL_SCANCODE_F8, SDL_SCANCODE_F9,
        SDL_SCANCODE_F10, SDL_SCANCODE_F11, SDL_SCANCODE_F12, SDL_SCANCODE_PRINTSCREEN,
        SDL_SCANCODE_SCROLLLOCK, SDL_SCANCODE_PAUSE,
        SDL_SCANCODE_GRAVE, SDL_SCANCODE_1, SDL_SCANCODE_2, SDL_SCANCODE_3, SDL_SCANCODE_4,
        SDL_SCANCODE_5, SDL_SCANCODE_6, SDL_SCANCODE_7, SDL_SCANCODE_8, SDL_SCANCODE_9,
        SDL_SCANCODE_0, SDL_SCANCODE_MINUS, SDL_SCANCODE_EQUALS, SDL_SCANCODE_BACKSPACE,
        SDL_SCANCODE_INSERT, SDL_SCANCODE_HOME, SDL_SCANCODE_PAGEUP,
        SDL_SCANCODE_NUMLOCKCLEAR, SDL_SCANCODE_KP_DIVIDE, SDL_SCANCODE_KP_MULTIPLY,
        SDL_SCANCODE_KP_MINUS,
        SDL_SCANCODE_TAB, SDL_SCANCODE_Q, SDL_SCANCODE_W, SDL_SCANCODE_E, SDL_SCANCODE_R,
        SDL_SCANCODE_T, SDL_SCANCODE_Y, SDL_SCANCODE_U, SDL_SCANCODE_I, SDL_SCANCODE_O,
        SDL_SCANCODE_P, SDL_SCANCODE_LEFTBRACKET, SDL_SCANCODE_RIGHTBRACKET,
        SDL_SCANCODE_BACKSLASH, SDL_SCANCODE_DELETE, SDL_SCANCODE_END, SDL_SCANCODE_PAGEDOWN,
        SDL_SCANCODE_KP_7, SDL_SCANCODE_KP_8, SDL_SCANCODE_KP_9, SDL_SCANCODE_KP_PLUS,
        SDL_SCANCODE_CAPSLOCK, SDL_SCANCODE_A, SDL_SCANCODE_S, SDL_SCANCODE_D, SDL_SCANCODE_F,
        SDL_SCANCODE_G, SDL_SCANCODE_H, SDL_SCANCODE_J, SDL_SCANCODE_K, SDL_SCANCODE_L,
        SDL_SCANCODE_SEMICOLON, SDL_SCANCODE_APOSTROPHE, SDL_SCANCODE_RETURN,
        SDL_SCANCODE_KP_4, SDL_SCANCODE_KP_5, SDL_SCANCODE_KP_6,
        SDL_SCANCODE_LSHIFT, SDL_SCANCODE_Z, SDL_SCANCODE_X, SDL_SCANCODE_C, SDL_SCANCODE_V,
        SDL_SCANCODE_B, SDL_SCANCODE_N, SDL_SCANCODE_M, SDL_SCANCODE_COMMA, SDL_SCANCODE_PERIOD,
        SDL_SCANCODE_SLASH, SDL_SCANCODE_RSHIFT, SDL_SCANCODE_UP,
        SDL_SCANCODE_KP_1, SDL_SCANCODE_KP_2, SDL_SCANCODE_KP_3, SDL_SCANCODE_KP_ENTER,
        SDL_SCANCODE_LCTRL, SDL_SCANCODE_LGUI, SDL_SCANCODE_LALT, SDL_SCANCODE_SPACE,
        SDL_SCANCODE_RALT, SDL_SCANCODE_RGUI, SDL_SCANCODE_APPLICATION, SDL_SCANCODE_RCTRL,
        SDL_SCANCODE_LEFT, SDL_SCANCODE_DOWN, SDL_SCANCODE_RIGHT,
        SDL_SCANCODE_KP_0, SDL_SCANCODE_KP_PERIOD,
    };
    assert_int_equal(sizeof(keys) / sizeof(keys[0]), 104);
    int owner[256];
    for (int i = 0; i < 256; i++)
        owner[i] = -1;
    for (size_t i = 0; i < 104; i++) {
        struct set1_key k;
        if (!keymap_sdl_scancode(keys[i], &k))
            fail_msg("scancode %d unmapped", keys[i]);
        assert_true(k.code >= 1 && k.code <= 0x7f);
        /* e0 2a / e0 36 are the fake shifts, never a key of their own */
        assert_false(k.e0 && (k.code == 0x2a || k.code == 0x36));
        int slot = k.code | (k.e0 ? 0x80 : 0);
        if (owner[slot] >= 0)
            fail_msg("scancodes %d and %d both map to %s%02x", owner[slot], keys[i],
                     k.e0 ? "e0 " : "", k.code);
        owner[slot] = keys[i];
    }
    /* No mapped scancode outside the 104 keys collides with them, except the
     * documented aliases. */
    for (int sc = 1; sc < SDL_NUM_SCANCODES; sc++) {
        struct set1_key k;
        if (!keymap_sdl_scancode(sc, &k))
            continue;
        int slot = k.code | (k.e0 ? 0x80 : 0);
        if (owner[slot] < 0 || owner[slot] == sc)
            continue;
        if (sc == SDL_SCANCODE_NONUSHASH && owner[slot] == SDL_SCANCODE_BACKSLASH)
            continue;
        fail_msg("scancode %d collides with %d on %s%02x", sc, owner[slot],
                 k.e0 ? "e0 " : "", k.code);
    }
}

static void expect_sym(uint32_t sym, int code, bool e0, enum keysym_shift shift)
{
    struct set1_key k = { 0, false };
    enum keysym_shift s;
    if (!keymap_keysym(sym, &k, &s))
        fail_msg("keysym 0x%x unmapped", sym);
    if (k.code != code || k.e0 != e0 || s != shift)
        fail_msg("keysym 0x%x: got %s%02x shift %d, want %s%02x shift %d", sym,
                 k.e0 ? "e0 " : "", k.code, s, e0 ? "e0 " : "", code, shift);
}

static void keysym_spot_checks(void **state)
{
    expect_sym('a', 0x1e, false, KEYSYM_LETTER);
    expect_sym('A', 0x1e, false, KEYSYM_LETTER);
    expect_sym('q', 0x10, false, KEYSYM_LETTER);
    expect_sym('m', 0x32, false, KEYSYM_LETTER);
    expect_sym('1', 0x02, false, KEYSYM_UNSHIFTED);
    expect_sym('!', 0x02, false, KEYSYM_SHIFTED);
    expect_sym('@', 0x03, false, KEYSYM_SHIFTED);
    expect_sym('^', 0x07, false, KEYSYM_SHIFTED);
    expect_sym('(', 0x0a, false, KEYSYM_SHIFTED);
    expect_sym(')', 0x0b, false, KEYSYM_SHIFTED);
    expect_sym('_', 0x0c, false, KEYSYM_SHIFTED);
    expect_sym('+', 0x0d, false, KEYSYM_SHIFTED);
    expect_sym('{', 0x1a, false, KEYSYM_SHIFTED);
    expect_sym('|', 0x2b, false, KEYSYM_SHIFTED);
    expect_sym(':', 0x27, false, KEYSYM_SHIFTED);
    expect_sym('"', 0x28, false, KEYSYM_SHIFTED);
    expect_sym('~', 0x29, false, KEYSYM_SHIFTED);
    expect_sym('<', 0x33, false, KEYSYM_SHIFTED);
    expect_sym('?', 0x35, false, KEYSYM_SHIFTED);
    expect_sym('`', 0x29, false, KEYSYM_UNSHIFTED);
    expect_sym('/', 0x35, false, KEYSYM_UNSHIFTED);
    expect_sym(' ', 0x39, false, KEYSYM_NOT_CHAR);
    expect_sym(XK_Return, 0x1c, false, KEYSYM_NOT_CHAR);
    expect_sym(XK_KP_Enter, 0x1c, true, KEYSYM_NOT_CHAR);
    expect_sym(XK_Shift_L, 0x2a, false, KEYSYM_NOT_CHAR);
    expect_sym(XK_Shift_R, 0x36, false, KEYSYM_NOT_CHAR);
    expect_sym(XK_Control_R, 0x1d, true, KEYSYM_NOT_CHAR);
    expect_sym(XK_Alt_R, 0x38, true, KEYSYM_NOT_CHAR);
    expect_sym(XK_F1, 0x3b, false, KEYSYM_NOT_CHAR);
    expect_sym(XK_F12, 0x58, false, KEYSYM_NOT_CHAR);
    expect_sym(XK_Up, 0x48, true, KEYSYM_NOT_CHAR);
    expect_sym(XK_Delete, 0x53, true, KEYSYM_NOT_CHAR);
    expect_sym(XK_KP_Delete, 0x53, false, KEYSYM_NOT_CHAR);
    expect_sym(XK_KP_7, 0x47, false, KEYSYM_NOT_CHAR);
    expect_sym(XK_KP_Home, 0x47, false, KEYSYM_NOT_CHAR);
    expect_sym(XK_KP_Divide, 0x35, true, KEYSYM_NOT_CHAR);
    expect_sym(XK_Print, 0x37, true, KEYSYM_NOT_CHAR);
    expect_sym(XK_Pause, 0x45, true, KEYSYM_NOT_CHAR);
    expect_sym(XK_Super_L, 0x5b, true, KEYSYM_NOT_CHAR);
    expect_sym(XK_Menu, 0x5d, true, KEYSYM_NOT_CHAR);

    struct set1_key k;
    enum keysym_shift s;
    assert_false(keymap_keysym(XK_eacute, &k, &s));     /* no US key makes it */
    assert_false(keymap_keysym(XK_dead_acute, &k, &s));
    assert_false(keymap_keysym(0, &k, &s));
}

/* Every printable ASCII keysym maps to a key, and the US layout's 47
 * character keys each carry exactly one unshifted and one shifted character. */
static void keysym_every_printable_ascii(void **state)
{
    int unshifted[128] = { 0 }, shifted[128] = { 0 };
    for (uint32_t c = 0x21; c < 0x7f; c++) {
        struct set1_key k;
        enum keysym_shift s;
        if (!keymap_keysym(c, &k, &s))
            fail_msg("'%c' unmapped", (char)c);
        assert_false(k.e0);
        assert_true(k.code >= 0x02 && k.code <= 0x35);
        if (s == KEYSYM_LETTER) {
            assert_true((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
            if (c >= 'a')
                unshifted[k.code]++;
            else
                shifted[k.code]++;
        } else if (s == KEYSYM_SHIFTED) {
            shifted[k.code]++;
        } else {
            assert_int_equal(s, KEYSYM_UNSHIFTED);
            unshifted[k.code]++;
        }
    }
    int keys = 0;
    for (int i = 0; i < 128; i++) {
        if (!unshifted[i] && !shifted[i])
            continue;
        if (unshifted[i] != 1 || shifted[i] != 1)
            fail_msg("key %02x: %d unshifted and %d shifted characters", i, unshifted[i], shifted[i]);
        keys++;
    }
    assert_int_equal(keys, 47);
}

/* ---- tracker ---- */

struct rec {
    int n;
    char log[64][12];
};

static void rec_emit(void *opaque, int code, bool e0, bool down)
{
    struct rec *r = opaque;
    assert_true(r->n < 64);
    snprintf(r->log[r->n++], sizeof(r->log[0]), "%s%02x%c", e0 ? "e0" : "", code, down ? '+' : '-');
}

static void expect_log(struct rec *r, const char *want)
{
    char got[512] = "";
    for (int i = 0; i < r->n; i++) {
        if (i)
            strcat(got, " ");
        strcat(got, r->log[i]);
    }
    if (strcmp(got, want))
        fail_msg("emitted \"%s\", want \"%s\"", got, want);
    r->n = 0;
}

static void tracker_synthesises_shift(void **state)
{
    struct keysym_tracker t = { 0 };
    struct rec r = { 0 };
    /* '!' with no Shift held: Shift is pressed around the key */
    assert_true(keymap_keysym_event(&t, '!', true, 0, rec_emit, &r));
    expect_log(&r, "2a+ 02+ 2a-");
    keymap_keysym_event(&t, '!', false, 0, rec_emit, &r);
    expect_log(&r, "02-");
    /* the client holds Shift and sends '!': nothing synthesised */
    keymap_keysym_event(&t, XK_Shift_L, true, 0, rec_emit, &r);
    expect_log(&r, "2a+");
    keymap_keysym_event(&t, '!', true, 0, rec_emit, &r);
    expect_log(&r, "02+");
    keymap_keysym_event(&t, '!', false, 0, rec_emit, &r);
    expect_log(&r, "02-");
    /* Shift held but '1' wanted (e.g. AZERTY client): Shift lifted around it */
    keymap_keysym_event(&t, '1', true, 0, rec_emit, &r);
    expect_log(&r, "2a- 02+ 2a+");
    keymap_keysym_event(&t, '1', false, 0, rec_emit, &r);
    expect_log(&r, "02-");
    /* upper case with Shift: plain key */
    keymap_keysym_event(&t, 'A', true, 0, rec_emit, &r);
    expect_log(&r, "1e+");
    keymap_keysym_event(&t, XK_Shift_L, false, 0, rec_emit, &r);
    keymap_keysym_event(&t, 'a', false, 0, rec_emit, &r);
    expect_log(&r, "2a- 1e-");
    /* non-character keys pass untouched */
    keymap_keysym_event(&t, XK_Left, true, 0, rec_emit, &r);
    expect_log(&r, "e04b+");
    /* unmapped keysyms are reported */
    assert_false(keymap_keysym_event(&t, XK_dead_grave, true, 0, rec_emit, &r));
    expect_log(&r, "");
}

static void tracker_follows_caps_lock(void **state)
{
    struct keysym_tracker t = { 0 };
    struct rec r = { 0 };
    /* guest Caps Lock on (LED bit 2): 'A' needs no Shift, 'a' needs one */
    keymap_keysym_event(&t, 'A', true, 4, rec_emit, &r);
    expect_log(&r, "1e+");
    keymap_keysym_event(&t, 'a', true, 4, rec_emit, &r);
    expect_log(&r, "2a+ 1e+ 2a-");
    /* Caps Lock does not apply to digits */
    keymap_keysym_event(&t, '1', true, 4, rec_emit, &r);
    expect_log(&r, "02+");
    /* Caps off: 'A' without Shift gets one */
    keymap_keysym_event(&t, 'A', true, 0, rec_emit, &r);
    expect_log(&r, "2a+ 1e+ 2a-");
}

static void tracker_lifts_altgr_and_right_shift(void **state)
{
    struct keysym_tracker t = { 0 };
    struct rec r = { 0 };
    /* German client: AltGr+Q = '@' -> US Shift+2 without AltGr */
    keymap_keysym_event(&t, XK_ISO_Level3_Shift, true, 0, rec_emit, &r);
    expect_log(&r, "e038+");
    keymap_keysym_event(&t, '@', true, 0, rec_emit, &r);
    expect_log(&r, "e038- 2a+ 03+ 2a- e038+");
    keymap_keysym_event(&t, '@', false, 0, rec_emit, &r);
    keymap_keysym_event(&t, XK_ISO_Level3_Shift, false, 0, rec_emit, &r);
    expect_log(&r, "03- e038-");
    /* right Shift held, unshifted character wanted */
    keymap_keysym_event(&t, XK_Shift_R, true, 0, rec_emit, &r);
    keymap_keysym_event(&t, '=', true, 0, rec_emit, &r);
    expect_log(&r, "36+ 36- 0d+ 36+");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sdl_spot_checks),
        cmocka_unit_test(sdl_104_keys_distinct),
        cmocka_unit_test(keysym_spot_checks),
        cmocka_unit_test(keysym_every_printable_ascii),
        cmocka_unit_test(tracker_synthesises_shift),
        cmocka_unit_test(tracker_follows_caps_lock),
        cmocka_unit_test(tracker_lifts_altgr_and_right_shift),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
