/*
 * The ACPI blobs and their table-loader script: the test runs the script the
 * way SeaBIOS does (romfile_loader.c) at made-up addresses, then checks every
 * checksum and pointer it computes itself.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "monitor/acpi_tables.h"
#include "devices/acpi_pm.h"

#define TABLES_AT 0x0fff0000u     /* 64-byte aligned, like SeaBIOS's high zone */
#define RSDP_AT 0x000f5a30u       /* 16-byte aligned, in the F segment */

struct placed {
    const char *name;
    uint8_t *data;
    uint32_t len, addr;
    bool allocated;
};

struct env {
    struct acpi_build b;
    struct placed files[2];
};

static uint32_t rd32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t rd16(const uint8_t *p) { return p[0] | p[1] << 8; }

static uint8_t sum(const uint8_t *p, uint32_t len)
{
    uint8_t s = 0;
    while (len--)
        s += *p++;
    return s;
}

static struct placed *find(struct env *e, const char *name)
{
    for (int k = 0; k < 2; k++)
        if (!strncmp(e->files[k].name, name, ACPI_LOADER_FILESZ))
            return &e->files[k];
    fail_msg("loader names an unknown file '%.56s'", name);
    return NULL;
}

/* SeaBIOS's interpretation of each command, with its bounds checks as asserts. */
static void run_loader(struct env *e)
{
    const struct acpi_blob *l = &e->b.loader;
    assert_int_equal(l->len % ACPI_LOADER_ENTRY_SIZE, 0);
    for (uint32_t off = 0; off < l->len; off += ACPI_LOADER_ENTRY_SIZE) {
        const uint8_t *c = l->data + off;
        const char *f1 = (const char *)c + 4;
        assert_int_equal(f1[ACPI_LOADER_FILESZ - 1], 0);
        struct placed *p = find(e, f1);
        switch (rd32(c)) {
        case ACPI_LOADER_ALLOCATE: {
            uint32_t align = rd32(c + 4 + ACPI_LOADER_FILESZ);
            uint8_t zone = c[8 + ACPI_LOADER_FILESZ];
            assert_false(p->allocated);
            assert_int_equal(align & (align - 1), 0);
            assert_int_equal(p->addr % align, 0);
            assert_int_equal(zone, p->addr < 0x100000 ? ACPI_LOADER_ZONE_FSEG : ACPI_LOADER_ZONE_HIGH);
            p->allocated = true;
            break;
        }
        case ACPI_LOADER_ADD_POINTER: {
            const char *f2 = f1 + ACPI_LOADER_FILESZ;
            struct placed *src = find(e, f2);
            uint32_t at = rd32(c + 4 + 2 * ACPI_LOADER_FILESZ);
            uint8_t size = c[8 + 2 * ACPI_LOADER_FILESZ];
            assert_true(p->allocated && src->allocated);
            assert_int_equal(size, 4);
            assert_true(at + size <= p->len);
            uint32_t v = rd32(p->data + at) + src->addr;
            memcpy(p->data + at, &v, 4);
            break;
        }
        case ACPI_LOADER_ADD_CHECKSUM: {
            uint32_t at = rd32(c + 4 + ACPI_LOADER_FILESZ);
            uint32_t start = rd32(c + 8 + ACPI_LOADER_FILESZ);
            uint32_t len = rd32(c + 12 + ACPI_LOADER_FILESZ);
            assert_true(p->allocated);
            assert_true(at < p->len && start + len <= p->len && start + len >= start);
            p->data[at] -= sum(p->data + start, len);
            break;
        }
        default:
            fail_msg("unknown loader command %u", rd32(c));
        }
    }
}

static int setup_with(void **state, bool com2)
{
    struct env *e = calloc(1, sizeof(*e));
    struct acpi_config cfg = { .com1 = true, .com2 = com2 };
    acpi_build_tables(&cfg, &e->b);
    e->files[0] = (struct placed){ ACPI_FILE_TABLES, e->b.tables.data, e->b.tables.len, TABLES_AT, false };
    e->files[1] = (struct placed){ ACPI_FILE_RSDP, e->b.rsdp.data, e->b.rsdp.len, RSDP_AT, false };
    run_loader(e);
    *state = e;
    return 0;
}

static int setup(void **state) { return setup_with(state, false); }
static int setup_com2(void **state) { return setup_with(state, true); }

static int teardown(void **state)
{
    struct env *e = *state;
    acpi_build_free(&e->b);
    free(e);
    return 0;
}

/* The table at guest address `addr`, checked for signature, bounds and checksum. */
static const uint8_t *table_at(struct env *e, uint32_t addr, const char *sig)
{
    assert_true(addr >= TABLES_AT && addr - TABLES_AT + 36 <= e->b.tables.len);
    const uint8_t *t = e->b.tables.data + (addr - TABLES_AT);
    assert_memory_equal(t, sig, 4);
    uint32_t len = rd32(t + 4);
    assert_true(addr - TABLES_AT + len <= e->b.tables.len);
    if (strcmp(sig, "FACS"))
        assert_int_equal(sum(t, len), 0);
    return t;
}

static const uint8_t *rsdt_entry(struct env *e, const char *sig)
{
    const uint8_t *rsdp = e->b.rsdp.data;
    const uint8_t *rsdt = table_at(e, rd32(rsdp + 16), "RSDT");
    int n = (rd32(rsdt + 4) - 36) / 4;
    for (int k = 0; k < n; k++) {
        uint32_t a = rd32(rsdt + 36 + 4 * k);
        if (!memcmp(e->b.tables.data + (a - TABLES_AT), sig, 4))
            return table_at(e, a, sig);
    }
    fail_msg("RSDT lists no %s", sig);
    return NULL;
}

static void test_rsdp(void **state)
{
    struct env *e = *state;
    const uint8_t *rsdp = e->b.rsdp.data;
    assert_int_equal(e->b.rsdp.len, 20);
    assert_memory_equal(rsdp, "RSD PTR ", 8);
    assert_int_equal(sum(rsdp, 20), 0);
    assert_int_equal(rsdp[15], 0);
    table_at(e, rd32(rsdp + 16), "RSDT");
}

static void test_fadt(void **state)
{
    struct env *e = *state;
    const uint8_t *f = rsdt_entry(e, "FACP");
    assert_int_equal(rd32(f + 4), 244);
    const uint8_t *facs = table_at(e, rd32(f + 36), "FACS");
    assert_int_equal((facs - e->b.tables.data + TABLES_AT) % 64, 0);
    assert_int_equal(rd32(facs + 4), 64);
    table_at(e, rd32(f + 40), "DSDT");
    assert_int_equal(rd16(f + 46), ACPI_PM_SCI_IRQ);
    assert_int_equal(rd32(f + 48), ACPI_SMI_CMD_PORT);
    assert_int_equal(f[52], ACPI_ENABLE_CMD);
    assert_int_equal(f[53], ACPI_DISABLE_CMD);
    assert_int_equal(rd32(f + 56), 0x600);        /* PM1a_EVT_BLK, where SeaBIOS maps PMBA */
    assert_int_equal(rd32(f + 64), 0x604);        /* PM1a_CNT_BLK */
    assert_int_equal(rd32(f + 76), 0x608);        /* PM_TMR_BLK */
    assert_int_equal(f[91], 4);
    assert_int_equal(rd32(f + 112) & (1u << 8), 0);   /* TMR_VAL_EXT clear: 24 bits */
    assert_int_equal(rd32(f + 112) & (1u << 4), 0);   /* fixed-feature power button */
}

static void test_madt(void **state)
{
    struct env *e = *state;
    const uint8_t *m = rsdt_entry(e, "APIC");
    assert_int_equal(rd32(m + 36), 0xfee00000u);
    uint32_t len = rd32(m + 4);
    int lapics = 0, ioapics = 0, irq0_gsi = -1, sci_flags = -1;
    for (uint32_t off = 44; off < len; off += m[off + 1]) {
        assert_true(m[off + 1] >= 2 && off + m[off + 1] <= len);
        switch (m[off]) {
        case 0:
            lapics++;
            assert_int_equal(m[off + 3], 0);
            assert_int_equal(rd32(m + off + 4) & 1, 1);
            break;
        case 1:
            ioapics++;
            assert_int_equal(m[off + 2], 0);
            assert_int_equal(rd32(m + off + 4), 0xfec00000u);
            assert_int_equal(rd32(m + off + 8), 0);
            break;
        case 2:
            if (m[off + 3] == 0)
                irq0_gsi = rd32(m + off + 4);
            if (m[off + 3] == ACPI_PM_SCI_IRQ) {
                assert_int_equal(rd32(m + off + 4), ACPI_PM_SCI_IRQ);
                sci_flags = rd16(m + off + 8);
            }
            break;
        }
    }
    assert_int_equal(lapics, 1);
    assert_int_equal(ioapics, 1);
    assert_int_equal(irq0_gsi, 2);
    assert_int_equal(sci_flags, 0x000d);          /* level, active high */
}

/* The DSDT's COM-port byte follows the machine's UARTs. */
static uint8_t dsdt_comp(struct env *e)
{
    const uint8_t *f = rsdt_entry(e, "FACP");
    const uint8_t *d = table_at(e, rd32(f + 40), "DSDT");
    uint32_t len = rd32(d + 4);
    const uint8_t *p = memmem(d, len, "COMP\x0a", 5);
    assert_non_null(p);
    return p[5];
}

static void test_dsdt_com1(void **state)
{
    assert_int_equal(dsdt_comp(*state), 1);
}

static void test_dsdt_com1_com2(void **state)
{
    assert_int_equal(dsdt_comp(*state), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rsdp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fadt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_madt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dsdt_com1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dsdt_com1_com2, setup_com2, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
