/*
 * QEMU fw_cfg (x86 I/O-port flavour) driven as SeaBIOS and Linux's
 * qemu_fw_cfg driver drive it: selector 0x510 (16-bit), data 0x511 (8-bit),
 * DMA address 0x514 (high half) / 0x518 (low half, triggers), big-endian
 * FWCfgDmaAccess descriptors in test RAM.  Reference: QEMU
 * docs/specs/fw_cfg.rst.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/fwcfg.h"
#include "hosted-driver/vclock.h"

#define RAM_SIZE (1u << 20)
#define DESC 0x1000            /* where the tests put their FWCfgDmaAccess */
#define BUF 0x2000             /* DMA destination */

#define PORT_SEL 0x510
#define PORT_DATA 0x511
#define PORT_DMA_HI 0x514
#define PORT_DMA_LO 0x518

#define CTL_ERROR 0x01
#define CTL_READ 0x02
#define CTL_SKIP 0x04
#define CTL_SELECT 0x08
#define CTL_WRITE 0x10

struct env {
    struct vclock *clk;
    struct bus *b;
    struct fwcfg *f;
    uint8_t *ram;
    int rw_calls;
};

static bool ram_rw(void *opaque, uint64_t gpa, void *buf, uint32_t len, bool write)
{
    struct env *e = opaque;
    e->rw_calls++;
    if (gpa >= RAM_SIZE || len > RAM_SIZE - gpa)
        return false;
    if (write)
        memcpy(e->ram + gpa, buf, len);
    else
        memcpy(buf, e->ram + gpa, len);
    return true;
}

static const char file_a[] = "first file contents";
static const uint8_t file_b[] = { 1, 2, 3, 4, 5, 6 };

static struct env *make_env(bool dma)
{
    struct env *e = calloc(1, sizeof(*e));
    e->ram = calloc(1, RAM_SIZE);
    e->clk = vclock_new(true, 1);
    e->b = bus_new(e->clk);
    e->f = fwcfg_new(e->b, dma ? ram_rw : NULL, e);
    fwcfg_add_i64(e->f, FW_CFG_RAM_SIZE, 128ull << 20);
    fwcfg_add_i16(e->f, FW_CFG_NB_CPUS, 1);
    fwcfg_add_i16(e->f, FW_CFG_MAX_CPUS, 4);
    fwcfg_add_i32(e->f, 0x10, 0x11223344);
    /* Added out of name order: the directory sorts them. */
    fwcfg_add_file(e->f, "opt/zz", file_b, sizeof(file_b));
    fwcfg_add_file(e->f, "etc/a", file_a, sizeof(file_a) - 1);
    fwcfg_add_file(e->f, "etc/boot-fail-wait", "\x05\x00\x00\x00", 4);
    bus_reset_devices(e->b);
    return e;
}

static int setup(void **state)
{
    *state = make_env(true);
    return 0;
}

static int setup_nodma(void **state)
{
    *state = make_env(false);
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    fwcfg_free(e->f);
    bus_free(e->b);
    vclock_free(e->clk);
    free(e->ram);
    free(e);
    return 0;
}

/* ---- guest-side helpers ---- */

static void sel(struct env *e, uint16_t key) { bus_pio_write(e->b, PORT_SEL, key, 2); }
static uint8_t data8(struct env *e) { return bus_pio_read(e->b, PORT_DATA, 1); }

static void read_data(struct env *e, void *buf, size_t n)
{
    uint8_t *p = buf;
    for (size_t k = 0; k < n; k++)
        p[k] = data8(e);
}

static uint32_t get_be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
static uint16_t get_be16(const uint8_t *p) { return p[0] << 8 | p[1]; }
static void put_be32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

static void put_desc(struct env *e, uint32_t at, uint32_t control, uint32_t len, uint64_t addr)
{
    uint8_t *d = e->ram + at;
    put_be32(d, control);
    put_be32(d + 4, len);
    put_be32(d + 8, addr >> 32);
    put_be32(d + 12, (uint32_t)addr);
}

/* SeaBIOS: outl(cpu_to_be32((u32)&access), 0x518); the transfer completes synchronously. */
static void kick(struct env *e, uint32_t desc)
{
    bus_pio_write(e->b, PORT_DMA_LO, __builtin_bswap32(desc), 4);
}

static uint32_t dma(struct env *e, uint32_t control, uint32_t len, uint64_t addr)
{
    put_desc(e, DESC, control, len, addr);
    kick(e, DESC);
    return get_be32(e->ram + DESC);
}

/* Looks a file up in the directory the way SeaBIOS does; returns its size. */
static uint32_t find_file(struct env *e, const char *name, uint16_t *select)
{
    sel(e, FW_CFG_FILE_DIR);
    uint8_t cnt[4];
    read_data(e, cnt, 4);
    uint32_t n = get_be32(cnt);
    for (uint32_t k = 0; k < n; k++) {
        uint8_t ent[64];
        read_data(e, ent, 64);
        if (!strcmp((const char *)ent + 8, name)) {
            *select = get_be16(ent + 4);
            return get_be32(ent);
        }
    }
    fail_msg("file %s not in the directory", name);
    return 0;
}

/* ---- traditional interface ---- */

static void test_signature(void **state)
{
    struct env *e = *state;
    char sig[5] = { 0 };
    sel(e, FW_CFG_SIGNATURE);
    read_data(e, sig, 4);
    assert_string_equal(sig, "QEMU");
    /* Past the end of the item: zeros. */
    for (int k = 0; k < 8; k++)
        assert_int_equal(data8(e), 0);
}

static void test_id_has_dma_bit(void **state)
{
    struct env *e = *state;
    uint8_t id[4];
    sel(e, FW_CFG_ID);
    read_data(e, id, 4);
    uint32_t v = id[0] | id[1] << 8 | id[2] << 16 | (uint32_t)id[3] << 24;
    assert_int_equal(v & 1, 1);          /* traditional interface: always */
    assert_int_equal(v & 2, 2);          /* DMA */
    /* DMA presence: the address register reads "QEMU CFG" in big-endian byte order. */
    uint32_t hi = bus_pio_read(e->b, PORT_DMA_HI, 4), lo = bus_pio_read(e->b, PORT_DMA_LO, 4);
    assert_int_equal(__builtin_bswap32(hi), 0x51454d55);
    assert_int_equal(__builtin_bswap32(lo), 0x20434647);
}

static void test_no_dma_without_accessor(void **state)
{
    struct env *e = *state;
    uint8_t id[4];
    sel(e, FW_CFG_ID);
    read_data(e, id, 4);
    assert_int_equal(id[0], 1);
    assert_int_equal(id[1] | id[2] | id[3], 0);
    assert_int_equal(bus_pio_read(e->b, PORT_DMA_HI, 4), 0xffffffff);
    assert_int_equal(bus_pio_read(e->b, PORT_DMA_LO, 4), 0xffffffff);
    put_desc(e, DESC, FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ, 4, BUF);
    kick(e, DESC);
    assert_int_equal(get_be32(e->ram + DESC), FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ);
    assert_int_equal(e->rw_calls, 0);
    /* The traditional interface still works. */
    char sig[5] = { 0 };
    sel(e, FW_CFG_SIGNATURE);
    read_data(e, sig, 4);
    assert_string_equal(sig, "QEMU");
}

static void test_numeric_items(void **state)
{
    struct env *e = *state;
    uint8_t b[8];
    sel(e, FW_CFG_RAM_SIZE);
    read_data(e, b, 8);
    uint64_t ram = 0;
    for (int k = 7; k >= 0; k--)
        ram = ram << 8 | b[k];
    assert_true(ram == 128ull << 20);
    sel(e, FW_CFG_NB_CPUS);
    assert_int_equal(data8(e), 1);
    assert_int_equal(data8(e), 0);
    assert_int_equal(data8(e), 0);       /* 2-byte item */
    sel(e, FW_CFG_MAX_CPUS);
    assert_int_equal(data8(e), 4);
    sel(e, 0x10);
    read_data(e, b, 4);
    assert_memory_equal(b, "\x44\x33\x22\x11", 4);
}

static void test_file_directory(void **state)
{
    struct env *e = *state;
    sel(e, FW_CFG_FILE_DIR);
    uint8_t cnt[4];
    read_data(e, cnt, 4);
    assert_int_equal(get_be32(cnt), 3);
    static const struct {
        const char *name;
        uint32_t size;
    } want[] = { { "etc/a", sizeof(file_a) - 1 }, { "etc/boot-fail-wait", 4 }, { "opt/zz", sizeof(file_b) } };
    uint16_t selects[3];
    for (int k = 0; k < 3; k++) {
        uint8_t ent[64];
        read_data(e, ent, 64);
        assert_int_equal(get_be32(ent), want[k].size);
        selects[k] = get_be16(ent + 4);
        assert_true(selects[k] >= FW_CFG_FILE_FIRST && selects[k] < 0x4000);
        assert_int_equal(get_be16(ent + 6), 0);              /* reserved */
        assert_string_equal((const char *)ent + 8, want[k].name);
        for (size_t c = 8 + strlen(want[k].name); c < 64; c++)
            assert_int_equal(ent[c], 0);                      /* NUL padded */
    }
    assert_int_not_equal(selects[0], selects[1]);
    assert_int_not_equal(selects[1], selects[2]);
    assert_int_not_equal(selects[0], selects[2]);
    /* The directory ends there. */
    for (int k = 0; k < 16; k++)
        assert_int_equal(data8(e), 0);
}

static void test_file_read(void **state)
{
    struct env *e = *state;
    uint16_t key;
    uint32_t size = find_file(e, "etc/a", &key);
    assert_int_equal(size, sizeof(file_a) - 1);
    sel(e, key);
    char buf[64] = { 0 };
    read_data(e, buf, size);
    assert_string_equal(buf, file_a);
    assert_int_equal(data8(e), 0);
    size = find_file(e, "opt/zz", &key);
    sel(e, key);
    uint8_t b[sizeof(file_b) + 4];
    read_data(e, b, sizeof(b));
    assert_memory_equal(b, file_b, sizeof(file_b));
    for (size_t k = sizeof(file_b); k < sizeof(b); k++)
        assert_int_equal(b[k], 0);
}

static void test_select_resets_offset(void **state)
{
    struct env *e = *state;
    uint16_t key;
    find_file(e, "opt/zz", &key);
    sel(e, key);
    assert_int_equal(data8(e), 1);
    assert_int_equal(data8(e), 2);
    sel(e, key);                         /* same key again: back to offset 0 */
    assert_int_equal(data8(e), 1);
    sel(e, FW_CFG_SIGNATURE);
    assert_int_equal(data8(e), 'Q');
    sel(e, key);
    assert_int_equal(data8(e), 1);
    /* Reading past the end, then selecting again, starts over. */
    for (int k = 0; k < 20; k++)
        data8(e);
    sel(e, key);
    assert_int_equal(data8(e), 1);
}

static void test_unknown_keys_read_zero(void **state)
{
    struct env *e = *state;
    static const uint16_t keys[] = { 0x0002, 0x001f, 0x0030, 0x007f, 0x0100, 0x3fff, 0x8000, 0x8003, 0xbfff };
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        sel(e, keys[k]);
        for (int n = 0; n < 8; n++)
            assert_int_equal(data8(e), 0);
    }
}

/* The x86 keys (bit 15) are items of their own, not aliases of the generic ones. */
static void test_arch_local_key(void **state)
{
    struct env *e = *state;
    fwcfg_add_i32(e->f, FW_CFG_IRQ0_OVERRIDE, 1);
    sel(e, FW_CFG_IRQ0_OVERRIDE);
    assert_int_equal(data8(e), 1);
    for (int n = 0; n < 3; n++)
        assert_int_equal(data8(e), 0);
    assert_int_equal(data8(e), 0);            /* past the end */
    sel(e, FW_CFG_IRQ0_OVERRIDE & 0x7fff);    /* generic key 2: not set */
    assert_int_equal(data8(e), 0);
    sel(e, FW_CFG_ARCH_LOCAL + 3);
    assert_int_equal(data8(e), 0);
}

static void test_write_channel_bit(void **state)
{
    struct env *e = *state;
    /* 0x4000-0x7fff address the same generic items (writable in old QEMU). */
    char sig[5] = { 0 };
    sel(e, 0x4000 | FW_CFG_SIGNATURE);
    read_data(e, sig, 4);
    assert_string_equal(sig, "QEMU");
    /* Data port writes are ignored (QEMU >= 2.4), and do not advance the offset. */
    sel(e, 0x4000 | FW_CFG_SIGNATURE);
    bus_pio_write(e->b, PORT_DATA, 'X', 1);
    bus_pio_write(e->b, PORT_DATA, 'Y', 1);
    assert_int_equal(data8(e), 'Q');
    sel(e, FW_CFG_SIGNATURE);
    read_data(e, sig, 4);
    assert_string_equal(sig, "QEMU");
}

static void test_e820_file(void **state)
{
    struct env *e = *state;
    fwcfg_add_e820(e->f, 0, 0x9fc00, E820_TYPE_RAM);
    fwcfg_add_e820(e->f, 0x100000, 0x7f00000, E820_TYPE_RAM);
    fwcfg_add_e820(e->f, 0xfffc0000, 0x40000, E820_TYPE_RESERVED);
    uint16_t key;
    uint32_t size = find_file(e, "etc/e820", &key);
    assert_int_equal(size, 3 * 20);
    uint8_t b[60];
    sel(e, key);
    read_data(e, b, 60);
    static const uint64_t want[3][3] = {
        { 0, 0x9fc00, 1 }, { 0x100000, 0x7f00000, 1 }, { 0xfffc0000, 0x40000, 2 } };
    for (int k = 0; k < 3; k++) {
        uint64_t addr = 0, len = 0;
        uint32_t type = 0;
        for (int i = 7; i >= 0; i--) {
            addr = addr << 8 | b[20 * k + i];
            len = len << 8 | b[20 * k + 8 + i];
        }
        for (int i = 3; i >= 0; i--)
            type = type << 8 | b[20 * k + 16 + i];
        assert_true(addr == want[k][0]);
        assert_true(len == want[k][1]);
        assert_int_equal(type, want[k][2]);
    }
    /* The other files are still where the directory says. */
    size = find_file(e, "opt/zz", &key);
    sel(e, key);
    assert_int_equal(data8(e), 1);
}

static void test_file_replaced(void **state)
{
    struct env *e = *state;
    fwcfg_add_file(e->f, "etc/a", "xy", 2);
    sel(e, FW_CFG_FILE_DIR);
    uint8_t cnt[4];
    read_data(e, cnt, 4);
    assert_int_equal(get_be32(cnt), 3);
    uint16_t key;
    assert_int_equal(find_file(e, "etc/a", &key), 2);
    sel(e, key);
    assert_int_equal(data8(e), 'x');
    assert_int_equal(data8(e), 'y');
    assert_int_equal(data8(e), 0);
}

static void test_reset_selects_signature(void **state)
{
    struct env *e = *state;
    uint16_t key;
    find_file(e, "opt/zz", &key);
    sel(e, key);
    data8(e);
    bus_reset_devices(e->b);
    char sig[5] = { 0 };
    read_data(e, sig, 4);
    assert_string_equal(sig, "QEMU");
}

/* ---- DMA interface ---- */

static void test_dma_select_read(void **state)
{
    struct env *e = *state;
    memset(e->ram + BUF, 0xaa, 16);
    assert_int_equal(dma(e, FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ, 4, BUF), 0);
    assert_memory_equal(e->ram + BUF, "QEMU", 4);
    assert_int_equal(e->ram[BUF + 4], 0xaa);              /* exactly `length` bytes */
    /* Only the control field is written back. */
    assert_int_equal(get_be32(e->ram + DESC + 4), 4);
    assert_int_equal(get_be32(e->ram + DESC + 12), BUF);

    /* The whole directory, as Linux's qemu_fw_cfg reads it. */
    uint8_t cnt[4];
    assert_int_equal(dma(e, FW_CFG_FILE_DIR << 16 | CTL_SELECT | CTL_READ, 4, BUF), 0);
    memcpy(cnt, e->ram + BUF, 4);
    assert_int_equal(get_be32(cnt), 3);
    assert_int_equal(dma(e, CTL_READ, 3 * 64, BUF), 0);
    assert_string_equal((const char *)e->ram + BUF + 8, "etc/a");
    assert_string_equal((const char *)e->ram + BUF + 64 + 8, "etc/boot-fail-wait");
    assert_string_equal((const char *)e->ram + BUF + 128 + 8, "opt/zz");
    uint16_t key = get_be16(e->ram + BUF + 128 + 4);
    assert_int_equal(dma(e, (uint32_t)key << 16 | CTL_SELECT | CTL_READ, sizeof(file_b), BUF), 0);
    assert_memory_equal(e->ram + BUF, file_b, sizeof(file_b));
}

static void test_dma_shares_offset_with_data_port(void **state)
{
    struct env *e = *state;
    uint16_t key;
    find_file(e, "etc/a", &key);
    sel(e, key);
    assert_int_equal(data8(e), file_a[0]);
    assert_int_equal(data8(e), file_a[1]);
    /* DMA without select continues at the current offset... */
    assert_int_equal(dma(e, CTL_READ, 3, BUF), 0);
    assert_memory_equal(e->ram + BUF, file_a + 2, 3);
    /* ...and the data port after it. */
    assert_int_equal(data8(e), file_a[5]);
}

static void test_dma_skip(void **state)
{
    struct env *e = *state;
    uint16_t key;
    find_file(e, "etc/a", &key);
    memset(e->ram + BUF, 0xaa, 16);
    assert_int_equal(dma(e, (uint32_t)key << 16 | CTL_SELECT | CTL_SKIP, 6, BUF), 0);
    assert_int_equal(e->ram[BUF], 0xaa);                  /* skip writes nothing */
    assert_int_equal(dma(e, CTL_READ, 4, BUF), 0);
    assert_memory_equal(e->ram + BUF, file_a + 6, 4);
    /* Skipping past the end is no error; reads then give zeros. */
    assert_int_equal(dma(e, CTL_SKIP, 1000, BUF), 0);
    assert_int_equal(data8(e), 0);
    /* Select + skip with a new key starts from that key's offset 0. */
    assert_int_equal(dma(e, FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_SKIP, 1, 0), 0);
    assert_int_equal(data8(e), 'E');
}

static void test_dma_read_past_end_zero_fills(void **state)
{
    struct env *e = *state;
    uint16_t key;
    find_file(e, "opt/zz", &key);
    memset(e->ram + BUF, 0xaa, 64);
    assert_int_equal(dma(e, (uint32_t)key << 16 | CTL_SELECT | CTL_READ, 16, BUF), 0);
    assert_memory_equal(e->ram + BUF, file_b, sizeof(file_b));
    for (int k = sizeof(file_b); k < 16; k++)
        assert_int_equal(e->ram[BUF + k], 0);
    assert_int_equal(e->ram[BUF + 16], 0xaa);
    /* Unknown key: all zeros, no error. */
    memset(e->ram + BUF, 0xaa, 64);
    assert_int_equal(dma(e, 0x7f << 16 | CTL_SELECT | CTL_READ, 600, BUF), 0);
    for (int k = 0; k < 600; k++)
        assert_int_equal(e->ram[BUF + k], 0);
}

static void test_dma_bad_address(void **state)
{
    struct env *e = *state;
    /* Destination outside RAM: error bit, and nothing else in RAM changed. */
    assert_int_equal(dma(e, FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ, 4, RAM_SIZE), CTL_ERROR);
    assert_int_equal(dma(e, FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ, 4, RAM_SIZE - 2), CTL_ERROR);
    assert_int_equal(dma(e, FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ, 4, 1ull << 40), CTL_ERROR);
    /* The zero fill past the end of an item is bounds-checked too. */
    assert_int_equal(dma(e, FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ, 0x10000, RAM_SIZE - 0x100), CTL_ERROR);
    /* A length that would wrap the 32-bit space. */
    assert_int_equal(dma(e, FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ, 0xffffffff, BUF), CTL_ERROR);
    /* The device still works afterwards. */
    assert_int_equal(dma(e, FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ, 4, BUF), 0);
    assert_memory_equal(e->ram + BUF, "QEMU", 4);
}

static void test_dma_write_rejected(void **state)
{
    struct env *e = *state;
    memcpy(e->ram + BUF, "XXXX", 4);
    assert_int_equal(dma(e, FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_WRITE, 4, BUF), CTL_ERROR);
    char sig[5] = { 0 };
    sel(e, FW_CFG_SIGNATURE);
    read_data(e, sig, 4);
    assert_string_equal(sig, "QEMU");
    uint16_t key;
    find_file(e, "etc/a", &key);
    assert_int_equal(dma(e, (uint32_t)key << 16 | CTL_SELECT | CTL_WRITE, 4, BUF), CTL_ERROR);
    /* Write with skip: still a write. */
    assert_int_equal(dma(e, (uint32_t)key << 16 | CTL_SELECT | CTL_WRITE | CTL_SKIP, 4, BUF), CTL_ERROR);
    sel(e, key);
    assert_int_equal(data8(e), file_a[0]);
}

static void test_dma_read_wins_over_write(void **state)
{
    struct env *e = *state;
    /* "If the control field has bit 4 set (and not bit 1), a write operation will be performed." */
    memset(e->ram + BUF, 0, 8);
    assert_int_equal(dma(e, FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ | CTL_WRITE, 4, BUF), 0);
    assert_memory_equal(e->ram + BUF, "QEMU", 4);
    /* Read and skip: read. */
    assert_int_equal(dma(e, FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ | CTL_SKIP, 2, BUF + 4), 0);
    assert_memory_equal(e->ram + BUF + 4, "QE", 2);
}

static void test_dma_select_only_and_noop(void **state)
{
    struct env *e = *state;
    uint16_t key;
    find_file(e, "opt/zz", &key);
    sel(e, key);
    data8(e);
    /* Select alone: same as writing the selector; length is ignored. */
    memset(e->ram + BUF, 0xaa, 8);
    assert_int_equal(dma(e, FW_CFG_SIGNATURE << 16 | CTL_SELECT, 4, BUF), 0);
    assert_int_equal(e->ram[BUF], 0xaa);
    assert_int_equal(data8(e), 'Q');
    /* No operation bit at all: completes, nothing moves. */
    assert_int_equal(dma(e, 0, 4, BUF), 0);
    assert_int_equal(e->ram[BUF], 0xaa);
    assert_int_equal(data8(e), 'E');
    /* Zero-length read. */
    assert_int_equal(dma(e, CTL_READ, 0, BUF), 0);
    assert_int_equal(e->ram[BUF], 0xaa);
    assert_int_equal(data8(e), 'M');
}

static void test_dma_address_register(void **state)
{
    struct env *e = *state;
    /* Two 32-bit writes, most significant half first: a descriptor above 4 GiB
     * (not RAM here) does nothing to RAM. */
    put_desc(e, DESC, FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ, 4, BUF);
    bus_pio_write(e->b, PORT_DMA_HI, __builtin_bswap32(1), 4);
    kick(e, DESC);
    assert_int_equal(get_be32(e->ram + DESC), FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ);
    assert_int_equal(e->ram[BUF], 0);
    /* The register is 0 after an operation: a low-half write alone now means below 4 GiB. */
    kick(e, DESC);
    assert_int_equal(get_be32(e->ram + DESC), 0);
    assert_memory_equal(e->ram + BUF, "QEMU", 4);
    /* High half 0 written explicitly works as well. */
    memset(e->ram + BUF, 0, 4);
    put_desc(e, DESC, FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ, 4, BUF);
    bus_pio_write(e->b, PORT_DMA_HI, 0, 4);
    kick(e, DESC);
    assert_int_equal(get_be32(e->ram + DESC), 0);
    assert_memory_equal(e->ram + BUF, "QEMU", 4);
    /* Writing only the high half triggers nothing. */
    put_desc(e, DESC, FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ, 4, BUF + 8);
    bus_pio_write(e->b, PORT_DMA_HI, 0, 4);
    assert_int_equal(get_be32(e->ram + DESC), FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ);
    kick(e, DESC);
    assert_int_equal(get_be32(e->ram + DESC), 0);
    assert_memory_equal(e->ram + BUF + 8, "QEMU", 4);
}

static void test_dma_descriptor_anywhere(void **state)
{
    struct env *e = *state;
    /* Descriptors at odd addresses and at the very end of RAM. */
    static const uint32_t at[] = { 0x0, 0x123, RAM_SIZE - 16 };
    for (size_t k = 0; k < 3; k++) {
        memset(e->ram + BUF, 0, 4);
        put_desc(e, at[k], FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ, 4, BUF);
        kick(e, at[k]);
        assert_int_equal(get_be32(e->ram + at[k]), 0);
        assert_memory_equal(e->ram + BUF, "QEMU", 4);
    }
}

static void test_dma_descriptor_unreadable(void **state)
{
    struct env *e = *state;
    /* A descriptor running off the end of RAM cannot be read: the device
     * reports the error in the control field it can reach, so the guest's
     * poll loop ends. */
    uint32_t at = RAM_SIZE - 8;
    put_be32(e->ram + at, FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ);
    put_be32(e->ram + at + 4, 4);
    kick(e, at);
    assert_int_equal(get_be32(e->ram + at), CTL_ERROR);
    /* Entirely outside RAM: nothing to report to, nothing breaks. */
    kick(e, RAM_SIZE + 0x1000);
    assert_int_equal(dma(e, FW_CFG_SIGNATURE << 16 | CTL_SELECT | CTL_READ, 4, BUF), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_signature),
        T(test_id_has_dma_bit),
        cmocka_unit_test_setup_teardown(test_no_dma_without_accessor, setup_nodma, teardown),
        T(test_numeric_items),
        T(test_file_directory),
        T(test_file_read),
        T(test_select_resets_offset),
        T(test_unknown_keys_read_zero),
        T(test_arch_local_key),
        T(test_write_channel_bit),
        T(test_e820_file),
        T(test_file_replaced),
        T(test_reset_selects_signature),
        T(test_dma_select_read),
        T(test_dma_shares_offset_with_data_port),
        T(test_dma_skip),
        T(test_dma_read_past_end_zero_fills),
        T(test_dma_bad_address),
        T(test_dma_write_rejected),
        T(test_dma_read_wins_over_write),
        T(test_dma_select_only_and_noop),
        T(test_dma_address_register),
        T(test_dma_descriptor_anywhere),
        T(test_dma_descriptor_unreadable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
