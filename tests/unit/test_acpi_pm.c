/* The PIIX4-style ACPI PM function: timer rate, PM1 registers, SCI, S5. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "devices/acpi_pm.h"
#include "devices/bus.h"
#include "devices/pci.h"
#include "hosted-driver/vclock.h"

#define PMBA 0x600
#define PM1_STS (PMBA + ACPI_PM1_EVT_OFF)
#define PM1_EN (PMBA + ACPI_PM1_EVT_OFF + 2)
#define PM1_CNT (PMBA + ACPI_PM1_CNT_OFF)
#define PM_TMR (PMBA + ACPI_PM_TMR_OFF)
#define GPE0_STS (PMBA + ACPI_GPE0_OFF)
#define GPE0_EN (PMBA + ACPI_GPE0_OFF + 2)

struct env {
    struct vclock *clk;
    struct bus *b;
    struct pci_bus *pb;
    struct acpi_pm *pm;
    int level9, edges9, other_lines;
};

static void sink(void *opaque, int line, int level)
{
    struct env *e = opaque;
    if (line != ACPI_PM_SCI_IRQ) {
        e->other_lines++;
        return;
    }
    if (level && !e->level9)
        e->edges9++;
    e->level9 = level;
}

/* What SeaBIOS does: PMBA, then the I/O enable in PMREGMISC. */
static void map_at(struct env *e, uint16_t base)
{
    pci_config_write(e->pb, ACPI_PM_DEVFN, 0x40, base | 1, 4);
    pci_config_write(e->pb, ACPI_PM_DEVFN, 0x80, 1, 1);
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->clk = vclock_new(true, 1);
    e->b = bus_new(e->clk);
    bus_set_irq_sink(e->b, sink, e);
    e->pb = pci_bus_new(e->b);
    e->pm = acpi_pm_new(e->pb, e->b);
    bus_reset_devices(e->b);
    map_at(e, PMBA);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    acpi_pm_free(e->pm);
    pci_bus_free(e->pb);
    bus_free(e->b);
    vclock_free(e->clk);
    free(e);
    return 0;
}

static void run_until(struct env *e, int64_t ns)
{
    while (vclock_next_deadline(e->clk) <= ns) {
        vclock_advance_to(e->clk, vclock_next_deadline(e->clk));
        vclock_run_timers(e->clk);
    }
    vclock_advance_to(e->clk, ns);
    vclock_run_timers(e->clk);
}

static void test_identity(void **state)
{
    struct env *e = *state;
    assert_int_equal(pci_config_read(e->pb, ACPI_PM_DEVFN, 0, 4), 0x71138086);
    assert_int_equal(pci_config_read(e->pb, ACPI_PM_DEVFN, 0x0a, 2), 0x0680);
    /* APMC_EN already set, so SeaBIOS does not try to relocate SMM. */
    assert_int_equal(pci_config_read(e->pb, ACPI_PM_DEVFN, 0x5b, 1) & 0x02, 0x02);
    assert_int_equal(pci_config_read(e->pb, ACPI_PM_DEVFN, 0x40, 4), PMBA | 1);
}

/* The count follows the virtual clock at 3.579545 MHz and wraps at 24 bits. */
static void test_timer_rate(void **state)
{
    struct env *e = *state;
    int64_t t0 = 1234567;
    run_until(e, t0);
    uint32_t c0 = bus_pio_read(e->b, PM_TMR, 4);
    assert_int_equal(c0, (uint32_t)((double)t0 * ACPI_PM_TIMER_HZ / 1e9) & 0xffffff);
    for (int secs = 1; secs <= 10; secs += 3) {
        run_until(e, t0 + (int64_t)secs * NS_PER_SEC);
        uint32_t c = bus_pio_read(e->b, PM_TMR, 4);
        assert_true(c <= 0xffffff);
        uint32_t elapsed = (c - c0) & 0xffffff;
        uint32_t want = (uint32_t)((int64_t)secs * ACPI_PM_TIMER_HZ) & 0xffffff;
        assert_true(elapsed == want || elapsed == ((want + 1) & 0xffffff));
    }
    /* A 16-bit read gives the low half of the same count. */
    uint32_t full = bus_pio_read(e->b, PM_TMR, 4);
    assert_int_equal(bus_pio_read(e->b, PM_TMR, 2), full & 0xffff);
    /* Writes to the timer are ignored. */
    bus_pio_write(e->b, PM_TMR, 0, 4);
    assert_int_equal(bus_pio_read(e->b, PM_TMR, 4), full);
}

static void test_pm1_write_one_to_clear(void **state)
{
    struct env *e = *state;
    acpi_pm_power_button(e->pm);
    assert_int_equal(bus_pio_read(e->b, PM1_STS, 2) & ACPI_PM1_PWRBTN, ACPI_PM1_PWRBTN);
    bus_pio_write(e->b, PM1_STS, 0, 2);                        /* zeros change nothing */
    bus_pio_write(e->b, PM1_STS, ACPI_PM1_TMROF, 2);           /* another bit */
    assert_int_equal(bus_pio_read(e->b, PM1_STS, 2) & ACPI_PM1_PWRBTN, ACPI_PM1_PWRBTN);
    bus_pio_write(e->b, PM1_STS + 1, ACPI_PM1_PWRBTN >> 8, 1); /* byte access to the high half */
    assert_int_equal(bus_pio_read(e->b, PM1_STS, 2) & ACPI_PM1_PWRBTN, 0);
    /* Enables are plain read/write, limited to the bits that exist. */
    bus_pio_write(e->b, PM1_EN, 0xffff, 2);
    assert_int_equal(bus_pio_read(e->b, PM1_EN, 2),
                     ACPI_PM1_TMROF | ACPI_PM1_GBL | ACPI_PM1_PWRBTN | ACPI_PM1_RTC);
    /* GPE0: status write-one-to-clear too (nothing sets it; check it stays 0). */
    bus_pio_write(e->b, GPE0_EN, 0x00ff, 2);
    assert_int_equal(bus_pio_read(e->b, GPE0_EN, 2), 0x00ff);
    assert_int_equal(bus_pio_read(e->b, GPE0_STS, 2), 0);
}

/* SCI: IRQ 9, a level that stays high until the status bit is cleared, and
 * only while SCI_EN is set (the ACPI_ENABLE handshake through SMI_CMD). */
static void test_sci_level(void **state)
{
    struct env *e = *state;
    bus_pio_write(e->b, PM1_EN, ACPI_PM1_PWRBTN, 2);
    acpi_pm_power_button(e->pm);
    assert_int_equal(e->level9, 0);                      /* SCI_EN off: legacy mode */
    bus_pio_write(e->b, ACPI_SMI_CMD_PORT, ACPI_ENABLE_CMD, 1);
    assert_int_equal(bus_pio_read(e->b, PM1_CNT, 2) & ACPI_PM1_SCI_EN, ACPI_PM1_SCI_EN);
    assert_int_equal(e->level9, 1);
    assert_int_equal(e->edges9, 1);
    acpi_pm_power_button(e->pm);                         /* still high, no new edge */
    assert_int_equal(e->level9, 1);
    assert_int_equal(e->edges9, 1);
    bus_pio_write(e->b, PM1_STS, ACPI_PM1_PWRBTN, 2);
    assert_int_equal(e->level9, 0);
    /* Disabled source: status is set, no SCI. */
    bus_pio_write(e->b, PM1_EN, 0, 2);
    acpi_pm_power_button(e->pm);
    assert_int_equal(e->level9, 0);
    bus_pio_write(e->b, PM1_EN, ACPI_PM1_PWRBTN, 2);
    assert_int_equal(e->level9, 1);
    bus_pio_write(e->b, ACPI_SMI_CMD_PORT, ACPI_DISABLE_CMD, 1);
    assert_int_equal(e->level9, 0);
    assert_int_equal(bus_pio_read(e->b, ACPI_SMI_CMD_PORT, 1), ACPI_DISABLE_CMD);
    assert_int_equal(e->other_lines, 0);
}

/* Timer overflow: TMROF_STS when bit 23 changes, the SCI if enabled. */
static void test_timer_overflow_sci(void **state)
{
    struct env *e = *state;
    bus_pio_write(e->b, PM1_CNT, ACPI_PM1_SCI_EN, 2);
    bus_pio_write(e->b, PM1_EN, ACPI_PM1_TMROF, 2);
    int64_t flip_ns = (int64_t)((double)(1 << 23) * 1e9 / ACPI_PM_TIMER_HZ);
    run_until(e, flip_ns - 1000);
    assert_int_equal(e->level9, 0);
    assert_int_equal(bus_pio_read(e->b, PM1_STS, 2) & ACPI_PM1_TMROF, 0);
    run_until(e, flip_ns + 1000);
    assert_int_equal(e->level9, 1);
    assert_int_equal(bus_pio_read(e->b, PM1_STS, 2) & ACPI_PM1_TMROF, ACPI_PM1_TMROF);
    assert_true(bus_pio_read(e->b, PM_TMR, 4) >= 1u << 23);
    bus_pio_write(e->b, PM1_STS, ACPI_PM1_TMROF, 2);
    assert_int_equal(e->level9, 0);
    /* The next one: the counter wraps to 0 at 2^24. */
    run_until(e, 2 * flip_ns + 1000);
    assert_int_equal(e->level9, 1);
    assert_true(bus_pio_read(e->b, PM_TMR, 4) < 1u << 22);
}

static void test_s5_powers_off(void **state)
{
    struct env *e = *state;
    int status = -1;
    /* Another sleep type with SLP_EN: not offered, nothing happens. */
    bus_pio_write(e->b, PM1_CNT, (1 << ACPI_PM1_SLP_TYP_SHIFT) | ACPI_PM1_SLP_EN, 2);
    assert_int_equal(bus_pending_request(e->b, &status), BUS_REQ_NONE);
    /* SLP_TYP alone: nothing either; SLP_EN reads back as 0. */
    bus_pio_write(e->b, PM1_CNT, ACPI_SLP_TYP_SOFT_OFF << ACPI_PM1_SLP_TYP_SHIFT | ACPI_PM1_SCI_EN, 2);
    assert_int_equal(bus_pending_request(e->b, &status), BUS_REQ_NONE);
    assert_int_equal(bus_pio_read(e->b, PM1_CNT, 2) & ACPI_PM1_SLP_EN, 0);
    /* Linux's sequence: SLP_TYP, then SLP_TYP | SLP_EN (high byte only here). */
    bus_pio_write(e->b, PM1_CNT + 1, (ACPI_SLP_TYP_SOFT_OFF << ACPI_PM1_SLP_TYP_SHIFT | ACPI_PM1_SLP_EN) >> 8, 1);
    assert_int_equal(bus_pending_request(e->b, &status), BUS_REQ_POWEROFF);
    assert_int_equal(status, 0);
}

/* The block decodes only with PMREGMISC's enable, at PMBA, and moves with it. */
static void test_decode(void **state)
{
    struct env *e = *state;
    pci_config_write(e->pb, ACPI_PM_DEVFN, 0x80, 0, 1);
    assert_int_equal(bus_pio_read(e->b, PM1_CNT, 2), 0xffff);
    map_at(e, 0x700);
    assert_int_equal(bus_pio_read(e->b, PM1_CNT, 2), 0xffff);
    bus_pio_write(e->b, 0x700 + ACPI_PM1_CNT_OFF, ACPI_PM1_SCI_EN, 2);
    assert_int_equal(bus_pio_read(e->b, 0x700 + ACPI_PM1_CNT_OFF, 2), ACPI_PM1_SCI_EN);
    /* A machine reset: decode off, registers back to 0. */
    bus_reset_devices(e->b);
    assert_int_equal(bus_pio_read(e->b, 0x700 + ACPI_PM1_CNT_OFF, 2), 0xffff);
    map_at(e, PMBA);
    assert_int_equal(bus_pio_read(e->b, PM1_CNT, 2), 0);
}

/* Garbage from the guest: every port of the block and the config space with
 * every size; nothing but IRQ 9 moves, and the PM timer still counts. */
static void test_guest_garbage(void **state)
{
    struct env *e = *state;
    uint32_t x = 12345;
    for (int round = 0; round < 20000; round++) {
        x = x * 1103515245u + 12345u;
        int size = 1 << (x >> 29 & 1 ? 2 : x >> 28 & 1);
        uint16_t port = PMBA + (x >> 8) % (ACPI_PM_LEN + 4);
        uint32_t val = x ^ (x << 7);
        if (x & 0x10)
            bus_pio_write(e->b, port, val, size);
        else
            (void)bus_pio_read(e->b, port, size);
        if ((x & 0xff) == 0x42)
            bus_pio_write(e->b, ACPI_SMI_CMD_PORT, val, size);
        if ((x & 0x3ff) == 0x17)
            pci_config_write(e->pb, ACPI_PM_DEVFN, (x >> 12) & 0xff, val, size);
        if ((x & 0xfff) == 0x99)
            map_at(e, PMBA);
        vclock_account_insns(e->clk, 1000);
        vclock_run_timers(e->clk);
        bus_clear_request(e->b);
    }
    assert_int_equal(e->other_lines, 0);
    map_at(e, PMBA);
    uint32_t t0 = bus_pio_read(e->b, PM_TMR, 4);
    run_until(e, vclock_now(e->clk) + NS_PER_SEC / 10);
    uint32_t t1 = bus_pio_read(e->b, PM_TMR, 4);
    assert_true(((t1 - t0) & 0xffffff) >= ACPI_PM_TIMER_HZ / 10 - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pm1_write_one_to_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sci_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_overflow_sci, setup, teardown),
        cmocka_unit_test_setup_teardown(test_s5_powers_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_garbage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
