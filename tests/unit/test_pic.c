/* 8259A pair driven through its ports, the way firmware and OSes do. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "devices/bus.h"
#include "devices/pic.h"
#include "hosted-driver/vclock.h"

struct env {
    struct vclock *clk;
    struct bus *b;
    struct pic *p;
};

/* The sequence SeaBIOS (pic_setup) and Linux use: ICW1 edge+ICW4,
 * vector bases 0x08/0x70 (BIOS) or as given, cascade on IR2, 8086 mode. */
static void program(struct bus *b, uint8_t mbase, uint8_t sbase, uint8_t icw4)
{
    bus_pio_write(b, 0x20, 0x11, 1);
    bus_pio_write(b, 0xa0, 0x11, 1);
    bus_pio_write(b, 0x21, mbase, 1);
    bus_pio_write(b, 0xa1, sbase, 1);
    bus_pio_write(b, 0x21, 0x04, 1);
    bus_pio_write(b, 0xa1, 0x02, 1);
    bus_pio_write(b, 0x21, icw4, 1);
    bus_pio_write(b, 0xa1, icw4, 1);
    bus_pio_write(b, 0x21, 0x00, 1);   /* unmask all */
    bus_pio_write(b, 0xa1, 0x00, 1);
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->clk = vclock_new(true, 1);
    e->b = bus_new(e->clk);
    e->p = pic_new(e->b);
    bus_reset_devices(e->b);
    program(e->b, 0x08, 0x70, 0x01);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    bus_free(e->b);
    pic_free(e->p);
    vclock_free(e->clk);
    free(e);
    return 0;
}

static void eoi_master(struct bus *b) { bus_pio_write(b, 0x20, 0x20, 1); }
static void eoi_slave(struct bus *b) { bus_pio_write(b, 0xa0, 0x20, 1); }

static uint8_t read_isr(struct bus *b, uint16_t port)
{
    bus_pio_write(b, port, 0x0b, 1);
    uint8_t v = bus_pio_read(b, port, 1);
    bus_pio_write(b, port, 0x0a, 1);
    return v;
}

static void test_master_vector_and_eoi(void **state)
{
    struct env *e = *state;
    struct bus *b = e->b;
    assert_false(bus_intr_pending(b));
    irq_set(b, 1, 1);
    assert_true(bus_intr_pending(b));
    assert_int_equal(bus_pio_read(b, 0x20, 1), 0x02);   /* IRR after OCW3 default */
    assert_int_equal(bus_intr_ack(b), 0x09);
    assert_false(bus_intr_pending(b));
    assert_int_equal(read_isr(b, 0x20), 0x02);
    irq_set(b, 1, 0);
    eoi_master(b);
    assert_int_equal(read_isr(b, 0x20), 0x00);
}

static void test_priority_and_nesting(void **state)
{
    struct env *e = *state;
    struct bus *b = e->b;
    irq_set(b, 4, 1);
    irq_set(b, 3, 1);
    assert_int_equal(bus_intr_ack(b), 0x0b);   /* IRQ3 beats IRQ4 */
    /* IRQ4 is lower priority than the IRQ3 in service: INT stays low. */
    assert_false(bus_intr_pending(b));
    /* A higher priority request nests. */
    irq_set(b, 0, 1);
    assert_true(bus_intr_pending(b));
    assert_int_equal(bus_intr_ack(b), 0x08);
    eoi_master(b);                              /* clears IRQ0 (highest in service) */
    assert_int_equal(read_isr(b, 0x20), 0x08);
    assert_false(bus_intr_pending(b));
    eoi_master(b);                              /* clears IRQ3 */
    assert_true(bus_intr_pending(b));
    assert_int_equal(bus_intr_ack(b), 0x0c);
}

static void test_mask(void **state)
{
    struct env *e = *state;
    struct bus *b = e->b;
    bus_pio_write(b, 0x21, 0xef, 1);   /* only IRQ4 */
    assert_int_equal(bus_pio_read(b, 0x21, 1), 0xef);
    irq_set(b, 3, 1);
    assert_false(bus_intr_pending(b));
    irq_set(b, 4, 1);
    assert_int_equal(bus_intr_ack(b), 0x0c);
    eoi_master(b);
    bus_pio_write(b, 0x21, 0x00, 1);
    /* IRQ3's edge was latched while masked. */
    assert_int_equal(bus_intr_ack(b), 0x0b);
}

static void test_cascade(void **state)
{
    struct env *e = *state;
    struct bus *b = e->b;
    irq_set(b, 14, 1);
    irq_set(b, 5, 1);
    assert_true(bus_intr_pending(b));
    /* IR2 (cascade) outranks IR5. */
    assert_int_equal(bus_intr_ack(b), 0x76);
    assert_int_equal(read_isr(b, 0x20), 0x04);
    assert_int_equal(read_isr(b, 0xa0), 0x40);
    assert_false(bus_intr_pending(b));
    eoi_slave(b);
    eoi_master(b);
    assert_int_equal(bus_intr_ack(b), 0x0d);
    eoi_master(b);
    /* irq_set(2) is routed to IRQ9 as on an AT bus. */
    irq_set(b, 2, 1);
    assert_int_equal(bus_intr_ack(b), 0x71);
}

static void test_spurious(void **state)
{
    struct env *e = *state;
    struct bus *b = e->b;
    /* INTA with nothing pending: IR7 vector, no ISR bit. */
    assert_int_equal(bus_intr_ack(b), 0x0f);
    assert_int_equal(read_isr(b, 0x20), 0x00);
    /* Level-triggered IRQ10 that drops before INTA. */
    bus_pio_write(b, 0x4d1, 0x04, 1);
    assert_int_equal(bus_pio_read(b, 0x4d1, 1), 0x04);
    irq_set(b, 10, 1);
    assert_true(bus_intr_pending(b));
    irq_set(b, 10, 0);
    assert_false(bus_intr_pending(b));
    assert_int_equal(bus_intr_ack(b), 0x0f);
}

static void test_level_and_elcr_mask(void **state)
{
    struct env *e = *state;
    struct bus *b = e->b;
    bus_pio_write(b, 0x4d0, 0xff, 1);
    bus_pio_write(b, 0x4d1, 0xff, 1);
    assert_int_equal(bus_pio_read(b, 0x4d0, 1), 0xf8);   /* IRQ0-2 edge only */
    assert_int_equal(bus_pio_read(b, 0x4d1, 1), 0xde);   /* IRQ8, 13 edge only */
    bus_pio_write(b, 0x4d0, 0x0820, 2);
    assert_int_equal(bus_pio_read(b, 0x4d0, 2), 0x0820);

    irq_set(b, 11, 1);
    assert_int_equal(bus_intr_ack(b), 0x73);
    eoi_slave(b);
    eoi_master(b);
    /* Still asserted: a level input requests again right after EOI. */
    assert_true(bus_intr_pending(b));
    assert_int_equal(bus_intr_ack(b), 0x73);
    irq_set(b, 11, 0);
    eoi_slave(b);
    eoi_master(b);
    assert_false(bus_intr_pending(b));

    /* An edge input pulsed once is delivered once. */
    irq_set(b, 12, 1);
    irq_set(b, 12, 0);
    assert_int_equal(bus_intr_ack(b), 0x74);
    eoi_slave(b);
    eoi_master(b);
    assert_false(bus_intr_pending(b));
}

static void test_auto_eoi(void **state)
{
    struct env *e = *state;
    struct bus *b = e->b;
    program(b, 0x20, 0x28, 0x03);   /* AEOI */
    irq_set(b, 0, 1);
    assert_int_equal(bus_intr_ack(b), 0x20);
    assert_int_equal(read_isr(b, 0x20), 0x00);
    irq_set(b, 0, 0);
    irq_set(b, 0, 1);
    assert_int_equal(bus_intr_ack(b), 0x20);
    /* Two slave requests back to back: the second survives the first INTA. */
    irq_set(b, 8, 1);
    irq_set(b, 9, 1);
    assert_int_equal(bus_intr_ack(b), 0x28);
    assert_true(bus_intr_pending(b));
    assert_int_equal(bus_intr_ack(b), 0x29);
    assert_false(bus_intr_pending(b));
}

static void test_specific_eoi_and_rotation(void **state)
{
    struct env *e = *state;
    struct bus *b = e->b;
    irq_set(b, 3, 1);
    irq_set(b, 4, 1);
    assert_int_equal(bus_intr_ack(b), 0x0b);
    bus_pio_write(b, 0x20, 0x63, 1);          /* specific EOI IR3 */
    assert_int_equal(read_isr(b, 0x20), 0x00);
    assert_int_equal(bus_intr_ack(b), 0x0c);
    bus_pio_write(b, 0x20, 0xa0, 1);          /* rotate on non-specific EOI: IR4 lowest */
    irq_set(b, 3, 0);
    irq_set(b, 4, 0);
    irq_set(b, 3, 1);
    irq_set(b, 6, 1);
    /* Priority order is now 5,6,7,0,1,2,3,4: IR6 beats IR3. */
    assert_int_equal(bus_intr_ack(b), 0x0e);
    eoi_master(b);
    /* Set priority: IR2 lowest -> IR3 highest. */
    bus_pio_write(b, 0x20, 0xc2, 1);
    irq_set(b, 7, 1);
    assert_int_equal(bus_intr_ack(b), 0x0b);
}

static void test_poll(void **state)
{
    struct env *e = *state;
    struct bus *b = e->b;
    bus_pio_write(b, 0x20, 0x0c, 1);        /* OCW3 poll */
    assert_int_equal(bus_pio_read(b, 0x20, 1), 0x00);
    irq_set(b, 5, 1);
    bus_pio_write(b, 0x20, 0x0c, 1);
    assert_int_equal(bus_pio_read(b, 0x20, 1), 0x85);
    assert_int_equal(read_isr(b, 0x20), 0x20);
}

static void test_reinit_clears(void **state)
{
    struct env *e = *state;
    struct bus *b = e->b;
    irq_set(b, 6, 1);
    assert_true(bus_intr_pending(b));
    program(b, 0x08, 0x70, 0x01);
    /* ICW1 clears the edge latch: the still-high line needs a new edge. */
    assert_false(bus_intr_pending(b));
    irq_set(b, 6, 0);
    irq_set(b, 6, 1);
    assert_int_equal(bus_intr_ack(b), 0x0e);
    struct pic_regs r;
    pic_get_regs(e->p, 0, &r);
    assert_int_equal(r.isr, 0x40);
    assert_int_equal(r.vector_base, 0x08);
}

static void test_special_mask(void **state)
{
    struct env *e = *state;
    struct bus *b = e->b;
    irq_set(b, 1, 1);
    assert_int_equal(bus_intr_ack(b), 0x09);
    irq_set(b, 5, 1);
    assert_false(bus_intr_pending(b));       /* blocked by IR1 in service */
    bus_pio_write(b, 0x21, 0x02, 1);         /* mask IR1 */
    bus_pio_write(b, 0x20, 0x68, 1);         /* set special mask mode */
    assert_true(bus_intr_pending(b));
    assert_int_equal(bus_intr_ack(b), 0x0d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_master_vector_and_eoi, setup, teardown),
        cmocka_unit_test_setup_teardown(test_priority_and_nesting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cascade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spurious, setup, teardown),
        cmocka_unit_test_setup_teardown(test_level_and_elcr_mask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_eoi, setup, teardown),
        cmocka_unit_test_setup_teardown(test_specific_eoi_and_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reinit_clears, setup, teardown),
        cmocka_unit_test_setup_teardown(test_special_mask, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
