/*
 * PIIX3 IDE driven through port I/O exactly as a driver would: IDENTIFY,
 * PIO in CHS/LBA28/LBA48, READ/WRITE MULTIPLE, bus-master DMA with a PRD
 * table in test RAM, FLUSH CACHE, interrupts, SRST, errors, PCI config.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/bus.h"
#include "devices/ide.h"
#include "devices/pci.h"
#include "hosted-driver/blockdev.h"
#include "hosted-driver/vclock.h"
#include "device_bench.h"

#define IMG_SECTORS 16384       /* 8 MiB: 16 cylinders of 16 heads x 63 sectors */
#define RAM_SIZE (1u << 20)
#define BM_BASE 0xc000
#define DEVFN ((1 << 3) | 1)

#define P_DATA 0x1f0
#define P_ERR 0x1f1
#define P_FEAT 0x1f1
#define P_COUNT 0x1f2
#define P_LBAL 0x1f3
#define P_LBAM 0x1f4
#define P_LBAH 0x1f5
#define P_DEV 0x1f6
#define P_STATUS 0x1f7
#define P_CMD 0x1f7
#define P_CTL 0x3f6

#define ST_ERR 0x01
#define ST_DRQ 0x08
#define ST_DSC 0x10
#define ST_DRDY 0x40
#define ST_BSY 0x80
#define ST_IDLE (ST_DRDY | ST_DSC)

struct env {
    struct bench hw;
    char dir[64];
    char path[128];
    struct ide *ide;
    struct blockdev *bd;
    struct blockdev *extra[4];      /* more disks, closed after the controller is freed */
    int nextra;
};

/* ---- fixtures ---- */

static uint8_t pattern_byte(uint64_t off)
{
    return (uint8_t)(off * 7 + (off >> 9) * 13 + 1);
}

static void make_image(const char *path, uint64_t sectors)
{
    size_t size = (size_t)sectors * 512;
    uint8_t *buf = malloc(size);
    for (size_t i = 0; i < size; i++)
        buf[i] = pattern_byte(i);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, size), (ssize_t)size);
    close(fd);
    free(buf);
}

static void file_read(const char *path, uint64_t off, void *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, len, off), (ssize_t)len);
    close(fd);
}

static struct blockdev *open_image(const char *path, bool readonly)
{
    char err[256];
    struct blockdev *bd = blockdev_open(path, readonly, false, err, sizeof(err));
    if (!bd)
        fail_msg("%s", err);
    return bd;
}

static struct blockdev *open_extra(struct env *e, const char *path, bool readonly)
{
    struct blockdev *bd = open_image(path, readonly);
    e->extra[e->nextra++] = bd;
    return bd;
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    strcpy(e->dir, "/tmp/rv-ide-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->path, sizeof(e->path), "%s/hda.img", e->dir);
    make_image(e->path, IMG_SECTORS);
    bench_init(&e->hw, RAM_SIZE, true);
    e->ide = ide_new(e->hw.b, e->hw.pb, bench_ram_rw, &e->hw);
    e->bd = open_image(e->path, false);
    char err[256];
    assert_int_equal(ide_attach_disk(e->ide, 0, 0, e->bd, err, sizeof(err)), 0);
    bus_reset_devices(e->hw.b);
    memset(e->hw.edges, 0, sizeof(e->hw.edges));
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    ide_free(e->ide);
    blockdev_close(e->bd);
    for (int i = 0; i < e->nextra; i++)
        blockdev_close(e->extra[i]);
    bench_free(&e->hw);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
    assert_int_equal(system(cmd), 0);
    free(e);
    return 0;
}

/* ---- driver-side helpers ---- */

static void outb(struct env *e, uint16_t port, uint8_t v) { bus_pio_write(e->hw.b, port, v, 1); }
static uint8_t inb(struct env *e, uint16_t port) { return bus_pio_read(e->hw.b, port, 1); }
static uint16_t inw(struct env *e, uint16_t port) { return bus_pio_read(e->hw.b, port, 2); }
static void outw(struct env *e, uint16_t port, uint16_t v) { bus_pio_write(e->hw.b, port, v, 2); }

static void issue_lba28(struct env *e, uint8_t cmd, uint32_t lba, uint8_t count)
{
    outb(e, P_DEV, 0xe0 | ((lba >> 24) & 0x0f));
    outb(e, P_COUNT, count);
    outb(e, P_LBAL, lba);
    outb(e, P_LBAM, lba >> 8);
    outb(e, P_LBAH, lba >> 16);
    outb(e, P_CMD, cmd);
}

static void issue_lba48(struct env *e, uint8_t cmd, uint64_t lba, uint16_t count)
{
    outb(e, P_DEV, 0xe0);
    outb(e, P_COUNT, count >> 8);
    outb(e, P_LBAL, lba >> 24);
    outb(e, P_LBAM, lba >> 32);
    outb(e, P_LBAH, lba >> 40);
    outb(e, P_COUNT, count);
    outb(e, P_LBAL, lba);
    outb(e, P_LBAM, lba >> 8);
    outb(e, P_LBAH, lba >> 16);
    outb(e, P_CMD, cmd);
}

static void issue_chs(struct env *e, uint8_t cmd, uint16_t cyl, uint8_t head, uint8_t sect, uint8_t count)
{
    outb(e, P_DEV, 0xa0 | head);
    outb(e, P_COUNT, count);
    outb(e, P_LBAL, sect);
    outb(e, P_LBAM, cyl);
    outb(e, P_LBAH, cyl >> 8);
    outb(e, P_CMD, cmd);
}

static void issue_nodata(struct env *e, uint8_t cmd, uint8_t feature, uint8_t count)
{
    outb(e, P_FEAT, feature);
    outb(e, P_COUNT, count);
    outb(e, P_CMD, cmd);
}

static void read_block(struct env *e, uint8_t *buf, size_t bytes)
{
    for (size_t i = 0; i < bytes; i += 2) {
        uint16_t w = inw(e, P_DATA);
        buf[i] = w;
        buf[i + 1] = w >> 8;
    }
}

static void write_block(struct env *e, const uint8_t *buf, size_t bytes)
{
    for (size_t i = 0; i < bytes; i += 2)
        outw(e, P_DATA, buf[i] | buf[i + 1] << 8);
}

static void expect_image_data(const uint8_t *buf, uint64_t lba, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++)
        if (buf[i] != pattern_byte(lba * 512 + i))
            fail_msg("byte %zu of the data from sector %llu differs", i, (unsigned long long)lba);
}

static void identify(struct env *e, int slave, uint16_t id[256])
{
    outb(e, P_DEV, slave ? 0xb0 : 0xa0);
    outb(e, P_CMD, 0xec);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_DRQ);
    for (int i = 0; i < 256; i++)
        id[i] = inw(e, P_DATA);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
}

static void id_string(const uint16_t *id, int word, int nwords, char *out)
{
    for (int i = 0; i < nwords; i++) {
        out[2 * i] = id[word + i] >> 8;
        out[2 * i + 1] = id[word + i] & 0xff;
    }
    out[2 * nwords] = 0;
    for (int i = 2 * nwords - 1; i >= 0 && out[i] == ' '; i--)
        out[i] = 0;
}

static void enable_bus_master(struct env *e)
{
    pci_config_write(e->hw.pb, DEVFN, 0x20, BM_BASE, 4);
    pci_config_write(e->hw.pb, DEVFN, 0x04, 0x0005, 2);   /* I/O decode + bus master */
}

static void put32(struct env *e, uint32_t addr, uint32_t v)
{
    memcpy(e->hw.ram + addr, &v, 4);
}

static void put_prd(struct env *e, uint32_t table, int idx, uint32_t addr, uint32_t count, bool eot)
{
    put32(e, table + 8 * idx, addr);
    put32(e, table + 8 * idx + 4, (count & 0xffff) | (eot ? 0x80000000u : 0));
}

/* ---- IDENTIFY ---- */

static void test_identify(void **state)
{
    struct env *e = *state;
    uint16_t id[256];
    identify(e, 0, id);
    assert_int_equal(e->hw.edges[14], 1);
    assert_int_equal(e->hw.level[14], 0);      /* status read cleared it */

    assert_int_equal(id[0] & 0x8000, 0);    /* ATA device */
    assert_int_equal(id[1], IMG_SECTORS / (16 * 63));
    assert_int_equal(id[3], 16);
    assert_int_equal(id[6], 63);
    assert_int_equal(id[60] | (uint32_t)id[61] << 16, IMG_SECTORS);
    uint64_t lba48 = id[100] | (uint64_t)id[101] << 16 | (uint64_t)id[102] << 32 | (uint64_t)id[103] << 48;
    assert_int_equal(lba48, IMG_SECTORS);
    assert_true(id[49] & (1 << 9));         /* LBA */
    assert_true(id[49] & (1 << 8));         /* DMA */
    assert_true(id[83] & (1 << 10));        /* LBA48 */
    assert_true(id[83] & (1 << 13));        /* FLUSH CACHE EXT */
    assert_true(id[85] & (1 << 5));         /* write cache enabled: the guest must flush */
    assert_int_equal(id[63] & 0x7, 0x7);    /* MWDMA 0-2 */
    assert_int_equal(id[88] & 0x3f, 0x3f);  /* UDMA 0-5 */
    assert_int_equal(id[47] & 0xff00, 0x8000);
    assert_int_equal(id[54], id[1]);
    assert_int_equal(id[55], 16);
    assert_int_equal(id[56], 63);
    /* SeaBIOS: device 0 answering for an absent device 1. */
    assert_int_equal(id[93] & 0xdf61, 0x4041);

    char s[41];
    id_string(id, 27, 20, s);
    assert_string_equal(s, "RETROVISOR HARDDISK");
    id_string(id, 10, 10, s);
    assert_string_equal(s, "RV00000001");
    id_string(id, 23, 4, s);
    assert_string_equal(s, "1.0");

    uint8_t sum = 0;
    for (int i = 0; i < 256; i++)
        sum += (id[i] & 0xff) + (id[i] >> 8);
    assert_int_equal(id[255] & 0xff, 0xa5);
    assert_int_equal(sum, 0);
}

static void test_identify_32bit_data_port(void **state)
{
    struct env *e = *state;
    outb(e, P_DEV, 0xa0);
    outb(e, P_CMD, 0xec);
    uint32_t first = bus_pio_read(e->hw.b, P_DATA, 4);
    assert_int_equal(first & 0xffff, 0x0040);
    assert_int_equal(first >> 16, IMG_SECTORS / (16 * 63));
    for (int i = 1; i < 128; i++)
        bus_pio_read(e->hw.b, P_DATA, 4);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
}

/* ---- PIO ---- */

static void test_pio_read_lba28(void **state)
{
    struct env *e = *state;
    uint8_t buf[512];
    issue_lba28(e, 0x20, 100, 3);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(e->hw.edges[14], k + 1);      /* one interrupt per block, when it is ready */
        assert_int_equal(e->hw.level[14], 1);
        assert_int_equal(inb(e, P_CTL), ST_IDLE | ST_DRQ);
        assert_int_equal(e->hw.level[14], 1);          /* alternate status leaves it pending */
        assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_DRQ);
        assert_int_equal(e->hw.level[14], 0);
        read_block(e, buf, 512);
        expect_image_data(buf, 100 + k, 512);
    }
    assert_int_equal(e->hw.edges[14], 3);              /* none after the last block */
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    /* The address registers hold the last sector read. */
    assert_int_equal(inb(e, P_LBAL), 102);
    assert_int_equal(inb(e, P_LBAM), 0);
    assert_int_equal(inb(e, P_DEV) & 0x0f, 0);
}

static void test_pio_read_chs(void **state)
{
    struct env *e = *state;
    uint8_t buf[512];
    uint32_t lba = (2 * 16 + 3) * 63 + (5 - 1);
    issue_chs(e, 0x20, 2, 3, 5, 2);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_DRQ);
        read_block(e, buf, 512);
        expect_image_data(buf, lba + k, 512);
    }
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    assert_int_equal(inb(e, P_LBAL), 6);        /* CHS of the last sector: 2/3/6 */
    assert_int_equal(inb(e, P_DEV) & 0x0f, 3);

    /* Across a head boundary: sector 63 of head 15 then sector 1 of the next cylinder. */
    issue_chs(e, 0x20, 4, 15, 63, 2);
    uint32_t first = (4 * 16 + 15) * 63 + 62;
    for (int k = 0; k < 2; k++) {
        assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_DRQ);
        read_block(e, buf, 512);
        expect_image_data(buf, first + k, 512);
    }
    assert_int_equal(inb(e, P_LBAM), 5);
    assert_int_equal(inb(e, P_DEV) & 0x0f, 0);
    assert_int_equal(inb(e, P_LBAL), 1);

    /* Sector 0 does not exist in CHS. */
    int before = e->hw.edges[14];
    issue_chs(e, 0x20, 0, 0, 0, 1);
    assert_int_equal(e->hw.edges[14], before + 1);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_ERR);
    assert_int_equal(inb(e, P_ERR), 0x10);      /* IDNF */
}

static void test_pio_write_lba28(void **state)
{
    struct env *e = *state;
    uint8_t data[2][512], back[1024];
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 512; i++)
            data[k][i] = (uint8_t)(i ^ (k * 0x55) ^ 0x3c);
    issue_lba28(e, 0x30, 0x1234, 2);
    /* The first block is requested without an interrupt. */
    assert_int_equal(e->hw.edges[14], 0);
    assert_int_equal(inb(e, P_CTL), ST_IDLE | ST_DRQ);
    write_block(e, data[0], 512);
    assert_int_equal(e->hw.edges[14], 1);          /* block written: next one wanted */
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_DRQ);
    write_block(e, data[1], 512);
    assert_int_equal(e->hw.edges[14], 2);          /* completion */
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    file_read(e->path, 0x1234 * 512ull, back, sizeof(back));
    assert_memory_equal(back, data[0], 512);
    assert_memory_equal(back + 512, data[1], 512);
    uint8_t neighbour[512];
    file_read(e->path, 0x1236 * 512ull, neighbour, 512);
    expect_image_data(neighbour, 0x1236, 512);
}

static void test_pio_write_chs(void **state)
{
    struct env *e = *state;
    uint8_t data[512], back[512];
    memset(data, 0xc3, sizeof(data));
    issue_chs(e, 0x30, 7, 9, 11, 1);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_DRQ);
    write_block(e, data, 512);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    file_read(e->path, ((7 * 16 + 9) * 63 + 10) * 512ull, back, 512);
    assert_memory_equal(back, data, 512);
}

static void test_lba48_on_a_large_sparse_image(void **state)
{
    struct env *e = *state;
    char path[160], err[256];
    snprintf(path, sizeof(path), "%s/big.img", e->dir);
    const uint64_t sectors = (1ull << 28) + 4096;      /* just past LBA28's reach */
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    if (ftruncate(fd, sectors * 512) < 0) {
        close(fd);
        skip();
    }
    close(fd);
    struct blockdev *bd = open_extra(e, path, false);
    assert_int_equal(ide_attach_disk(e->ide, 1, 0, bd, err, sizeof(err)), 0);

    const uint16_t SEC = 0x170, SEC_CTL = 0x376;
    uint16_t id[256];
    outb(e, SEC + 6, 0xa0);
    outb(e, SEC + 7, 0xec);
    assert_int_equal(e->hw.edges[15], 1);
    for (int i = 0; i < 256; i++)
        id[i] = inw(e, SEC);
    assert_int_equal(id[1], 16383);
    assert_int_equal(id[60] | (uint32_t)id[61] << 16, 0x0fffffff);
    assert_int_equal(id[100] | (uint64_t)id[101] << 16 | (uint64_t)id[102] << 32, sectors);

    /* WRITE SECTORS EXT past 2^28, then READ SECTORS EXT it back. */
    uint64_t lba = (1ull << 28) + 5;
    uint8_t data[1024], back[1024];
    for (int i = 0; i < 1024; i++)
        data[i] = (uint8_t)(i * 11 + 3);
    outb(e, SEC + 6, 0xe0);
    outb(e, SEC + 2, 0);
    outb(e, SEC + 3, lba >> 24);
    outb(e, SEC + 4, lba >> 32);
    outb(e, SEC + 5, lba >> 40);
    outb(e, SEC + 2, 2);
    outb(e, SEC + 3, lba);
    outb(e, SEC + 4, lba >> 8);
    outb(e, SEC + 5, lba >> 16);
    /* HOB reads back the previous (high order) bytes. */
    outb(e, SEC_CTL, 0x80);
    assert_int_equal(inb(e, SEC + 3), (lba >> 24) & 0xff);
    outb(e, SEC_CTL, 0x00);
    assert_int_equal(inb(e, SEC + 3), lba & 0xff);
    outb(e, SEC + 7, 0x34);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(inb(e, SEC + 7), ST_IDLE | ST_DRQ);
        for (int i = 0; i < 512; i += 2)
            outw(e, SEC, data[k * 512 + i] | data[k * 512 + i + 1] << 8);
    }
    assert_int_equal(inb(e, SEC + 7), ST_IDLE);
    file_read(path, lba * 512, back, sizeof(back));
    assert_memory_equal(back, data, sizeof(back));

    outb(e, SEC + 6, 0xe0);
    outb(e, SEC + 2, 0);
    outb(e, SEC + 3, lba >> 24);
    outb(e, SEC + 4, 0);
    outb(e, SEC + 5, 0);
    outb(e, SEC + 2, 2);
    outb(e, SEC + 3, lba);
    outb(e, SEC + 4, lba >> 8);
    outb(e, SEC + 5, lba >> 16);
    outb(e, SEC + 7, 0x24);
    memset(back, 0, sizeof(back));
    for (int k = 0; k < 2; k++) {
        assert_int_equal(inb(e, SEC + 7), ST_IDLE | ST_DRQ);
        for (int i = 0; i < 512; i += 2) {
            uint16_t w = inw(e, SEC);
            back[k * 512 + i] = w;
            back[k * 512 + i + 1] = w >> 8;
        }
    }
    assert_int_equal(inb(e, SEC + 7), ST_IDLE);
    assert_memory_equal(back, data, sizeof(back));
    /* The registers hold the last sector, high bytes behind HOB. */
    assert_int_equal(inb(e, SEC + 3), (lba + 1) & 0xff);
    outb(e, SEC_CTL, 0x80);
    assert_int_equal(inb(e, SEC + 3), ((lba + 1) >> 24) & 0xff);
    outb(e, SEC_CTL, 0x00);

    /* LBA28 cannot reach there; the same count past the end is IDNF. */
    const uint64_t last = sectors - 1;
    outb(e, SEC + 6, 0xe0);
    outb(e, SEC + 2, 0);
    outb(e, SEC + 3, (uint8_t)(last >> 24));
    outb(e, SEC + 4, (uint8_t)(last >> 32));
    outb(e, SEC + 5, 0);
    outb(e, SEC + 2, 2);
    outb(e, SEC + 3, (uint8_t)last);
    outb(e, SEC + 4, (uint8_t)(last >> 8));
    outb(e, SEC + 5, (uint8_t)(last >> 16));
    outb(e, SEC + 7, 0x24);
    assert_int_equal(inb(e, SEC + 7), ST_IDLE | ST_ERR);
    assert_int_equal(inb(e, SEC + 1), 0x10);
    assert_int_equal(e->hw.edges[14], 0);         /* the primary channel stayed quiet */
}

static void test_read_write_multiple(void **state)
{
    struct env *e = *state;
    uint8_t buf[4 * 512];
    issue_nodata(e, 0xc6, 0, 4);                /* SET MULTIPLE MODE: 4 sectors per block */
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    uint16_t id[256];
    identify(e, 0, id);
    assert_int_equal(id[59], 0x0104);

    memset(e->hw.edges, 0, sizeof(e->hw.edges));
    issue_lba28(e, 0xc4, 200, 10);              /* READ MULTIPLE: blocks of 4, 4, 2 */
    uint32_t lba = 200;
    for (int blk = 0; blk < 3; blk++) {
        uint32_t n = blk < 2 ? 4 : 2;
        assert_int_equal(e->hw.edges[14], blk + 1);
        assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_DRQ);
        read_block(e, buf, n * 512);
        expect_image_data(buf, lba, n * 512);
        lba += n;
    }
    assert_int_equal(e->hw.edges[14], 3);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);

    /* WRITE MULTIPLE: 6 sectors in blocks of 4 and 2, one interrupt per block. */
    uint8_t data[6 * 512], back[6 * 512];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 5 + 1);
    memset(e->hw.edges, 0, sizeof(e->hw.edges));
    issue_lba28(e, 0xc5, 300, 6);
    assert_int_equal(e->hw.edges[14], 0);
    write_block(e, data, 4 * 512);
    assert_int_equal(e->hw.edges[14], 1);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_DRQ);
    write_block(e, data + 4 * 512, 2 * 512);
    assert_int_equal(e->hw.edges[14], 2);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    file_read(e->path, 300 * 512, back, sizeof(back));
    assert_memory_equal(back, data, sizeof(back));

    /* Block sizes must be powers of two up to the maximum; 0 disables multiple mode. */
    issue_nodata(e, 0xc6, 0, 3);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_ERR);
    assert_int_equal(inb(e, P_ERR), 0x04);
    issue_nodata(e, 0xc6, 0, 0);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    issue_lba28(e, 0xc4, 0, 1);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_ERR);
    assert_int_equal(inb(e, P_ERR), 0x04);
}

static void test_out_of_range_is_idnf(void **state)
{
    struct env *e = *state;
    issue_lba28(e, 0x20, IMG_SECTORS - 1, 2);
    assert_int_equal(e->hw.edges[14], 1);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_ERR);
    assert_int_equal(inb(e, P_ERR), 0x10);
    issue_lba28(e, 0x40, IMG_SECTORS, 1);        /* READ VERIFY */
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_ERR);
    assert_int_equal(inb(e, P_ERR), 0x10);
    issue_lba28(e, 0x40, IMG_SECTORS - 8, 8);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    assert_int_equal(inb(e, P_ERR), 0);
    /* The last sector reads fine. */
    uint8_t buf[512];
    issue_lba28(e, 0x20, IMG_SECTORS - 1, 1);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_DRQ);
    read_block(e, buf, 512);
    expect_image_data(buf, IMG_SECTORS - 1, 512);
}

/* ---- bus-master DMA ---- */

static void test_dma_read(void **state)
{
    struct env *e = *state;
    enable_bus_master(e);
    assert_int_equal(bus_pio_read(e->hw.b, BM_BASE + 2, 1) & 0x80, 0);   /* not simplex-only */
    put_prd(e, 0x1000, 0, 0x2000, 512, false);
    put_prd(e, 0x1000, 1, 0x3000, 1024, true);
    bus_pio_write(e->hw.b, BM_BASE + 4, 0x1000, 4);
    assert_int_equal(bus_pio_read(e->hw.b, BM_BASE + 4, 4), 0x1000);
    bus_pio_write(e->hw.b, BM_BASE, 0x08, 1);                 /* direction: to memory */
    bus_pio_write(e->hw.b, BM_BASE + 2, 0x06, 1);
    issue_lba28(e, 0xc8, 50, 3);                           /* READ DMA: command first, as Linux does */
    assert_int_equal(e->hw.edges[14], 0);
    assert_int_equal(inb(e, P_CTL) & ST_BSY, 0);
    bus_pio_write(e->hw.b, BM_BASE, 0x09, 1);                 /* start */
    assert_int_equal(e->hw.edges[14], 1);
    uint8_t bm = bus_pio_read(e->hw.b, BM_BASE + 2, 1);
    assert_int_equal(bm & 0x07, 0x04);                     /* interrupt, not active, no error */
    expect_image_data(e->hw.ram + 0x2000, 50, 512);
    expect_image_data(e->hw.ram + 0x3000, 51, 1024);
    assert_int_equal(e->hw.ram[0x2200], 0);                   /* nothing past the PRD buffer */
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    assert_int_equal(e->hw.level[14], 0);
    bus_pio_write(e->hw.b, BM_BASE, 0x08, 1);                 /* stop */
    bus_pio_write(e->hw.b, BM_BASE + 2, 0x04, 1);             /* clear the interrupt bit */
    assert_int_equal(bus_pio_read(e->hw.b, BM_BASE + 2, 1) & 0x07, 0);

    /* Start first, then the command (READ DMA EXT): also works. */
    memset(e->hw.ram + 0x2000, 0, 0x2000);
    put_prd(e, 0x1000, 0, 0x2000, 4096, true);
    bus_pio_write(e->hw.b, BM_BASE, 0x09, 1);
    assert_int_equal(bus_pio_read(e->hw.b, BM_BASE + 2, 1) & 0x01, 0x01);
    issue_lba48(e, 0x25, 4000, 4);
    assert_int_equal(e->hw.edges[14], 2);
    expect_image_data(e->hw.ram + 0x2000, 4000, 2048);
    /* The table had room to spare: Active stays set, the interrupt bit is up. */
    assert_int_equal(bus_pio_read(e->hw.b, BM_BASE + 2, 1) & 0x07, 0x05);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    bus_pio_write(e->hw.b, BM_BASE, 0x00, 1);
    assert_int_equal(bus_pio_read(e->hw.b, BM_BASE + 2, 1) & 0x01, 0);
}

static void test_dma_write(void **state)
{
    struct env *e = *state;
    enable_bus_master(e);
    /* One 64 KiB entry (count 0) and one of 512 bytes: 129 sectors. */
    for (uint32_t i = 0; i < 0x10000; i++)
        e->hw.ram[0x10000 + i] = (uint8_t)(i * 3 + 7);
    for (uint32_t i = 0; i < 512; i++)
        e->hw.ram[0x30000 + i] = (uint8_t)(0xee ^ i);
    put_prd(e, 0x800, 0, 0x10000, 0, false);
    put_prd(e, 0x800, 1, 0x30000, 512, true);
    bus_pio_write(e->hw.b, BM_BASE + 4, 0x800, 4);
    bus_pio_write(e->hw.b, BM_BASE + 2, 0x06, 1);
    issue_lba28(e, 0xca, 1000, 129);                       /* WRITE DMA */
    assert_int_equal(e->hw.edges[14], 0);
    bus_pio_write(e->hw.b, BM_BASE, 0x01, 1);
    assert_int_equal(e->hw.edges[14], 1);
    assert_int_equal(bus_pio_read(e->hw.b, BM_BASE + 2, 1) & 0x07, 0x04);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    bus_pio_write(e->hw.b, BM_BASE, 0x00, 1);

    uint8_t *back = malloc(129 * 512);
    file_read(e->path, 1000 * 512, back, 129 * 512);
    assert_memory_equal(back, e->hw.ram + 0x10000, 0x10000);
    assert_memory_equal(back + 0x10000, e->hw.ram + 0x30000, 512);
    free(back);
    uint8_t after[512];
    file_read(e->path, 1129 * 512, after, 512);
    expect_image_data(after, 1129, 512);

    /* The secondary channel's bus-master status saw none of it. */
    assert_int_equal(bus_pio_read(e->hw.b, BM_BASE + 10, 1) & 0x07, 0);
}

static void test_dma_outside_ram_sets_error_bits(void **state)
{
    struct env *e = *state;
    enable_bus_master(e);
    /* A buffer outside guest RAM. */
    put_prd(e, 0x1000, 0, 0x7f000000, 512, true);
    bus_pio_write(e->hw.b, BM_BASE + 4, 0x1000, 4);
    bus_pio_write(e->hw.b, BM_BASE, 0x08, 1);
    issue_lba28(e, 0xc8, 0, 1);
    bus_pio_write(e->hw.b, BM_BASE, 0x09, 1);
    assert_int_equal(e->hw.edges[14], 1);
    assert_int_equal(bus_pio_read(e->hw.b, BM_BASE + 2, 1) & 0x07, 0x06);   /* error + interrupt */
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_ERR);
    assert_int_equal(inb(e, P_ERR), 0x04);
    bus_pio_write(e->hw.b, BM_BASE, 0x00, 1);
    bus_pio_write(e->hw.b, BM_BASE + 2, 0x06, 1);
    assert_int_equal(bus_pio_read(e->hw.b, BM_BASE + 2, 1) & 0x07, 0);

    /* A buffer straddling the end of RAM, on a write. */
    put_prd(e, 0x1000, 0, RAM_SIZE - 256, 512, true);
    issue_lba28(e, 0xca, 0, 1);
    bus_pio_write(e->hw.b, BM_BASE, 0x01, 1);
    assert_int_equal(e->hw.edges[14], 2);
    assert_int_equal(bus_pio_read(e->hw.b, BM_BASE + 2, 1) & 0x07, 0x06);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_ERR);
    uint8_t first[512];
    file_read(e->path, 0, first, 512);
    expect_image_data(first, 0, 512);                      /* nothing was written */
    bus_pio_write(e->hw.b, BM_BASE, 0x00, 1);
    bus_pio_write(e->hw.b, BM_BASE + 2, 0x06, 1);

    /* The PRD table itself outside RAM. */
    bus_pio_write(e->hw.b, BM_BASE + 4, 0x40000000, 4);
    issue_lba28(e, 0xc8, 0, 1);
    bus_pio_write(e->hw.b, BM_BASE, 0x09, 1);
    assert_int_equal(bus_pio_read(e->hw.b, BM_BASE + 2, 1) & 0x07, 0x06);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_ERR);
    bus_pio_write(e->hw.b, BM_BASE, 0x00, 1);
    bus_pio_write(e->hw.b, BM_BASE + 2, 0x06, 1);

    /* A table describing less memory than the command moves. */
    put_prd(e, 0x1000, 0, 0x2000, 512, true);
    bus_pio_write(e->hw.b, BM_BASE + 4, 0x1000, 4);
    issue_lba28(e, 0xc8, 0, 2);
    bus_pio_write(e->hw.b, BM_BASE, 0x09, 1);
    assert_int_equal(bus_pio_read(e->hw.b, BM_BASE + 2, 1) & 0x07, 0x06);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_ERR);
}

/* ---- FLUSH CACHE ---- */

static void test_flush_cache(void **state)
{
    struct env *e = *state;
    uint8_t data[512], back[512];
    memset(data, 0x77, sizeof(data));
    issue_lba28(e, 0x30, 42, 1);
    write_block(e, data, 512);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    int before = e->hw.edges[14];
    issue_nodata(e, 0xe7, 0, 0);                   /* FLUSH CACHE */
    assert_int_equal(e->hw.edges[14], before + 1);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    assert_int_equal(inb(e, P_ERR), 0);
    file_read(e->path, 42 * 512, back, 512);
    assert_memory_equal(back, data, 512);
    issue_nodata(e, 0xea, 0, 0);                   /* FLUSH CACHE EXT */
    assert_int_equal(e->hw.edges[14], before + 2);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
}

static void test_set_features(void **state)
{
    struct env *e = *state;
    uint16_t id[256];
    issue_nodata(e, 0xef, 0x03, 0x45);             /* UDMA 5 */
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    identify(e, 0, id);
    assert_int_equal(id[88], 0x203f);
    assert_int_equal(id[63] & 0x0700, 0);
    issue_nodata(e, 0xef, 0x03, 0x22);             /* multiword DMA 2 */
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    identify(e, 0, id);
    assert_int_equal(id[63], 0x0407);
    assert_int_equal(id[88], 0x003f);
    issue_nodata(e, 0xef, 0x03, 0x0c);             /* PIO 4 */
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    issue_nodata(e, 0xef, 0x03, 0x46);             /* no UDMA 6 */
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_ERR);
    assert_int_equal(inb(e, P_ERR), 0x04);

    issue_nodata(e, 0xef, 0x82, 0);                /* write cache off */
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    identify(e, 0, id);
    assert_int_equal(id[85] & (1 << 5), 0);
    /* Writes still land (and are flushed at completion). */
    uint8_t data[512], back[512];
    memset(data, 0x19, sizeof(data));
    issue_lba28(e, 0x30, 7, 1);
    write_block(e, data, 512);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    file_read(e->path, 7 * 512, back, 512);
    assert_memory_equal(back, data, 512);
    issue_nodata(e, 0xef, 0x02, 0);
    identify(e, 0, id);
    assert_true(id[85] & (1 << 5));

    issue_nodata(e, 0xef, 0x99, 0);                /* unknown subcommand */
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_ERR);
    assert_int_equal(inb(e, P_ERR), 0x04);
}

static void test_initialize_device_parameters(void **state)
{
    struct env *e = *state;
    outb(e, P_DEV, 0xa7);                          /* 8 heads */
    outb(e, P_COUNT, 32);                          /* 32 sectors per track */
    outb(e, P_CMD, 0x91);
    assert_int_equal(e->hw.edges[14], 1);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    uint16_t id[256];
    identify(e, 0, id);
    assert_int_equal(id[54], IMG_SECTORS / (8 * 32));
    assert_int_equal(id[55], 8);
    assert_int_equal(id[56], 32);
    assert_int_equal(id[1], IMG_SECTORS / (16 * 63));   /* the default geometry is unchanged */
    uint8_t buf[512];
    issue_chs(e, 0x20, 1, 2, 3, 1);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_DRQ);
    read_block(e, buf, 512);
    expect_image_data(buf, (1 * 8 + 2) * 32 + 2, 512);
    issue_chs(e, 0x20, 0, 8, 1, 1);                /* head 8 does not exist now */
    assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_ERR);
    assert_int_equal(inb(e, P_ERR), 0x10);
}

static void test_nondata_commands(void **state)
{
    struct env *e = *state;
    static const uint8_t ok[] = { 0x10, 0x70, 0xe0, 0xe1, 0xe2, 0xe3, 0x94, 0x95, 0x96, 0x97 };
    for (size_t i = 0; i < sizeof(ok); i++) {
        int before = e->hw.edges[14];
        issue_lba28(e, ok[i], 0, 1);
        assert_int_equal(e->hw.edges[14], before + 1);
        assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    }
    issue_nodata(e, 0xe5, 0, 0);                   /* CHECK POWER MODE */
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    assert_int_equal(inb(e, P_COUNT), 0xff);
    issue_lba28(e, 0x27, 0, 0);                    /* READ NATIVE MAX ADDRESS EXT */
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    assert_int_equal(inb(e, P_LBAL) | inb(e, P_LBAM) << 8, IMG_SECTORS - 1);
}

/* ---- errors, reset, interrupts ---- */

static void test_unknown_command_aborts(void **state)
{
    struct env *e = *state;
    static const uint8_t bad[] = { 0x00, 0xff, 0xa1, 0xa0, 0x08, 0xb0 };
    for (size_t i = 0; i < sizeof(bad); i++) {
        int before = e->hw.edges[14];
        outb(e, P_CMD, bad[i]);
        assert_int_equal(e->hw.edges[14], before + 1);
        assert_int_equal(inb(e, P_CTL), ST_IDLE | ST_ERR);
        assert_int_equal(inb(e, P_ERR), 0x04);
        assert_int_equal(inb(e, P_STATUS), ST_IDLE | ST_ERR);
        assert_int_equal(e->hw.level[14], 0);
    }
    /* The next good command clears the error. */
    issue_lba28(e, 0x40, 0, 1);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    assert_int_equal(inb(e, P_ERR), 0);
}

static void test_srst_signature(void **state)
{
    struct env *e = *state;
    outb(e, P_COUNT, 0x55);
    outb(e, P_LBAL, 0xaa);
    outb(e, P_LBAM, 0x12);
    outb(e, P_LBAH, 0x34);
    outb(e, P_DEV, 0xa0);
    /* Abandon a PIO read half-way through. */
    issue_lba28(e, 0x20, 0, 2);
    inw(e, P_DATA);
    outb(e, P_CTL, 0x06);                          /* SRST + nIEN */
    assert_int_equal(inb(e, P_CTL), ST_BSY);
    outb(e, P_CTL, 0x02);
    assert_int_equal(inb(e, P_CTL), ST_IDLE);
    assert_int_equal(inb(e, P_COUNT), 0x01);
    assert_int_equal(inb(e, P_LBAL), 0x01);
    assert_int_equal(inb(e, P_LBAM), 0x00);
    assert_int_equal(inb(e, P_LBAH), 0x00);
    assert_int_equal(inb(e, P_ERR), 0x01);
    assert_int_equal(inb(e, P_DEV) & 0x10, 0);
    assert_int_equal(e->hw.level[14], 0);
    assert_int_equal(e->hw.edges[14], 1);             /* only the read's first block */
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    assert_int_equal(inw(e, P_DATA), 0xffff);      /* the transfer is gone */

    /* The absent slave: status 0, device 0 answers the other registers. */
    outb(e, P_DEV, 0xb0);
    assert_int_equal(inb(e, P_STATUS), 0);
    assert_int_equal(inb(e, P_CTL), 0);
    assert_int_equal(inb(e, P_ERR), 0x01);
    assert_int_equal(inb(e, P_COUNT), 0x01);
    assert_int_equal(inb(e, P_DEV), 0xb0);
    /* Linux's ata_devchk pattern still reads back through the shared registers. */
    outb(e, P_COUNT, 0x55);
    outb(e, P_LBAL, 0xaa);
    assert_int_equal(inb(e, P_COUNT), 0x55);
    assert_int_equal(inb(e, P_LBAL), 0xaa);
    /* Commands to it are ignored. */
    outb(e, P_CTL, 0x00);
    outb(e, P_CMD, 0xec);
    assert_int_equal(inb(e, P_STATUS), 0);
    assert_int_equal(e->hw.edges[14], 1);
    outb(e, P_DEV, 0xa0);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
}

static void test_execute_device_diagnostic(void **state)
{
    struct env *e = *state;
    outb(e, P_LBAM, 0x99);
    outb(e, P_DEV, 0xb0);                          /* runs whichever drive is selected */
    outb(e, P_CMD, 0x90);
    assert_int_equal(e->hw.edges[14], 1);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    assert_int_equal(inb(e, P_ERR), 0x01);
    assert_int_equal(inb(e, P_LBAM), 0);
    assert_int_equal(inb(e, P_COUNT), 1);
}

static void test_irq_gating_and_clearing(void **state)
{
    struct env *e = *state;
    /* nIEN holds the line low; the interrupt stays pending in the drive. */
    outb(e, P_CTL, 0x02);
    issue_lba28(e, 0x40, 0, 1);
    assert_int_equal(e->hw.level[14], 0);
    assert_int_equal(e->hw.edges[14], 0);
    outb(e, P_CTL, 0x00);
    assert_int_equal(e->hw.level[14], 1);
    assert_int_equal(e->hw.edges[14], 1);
    /* The bus-master Interrupt bit follows the line, for PIO commands too. */
    enable_bus_master(e);
    assert_int_equal(bus_pio_read(e->hw.b, BM_BASE + 2, 1) & 0x04, 0x04);
    /* Selecting the absent slave drops the line; selecting back raises it. */
    outb(e, P_DEV, 0xb0);
    assert_int_equal(e->hw.level[14], 0);
    outb(e, P_DEV, 0xa0);
    assert_int_equal(e->hw.level[14], 1);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    assert_int_equal(e->hw.level[14], 0);
    /* A new command clears a pending interrupt before raising its own: a fresh edge. */
    issue_lba28(e, 0x40, 0, 1);
    assert_int_equal(e->hw.edges[14], 3);
    issue_lba28(e, 0x40, 0, 1);
    assert_int_equal(e->hw.edges[14], 4);
    assert_int_equal(e->hw.level[15], 0);
    assert_int_equal(e->hw.edges[15], 0);
}

static void test_empty_channel_reads_zero(void **state)
{
    struct env *e = *state;
    for (int dev = 0; dev < 2; dev++) {
        outb(e, 0x176, dev ? 0xb0 : 0xa0);
        outb(e, 0x172, 0x55);
        outb(e, 0x173, 0xaa);
        assert_int_equal(inb(e, 0x172), 0);
        assert_int_equal(inb(e, 0x173), 0);
        assert_int_equal(inb(e, 0x177), 0);
        assert_int_equal(inb(e, 0x376), 0);
        outb(e, 0x177, 0xec);
        assert_int_equal(inb(e, 0x177), 0);
    }
    assert_int_equal(e->hw.edges[15], 0);
}

static void test_slave_disk(void **state)
{
    struct env *e = *state;
    char path[160], err[256];
    snprintf(path, sizeof(path), "%s/hdb.img", e->dir);
    make_image(path, 2048);
    struct blockdev *bd = open_extra(e, path, false);
    assert_int_equal(ide_attach_disk(e->ide, 0, 1, bd, err, sizeof(err)), 0);
    assert_int_equal(ide_attach_disk(e->ide, 0, 1, bd, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "already holds"));

    uint16_t id[256];
    identify(e, 0, id);
    assert_int_not_equal(id[93] & 0xdf61, 0x4041);     /* SeaBIOS goes on to probe the slave */
    identify(e, 1, id);
    assert_int_equal(id[60], 2048);
    assert_int_equal(id[1], 2);
    char s[21];
    id_string(id, 10, 10, s);
    assert_string_equal(s, "RV00000002");

    outb(e, P_CTL, 0x04);
    outb(e, P_CTL, 0x00);
    outb(e, P_DEV, 0xb0);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    assert_int_equal(inb(e, P_LBAM), 0);

    /* Both images are independent. */
    uint8_t data[512], back[512];
    memset(data, 0xbd, sizeof(data));
    outb(e, P_DEV, 0xf0);
    outb(e, P_COUNT, 1);
    outb(e, P_LBAL, 9);
    outb(e, P_LBAM, 0);
    outb(e, P_LBAH, 0);
    outb(e, P_CMD, 0x30);
    write_block(e, data, 512);
    assert_int_equal(inb(e, P_STATUS), ST_IDLE);
    file_read(path, 9 * 512, back, 512);
    assert_memory_equal(back, data, 512);
    file_read(e->path, 9 * 512, back, 512);
    expect_image_data(back, 9, 512);
}

static void test_read_only_image_aborts_writes(void **state)
{
    struct env *e = *state;
    char path[160], err[256];
    snprintf(path, sizeof(path), "%s/ro.img", e->dir);
    make_image(path, 64);
    struct blockdev *bd = open_extra(e, path, true);
    assert_int_equal(ide_attach_disk(e->ide, 1, 1, bd, err, sizeof(err)), 0);
    outb(e, 0x176, 0xf0);
    outb(e, 0x172, 1);
    outb(e, 0x173, 0);
    outb(e, 0x174, 0);
    outb(e, 0x175, 0);
    outb(e, 0x177, 0x30);
    assert_int_equal(e->hw.edges[15], 1);
    assert_int_equal(inb(e, 0x177), ST_IDLE | ST_ERR);
    assert_int_equal(inb(e, 0x171), 0x04);
    outb(e, 0x177, 0xca);
    assert_int_equal(inb(e, 0x177), ST_IDLE | ST_ERR);
    /* Reads work. */
    outb(e, 0x177, 0x20);
    assert_int_equal(inb(e, 0x177), ST_IDLE | ST_DRQ);
    uint8_t buf[512];
    for (int i = 0; i < 512; i += 2) {
        uint16_t w = inw(e, 0x170);
        buf[i] = w;
        buf[i + 1] = w >> 8;
    }
    expect_image_data(buf, 0, 512);}

/* ---- PCI ---- */

static void test_pci_config(void **state)
{
    struct env *e = *state;
    assert_int_equal(pci_config_read(e->hw.pb, DEVFN, 0x00, 4), 0x70108086);
    assert_int_equal(pci_config_read(e->hw.pb, DEVFN, 0x08, 4) >> 8, 0x010180);
    /* BAR4: 16 bytes of I/O. */
    assert_int_equal(pci_config_read(e->hw.pb, DEVFN, 0x20, 4), 0x1);
    pci_config_write(e->hw.pb, DEVFN, 0x20, 0xffffffff, 4);
    assert_int_equal(pci_config_read(e->hw.pb, DEVFN, 0x20, 4), 0xfffffff1);
    /* The legacy BARs are not implemented. */
    pci_config_write(e->hw.pb, DEVFN, 0x10, 0xffffffff, 4);
    assert_int_equal(pci_config_read(e->hw.pb, DEVFN, 0x10, 4), 0);
    /* Decode enabled on both channels out of reset; timings writable. */
    assert_int_equal(pci_config_read(e->hw.pb, DEVFN, 0x40, 4), 0x80008000);
    pci_config_write(e->hw.pb, DEVFN, 0x40, 0xa307, 2);
    pci_config_write(e->hw.pb, DEVFN, 0x44, 0x33, 1);
    assert_int_equal(pci_config_read(e->hw.pb, DEVFN, 0x40, 2), 0xa307);
    assert_int_equal(pci_config_read(e->hw.pb, DEVFN, 0x44, 1), 0x33);

    /* Bus-master registers appear only with I/O decode on. */
    pci_config_write(e->hw.pb, DEVFN, 0x20, BM_BASE, 4);
    assert_int_equal(bus_pio_read(e->hw.b, BM_BASE + 4, 4), 0xffffffff);
    pci_config_write(e->hw.pb, DEVFN, 0x04, 0x0001, 2);
    bus_pio_write(e->hw.b, BM_BASE + 12, 0x12345677, 4);
    assert_int_equal(bus_pio_read(e->hw.b, BM_BASE + 12, 4), 0x12345674);
    /* Moving the BAR moves the registers. */
    pci_config_write(e->hw.pb, DEVFN, 0x20, 0xd000, 4);
    assert_int_equal(bus_pio_read(e->hw.b, BM_BASE + 12, 4), 0xffffffff);
    assert_int_equal(bus_pio_read(e->hw.b, 0xd000 + 12, 4), 0x12345674);

    /* Machine reset restores the defaults. */
    bus_reset_devices(e->hw.b);
    assert_int_equal(pci_config_read(e->hw.pb, DEVFN, 0x40, 4), 0x80008000);
    assert_int_equal(bus_pio_read(e->hw.b, 0xd000 + 12, 4), 0xffffffff);
}

static void test_attach_errors_and_geometry(void **state)
{
    struct env *e = *state;
    char err[256];
    assert_int_equal(ide_attach_disk(e->ide, 2, 0, e->bd, err, sizeof(err)), -1);
    assert_int_equal(ide_attach_disk(e->ide, 0, 0, e->bd, err, sizeof(err)), -1);
    assert_non_null(strstr(err, e->path));
    uint16_t c;
    uint8_t h, s;
    assert_true(ide_disk_geometry(e->ide, 0, 0, &c, &h, &s));
    assert_int_equal(c, 16);
    assert_int_equal(h, 16);
    assert_int_equal(s, 63);
    assert_false(ide_disk_geometry(e->ide, 0, 1, &c, &h, &s));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_identify),
        T(test_identify_32bit_data_port),
        T(test_pio_read_lba28),
        T(test_pio_read_chs),
        T(test_pio_write_lba28),
        T(test_pio_write_chs),
        T(test_lba48_on_a_large_sparse_image),
        T(test_read_write_multiple),
        T(test_out_of_range_is_idnf),
        T(test_dma_read),
        T(test_dma_write),
        T(test_dma_outside_ram_sets_error_bits),
        T(test_flush_cache),
        T(test_set_features),
        T(test_initialize_device_parameters),
        T(test_nondata_commands),
        T(test_unknown_command_aborts),
        T(test_srst_signature),
        T(test_execute_device_diagnostic),
        T(test_irq_gating_and_clearing),
        T(test_empty_channel_reads_zero),
        T(test_slave_disk),
        T(test_read_only_image_aborts_writes),
        T(test_pci_config),
        T(test_attach_errors_and_geometry),
    };
    return cmocka_run_group_tests_name("ide", tests, NULL, NULL);
}
