/* 8042 keyboard controller, PS/2 keyboard/mouse and port 0x92 via ports. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "devices/bus.h"
#include "devices/kbc.h"
#include "hosted-driver/vclock.h"

struct env {
    struct vclock *clk;
    struct bus *b;
    struct kbc *k;
    int level[16], edges[16];
    int a20_changes;
};

static void sink(void *opaque, int line, int level)
{
    struct env *e = opaque;
    if (level && !e->level[line])
        e->edges[line]++;
    e->level[line] = level;
}

static void a20cb(void *opaque, bool en)
{
    ((struct env *)opaque)->a20_changes++;
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->clk = vclock_new(true, 1);
    e->b = bus_new(e->clk);
    bus_set_irq_sink(e->b, sink, e);
    bus_set_a20_listener(e->b, a20cb, e);
    e->k = kbc_new(e->b);
    bus_reset_devices(e->b);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    bus_free(e->b);
    kbc_free(e->k);
    vclock_free(e->clk);
    free(e);
    return 0;
}

static uint8_t status(struct env *e) { return bus_pio_read(e->b, 0x64, 1); }
static void cmd(struct env *e, uint8_t c) { bus_pio_write(e->b, 0x64, c, 1); }
static void data(struct env *e, uint8_t v) { bus_pio_write(e->b, 0x60, v, 1); }

/* Let the next byte cross the PS/2 wire, as time passing in the guest would. */
static void wait_wire(struct env *e)
{
    if (vclock_next_deadline(e->clk) != INT64_MAX) {
        vclock_advance_to(e->clk, vclock_next_deadline(e->clk));
        vclock_run_timers(e->clk);
    }
}

/* Read one byte the way a polling driver does; -1 if nothing comes. */
static int get(struct env *e)
{
    if (!(status(e) & 1))
        wait_wire(e);
    if (!(status(e) & 1))
        return -1;
    return bus_pio_read(e->b, 0x60, 1);
}

static void test_self_tests_and_command_byte(void **state)
{
    struct env *e = *state;
    assert_int_equal(status(e) & 0x01, 0);
    cmd(e, 0xaa);
    assert_int_equal(status(e) & 0x0d, 0x0d);   /* OBF, SYS, last write was a command */
    assert_int_equal(get(e), 0x55);
    assert_int_equal(get(e), -1);
    cmd(e, 0xab);
    assert_int_equal(get(e), 0x00);
    cmd(e, 0xa9);
    assert_int_equal(get(e), 0x00);
    cmd(e, 0x20);
    assert_int_equal(get(e), 0x61);
    cmd(e, 0x60);
    data(e, 0x47);
    assert_int_equal(status(e) & 0x08, 0);      /* A2 clear after a data write */
    cmd(e, 0x20);
    assert_int_equal(get(e), 0x47);
    cmd(e, 0xa4);
    assert_int_equal(get(e), 0xf1);
}

static void test_a20_via_output_port(void **state)
{
    struct env *e = *state;
    assert_true(bus_a20(e->b));
    cmd(e, 0xd0);
    assert_int_equal(get(e) & 0x03, 0x03);
    cmd(e, 0xd1);
    data(e, 0xdd);
    assert_false(bus_a20(e->b));
    assert_int_equal(e->a20_changes, 1);
    cmd(e, 0xd0);
    assert_int_equal(get(e) & 0x03, 0x01);
    assert_int_equal(bus_pio_read(e->b, 0x92, 1) & 0x02, 0);
    cmd(e, 0xd1);
    data(e, 0xdf);
    assert_true(bus_a20(e->b));
    assert_int_equal(bus_pending_request(e->b, NULL), BUS_REQ_NONE);
}

static void test_a20_via_port92(void **state)
{
    struct env *e = *state;
    bus_pio_write(e->b, 0x92, 0x00, 1);
    assert_false(bus_a20(e->b));
    assert_int_equal(bus_pio_read(e->b, 0x92, 1), 0x00);
    bus_pio_write(e->b, 0x92, 0x02, 1);
    assert_true(bus_a20(e->b));
    assert_int_equal(bus_pio_read(e->b, 0x92, 1), 0x02);
    assert_int_equal(e->a20_changes, 2);
    assert_int_equal(bus_pending_request(e->b, NULL), BUS_REQ_NONE);
    /* Bit 0 rising: fast reset. */
    bus_pio_write(e->b, 0x92, 0x03, 1);
    assert_int_equal(bus_pending_request(e->b, NULL), BUS_REQ_RESET);
}

static void test_reset_requests(void **state)
{
    struct env *e = *state;
    cmd(e, 0xff);                               /* pulse nothing */
    assert_int_equal(bus_pending_request(e->b, NULL), BUS_REQ_NONE);
    cmd(e, 0xfe);
    assert_int_equal(bus_pending_request(e->b, NULL), BUS_REQ_RESET);
    bus_clear_request(e->b);
    cmd(e, 0xd1);
    data(e, 0xde);                              /* bit 0 low: reset */
    assert_int_equal(bus_pending_request(e->b, NULL), BUS_REQ_RESET);
    bus_clear_request(e->b);
    cmd(e, 0xd1);
    data(e, 0x03);
    assert_int_equal(bus_pending_request(e->b, NULL), BUS_REQ_NONE);
}

static void test_keyboard_commands(void **state)
{
    struct env *e = *state;
    data(e, 0xff);
    assert_int_equal(get(e), 0xfa);
    assert_int_equal(get(e), 0xaa);
    data(e, 0xf2);                              /* translated id */
    assert_int_equal(get(e), 0xfa);
    assert_int_equal(get(e), 0xab);
    assert_int_equal(get(e), 0x41);
    cmd(e, 0x60);
    data(e, 0x21);                              /* no translation */
    data(e, 0xf2);
    assert_int_equal(get(e), 0xfa);
    assert_int_equal(get(e), 0xab);
    assert_int_equal(get(e), 0x83);
    data(e, 0xed);
    assert_int_equal(get(e), 0xfa);
    data(e, 0x05);
    assert_int_equal(get(e), 0xfa);
    assert_int_equal(kbc_leds(e->k), 5);
    data(e, 0xee);
    assert_int_equal(get(e), 0xee);
    data(e, 0xf0);
    data(e, 0x00);
    assert_int_equal(get(e), 0xfa);
    assert_int_equal(get(e), 0xfa);
    assert_int_equal(get(e), 0x02);
    data(e, 0xfe);                              /* resend */
    assert_int_equal(get(e), 0x02);
    data(e, 0xf3);
    data(e, 0x20);
    assert_int_equal(get(e), 0xfa);
    assert_int_equal(get(e), 0xfa);
    data(e, 0x12);                              /* not a command */
    assert_int_equal(get(e), 0xfe);
}

static void test_scancodes(void **state)
{
    struct env *e = *state;
    /* Translated (command byte bit 6): set-1 codes come out. */
    kbc_key_event(e->k, 0x1e, false, true);
    kbc_key_event(e->k, 0x1e, false, false);
    kbc_key_event(e->k, 0x48, true, true);
    kbc_key_event(e->k, 0x48, true, false);
    int want[] = { 0x1e, 0x9e, 0xe0, 0x48, 0xe0, 0xc8 };
    for (int i = 0; i < 6; i++)
        assert_int_equal(get(e), want[i]);
    assert_int_equal(get(e), -1);
    /* Untranslated: raw set 2. */
    cmd(e, 0x60);
    data(e, 0x01);
    kbc_key_event(e->k, 0x1e, false, true);
    kbc_key_event(e->k, 0x1e, false, false);
    kbc_key_event(e->k, 0x1d, true, false);      /* right Ctrl up */
    int want2[] = { 0x1c, 0xf0, 0x1c, 0xe0, 0xf0, 0x14 };
    for (int i = 0; i < 6; i++)
        assert_int_equal(get(e), want2[i]);
    /* Guest selects set 1 on the keyboard itself. */
    data(e, 0xf0);
    data(e, 0x01);
    assert_int_equal(get(e), 0xfa);
    assert_int_equal(get(e), 0xfa);
    kbc_key_event(e->k, 0x2a, false, false);
    assert_int_equal(get(e), 0xaa);
    /* Pause in set 2. */
    data(e, 0xff);
    get(e);
    get(e);
    kbc_key_event(e->k, 0x45, true, true);
    int pause[] = { 0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77 };
    for (int i = 0; i < 8; i++)
        assert_int_equal(get(e), pause[i]);
    /* Scanning disabled: keys are dropped. */
    data(e, 0xf5);
    get(e);
    kbc_key_event(e->k, 0x1e, false, true);
    assert_int_equal(get(e), -1);
}

static void test_translation_round_trip(void **state)
{
    struct env *e = *state;
    /* Every key of the 84/102-key set survives set1 -> set2 -> 8042 -> set1. */
    for (int code = 0x01; code <= 0x58; code++) {
        if (code == 0x55)
            continue;                            /* no key has set-1 code 0x55 */
        kbc_key_event(e->k, code, false, true);
        assert_int_equal(get(e), code);
        kbc_key_event(e->k, code, false, false);
        assert_int_equal(get(e), code | 0x80);
    }
}

static void test_irq1_and_disable(void **state)
{
    struct env *e = *state;
    kbc_key_event(e->k, 0x48, true, true);       /* two bytes */
    assert_int_equal(e->edges[1], 1);
    assert_int_equal(e->level[1], 1);
    assert_int_equal(bus_pio_read(e->b, 0x60, 1), 0xe0);
    assert_int_equal(e->level[1], 0);
    /* A second read inside the handler sees the same byte (INT 9 chaining). */
    assert_int_equal(bus_pio_read(e->b, 0x60, 1), 0xe0);
    assert_int_equal(status(e) & 1, 0);
    vclock_advance_to(e->clk, 249999);
    vclock_run_timers(e->clk);
    assert_int_equal(status(e) & 1, 0);
    vclock_advance_to(e->clk, 250000);
    vclock_run_timers(e->clk);
    assert_int_equal(e->edges[1], 2);            /* next byte: new edge */
    assert_int_equal(bus_pio_read(e->b, 0x60, 1), 0x48);
    assert_int_equal(e->level[1], 0);
    cmd(e, 0xad);                                /* disable keyboard interface */
    kbc_key_event(e->k, 0x10, false, true);
    assert_int_equal(status(e) & 1, 0);
    assert_int_equal(e->edges[1], 2);
    cmd(e, 0xae);
    assert_int_equal(get(e), 0x10);
    assert_int_equal(e->edges[1], 3);
    /* Interrupt disabled in the command byte: data still readable, no IRQ. */
    cmd(e, 0x60);
    data(e, 0x60);
    kbc_key_event(e->k, 0x11, false, true);
    assert_int_equal(e->edges[1], 3);
    assert_int_equal(get(e), 0x11);
    assert_int_equal(e->edges[12], 0);
}

static void test_mouse(void **state)
{
    struct env *e = *state;
    cmd(e, 0x60);
    data(e, 0x43);                               /* both IRQs, aux enabled, translate */
    cmd(e, 0xd4);
    data(e, 0xff);
    assert_int_equal(status(e) & 0x21, 0x21);    /* AUXB */
    assert_int_equal(e->level[12], 1);
    assert_int_equal(get(e), 0xfa);
    assert_int_equal(get(e), 0xaa);
    assert_int_equal(get(e), 0x00);
    assert_int_equal(e->level[12], 0);
    int rates[] = { 200, 100, 80 };
    for (int i = 0; i < 3; i++) {
        cmd(e, 0xd4);
        data(e, 0xf3);
        assert_int_equal(get(e), 0xfa);
        cmd(e, 0xd4);
        data(e, rates[i]);
        assert_int_equal(get(e), 0xfa);
    }
    cmd(e, 0xd4);
    data(e, 0xf2);
    assert_int_equal(get(e), 0xfa);
    assert_int_equal(get(e), 0x03);              /* IntelliMouse */
    kbc_mouse_event(e->k, 5, -3, 0, 1);          /* not enabled yet: nothing */
    assert_int_equal(get(e), -1);
    cmd(e, 0xd4);
    data(e, 0xf4);
    assert_int_equal(get(e), 0xfa);
    assert_true(kbc_mouse_enabled(e->k));
    int before = e->edges[12];
    kbc_mouse_event(e->k, 5, -3, 1, 1);          /* right 5, up 3, wheel 1, left button */
    int pkt[] = { 0x09, 0x05, 0x03, 0x01 };
    for (int i = 0; i < 4; i++)
        assert_int_equal(get(e), pkt[i]);
    assert_int_equal(e->edges[12], before + 4);
    kbc_mouse_event(e->k, -300, 2, 0, 0);        /* split: -256 then -44 */
    int pkt2[] = { 0x38, 0x00, 0xfe, 0x00, 0x18, 0xd4, 0x00, 0x00 };
    for (int i = 0; i < 8; i++)
        assert_int_equal(get(e), pkt2[i]);
    assert_int_equal(get(e), -1);
    cmd(e, 0xd4);
    data(e, 0xe9);                               /* status request */
    assert_int_equal(get(e), 0xfa);
    assert_int_equal(get(e), 0x20);
    assert_int_equal(get(e), 0x02);
    assert_int_equal(get(e), 80);
    /* Aux interface disabled holds mouse bytes back. */
    cmd(e, 0xa7);
    kbc_mouse_event(e->k, 1, 0, 0, 0);
    assert_int_equal(get(e), -1);
    cmd(e, 0xa8);
    assert_int_equal(get(e), 0x08);
}

static void test_write_output_buffers(void **state)
{
    struct env *e = *state;
    cmd(e, 0x60);
    data(e, 0x03);
    cmd(e, 0xd2);
    data(e, 0x5a);
    assert_int_equal(status(e) & 0x21, 0x01);
    assert_int_equal(e->level[1], 1);
    assert_int_equal(get(e), 0x5a);
    cmd(e, 0xd3);
    data(e, 0xa5);
    assert_int_equal(status(e) & 0x21, 0x21);
    assert_int_equal(e->level[12], 1);
    assert_int_equal(get(e), 0xa5);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_self_tests_and_command_byte),
        T(test_a20_via_output_port),
        T(test_a20_via_port92),
        T(test_reset_requests),
        T(test_keyboard_commands),
        T(test_scancodes),
        T(test_translation_round_trip),
        T(test_irq1_and_disable),
        T(test_mouse),
        T(test_write_output_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
