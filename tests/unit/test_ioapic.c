/* I/O APIC driven through IOREGSEL/IOWIN, delivering to the local APIC over
 * the bus, with the 8259 beside it on the same ISA lines. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "devices/bus.h"
#include "devices/ioapic.h"
#include "devices/lapic.h"
#include "devices/pic.h"
#include "hosted-driver/vclock.h"

#define IO IOAPIC_DEFAULT_BASE
#define APIC LAPIC_DEFAULT_BASE
#define MASKED (1u << 16)
#define LEVEL (1u << 15)
#define REMOTE_IRR (1u << 14)

struct env {
    struct vclock *clk;
    struct bus *b;
    struct pic *pic;
    struct lapic *a;
    struct ioapic *io;
};

static void apic_wr(struct env *e, uint32_t reg, uint32_t v)
{
    assert_true(bus_mmio_write(e->b, APIC + reg, v, 4));
}

static uint32_t apic_rd(struct env *e, uint32_t reg)
{
    uint32_t v;
    assert_true(bus_mmio_read(e->b, APIC + reg, 4, &v));
    return v;
}

static uint32_t io_rd(struct env *e, uint8_t index)
{
    uint32_t v;
    assert_true(bus_mmio_write(e->b, IO, index, 4));
    assert_true(bus_mmio_read(e->b, IO + 0x10, 4, &v));
    return v;
}

static void io_wr(struct env *e, uint8_t index, uint32_t v)
{
    assert_true(bus_mmio_write(e->b, IO, index, 4));
    assert_true(bus_mmio_write(e->b, IO + 0x10, v, 4));
}

static void route(struct env *e, int pin, uint32_t low)
{
    io_wr(e, 0x11 + 2 * pin, 0);              /* destination APIC ID 0 */
    io_wr(e, 0x10 + 2 * pin, low);
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->clk = vclock_new(true, 1);
    e->b = bus_new(e->clk);
    e->pic = pic_new(e->b);
    e->a = lapic_new(e->b, NULL, NULL);
    e->io = ioapic_new(e->b, IO);
    bus_reset_devices(e->b);
    /* The kernel's way: the 8259 fully masked, LINT0 masked, APIC enabled. */
    bus_pio_write(e->b, 0x21, 0xff, 1);
    bus_pio_write(e->b, 0xa1, 0xff, 1);
    apic_wr(e, 0xf0, 0x1ff);
    apic_wr(e, 0x350, 0x10700);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    ioapic_free(e->io);
    lapic_free(e->a);
    pic_free(e->pic);
    bus_free(e->b);
    vclock_free(e->clk);
    free(e);
    return 0;
}

static bool pending(struct env *e)
{
    bool p = bus_intr_pending(e->b);
    assert_int_equal(*bus_intr_line(e->b), p);
    return p;
}

static void test_identity_and_reset(void **state)
{
    struct env *e = *state;
    assert_int_equal(io_rd(e, 0x01), 0x170011);
    assert_int_equal(io_rd(e, 0x00), 0);
    io_wr(e, 0x00, 0x0f000000u);
    assert_int_equal(io_rd(e, 0x00), 0x0f000000u);
    assert_int_equal(io_rd(e, 0x02), 0x0f000000u);   /* arbitration ID follows */
    io_wr(e, 0x01, 0);                                /* version is read-only */
    assert_int_equal(io_rd(e, 0x01), 0x170011);
    for (int pin = 0; pin < 24; pin++) {
        assert_int_equal(io_rd(e, 0x10 + 2 * pin), MASKED);
        assert_int_equal(io_rd(e, 0x11 + 2 * pin), 0);
    }
    /* Remote IRR and delivery status are read-only. */
    io_wr(e, 0x10, 0xffffffffu);
    assert_int_equal(io_rd(e, 0x10) & (REMOTE_IRR | (1u << 12)), 0);
    assert_int_equal(io_rd(e, 0x50), 0xffffffffu);    /* past pin 23 */
}

/* ISA IRQ 0 arrives on pin 2; the others on their own pin. */
static void test_isa_routing(void **state)
{
    struct env *e = *state;
    route(e, 2, 0x30);
    route(e, 4, 0x34);
    irq_set(e->b, 0, 1);
    assert_true(pending(e));
    assert_int_equal(bus_intr_ack(e->b), 0x30);
    apic_wr(e, 0xb0, 0);
    irq_set(e->b, 0, 0);
    irq_set(e->b, 4, 1);
    assert_int_equal(bus_intr_ack(e->b), 0x34);
    apic_wr(e, 0xb0, 0);
    assert_false(pending(e));
    /* PIRQA-D are pins 16-19. */
    route(e, 17, LEVEL | 0x57);
    irq_set(e->b, BUS_IRQ_PIRQ_BASE + 1, 1);
    assert_int_equal(bus_intr_ack(e->b), 0x57);
}

/* A masked edge waits in the I/O APIC and arrives when unmasked; a masked
 * level pin sends nothing until unmasked while still high. */
static void test_masking(void **state)
{
    struct env *e = *state;
    route(e, 5, MASKED | 0x45);
    irq_set(e->b, 5, 1);
    irq_set(e->b, 5, 0);
    assert_false(pending(e));
    route(e, 5, 0x45);
    assert_true(pending(e));
    assert_int_equal(bus_intr_ack(e->b), 0x45);
    apic_wr(e, 0xb0, 0);
    /* Edge: one message per rising edge, none for a line held high. */
    irq_set(e->b, 5, 1);
    assert_int_equal(bus_intr_ack(e->b), 0x45);
    apic_wr(e, 0xb0, 0);
    irq_set(e->b, 5, 1);
    assert_false(pending(e));
    irq_set(e->b, 5, 0);
    /* Level, masked while the line rises and falls: nothing left over. */
    route(e, 10, MASKED | LEVEL | 0x6a);
    irq_set(e->b, 10, 1);
    irq_set(e->b, 10, 0);
    route(e, 10, LEVEL | 0x6a);
    assert_false(pending(e));
}

/* Level-triggered: remote IRR holds off re-sending until the local APIC's
 * EOI, which re-sends if the line is still high. */
static void test_level_remote_irr_and_eoi(void **state)
{
    struct env *e = *state;
    route(e, 11, LEVEL | 0x5b);
    irq_set(e->b, 11, 1);
    assert_true(io_rd(e, 0x10 + 22) & REMOTE_IRR);
    assert_int_equal(apic_rd(e, 0x180 + 0x20) & (1u << (0x5b - 64)), 1u << (0x5b - 64));   /* TMR */
    assert_int_equal(bus_intr_ack(e->b), 0x5b);
    assert_false(pending(e));
    /* Still high at the EOI: remote IRR clears and the pin sends again. */
    apic_wr(e, 0xb0, 0);
    assert_true(io_rd(e, 0x10 + 22) & REMOTE_IRR);
    assert_true(pending(e));
    assert_int_equal(bus_intr_ack(e->b), 0x5b);
    /* The device drops the line before the EOI: nothing more. */
    irq_set(e->b, 11, 0);
    assert_true(io_rd(e, 0x10 + 22) & REMOTE_IRR);
    apic_wr(e, 0xb0, 0);
    assert_false(io_rd(e, 0x10 + 22) & REMOTE_IRR);
    assert_false(pending(e));
    /* Masking does not lose a level: unmasked while high, it sends. */
    route(e, 11, MASKED | LEVEL | 0x5b);
    irq_set(e->b, 11, 1);
    assert_false(pending(e));
    route(e, 11, LEVEL | 0x5b);
    assert_int_equal(bus_intr_ack(e->b), 0x5b);
}

/* The 8259 still sees the same ISA line (for LINT0 ExtINT guests). */
static void test_pic_sees_lines_too(void **state)
{
    struct env *e = *state;
    route(e, 1, MASKED | 0x41);
    apic_wr(e, 0x350, 0x700);
    bus_pio_write(e->b, 0x20, 0x11, 1);
    bus_pio_write(e->b, 0x21, 0x08, 1);
    bus_pio_write(e->b, 0x21, 0x04, 1);
    bus_pio_write(e->b, 0x21, 0x01, 1);
    bus_pio_write(e->b, 0x21, 0x00, 1);
    irq_set(e->b, 1, 1);
    assert_int_equal(bus_intr_ack(e->b), 0x09);
}

/* Garbage through the windows never reaches past the 24 pins. */
static void test_garbage(void **state)
{
    struct env *e = *state;
    for (int idx = 0; idx < 256; idx++)
        io_wr(e, idx, 0xa5a5a5a5u);
    for (uint32_t off = 0; off < 0x1000; off++) {
        uint32_t v;
        bus_mmio_read(e->b, IO + off, 1, &v);
        bus_mmio_write(e->b, IO + off, 0x5a, 1);
    }
    irq_set(e->b, 23, 1);
    irq_set(e->b, 24, 1);
    irq_set(e->b, -1, 1);
    pending(e);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_identity_and_reset),
        T(test_isa_routing),
        T(test_masking),
        T(test_level_remote_irr_and_eoi),
        T(test_pic_sees_lines_too),
        T(test_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
