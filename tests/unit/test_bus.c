/* Unit tests for the bus: port/MMIO dispatch, IRQ forwarding, requests, A20. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "devices/bus.h"
#include "hosted-driver/vclock.h"

struct rec {
    uint16_t last_port;
    uint32_t last_addr;
    uint32_t last_val;
    int last_size;
    int writes;
    uint32_t read_val;
};

static uint32_t rec_read(void *opaque, uint16_t port, int size)
{
    struct rec *r = opaque;
    r->last_port = port;
    r->last_size = size;
    return r->read_val;
}

static void rec_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct rec *r = opaque;
    r->last_port = port;
    r->last_val = val;
    r->last_size = size;
    r->writes++;
}

static void test_unclaimed_ports(void **state)
{
    struct bus *b = bus_new(NULL);
    assert_int_equal(bus_pio_read(b, 0x1234, 1), 0xff);
    assert_int_equal(bus_pio_read(b, 0x1234, 2), 0xffff);
    assert_int_equal(bus_pio_read(b, 0x1234, 4), 0xffffffffu);
    bus_pio_write(b, 0x1234, 0x55, 1); /* must not crash */
    bus_free(b);
}

static void test_pio_dispatch_and_override(void **state)
{
    struct bus *b = bus_new(NULL);
    struct rec a = { .read_val = 0x12345678 }, c = { .read_val = 0xabcd };
    bus_register_pio(b, 0x3f8, 8, &a, rec_read, rec_write);
    assert_int_equal(bus_pio_read(b, 0x3fa, 1), 0x78);   /* truncated to size */
    assert_int_equal(a.last_port, 0x3fa);
    assert_int_equal(bus_pio_read(b, 0x3fc, 4), 0x12345678);
    bus_pio_write(b, 0x3ff, 0x1ff, 1);
    assert_int_equal(a.last_val, 0xff);
    assert_int_equal(a.last_port, 0x3ff);
    assert_int_equal(bus_pio_read(b, 0x400, 1), 0xff);   /* one past the end */

    /* A later registration of an overlapping range wins for its ports only. */
    bus_register_pio(b, 0x3fc, 2, &c, rec_read, rec_write);
    assert_int_equal(bus_pio_read(b, 0x3fc, 2), 0xabcd);
    assert_int_equal(bus_pio_read(b, 0x3fe, 1), 0x78);
    bus_pio_write(b, 0x3fd, 0x42, 2);
    assert_int_equal(c.last_val, 0x42);
    assert_int_equal(c.last_size, 2);
    assert_int_equal(a.writes, 1);

    /* Removing a claim removes only that claim: c still owns its ports. */
    bus_unregister_pio(b, 0x3f8, 8);
    assert_int_equal(bus_pio_read(b, 0x3fc, 1), 0xcd);
    assert_int_equal(bus_pio_read(b, 0x3f8, 1), 0xff);
    assert_int_equal(bus_pio_read(b, 0x3fe, 1), 0xff);
    bus_unregister_pio(b, 0x3fc, 2);
    assert_int_equal(bus_pio_read(b, 0x3fc, 1), 0xff);
    bus_free(b);
}

static void test_last_port(void **state)
{
    struct bus *b = bus_new(NULL);
    struct rec a = { .read_val = 0x5a };
    bus_register_pio(b, 0xfffe, 2, &a, rec_read, rec_write);
    assert_int_equal(bus_pio_read(b, 0xffff, 1), 0x5a);
    bus_free(b);
}

static uint32_t mm_read(void *opaque, uint32_t addr, int size)
{
    return addr ^ 0xa5a5a5a5u;
}

static void mm_write(void *opaque, uint32_t addr, uint32_t val, int size)
{
    struct rec *r = opaque;
    r->last_val = val;
    r->last_addr = addr;
    r->writes++;
}

static void test_mmio(void **state)
{
    struct bus *b = bus_new(NULL);
    struct rec r = { 0 };
    uint32_t v = 0;
    bus_register_mmio(b, 0xa0000, 0x20000, &r, mm_read, mm_write);
    assert_false(bus_mmio_read(b, 0x9ffff, 1, &v));
    assert_true(bus_mmio_read(b, 0xa0010, 4, &v));
    assert_int_equal(v, 0x10 ^ 0xa5a5a5a5u);
    assert_true(bus_mmio_read(b, 0xa0010, 1, &v));
    assert_int_equal(v, (0x10 ^ 0xa5a5a5a5u) & 0xff);
    assert_true(bus_mmio_write(b, 0xbfffe, 0x1234, 2));
    assert_int_equal(r.last_addr, 0x1fffe);
    assert_false(bus_mmio_write(b, 0xc0000, 1, 1));
    /* A region at the very top of the address space. */
    bus_register_mmio(b, 0xffe00000, 0x00200000, &r, mm_read, mm_write);
    assert_true(bus_mmio_read(b, 0xffffffff, 1, &v));
    bus_unregister_mmio(b, 0xa0000, 0x20000);
    assert_false(bus_mmio_read(b, 0xa0010, 4, &v));
    bus_free(b);
}

struct irqrec { int line, level, calls; };
static void sink(void *opaque, int line, int level)
{
    struct irqrec *r = opaque;
    r->line = line;
    r->level = level;
    r->calls++;
}
static bool pend(void *opaque) { return true; }
static int ack(void *opaque) { return 0x42; }

static void test_irq_and_intr(void **state)
{
    struct bus *b = bus_new(NULL);
    struct irqrec r = { -1, -1, 0 };
    irq_set(b, 3, 1); /* no sink yet: harmless */
    assert_false(bus_intr_pending(b));
    bus_set_irq_sink(b, sink, &r);
    irq_set(b, 4, 7);
    assert_int_equal(r.line, 4);
    assert_int_equal(r.level, 1);   /* normalized */
    irq_set(b, 4, 0);
    assert_int_equal(r.level, 0);
    assert_int_equal(r.calls, 2);
    bus_set_intr_controller(b, pend, ack, NULL);
    assert_true(bus_intr_pending(b));
    assert_int_equal(bus_intr_ack(b), 0x42);
    bus_free(b);
}

static void test_requests(void **state)
{
    struct bus *b = bus_new(NULL);
    int st = -1;
    assert_int_equal(bus_pending_request(b, &st), BUS_REQ_NONE);
    bus_request(b, BUS_REQ_RESET, 0);
    bus_request(b, BUS_REQ_EXIT, 7);
    bus_request(b, BUS_REQ_RESET, 0);
    assert_int_equal(bus_pending_request(b, &st), BUS_REQ_EXIT);
    assert_int_equal(st, 7);
    bus_clear_request(b);
    assert_int_equal(bus_pending_request(b, &st), BUS_REQ_NONE);
    bus_free(b);
}

static int a20_calls;
static bool a20_last;
static void a20cb(void *opaque, bool en) { a20_calls++; a20_last = en; }

static void test_a20(void **state)
{
    struct bus *b = bus_new(NULL);
    a20_calls = 0;
    assert_true(bus_a20(b));
    bus_set_a20_listener(b, a20cb, NULL);
    bus_set_a20(b, true);             /* no change, no callback */
    assert_int_equal(a20_calls, 0);
    bus_set_a20(b, false);
    assert_int_equal(a20_calls, 1);
    assert_false(a20_last);
    assert_false(bus_a20(b));
    bus_free(b);
}

static int resets[3];
static void dev_reset(void *opaque) { resets[(intptr_t)opaque]++; }

static void test_devices(void **state)
{
    struct bus *b = bus_new(NULL);
    for (intptr_t i = 0; i < 3; i++) {
        struct device d = { .name = "d", .opaque = (void *)i, .reset = i == 1 ? NULL : dev_reset };
        bus_add_device(b, &d);
    }
    bus_reset_devices(b);
    bus_reset_devices(b);
    assert_int_equal(resets[0], 2);
    assert_int_equal(resets[1], 0);
    assert_int_equal(resets[2], 2);
    bus_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unclaimed_ports),
        cmocka_unit_test(test_pio_dispatch_and_override),
        cmocka_unit_test(test_last_port),
        cmocka_unit_test(test_mmio),
        cmocka_unit_test(test_irq_and_intr),
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_a20),
        cmocka_unit_test(test_devices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
