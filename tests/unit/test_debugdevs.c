/* debugcon, isa-debug-exit and the POST ports. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/bus.h"
#include "devices/debugcon.h"
#include "devices/debugexit.h"
#include "devices/post.h"
#include "hosted-driver/chardev.h"

static void test_debugcon(void **state)
{
    char path[64], spec[80], err[128];
    snprintf(path, sizeof(path), "/tmp/rv_test_debugcon_%d", (int)getpid());
    snprintf(spec, sizeof(spec), "file:%s", path);
    struct chardev *cd = chardev_open(spec, err, sizeof(err));
    assert_non_null(cd);
    struct bus *b = bus_new(NULL);
    struct debugcon *d = debugcon_new(b, DEBUGCON_SEABIOS_PORT, cd);
    assert_int_equal(bus_pio_read(b, 0x402, 1), 0xe9);
    const char *msg = "SeaBIOS (version x)\n";
    for (const char *p = msg; *p; p++)
        bus_pio_write(b, 0x402, (uint8_t)*p, 1);
    bus_pio_write(b, 0x402, 0x4121, 2);   /* only the low byte counts */
    chardev_close(cd);
    FILE *f = fopen(path, "r");
    char buf[64] = { 0 };
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    unlink(path);
    assert_int_equal(n, strlen(msg) + 1);
    assert_memory_equal(buf, msg, strlen(msg));
    assert_int_equal(buf[n - 1], '!');
    bus_free(b);
    debugcon_free(d);
}

static void test_debugexit(void **state)
{
    struct bus *b = bus_new(NULL);
    struct debugexit *d = debugexit_new(b, 0xf4);
    int st = 0;
    assert_int_equal(bus_pending_request(b, &st), BUS_REQ_NONE);
    bus_pio_write(b, 0xf4, 0x10, 1);
    assert_int_equal(bus_pending_request(b, &st), BUS_REQ_EXIT);
    assert_int_equal(st, 0x21);
    bus_clear_request(b);
    bus_pio_write(b, 0xf7, 0, 1);         /* inside iosize */
    assert_int_equal(bus_pending_request(b, &st), BUS_REQ_EXIT);
    assert_int_equal(st, 1);
    bus_clear_request(b);
    bus_pio_write(b, 0xf8, 0, 1);         /* outside */
    assert_int_equal(bus_pending_request(b, &st), BUS_REQ_NONE);
    assert_int_equal(bus_pio_read(b, 0xf4, 1), 0xff);
    /* QEMU's own default placement: 0x501, two ports. */
    struct debugexit *q = debugexit_new_sized(b, 0x501, 2);
    bus_pio_write(b, 0x502, 3, 1);
    assert_int_equal(bus_pending_request(b, &st), BUS_REQ_EXIT);
    assert_int_equal(st, 7);
    bus_clear_request(b);
    bus_pio_write(b, 0x503, 3, 1);
    assert_int_equal(bus_pending_request(b, &st), BUS_REQ_NONE);
    bus_free(b);
    debugexit_free(d);
    debugexit_free(q);
}

static void test_post(void **state)
{
    struct bus *b = bus_new(NULL);
    struct post *p = post_new(b, 0x190, false);
    assert_int_equal(post_last(p), 0);
    bus_pio_write(b, 0x80, 0x12, 1);
    assert_int_equal(post_last(p), 0x12);
    assert_int_equal(bus_pio_read(b, 0x80, 1), 0x12);
    bus_pio_write(b, 0x190, 0xee, 1);
    assert_int_equal(post_last(p), 0xee);
    assert_int_equal(bus_pio_read(b, 0x190, 1), 0xee);
    assert_int_equal(post_count(p), 2);
    bus_reset_devices(b);
    assert_int_equal(post_last(p), 0xee);
    bus_free(b);
    post_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_debugcon),
        cmocka_unit_test(test_debugexit),
        cmocka_unit_test(test_post),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
