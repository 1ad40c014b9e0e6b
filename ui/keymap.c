/*
 * Host key -> PS/2 set-1 tables (see keymap.h).  Set-1 codes follow
 * Microsoft's "Keyboard Scan Code Specification" (rev 1.3a), Appendix C.
 */
#include "ui/keymap.h"

#include <SDL2/SDL_scancode.h>
#include <rfb/keysym.h>

#define K(c)  { (c), false }
#define KE(c) { (c), true }

/* ---- SDL scancodes (USB HID usages): physical keys ---- */

static const struct set1_key sdl_table[SDL_NUM_SCANCODES] = {
    [SDL_SCANCODE_ESCAPE] = K(0x01),
    [SDL_SCANCODE_1] = K(0x02), [SDL_SCANCODE_2] = K(0x03), [SDL_SCANCODE_3] = K(0x04),
    [SDL_SCANCODE_4] = K(0x05), [SDL_SCANCODE_5] = K(0x06), [SDL_SCANCODE_6] = K(0x07),
    [SDL_SCANCODE_7] = K(0x08), [SDL_SCANCODE_8] = K(0x09), [SDL_SCANCODE_9] = K(0x0a),
    [SDL_SCANCODE_0] = K(0x0b),
    [SDL_SCANCODE_MINUS] = K(0x0c), [SDL_SCANCODE_EQUALS] = K(0x0d),
    [SDL_SCANCODE_BACKSPACE] = K(0x0e), [SDL_SCANCODE_TAB] = K(0x0f),
    [SDL_SCANCODE_Q] = K(0x10), [SDL_SCANCODE_W] = K(0x11), [SDL_SCANCODE_E] = K(0x12),
    [SDL_SCANCODE_R] = K(0x13), [SDL_SCANCODE_T] = K(0x14), [SDL_SCANCODE_Y] = K(0x15),
    [SDL_SCANCODE_U] = K(0x16), [SDL_SCANCODE_I] = K(0x17), [SDL_SCANCODE_O] = K(0x18),
    [SDL_SCANCODE_P] = K(0x19),
    [SDL_SCANCODE_LEFTBRACKET] = K(0x1a), [SDL_SCANCODE_RIGHTBRACKET] = K(0x1b),
    [SDL_SCANCODE_RETURN] = K(0x1c), [SDL_SCANCODE_LCTRL] = K(0x1d),
    [SDL_SCANCODE_A] = K(0x1e), [SDL_SCANCODE_S] = K(0x1f), [SDL_SCANCODE_D] = K(0x20),
    [SDL_SCANCODE_F] = K(0x21), [SDL_SCANCODE_G] = K(0x22), [SDL_SCANCODE_H] = K(0x23),
    [SDL_SCANCODE_J] = K(0x24), [SDL_SCANCODE_K] = K(0x25), [SDL_SCANCODE_L] = K(0x26),
    [SDL_SCANCODE_SEMICOLON] = K(0x27), [SDL_SCANCODE_APOSTROPHE] = K(0x28),
    [SDL_SCANCODE_GRAVE] = K(0x29), [SDL_SCANCODE_LSHIFT] = K(0x2a),
    /* US backslash and the ISO key left of Enter are the same position. */
    [SDL_SCANCODE_BACKSLASH] = K(0x2b), [SDL_SCANCODE_NONUSHASH] = K(0x2b),
    [SDL_SCANCODE_Z] = K(0x2c), [SDL_SCANCODE_X] = K(0x2d), [SDL_SCANCODE_C] = K(0x2e),
    [SDL_SCANCODE_V] = K(0x2f), [SDL_SCANCODE_B] = K(0x30), [SDL_SCANCODE_N] = K(0x31),
    [SDL_SCANCODE_M] = K(0x32),
    [SDL_SCANCODE_COMMA] = K(0x33), [SDL_SCANCODE_PERIOD] = K(0x34),
    [SDL_SCANCODE_SLASH] = K(0x35), [SDL_SCANCODE_RSHIFT] = K(0x36),
    [SDL_SCANCODE_KP_MULTIPLY] = K(0x37), [SDL_SCANCODE_LALT] = K(0x38),
    [SDL_SCANCODE_SPACE] = K(0x39), [SDL_SCANCODE_CAPSLOCK] = K(0x3a),
    [SDL_SCANCODE_F1] = K(0x3b), [SDL_SCANCODE_F2] = K(0x3c), [SDL_SCANCODE_F3] = K(0x3d),
    [SDL_SCANCODE_F4] = K(0x3e), [SDL_SCANCODE_F5] = K(0x3f), [SDL_SCANCODE_F6] = K(0x40),
    [SDL_SCANCODE_F7] = K(0x41), [SDL_SCANCODE_F8] = K(0x42), [SDL_SCANCODE_F9] = K(0x43),
    [SDL_SCANCODE_F10] = K(0x44),
    [SDL_SCANCODE_NUMLOCKCLEAR] = K(0x45), [SDL_SCANCODE_SCROLLLOCK] = K(0x46),
    [SDL_SCANCODE_KP_7] = K(0x47), [SDL_SCANCODE_KP_8] = K(0x48), [SDL_SCANCODE_KP_9] = K(0x49),
    [SDL_SCANCODE_KP_MINUS] = K(0x4a),
    [SDL_SCANCODE_KP_4] = K(0x4b), [SDL_SCANCODE_KP_5] = K(0x4c), [SDL_SCANCODE_KP_6] = K(0x4d),
    [SDL_SCANCODE_KP_PLUS] = K(0x4e),
    [SDL_SCANCODE_KP_1] = K(0x4f), [SDL_SCANCODE_KP_2] = K(0x50), [SDL_SCANCODE_KP_3] = K(0x51),
    [SDL_SCANCODE_KP_0] = K(0x52), [SDL_SCANCODE_KP_PERIOD] = K(0x53),
    [SDL_SCANCODE_SYSREQ] = K(0x54),
    [SDL_SCANCODE_NONUSBACKSLASH] = K(0x56),
    [SDL_SCANCODE_F11] = K(0x57), [SDL_SCANCODE_F12] = K(0x58),
    [SDL_SCANCODE_KP_EQUALS] = K(0x59),
    /* Japanese and Brazilian keys */
    [SDL_SCANCODE_INTERNATIONAL2] = K(0x70),    /* Katakana/Hiragana */
    [SDL_SCANCODE_INTERNATIONAL1] = K(0x73),    /* Ro */
    [SDL_SCANCODE_INTERNATIONAL4] = K(0x79),    /* Henkan */
    [SDL_SCANCODE_INTERNATIONAL5] = K(0x7b),    /* Muhenkan */
    [SDL_SCANCODE_INTERNATIONAL3] = K(0x7d),    /* Yen */
    [SDL_SCANCODE_KP_COMMA] = K(0x7e),

    /* E0-prefixed */
    [SDL_SCANCODE_KP_ENTER] = KE(0x1c), [SDL_SCANCODE_RCTRL] = KE(0x1d),
    [SDL_SCANCODE_KP_DIVIDE] = KE(0x35), [SDL_SCANCODE_PRINTSCREEN] = KE(0x37),
    [SDL_SCANCODE_RALT] = KE(0x38), [SDL_SCANCODE_PAUSE] = KE(0x45),
    [SDL_SCANCODE_HOME] = KE(0x47), [SDL_SCANCODE_UP] = KE(0x48), [SDL_SCANCODE_PAGEUP] = KE(0x49),
    [SDL_SCANCODE_LEFT] = KE(0x4b), [SDL_SCANCODE_RIGHT] = KE(0x4d),
    [SDL_SCANCODE_END] = KE(0x4f), [SDL_SCANCODE_DOWN] = KE(0x50), [SDL_SCANCODE_PAGEDOWN] = KE(0x51),
    [SDL_SCANCODE_INSERT] = KE(0x52), [SDL_SCANCODE_DELETE] = KE(0x53),
    [SDL_SCANCODE_LGUI] = KE(0x5b), [SDL_SCANCODE_RGUI] = KE(0x5c),
    [SDL_SCANCODE_APPLICATION] = KE(0x5d),
    [SDL_SCANCODE_POWER] = KE(0x5e), [SDL_SCANCODE_SLEEP] = KE(0x5f),
    /* multimedia keys */
    [SDL_SCANCODE_AUDIOPREV] = KE(0x10), [SDL_SCANCODE_AUDIONEXT] = KE(0x19),
    [SDL_SCANCODE_MUTE] = KE(0x20), [SDL_SCANCODE_AUDIOMUTE] = KE(0x20),
    [SDL_SCANCODE_CALCULATOR] = KE(0x21), [SDL_SCANCODE_AUDIOPLAY] = KE(0x22),
    [SDL_SCANCODE_AUDIOSTOP] = KE(0x24),
    [SDL_SCANCODE_VOLUMEDOWN] = KE(0x2e), [SDL_SCANCODE_VOLUMEUP] = KE(0x30),
    [SDL_SCANCODE_AC_HOME] = KE(0x32), [SDL_SCANCODE_WWW] = KE(0x32),
    [SDL_SCANCODE_AC_SEARCH] = KE(0x65), [SDL_SCANCODE_AC_BOOKMARKS] = KE(0x66),
    [SDL_SCANCODE_AC_REFRESH] = KE(0x67), [SDL_SCANCODE_AC_STOP] = KE(0x68),
    [SDL_SCANCODE_AC_FORWARD] = KE(0x69), [SDL_SCANCODE_AC_BACK] = KE(0x6a),
    [SDL_SCANCODE_COMPUTER] = KE(0x6b), [SDL_SCANCODE_MAIL] = KE(0x6c),
    [SDL_SCANCODE_MEDIASELECT] = KE(0x6d),
};

bool keymap_sdl_scancode(int scancode, struct set1_key *out)
{
    if (scancode <= 0 || scancode >= SDL_NUM_SCANCODES || !sdl_table[scancode].code)
        return false;
    *out = sdl_table[scancode];
    return true;
}

/* ---- X11 keysyms (what RFB clients send): characters, US layout ---- */

/* Printable ASCII 0x20-0x7e: the US key and whether Shift is needed
 * ('L' = letter, 's' = shifted, 'n' = unshifted). */
static const struct { uint8_t code; char how; } ascii_table[0x7f - 0x20] = {
    [' ' - 0x20] = { 0x39, 'n' },
    ['!' - 0x20] = { 0x02, 's' }, ['"' - 0x20] = { 0x28, 's' }, ['#' - 0x20] = { 0x04, 's' },
    ['$' - 0x20] = { 0x05, 's' }, ['%' - 0x20] = { 0x06, 's' }, ['&' - 0x20] = { 0x08, 's' },
    ['\'' - 0x20] = { 0x28, 'n' }, ['(' - 0x20] = { 0x0a, 's' }, [')' - 0x20] = { 0x0b, 's' },
    ['*' - 0x20] = { 0x09, 's' }, ['+' - 0x20] = { 0x0d, 's' }, [',' - 0x20] = { 0x33, 'n' },
    ['-' - 0x20] = { 0x0c, 'n' }, ['.' - 0x20] = { 0x34, 'n' }, ['/' - 0x20] = { 0x35, 'n' },
    ['0' - 0x20] = { 0x0b, 'n' }, ['1' - 0x20] = { 0x02, 'n' }, ['2' - 0x20] = { 0x03, 'n' },
    ['3' - 0x20] = { 0x04, 'n' }, ['4' - 0x20] = { 0x05, 'n' }, ['5' - 0x20] = { 0x06, 'n' },
    ['6' - 0x20] = { 0x07, 'n' }, ['7' - 0x20] = { 0x08, 'n' }, ['8' - 0x20] = { 0x09, 'n' },
    ['9' - 0x20] = { 0x0a, 'n' },
    [':' - 0x20] = { 0x27, 's' }, [';' - 0x20] = { 0x27, 'n' }, ['<' - 0x20] = { 0x33, 's' },
    ['=' - 0x20] = { 0x0d, 'n' }, ['>' - 0x20] = { 0x34, 's' }, ['?' - 0x20] = { 0x35, 's' },
    ['@' - 0x20] = { 0x03, 's' },
    ['A' - 0x20] = { 0x1e, 'L' }, ['B' - 0x20] = { 0x30, 'L' }, ['C' - 0x20] = { 0x2e, 'L' },
    ['D' - 0x20] = { 0x20, 'L' }, ['E' - 0x20] = { 0x12, 'L' }, ['F' - 0x20] = { 0x21, 'L' },
    ['G' - 0x20] = { 0x22, 'L' }, ['H' - 0x20] = { 0x23, 'L' }, ['I' - 0x20] = { 0x17, 'L' },
    ['J' - 0x20] = { 0x24, 'L' }, ['K' - 0x20] = { 0x25, 'L' }, ['L' - 0x20] = { 0x26, 'L' },
    ['M' - 0x20] = { 0x32, 'L' }, ['N' - 0x20] = { 0x31, 'L' }, ['O' - 0x20] = { 0x18, 'L' },
    ['P' - 0x20] = { 0x19, 'L' }, ['Q' - 0x20] = { 0x10, 'L' }, ['R' - 0x20] = { 0x13, 'L' },
    ['S' - 0x20] = { 0x1f, 'L' }, ['T' - 0x20] = { 0x14, 'L' }, ['U' - 0x20] = { 0x16, 'L' },
    ['V' - 0x20] = { 0x2f, 'L' }, ['W' - 0x20] = { 0x11, 'L' }, ['X' - 0x20] = { 0x2d, 'L' },
    ['Y' - 0x20] = { 0x15, 'L' }, ['Z' - 0x20] = { 0x2c, 'L' },
    ['[' - 0x20] = { 0x1a, 'n' }, ['\\' - 0x20] = { 0x2b, 'n' }, [']' - 0x20] = { 0x1b, 'n' },
    ['^' - 0x20] = { 0x07, 's' }, ['_' - 0x20] = { 0x0c, 's' }, ['`' - 0x20] = { 0x29, 'n' },
    /* a-z are filled from A-Z by keymap_keysym */
    ['{' - 0x20] = { 0x1a, 's' }, ['|' - 0x20] = { 0x2b, 's' }, ['}' - 0x20] = { 0x1b, 's' },
    ['~' - 0x20] = { 0x29, 's' },
};

/* Non-character keysyms: sent as the key, whatever Shift state the client has. */
static const struct { uint32_t sym; struct set1_key key; } special_table[] = {
    { XK_Escape, K(0x01) }, { XK_BackSpace, K(0x0e) }, { XK_Tab, K(0x0f) },
    { XK_ISO_Left_Tab, K(0x0f) }, { XK_Return, K(0x1c) }, { XK_Linefeed, K(0x1c) },
    { XK_Control_L, K(0x1d) }, { XK_Shift_L, K(0x2a) }, { XK_Shift_R, K(0x36) },
    { XK_Alt_L, K(0x38) }, { XK_Meta_L, K(0x38) }, { XK_Caps_Lock, K(0x3a) },
    { XK_F1, K(0x3b) }, { XK_F2, K(0x3c) }, { XK_F3, K(0x3d) }, { XK_F4, K(0x3e) },
    { XK_F5, K(0x3f) }, { XK_F6, K(0x40) }, { XK_F7, K(0x41) }, { XK_F8, K(0x42) },
    { XK_F9, K(0x43) }, { XK_F10, K(0x44) }, { XK_F11, K(0x57) }, { XK_F12, K(0x58) },
    { XK_Num_Lock, K(0x45) }, { XK_Scroll_Lock, K(0x46) }, { XK_Sys_Req, K(0x54) },
    /* keypad: digits and their Num Lock-off meanings are the same keys */
    { XK_KP_7, K(0x47) }, { XK_KP_Home, K(0x47) },
    { XK_KP_8, K(0x48) }, { XK_KP_Up, K(0x48) },
    { XK_KP_9, K(0x49) }, { XK_KP_Prior, K(0x49) },
    { XK_KP_Subtract, K(0x4a) },
    { XK_KP_4, K(0x4b) }, { XK_KP_Left, K(0x4b) },
    { XK_KP_5, K(0x4c) }, { XK_KP_Begin, K(0x4c) },
    { XK_KP_6, K(0x4d) }, { XK_KP_Right, K(0x4d) },
    { XK_KP_Add, K(0x4e) },
    { XK_KP_1, K(0x4f) }, { XK_KP_End, K(0x4f) },
    { XK_KP_2, K(0x50) }, { XK_KP_Down, K(0x50) },
    { XK_KP_3, K(0x51) }, { XK_KP_Next, K(0x51) },
    { XK_KP_0, K(0x52) }, { XK_KP_Insert, K(0x52) },
    { XK_KP_Decimal, K(0x53) }, { XK_KP_Delete, K(0x53) }, { XK_KP_Separator, K(0x53) },
    { XK_KP_Multiply, K(0x37) }, { XK_KP_Equal, K(0x59) },
    { XK_KP_Enter, KE(0x1c) }, { XK_KP_Divide, KE(0x35) },
    /* E0 block */
    { XK_Control_R, KE(0x1d) }, { XK_Alt_R, KE(0x38) }, { XK_Meta_R, KE(0x38) },
    { XK_ISO_Level3_Shift, KE(0x38) }, { XK_Mode_switch, KE(0x38) },
    { XK_Print, KE(0x37) }, { XK_Pause, KE(0x45) }, { XK_Break, KE(0x45) },
    { XK_Home, KE(0x47) }, { XK_Up, KE(0x48) }, { XK_Prior, KE(0x49) },
    { XK_Left, KE(0x4b) }, { XK_Right, KE(0x4d) },
    { XK_End, KE(0x4f) }, { XK_Down, KE(0x50) }, { XK_Next, KE(0x51) },
    { XK_Insert, KE(0x52) }, { XK_Delete, KE(0x53) },
    { XK_Super_L, KE(0x5b) }, { XK_Super_R, KE(0x5c) }, { XK_Menu, KE(0x5d) },
};

bool keymap_keysym(uint32_t keysym, struct set1_key *out, enum keysym_shift *shift)
{
    if (keysym == ' ') {    /* Shift+Space is still a space: leave Shift alone */
        *out = (struct set1_key)K(0x39);
        *shift = KEYSYM_NOT_CHAR;
        return true;
    }
    if (keysym > 0x20 && keysym < 0x7f) {
        uint32_t c = keysym;
        if (c >= 'a' && c <= 'z')
            c -= 'a' - 'A';
        out->code = ascii_table[c - 0x20].code;
        out->e0 = false;
        switch (ascii_table[c - 0x20].how) {
        case 'L': *shift = KEYSYM_LETTER; break;
        case 's': *shift = KEYSYM_SHIFTED; break;
        default:  *shift = KEYSYM_UNSHIFTED; break;
        }
        return out->code != 0;
    }
    for (size_t i = 0; i < sizeof(special_table) / sizeof(special_table[0]); i++)
        if (special_table[i].sym == keysym) {
            *out = special_table[i].key;
            *shift = KEYSYM_NOT_CHAR;
            return true;
        }
    return false;
}

/* ---- keysym tracker: synthesise Shift so the guest sees the character ---- */

#define LSHIFT 0x2a
#define RSHIFT 0x36
#define ALT    0x38

bool keymap_keysym_event(struct keysym_tracker *t, uint32_t keysym, bool down,
                         uint8_t guest_leds, keymap_emit_fn emit, void *opaque)
{
    struct set1_key k;
    enum keysym_shift how;
    if (!keymap_keysym(keysym, &k, &how))
        return false;

    switch (keysym) {
    case XK_Shift_L:
        t->lshift = down;
        break;
    case XK_Shift_R:
        t->rshift = down;
        break;
    case XK_ISO_Level3_Shift:
    case XK_Mode_switch:
        t->altgr = down;
        break;
    }
    if (how == KEYSYM_NOT_CHAR || !down) {
        emit(opaque, k.code, k.e0, down);
        return true;
    }

    bool want = how == KEYSYM_SHIFTED;
    if (how == KEYSYM_LETTER)
        want = (keysym >= 'A' && keysym <= 'Z') != ((guest_leds & 4) != 0);
    bool held = t->lshift || t->rshift;

    if (t->altgr)
        emit(opaque, ALT, true, false);
    if (want && !held) {
        emit(opaque, LSHIFT, false, true);
        emit(opaque, k.code, false, true);
        emit(opaque, LSHIFT, false, false);
    } else if (!want && held) {
        if (t->lshift)
            emit(opaque, LSHIFT, false, false);
        if (t->rshift)
            emit(opaque, RSHIFT, false, false);
        emit(opaque, k.code, false, true);
        if (t->lshift)
            emit(opaque, LSHIFT, false, true);
        if (t->rshift)
            emit(opaque, RSHIFT, false, true);
    } else {
        emit(opaque, k.code, false, true);
    }
    if (t->altgr)
        emit(opaque, ALT, true, true);
    return true;
}
