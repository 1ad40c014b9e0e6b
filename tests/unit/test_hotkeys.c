/* The Ctrl+Alt hotkey filter (ui/hotkeys.c) on set-1 key events. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ui/hotkeys.h"

/* Feeds "1d+ 38+ 19+ 19- ..." (e0 prefix for E0 keys); returns the keys the
 * guest got, in the same spelling, and the actions, space separated. */
static void feed(struct hotkey_filter *f, const char *events, char *guest, char *actions)
{
    guest[0] = actions[0] = 0;
    const char *p = events;
    while (*p) {
        bool e0 = !strncmp(p, "e0", 2);
        if (e0)
            p += 2;
        unsigned code;
        char dir;
        int n;
        assert_int_equal(sscanf(p, "%2x%c%n", &code, &dir, &n), 2);
        p += n;
        while (*p == ' ')
            p++;
        bool to_guest;
        enum hotkey_action a = hotkey_filter_key(f, (int)code, e0, dir == '+', &to_guest);
        if (to_guest)
            sprintf(guest + strlen(guest), "%s%s%02x%c", guest[0] ? " " : "", e0 ? "e0" : "", code, dir);
        if (a != HOTKEY_NONE)
            sprintf(actions + strlen(actions), "%s%s", actions[0] ? "," : "", hotkey_action_name(a));
    }
}

static void check(const char *events, const char *want_guest, const char *want_actions)
{
    struct hotkey_filter f = { 0 };
    char guest[512], actions[256];
    feed(&f, events, guest, actions);
    assert_string_equal(guest, want_guest);
    assert_string_equal(actions, want_actions);
}

static void actions_need_ctrl_and_alt(void **state)
{
    check("1d+ 38+ 19+ 19- 38- 1d-", "1d+ 38+ 38- 1d-", "pause");
    check("1d+ 1f+ 1f- 1d-", "1d+ 1f+ 1f- 1d-", "");                /* Ctrl+S is the guest's */
    check("38+ 13+ 13- 38-", "38+ 13+ 13- 38-", "");                /* Alt+R too */
    check("19+ 19-", "19+ 19-", "");
    /* either Ctrl, either Alt */
    check("e01d+ e038+ 10+ 10- e038- e01d-", "e01d+ e038+ e038- e01d-", "power off");
    check("e01d+ 38+ 1f+ 1f- 38- e01d-", "e01d+ 38+ 38- e01d-", "snapshot");
    check("1d+ 38+ 13+ 13- 21+ 21- 12+ 12- 1c+ 1c- e01c+ e01c- 38- 1d-", "1d+ 38+ 38- 1d-",
          "revert,floppy,CD-ROM,full screen,full screen");
}

static void repeats_and_releases_stay_out(void **state)
{
    /* typematic repeats of an action key: one action, nothing to the guest */
    check("1d+ 38+ 19+ 19+ 19+ 19- 38- 1d-", "1d+ 38+ 38- 1d-", "pause");
    /* modifiers let go before the action key: its release is still eaten */
    check("1d+ 38+ 1f+ 38- 1d- 1f-", "1d+ 38+ 38- 1d-", "snapshot");
    /* a key already down in the guest before Ctrl+Alt: its release goes there
     * (and, being no press, leaves Ctrl+Alt alone) */
    check("19+ 1d+ 38+ 19- 38- 1d-", "19+ 1d+ 38+ 19- 38- 1d-", "release the mouse");
}

static void ctrl_alt_del_and_insert(void **state)
{
    check("1d+ 38+ e053+ e053- 38- 1d-", "1d+ 38+ e053+ e053- 38- 1d-", "Ctrl+Alt+Del");
    /* keypad '.' (53 without E0) is not Del */
    check("1d+ 38+ 53+ 53- 38- 1d-", "1d+ 38+ 53+ 53- 38- 1d-", "");
    check("1d+ 38+ e052+ e052- 38- 1d-", "1d+ 38+ 38- 1d-", "send Ctrl+Alt+Del");
}

static void ctrl_alt_alone_releases_the_mouse(void **state)
{
    check("1d+ 38+ 38- 1d-", "1d+ 38+ 38- 1d-", "release the mouse");
    check("38+ 1d+ 1d- 38-", "38+ 1d+ 1d- 38-", "release the mouse");
    /* not after another key, nor after a hotkey */
    check("1d+ 38+ 1e+ 1e- 38- 1d-", "1d+ 38+ 1e+ 1e- 38- 1d-", "");
    check("1d+ 38+ 19+ 19- 38- 1d-", "1d+ 38+ 38- 1d-", "pause");
    /* modifier repeats do not re-arm it after a key */
    check("1d+ 38+ 1e+ 1e- 38+ 1d+ 38- 1d-", "1d+ 38+ 1e+ 1e- 38+ 1d+ 38- 1d-", "");
    /* Ctrl alone, Alt alone: nothing */
    check("1d+ 1d- 38+ 38-", "1d+ 1d- 38+ 38-", "");
}

static void reset_forgets_held_keys(void **state)
{
    struct hotkey_filter f = { 0 };
    char guest[512], actions[256];
    feed(&f, "1d+ 38+ 19+", guest, actions);
    assert_string_equal(actions, "pause");
    hotkey_filter_reset(&f);
    feed(&f, "19+ 19-", guest, actions);        /* P is the guest's again */
    assert_string_equal(guest, "19+ 19-");
    assert_string_equal(actions, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(actions_need_ctrl_and_alt),
        cmocka_unit_test(repeats_and_releases_stay_out),
        cmocka_unit_test(ctrl_alt_del_and_insert),
        cmocka_unit_test(ctrl_alt_alone_releases_the_mouse),
        cmocka_unit_test(reset_forgets_held_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
