/*
 * ATAPI CD-ROM on the PIIX3 IDE's secondary master, driven through port I/O
 * as a driver would: the signature, IDENTIFY PACKET DEVICE, the PACKET
 * protocol over PIO (byte count limit, interrupt reason, DRQ blocks) and
 * bus-master DMA, each MMC command, sense data, unit attention on a media
 * change, the tray and its lock, and out-of-range reads.  Random packets
 * (3000, or $ATAPI_FUZZ) check that every command reaches an end.
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

#include "devices/atapi.h"
#include "devices/bus.h"
#include "devices/ide.h"
#include "devices/pci.h"
#include "hosted-driver/vclock.h"
#include "device_bench.h"

#define DISC_SECTORS 100
#define RAM_SIZE (1u << 20)
#define BM_BASE 0xc000
#define BM_SEC (BM_BASE + 8)
#define DEVFN ((1 << 3) | 1)
#define IRQ 15

#define S_DATA 0x170
#define S_ERR 0x171
#define S_FEAT 0x171
#define S_COUNT 0x172
#define S_LBAL 0x173
#define S_LBAM 0x174
#define S_LBAH 0x175
#define S_DEV 0x176
#define S_STATUS 0x177
#define S_CMD 0x177
#define S_CTL 0x376

#define ST_ERR 0x01
#define ST_DRQ 0x08
#define ST_DSC 0x10
#define ST_DRDY 0x40
#define ST_BSY 0x80
#define ST_IDLE (ST_DRDY | ST_DSC)

#define IR_COD 1
#define IR_IO 2

struct env {
    struct bench hw;
    char dir[64];
    char path[128], path2[128];
    struct ide *ide;
    struct atapi *cd;
};

/* ---- fixtures ---- */

static uint8_t disc_byte(uint64_t off, int disc)
{
    return (uint8_t)(off * 5 + (off >> 11) * 17 + 3 + disc * 101);
}

static void make_disc(const char *path, uint32_t sectors, int disc)
{
    size_t size = (size_t)sectors * ATAPI_SECTOR;
    uint8_t *buf = malloc(size);
    for (size_t i = 0; i < size; i++)
        buf[i] = disc_byte(i, disc);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, size), (ssize_t)size);
    close(fd);
    free(buf);
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    strcpy(e->dir, "/tmp/rv-atapi-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->path, sizeof(e->path), "%s/a.iso", e->dir);
    snprintf(e->path2, sizeof(e->path2), "%s/b.iso", e->dir);
    make_disc(e->path, DISC_SECTORS, 0);
    make_disc(e->path2, DISC_SECTORS / 2, 1);
    bench_init(&e->hw, RAM_SIZE, true);
    e->ide = ide_new(e->hw.b, e->hw.pb, bench_ram_rw, &e->hw);
    e->cd = atapi_new();
    char err[256];
    if (atapi_insert(e->cd, e->path, false, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(ide_attach_cdrom(e->ide, 1, 0, e->cd, err, sizeof(err)), 0);
    bus_reset_devices(e->hw.b);
    pci_config_write(e->hw.pb, DEVFN, 0x20, BM_BASE, 4);
    pci_config_write(e->hw.pb, DEVFN, 0x04, 0x0005, 2);
    memset(e->hw.edges, 0, sizeof(e->hw.edges));
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    ide_free(e->ide);
    atapi_free(e->cd);
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

static uint16_t byte_count(struct env *e)
{
    return (uint16_t)(inb(e, S_LBAH) << 8 | inb(e, S_LBAM));
}

/* PACKET with the given byte count limit, then the 12 command bytes. */
static void send_packet(struct env *e, const uint8_t cdb[12], uint16_t limit, bool dma)
{
    outb(e, S_DEV, 0xa0);
    outb(e, S_FEAT, dma ? 1 : 0);
    outb(e, S_LBAM, (uint8_t)limit);
    outb(e, S_LBAH, limit >> 8);
    int edges = e->hw.edges[IRQ];
    outb(e, S_CMD, 0xa0);
    /* The drive asks for the packet: DRQ, "command" reason, no interrupt. */
    assert_int_equal(bus_pio_read(e->hw.b, S_CTL, 1), ST_IDLE | ST_DRQ);
    assert_int_equal(inb(e, S_COUNT) & 3, IR_COD);
    assert_int_equal(e->hw.edges[IRQ], edges);
    for (int i = 0; i < 12; i += 2)
        outw(e, S_DATA, cdb[i] | cdb[i + 1] << 8);
}

/* Read every PIO data block the drive offers into buf; returns the bytes
 * read.  Checks the interrupt and the reason of each block and the end. */
static uint32_t pio_in(struct env *e, uint8_t *buf, uint32_t max, uint32_t *blocks)
{
    uint32_t total = 0, n = 0;
    for (;;) {
        uint8_t st = bus_pio_read(e->hw.b, S_CTL, 1);
        if (!(st & ST_DRQ))
            break;
        assert_int_equal(e->hw.level[IRQ], 1);
        assert_int_equal(inb(e, S_COUNT) & 3, IR_IO);
        uint32_t len = byte_count(e);
        assert_true(total + len <= max);
        assert_int_equal(inb(e, S_STATUS), ST_IDLE | ST_DRQ);   /* clears INTRQ */
        for (uint32_t i = 0; i < len; i += 2) {
            uint16_t w = inw(e, S_DATA);
            buf[total + i] = (uint8_t)w;
            if (i + 1 < len)
                buf[total + i + 1] = w >> 8;
        }
        total += len;
        n++;
    }
    if (blocks)
        *blocks = n;
    return total;
}

/* The command has ended: status and interrupt reason of completion. */
static void expect_good(struct env *e)
{
    assert_int_equal(e->hw.level[IRQ], 1);
    assert_int_equal(inb(e, S_COUNT) & 3, IR_IO | IR_COD);
    assert_int_equal(inb(e, S_STATUS), ST_IDLE);
    assert_int_equal(e->hw.level[IRQ], 0);
}

static void expect_failed(struct env *e, uint8_t key)
{
    assert_int_equal(e->hw.level[IRQ], 1);
    assert_int_equal(inb(e, S_COUNT) & 3, IR_IO | IR_COD);
    assert_int_equal(inb(e, S_STATUS), ST_IDLE | ST_ERR);
    assert_int_equal(inb(e, S_ERR) >> 4, key);
}

/* A command with data in by PIO; returns the length and expects GOOD. */
static uint32_t command_in(struct env *e, const uint8_t cdb[12], uint8_t *buf, uint32_t max)
{
    send_packet(e, cdb, 0xfffe, false);
    uint32_t n = pio_in(e, buf, max, NULL);
    expect_good(e);
    return n;
}

static void command_nodata(struct env *e, const uint8_t cdb[12])
{
    send_packet(e, cdb, 0xfffe, false);
    expect_good(e);
}

static void expect_sense(struct env *e, uint8_t key, uint8_t asc, uint8_t ascq)
{
    uint8_t cdb[12] = { 0x03, 0, 0, 0, 18 };
    uint8_t s[18];
    assert_int_equal(command_in(e, cdb, s, sizeof(s)), 18);
    assert_int_equal(s[0], 0x70);
    assert_int_equal(s[2] & 0x0f, key);
    assert_int_equal(s[7], 10);
    assert_int_equal(s[12], asc);
    assert_int_equal(s[13], ascq);
}

static void command_check(struct env *e, const uint8_t cdb[12], uint8_t key, uint8_t asc, uint8_t ascq)
{
    send_packet(e, cdb, 0xfffe, false);
    expect_failed(e, key);
    expect_sense(e, key, asc, ascq);
}

static void read10_cdb(uint8_t cdb[12], uint32_t lba, uint16_t count)
{
    memset(cdb, 0, 12);
    cdb[0] = 0x28;
    cdb[2] = lba >> 24;
    cdb[3] = lba >> 16;
    cdb[4] = lba >> 8;
    cdb[5] = (uint8_t)lba;
    cdb[7] = count >> 8;
    cdb[8] = (uint8_t)count;
}

static void expect_disc_data(const uint8_t *buf, uint32_t lba, uint32_t bytes, int disc)
{
    for (uint32_t i = 0; i < bytes; i++)
        if (buf[i] != disc_byte((uint64_t)lba * ATAPI_SECTOR + i, disc))
            fail_msg("byte %u of the data from sector %u differs", i, lba);
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* ---- ATA side ---- */

static void expect_signature(struct env *e)
{
    assert_int_equal(inb(e, S_COUNT), 1);
    assert_int_equal(inb(e, S_LBAL), 1);
    assert_int_equal(inb(e, S_LBAM), 0x14);
    assert_int_equal(inb(e, S_LBAH), 0xeb);
}

static void test_signature_after_resets(void **state)
{
    struct env *e = *state;
    outb(e, S_DEV, 0xa0);
    expect_signature(e);
    assert_int_equal(inb(e, S_STATUS), 0);      /* DRDY clear after reset on a packet device */
    assert_int_equal(inb(e, S_ERR), 0x01);

    outb(e, S_CTL, 0x04);                       /* SRST */
    assert_int_equal(bus_pio_read(e->hw.b, S_CTL, 1), ST_BSY);
    outb(e, S_CTL, 0x00);
    expect_signature(e);
    assert_int_equal(inb(e, S_STATUS), 0);

    outb(e, S_LBAM, 0x55);
    outb(e, S_CMD, 0x90);                       /* EXECUTE DEVICE DIAGNOSTIC */
    expect_signature(e);
    assert_int_equal(inb(e, S_ERR), 0x01);

    outb(e, S_LBAH, 0);
    outb(e, S_CMD, 0x08);                       /* DEVICE RESET */
    expect_signature(e);
}

static void test_identify_device_aborts_with_signature(void **state)
{
    struct env *e = *state;
    outb(e, S_DEV, 0xa0);
    outb(e, S_LBAM, 0);
    outb(e, S_LBAH, 0);
    outb(e, S_CMD, 0xec);
    assert_int_equal(inb(e, S_STATUS), ST_IDLE | ST_ERR);
    assert_int_equal(inb(e, S_ERR), 0x04);
    expect_signature(e);
    outb(e, S_CMD, 0x20);                       /* READ SECTORS */
    assert_int_equal(inb(e, S_STATUS), ST_IDLE | ST_ERR);
}

static void test_identify_packet_device(void **state)
{
    struct env *e = *state;
    outb(e, S_DEV, 0xa0);
    outb(e, S_CMD, 0xa1);
    assert_int_equal(e->hw.level[IRQ], 1);
    assert_int_equal(inb(e, S_STATUS), ST_IDLE | ST_DRQ);
    uint16_t id[256];
    for (int i = 0; i < 256; i++)
        id[i] = inw(e, S_DATA);
    assert_int_equal(inb(e, S_STATUS), ST_IDLE);
    assert_int_equal(id[0] >> 14, 2);           /* ATAPI */
    assert_int_equal((id[0] >> 8) & 0x1f, 5);   /* CD-ROM */
    assert_true(id[0] & 0x80);                  /* removable */
    assert_int_equal(id[0] & 3, 0);             /* 12-byte packets */
    assert_true(id[49] & (1 << 8));             /* DMA */
    assert_true(id[85] & (1 << 4));             /* PACKET feature set */
    char model[41];
    for (int i = 0; i < 20; i++) {
        model[2 * i] = id[27 + i] >> 8;
        model[2 * i + 1] = id[27 + i] & 0xff;
    }
    model[40] = 0;
    assert_memory_equal(model, "RETROVISOR CD-ROM   ", 20);
    uint8_t sum = 0;
    for (int i = 0; i < 256; i++)
        sum += (id[i] & 0xff) + (id[i] >> 8);
    assert_int_equal(sum, 0);
}

static void test_set_features_and_power(void **state)
{
    struct env *e = *state;
    outb(e, S_DEV, 0xa0);
    outb(e, S_FEAT, 0x03);
    outb(e, S_COUNT, 0x22);                     /* multiword DMA 2 */
    outb(e, S_CMD, 0xef);
    assert_int_equal(inb(e, S_STATUS), ST_IDLE);
    outb(e, S_FEAT, 0x03);
    outb(e, S_COUNT, 0x47);                     /* UDMA 7: no such mode */
    outb(e, S_CMD, 0xef);
    assert_int_equal(inb(e, S_STATUS), ST_IDLE | ST_ERR);
    outb(e, S_CMD, 0xe5);                       /* CHECK POWER MODE */
    assert_int_equal(inb(e, S_STATUS), ST_IDLE);
    assert_int_equal(inb(e, S_COUNT), 0xff);
}

/* ---- PACKET over PIO ---- */

static void test_inquiry_pio_protocol(void **state)
{
    struct env *e = *state;
    uint8_t cdb[12] = { 0x12, 0, 0, 0, 96 };
    uint8_t r[96];
    send_packet(e, cdb, 0xfffe, false);
    assert_int_equal(e->hw.edges[IRQ], 1);
    assert_int_equal(byte_count(e), 36);
    uint32_t blocks;
    assert_int_equal(pio_in(e, r, sizeof(r), &blocks), 36);
    assert_int_equal(blocks, 1);
    expect_good(e);
    assert_int_equal(e->hw.edges[IRQ], 2);         /* one for the data, one for the end */
    assert_int_equal(r[0], 0x05);
    assert_int_equal(r[1], 0x80);
    assert_memory_equal(r + 8, "RETROVSR", 8);
    assert_memory_equal(r + 16, "CD-ROM          ", 16);

    /* The allocation length cuts the reply. */
    cdb[4] = 5;
    assert_int_equal(command_in(e, cdb, r, sizeof(r)), 5);
    /* Vital product data: the page list only. */
    uint8_t vpd[12] = { 0x12, 1, 0x00, 0, 64 };
    assert_int_equal(command_in(e, vpd, r, sizeof(r)), 5);
    assert_int_equal(r[1], 0x00);
    vpd[2] = 0x83;
    command_check(e, vpd, SENSE_ILLEGAL_REQUEST, 0x24, 0);
}

static void test_read_pio_byte_count_limit(void **state)
{
    struct env *e = *state;
    static uint8_t buf[40 * ATAPI_SECTOR];
    uint8_t cdb[12];
    uint32_t blocks;

    /* 3 sectors, limit 2000: blocks of 2000 bytes and the 144 left. */
    read10_cdb(cdb, 7, 3);
    send_packet(e, cdb, 2000, false);
    assert_int_equal(byte_count(e), 2000);
    assert_int_equal(pio_in(e, buf, sizeof(buf), &blocks), 3 * ATAPI_SECTOR);
    assert_int_equal(blocks, 4);
    expect_good(e);
    expect_disc_data(buf, 7, 3 * ATAPI_SECTOR, 0);

    /* An odd limit is used as the even count below it. */
    read10_cdb(cdb, 0, 1);
    send_packet(e, cdb, 1025, false);
    assert_int_equal(byte_count(e), 1024);
    assert_int_equal(pio_in(e, buf, sizeof(buf), &blocks), ATAPI_SECTOR);
    assert_int_equal(blocks, 2);
    expect_good(e);
    expect_disc_data(buf, 0, ATAPI_SECTOR, 0);

    /* A limit of 0 means the largest block. */
    read10_cdb(cdb, DISC_SECTORS - 40, 40);
    send_packet(e, cdb, 0, false);
    assert_int_equal(byte_count(e), 0xfffe);
    assert_int_equal(pio_in(e, buf, sizeof(buf), &blocks), 40 * ATAPI_SECTOR);
    assert_int_equal(blocks, 2);
    expect_good(e);
    expect_disc_data(buf, DISC_SECTORS - 40, 40 * ATAPI_SECTOR, 0);
}

static void test_read12_and_zero_length(void **state)
{
    struct env *e = *state;
    static uint8_t buf[4 * ATAPI_SECTOR];
    uint8_t cdb[12] = { 0xa8, 0, 0, 0, 0, 50, 0, 0, 0, 4 };
    assert_int_equal(command_in(e, cdb, buf, sizeof(buf)), 4 * ATAPI_SECTOR);
    expect_disc_data(buf, 50, 4 * ATAPI_SECTOR, 0);
    uint8_t none[12];
    read10_cdb(none, 10, 0);
    command_nodata(e, none);

    /* READ CD, user data only, is a READ. */
    uint8_t rcd[12] = { 0xbe, 0, 0, 0, 0, 20, 0, 0, 2, 0x10 };
    assert_int_equal(command_in(e, rcd, buf, sizeof(buf)), 2 * ATAPI_SECTOR);
    expect_disc_data(buf, 20, 2 * ATAPI_SECTOR, 0);
    rcd[9] = 0xf8;                              /* sync, headers, EDC: not offered */
    command_check(e, rcd, SENSE_ILLEGAL_REQUEST, 0x24, 0);
    rcd[9] = 0x10;
    rcd[1] = 1 << 2;                            /* CD-DA sectors from a data track */
    command_check(e, rcd, SENSE_ILLEGAL_REQUEST, 0x64, 0);
}

static void test_out_of_range_reads(void **state)
{
    struct env *e = *state;
    uint8_t cdb[12];
    read10_cdb(cdb, DISC_SECTORS, 1);
    command_check(e, cdb, SENSE_ILLEGAL_REQUEST, 0x21, 0);
    assert_int_equal(inb(e, S_ERR) & 0x04, 0x00);   /* sense read: a new command ran */
    read10_cdb(cdb, DISC_SECTORS - 2, 3);
    send_packet(e, cdb, 0xfffe, false);
    expect_failed(e, SENSE_ILLEGAL_REQUEST);
    assert_int_equal(inb(e, S_ERR), 0x54);      /* ILLEGAL REQUEST, ABRT */
    expect_sense(e, SENSE_ILLEGAL_REQUEST, 0x21, 0);
    /* A transfer length that would overflow 32 bits of bytes and the disc. */
    uint8_t r12[12] = { 0xa8, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff };
    command_check(e, r12, SENSE_ILLEGAL_REQUEST, 0x21, 0);
    uint8_t seek[12] = { 0x2b, 0, 0xff, 0xff, 0xff, 0xff };
    command_check(e, seek, SENSE_ILLEGAL_REQUEST, 0x21, 0);
    /* REQUEST SENSE cleared the sense: the next one reads NO SENSE. */
    expect_sense(e, SENSE_NONE, 0, 0);
}

static void test_invalid_opcode(void **state)
{
    struct env *e = *state;
    uint8_t cdb[12] = { 0xff };
    command_check(e, cdb, SENSE_ILLEGAL_REQUEST, 0x20, 0);
    uint8_t play[12] = { 0x45 };
    command_check(e, play, SENSE_ILLEGAL_REQUEST, 0x64, 0);
    uint8_t speed[12] = { 0xbb, 0, 0xff, 0xff };
    command_nodata(e, speed);
}

/* ---- PACKET over DMA ---- */

static void put_prd(struct env *e, uint32_t table, int idx, uint32_t addr, uint32_t count, bool eot)
{
    uint32_t w[2] = { addr, (count & 0xffff) | (eot ? 0x80000000u : 0) };
    memcpy(e->hw.ram + table + 8 * idx, w, 8);
}

static void test_dma_read(void **state)
{
    struct env *e = *state;
    /* 40 sectors (80 KiB) through two PRD entries of 64 KiB and 16 KiB. */
    put_prd(e, 0x1000, 0, 0x10000, 0, false);
    put_prd(e, 0x1000, 1, 0x20000, 0x4000, true);
    bus_pio_write(e->hw.b, BM_SEC + 4, 0x1000, 4);
    bus_pio_write(e->hw.b, BM_SEC, 0x08, 1);
    bus_pio_write(e->hw.b, BM_SEC + 2, 0x06, 1);
    uint8_t cdb[12];
    read10_cdb(cdb, 30, 40);
    send_packet(e, cdb, 0, true);
    /* Waiting for the bus master: DRQ, data to the host, no interrupt yet. */
    assert_int_equal(bus_pio_read(e->hw.b, S_CTL, 1), ST_IDLE | ST_DRQ);
    assert_int_equal(inb(e, S_COUNT) & 3, IR_IO);
    assert_int_equal(e->hw.edges[IRQ], 0);
    bus_pio_write(e->hw.b, BM_SEC, 0x09, 1);
    assert_int_equal(bus_pio_read(e->hw.b, BM_SEC + 2, 1) & 7, 0x04);  /* done, interrupt, no error */
    expect_good(e);
    expect_disc_data(e->hw.ram + 0x10000, 30, 40 * ATAPI_SECTOR, 0);
    bus_pio_write(e->hw.b, BM_SEC, 0x00, 1);
    bus_pio_write(e->hw.b, BM_SEC + 2, 0x04, 1);

    /* The engine started first, then the command: a short reply (INQUIRY)
     * into a larger buffer leaves the bus master active, as on a PIIX. */
    memset(e->hw.ram + 0x30000, 0, 256);
    put_prd(e, 0x1000, 0, 0x30000, 256, true);
    bus_pio_write(e->hw.b, BM_SEC, 0x09, 1);
    uint8_t inq[12] = { 0x12, 0, 0, 0, 96 };
    send_packet(e, inq, 0, true);
    expect_good(e);
    assert_int_equal(bus_pio_read(e->hw.b, BM_SEC + 2, 1) & 7, 0x05);
    assert_memory_equal(e->hw.ram + 0x30000 + 8, "RETROVSR", 8);
}

static void test_dma_errors(void **state)
{
    struct env *e = *state;
    /* A PRD table describing less memory than the data: the bus master
     * reports an error and the command ends in CHECK CONDITION. */
    put_prd(e, 0x1000, 0, 0x10000, 1024, true);
    bus_pio_write(e->hw.b, BM_SEC + 4, 0x1000, 4);
    uint8_t cdb[12];
    read10_cdb(cdb, 0, 2);
    send_packet(e, cdb, 0, true);
    bus_pio_write(e->hw.b, BM_SEC, 0x09, 1);
    assert_int_equal(bus_pio_read(e->hw.b, BM_SEC + 2, 1) & 7, 0x06);
    expect_failed(e, 0x0b);                      /* ABORTED COMMAND */
    bus_pio_write(e->hw.b, BM_SEC, 0x00, 1);
    bus_pio_write(e->hw.b, BM_SEC + 2, 0x06, 1);

    /* A buffer outside RAM. */
    put_prd(e, 0x1000, 0, RAM_SIZE - 512, 0x1000, true);
    send_packet(e, cdb, 0, true);
    bus_pio_write(e->hw.b, BM_SEC, 0x09, 1);
    assert_int_equal(bus_pio_read(e->hw.b, BM_SEC + 2, 1) & 7, 0x06);
    expect_failed(e, 0x0b);
    bus_pio_write(e->hw.b, BM_SEC, 0x00, 1);
    bus_pio_write(e->hw.b, BM_SEC + 2, 0x06, 1);

    /* An out-of-range read fails before any DMA. */
    read10_cdb(cdb, DISC_SECTORS, 1);
    send_packet(e, cdb, 0, true);
    expect_failed(e, SENSE_ILLEGAL_REQUEST);
    assert_int_equal(bus_pio_read(e->hw.b, BM_SEC + 2, 1) & 7, 0x04);
}

/* ---- MMC commands ---- */

static void test_read_capacity(void **state)
{
    struct env *e = *state;
    uint8_t cdb[12] = { 0x25 };
    uint8_t r[8];
    assert_int_equal(command_in(e, cdb, r, sizeof(r)), 8);
    assert_int_equal(be32(r), DISC_SECTORS - 1);
    assert_int_equal(be32(r + 4), 2048);
}

static void test_read_toc(void **state)
{
    struct env *e = *state;
    uint8_t r[64];
    uint8_t cdb[12] = { 0x43, 0, 0, 0, 0, 0, 0, 0, sizeof(r) };
    assert_int_equal(command_in(e, cdb, r, sizeof(r)), 20);
    assert_int_equal(be16(r), 18);
    assert_int_equal(r[2], 1);
    assert_int_equal(r[3], 1);
    assert_int_equal(r[5], 0x14);               /* data track */
    assert_int_equal(r[6], 1);
    assert_int_equal(be32(r + 8), 0);
    assert_int_equal(r[14], 0xaa);              /* lead-out */
    assert_int_equal(be32(r + 16), DISC_SECTORS);

    cdb[1] = 2;                                 /* MSF: lead-out at 100 + 150 frames = 00:03:25 */
    assert_int_equal(command_in(e, cdb, r, sizeof(r)), 20);
    assert_memory_equal(r + 8, "\x00\x00\x02\x00", 4);
    assert_memory_equal(r + 16, "\x00\x00\x03\x19", 4);

    cdb[1] = 0;
    cdb[6] = 0xaa;                              /* from the lead-out on */
    assert_int_equal(command_in(e, cdb, r, sizeof(r)), 12);
    assert_int_equal(r[6], 0xaa);
    cdb[6] = 2;                                 /* no track 2 */
    command_check(e, cdb, SENSE_ILLEGAL_REQUEST, 0x24, 0);

    uint8_t sess[12] = { 0x43, 0, 1, 0, 0, 0, 0, 0, sizeof(r) };
    assert_int_equal(command_in(e, sess, r, sizeof(r)), 12);
    assert_int_equal(be16(r), 10);
    assert_int_equal(r[6], 1);
    assert_int_equal(be32(r + 8), 0);

    uint8_t raw[12] = { 0x43, 2, 2, 0, 0, 0, 0, 0, sizeof(r) };
    assert_int_equal(command_in(e, raw, r, sizeof(r)), 4 + 4 * 11);
    assert_int_equal(r[4 + 3], 0xa0);
    assert_int_equal(r[4 + 2 * 11 + 3], 0xa2);
    assert_memory_equal(r + 4 + 2 * 11 + 8, "\x00\x03\x19", 3);   /* lead-out MSF */

    uint8_t bad[12] = { 0x43, 0, 5, 0, 0, 0, 0, 0, sizeof(r) };
    command_check(e, bad, SENSE_ILLEGAL_REQUEST, 0x24, 0);
}

static void test_read_subchannel(void **state)
{
    struct env *e = *state;
    uint8_t r[32];
    uint8_t cdb[12] = { 0x42, 2, 0x40, 1, 0, 0, 0, 0, sizeof(r) };
    assert_int_equal(command_in(e, cdb, r, sizeof(r)), 16);
    assert_int_equal(r[1], 0x15);
    assert_int_equal(be16(r + 2), 12);
    assert_int_equal(r[4], 1);
    assert_int_equal(r[6], 1);                  /* track 1 */
    assert_memory_equal(r + 8, "\x00\x00\x02\x00", 4);    /* absolute: 00:02:00 */
    assert_memory_equal(r + 12, "\x00\x00\x00\x00", 4);   /* relative to the track: 0 */
    cdb[2] = 0;                                 /* no Q data: header only */
    assert_int_equal(command_in(e, cdb, r, sizeof(r)), 4);
    cdb[2] = 0x40;
    cdb[3] = 2;                                 /* media catalogue number: none */
    assert_int_equal(command_in(e, cdb, r, sizeof(r)), 24);
    assert_int_equal(r[8] & 0x80, 0);
}

static void test_get_configuration(void **state)
{
    struct env *e = *state;
    uint8_t r[256];
    uint8_t cdb[12] = { 0x46, 0, 0, 0, 0, 0, 0, 1, 0 };
    uint32_t n = command_in(e, cdb, r, sizeof(r));
    assert_int_equal(be32(r), n - 4);
    assert_int_equal(be16(r + 6), 0x0008);      /* current profile: CD-ROM */
    assert_int_equal(be16(r + 8), 0x0000);      /* profile list first */
    assert_int_equal(be16(r + 12), 0x0008);
    assert_int_equal(r[14] & 1, 1);
    assert_int_equal(be16(r + 16), 0x0001);     /* core */
    assert_int_equal(be32(r + 20), 2);          /* ATAPI */

    cdb[1] = 2;                                 /* just feature 1Eh (CD read) */
    cdb[3] = 0x1e;
    assert_int_equal(command_in(e, cdb, r, sizeof(r)), 16);
    assert_int_equal(be16(r + 8), 0x001e);
    assert_int_equal(r[10] & 1, 1);

    /* Without a disc: no current profile, and CD read is not current. */
    char err[128];
    assert_int_equal(atapi_eject(e->cd, false, err, sizeof(err)), 0);
    cdb[1] = 1;                                 /* current features only */
    cdb[3] = 0;
    n = command_in(e, cdb, r, sizeof(r));
    assert_int_equal(be16(r + 6), 0);
    for (uint32_t i = 8; i < n; i += 4 + r[i + 3])
        assert_true(be16(r + i) != 0x001e && be16(r + i) != 0x0010);
}

static void test_mode_sense_and_select(void **state)
{
    struct env *e = *state;
    uint8_t r[256];
    uint8_t cdb[12] = { 0x5a, 0, 0x2a, 0, 0, 0, 0, 1, 0 };
    assert_int_equal(command_in(e, cdb, r, sizeof(r)), 8 + 22);
    assert_int_equal(be16(r), 8 + 22 - 2);
    assert_int_equal(r[2], 0x01);               /* medium: CD-ROM data */
    assert_int_equal(r[8], 0x2a);
    assert_int_equal(r[9], 20);
    assert_int_equal(r[14] & 0x0b, 0x09);       /* lock, eject; not locked */

    uint8_t prevent[12] = { 0x1e, 0, 0, 0, 1 };
    command_nodata(e, prevent);
    command_in(e, cdb, r, sizeof(r));
    assert_int_equal(r[14] & 0x02, 0x02);       /* lock state */

    uint8_t six[12] = { 0x1a, 0, 0x3f, 0, 255 };
    uint32_t n = command_in(e, six, r, sizeof(r));
    assert_int_equal(r[0], n - 1);
    int pages = 0;
    for (uint32_t i = 4; i < n; i += r[i + 1] + 2)
        pages++;
    assert_int_equal(pages, 5);

    uint8_t saved[12] = { 0x5a, 0, 0xc0 | 0x2a, 0, 0, 0, 0, 1, 0 };
    command_check(e, saved, SENSE_ILLEGAL_REQUEST, 0x39, 0);
    uint8_t nopage[12] = { 0x5a, 0, 0x05, 0, 0, 0, 0, 1, 0 };
    command_check(e, nopage, SENSE_ILLEGAL_REQUEST, 0x24, 0);

    /* MODE SELECT(10): a 16-byte parameter list written by PIO. */
    uint8_t sel[12] = { 0x55, 0x10, 0, 0, 0, 0, 0, 0, 16 };
    send_packet(e, sel, 0xfffe, false);
    assert_int_equal(e->hw.level[IRQ], 1);
    assert_int_equal(inb(e, S_COUNT) & 3, 0);   /* data, to the device */
    assert_int_equal(byte_count(e), 16);
    assert_int_equal(inb(e, S_STATUS), ST_IDLE | ST_DRQ);
    for (int i = 0; i < 8; i++)
        outw(e, S_DATA, 0);
    expect_good(e);
}

static void test_disc_and_track_information(void **state)
{
    struct env *e = *state;
    uint8_t r[64];
    uint8_t cdb[12] = { 0x51, 0, 0, 0, 0, 0, 0, 0, sizeof(r) };
    assert_int_equal(command_in(e, cdb, r, sizeof(r)), 34);
    assert_int_equal(be16(r), 32);
    assert_int_equal(r[2] & 3, 2);              /* complete disc */
    assert_int_equal(r[3], 1);
    uint8_t ti[12] = { 0x52, 1, 0, 0, 0, 1, 0, 0, sizeof(r) };
    assert_int_equal(command_in(e, ti, r, sizeof(r)), 36);
    assert_int_equal(r[2], 1);
    assert_int_equal(be32(r + 24), DISC_SECTORS);
    ti[5] = 2;
    command_check(e, ti, SENSE_ILLEGAL_REQUEST, 0x24, 0);
}

/* ---- media, tray, unit attention ---- */

static void test_unit_attention_on_media_change(void **state)
{
    struct env *e = *state;
    uint8_t tur[12] = { 0x00 };
    command_nodata(e, tur);                     /* no attention after power-on */

    char err[256];
    assert_int_equal(atapi_insert(e->cd, e->path2, false, err, sizeof(err)), 0);
    /* GET EVENT STATUS NOTIFICATION does not consume the attention. */
    uint8_t gesn[12] = { 0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8 };
    uint8_t r[8];
    assert_int_equal(command_in(e, gesn, r, sizeof(r)), 8);
    assert_int_equal(r[2], 0x04);
    assert_int_equal(r[4], 2);                  /* new media */
    assert_int_equal(r[5], 0x02);               /* present, tray closed */
    command_in(e, gesn, r, sizeof(r));
    assert_int_equal(r[4], 0);                  /* reported once */

    command_check(e, tur, SENSE_UNIT_ATTENTION, 0x28, 0);
    command_nodata(e, tur);
    uint8_t cap[12] = { 0x25 };
    assert_int_equal(command_in(e, cap, r, sizeof(r)), 8);
    assert_int_equal(be32(r), DISC_SECTORS / 2 - 1);
    static uint8_t buf[ATAPI_SECTOR];
    uint8_t rd[12];
    read10_cdb(rd, 3, 1);
    command_in(e, rd, buf, sizeof(buf));
    expect_disc_data(buf, 3, ATAPI_SECTOR, 1);

    /* REQUEST SENSE as the first command after a change reports the attention. */
    assert_int_equal(atapi_insert(e->cd, e->path, false, err, sizeof(err)), 0);
    expect_sense(e, SENSE_UNIT_ATTENTION, 0x28, 0);
    command_nodata(e, tur);

    uint8_t nopoll[12] = { 0x4a, 0, 0, 0, 0x10, 0, 0, 0, 8 };
    command_check(e, nopoll, SENSE_ILLEGAL_REQUEST, 0x24, 0);
}

static void test_no_medium(void **state)
{
    struct env *e = *state;
    char err[256];
    assert_int_equal(atapi_eject(e->cd, false, err, sizeof(err)), 0);
    assert_true(atapi_tray_open(e->cd));
    uint8_t tur[12] = { 0x00 };
    command_check(e, tur, SENSE_NOT_READY, 0x3a, 0x02);         /* tray open */
    uint8_t cap[12] = { 0x25 };
    command_check(e, cap, SENSE_NOT_READY, 0x3a, 0x02);
    uint8_t rd[12];
    read10_cdb(rd, 0, 1);
    command_check(e, rd, SENSE_NOT_READY, 0x3a, 0x02);
    uint8_t toc[12] = { 0x43, 0, 0, 0, 0, 0, 0, 0, 12 };
    command_check(e, toc, SENSE_NOT_READY, 0x3a, 0x02);

    uint8_t gesn[12] = { 0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8 };
    uint8_t r[8];
    command_in(e, gesn, r, sizeof(r));
    assert_int_equal(r[4], 3);                  /* media removal */
    assert_int_equal(r[5], 0x01);               /* tray open, no disc */

    uint8_t load[12] = { 0x1b, 0, 0, 0, 0x03 };
    command_nodata(e, load);                    /* close the empty tray */
    assert_false(atapi_tray_open(e->cd));
    command_check(e, tur, SENSE_NOT_READY, 0x3a, 0x01);
    uint8_t inq[12] = { 0x12, 0, 0, 0, 36 };
    uint8_t b[36];
    assert_int_equal(command_in(e, inq, b, sizeof(b)), 36);    /* INQUIRY needs no disc */
}

static void test_guest_eject_and_lock(void **state)
{
    struct env *e = *state;
    char err[256];
    uint8_t prevent[12] = { 0x1e, 0, 0, 0, 1 };
    uint8_t allow[12] = { 0x1e, 0, 0, 0, 0 };
    uint8_t eject[12] = { 0x1b, 0, 0, 0, 0x02 };
    uint8_t load[12] = { 0x1b, 0, 0, 0, 0x03 };
    uint8_t tur[12] = { 0x00 };

    command_nodata(e, prevent);
    assert_true(atapi_locked(e->cd));
    command_check(e, eject, SENSE_ILLEGAL_REQUEST, 0x53, 0x02);
    assert_false(atapi_tray_open(e->cd));
    /* The host's eject is refused too, and the guest hears the request. */
    assert_int_equal(atapi_eject(e->cd, false, err, sizeof(err)), -1);
    assert_int_equal(atapi_insert(e->cd, e->path2, false, err, sizeof(err)), -1);
    assert_string_equal(atapi_medium_path(e->cd), e->path);
    uint8_t gesn[12] = { 0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8 };
    uint8_t r[8];
    command_in(e, gesn, r, sizeof(r));
    assert_int_equal(r[4], 1);                  /* eject request */

    command_nodata(e, allow);
    command_nodata(e, eject);
    assert_true(atapi_tray_open(e->cd));
    assert_true(atapi_has_medium(e->cd));       /* the disc sits in the open tray */
    command_check(e, tur, SENSE_NOT_READY, 0x3a, 0x02);
    command_nodata(e, load);
    command_check(e, tur, SENSE_UNIT_ATTENTION, 0x28, 0);
    command_nodata(e, tur);

    /* A forced host eject goes through the lock; a power-on clears it. */
    command_nodata(e, prevent);
    assert_int_equal(atapi_eject(e->cd, true, err, sizeof(err)), 0);
    assert_false(atapi_has_medium(e->cd));
    command_nodata(e, prevent);
    bus_reset_devices(e->hw.b);
    assert_false(atapi_locked(e->cd));
    assert_false(atapi_tray_open(e->cd));
}

static void test_media_error(void **state)
{
    struct env *e = *state;
    /* The image shrinks under the drive: the read fails as MEDIUM ERROR. */
    assert_int_equal(truncate(e->path, 10 * ATAPI_SECTOR), 0);
    uint8_t rd[12];
    read10_cdb(rd, 50, 1);
    command_check(e, rd, SENSE_MEDIUM_ERROR, 0x11, 0);
    static uint8_t buf[ATAPI_SECTOR];
    read10_cdb(rd, 2, 1);
    command_in(e, rd, buf, sizeof(buf));
    expect_disc_data(buf, 2, ATAPI_SECTOR, 0);
}

static void test_change_during_a_read(void **state)
{
    struct env *e = *state;
    static uint8_t buf[4 * ATAPI_SECTOR];
    uint8_t rd[12];
    read10_cdb(rd, 0, 4);
    send_packet(e, rd, ATAPI_SECTOR, false);
    assert_int_equal(byte_count(e), ATAPI_SECTOR);
    for (int i = 0; i < ATAPI_SECTOR; i += 2)
        inw(e, S_DATA);
    /* The host swaps the disc before the guest takes the second block. */
    char err[256];
    assert_int_equal(atapi_insert(e->cd, e->path2, false, err, sizeof(err)), 0);
    uint32_t got = pio_in(e, buf, sizeof(buf), NULL);
    assert_int_equal(got, ATAPI_SECTOR);    /* the block already offered */
    expect_failed(e, SENSE_UNIT_ATTENTION);
    expect_sense(e, SENSE_UNIT_ATTENTION, 0x28, 0);
    uint8_t tur[12] = { 0x00 };
    command_nodata(e, tur);                 /* the attention was reported once */
}

static void test_insert_errors(void **state)
{
    struct env *e = *state;
    char err[256], path[160];
    snprintf(path, sizeof(path), "%s/missing.iso", e->dir);
    assert_int_equal(atapi_insert(e->cd, path, false, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "missing.iso"));
    snprintf(path, sizeof(path), "%s/tiny.iso", e->dir);
    make_disc(path, 0, 0);
    int fd = open(path, O_WRONLY);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
    assert_int_equal(atapi_insert(e->cd, path, false, err, sizeof(err)), -1);
    /* The disc in the drive is unchanged. */
    assert_string_equal(atapi_medium_path(e->cd), e->path);
    assert_int_equal(atapi_medium_sectors(e->cd), DISC_SECTORS);
    assert_int_equal(ide_attach_cdrom(e->ide, 1, 0, e->cd, err, sizeof(err)), -1);
    assert_int_equal(ide_attach_cdrom(e->ide, 2, 0, e->cd, err, sizeof(err)), -1);
}

static void test_mechanism_status(void **state)
{
    struct env *e = *state;
    uint8_t r[8];
    uint8_t cdb[12] = { 0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8 };
    assert_int_equal(command_in(e, cdb, r, sizeof(r)), 8);
    assert_int_equal(r[1] & 0x10, 0);
    char err[128];
    atapi_eject(e->cd, false, err, sizeof(err));
    command_in(e, cdb, r, sizeof(r));
    assert_int_equal(r[1] & 0x10, 0x10);        /* door open */
}

/* ---- random packets: the drive always reaches an end, never a crash ---- */

static uint32_t rnd_state = 12345;

static uint32_t rnd(void)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return rnd_state >> 8;
}

/* Drive one random command to its end the way a driver would, feeding or
 * draining every data block; false if the drive stalls. */
static bool run_random_command(struct env *e)
{
    static const uint8_t ops[] = { 0x00, 0x03, 0x12, 0x15, 0x1a, 0x1b, 0x1e, 0x25, 0x28, 0x2b, 0x42, 0x43,
                                   0x46, 0x4a, 0x51, 0x52, 0x55, 0x5a, 0xa8, 0xbb, 0xbd, 0xbe, 0x45, 0xff };
    uint8_t cdb[12];
    for (int i = 0; i < 12; i++)
        cdb[i] = (uint8_t)rnd();
    cdb[0] = ops[rnd() % sizeof(ops)];
    if (cdb[0] == 0x1b && (cdb[4] & 3) == 2 && rnd() % 4)
        cdb[4] = 0;                             /* keep the disc in most of the time */
    if ((cdb[0] == 0x28 || cdb[0] == 0xa8 || cdb[0] == 0xbe) && rnd() % 2) {
        cdb[2] = cdb[3] = cdb[4] = 0;           /* in range now and then */
        cdb[5] %= DISC_SECTORS;
        cdb[6] = cdb[7] = 0;
        cdb[8] %= 40;
        if (cdb[0] == 0xa8)
            cdb[9] = cdb[8], cdb[8] = 0;
    }
    bool dma = rnd() % 2;
    uint16_t limit = (uint16_t)rnd();
    outb(e, S_DEV, 0xa0);
    outb(e, S_FEAT, dma);
    outb(e, S_LBAM, (uint8_t)limit);
    outb(e, S_LBAH, limit >> 8);
    outb(e, S_CMD, 0xa0);
    for (int i = 0; i < 12; i += 2)
        outw(e, S_DATA, cdb[i] | cdb[i + 1] << 8);
    for (int steps = 0; steps < 70000; steps++) {
        uint8_t st = inb(e, S_STATUS);
        if (st & ST_BSY)
            return false;
        if (!(st & ST_DRQ))
            return (st & ~ST_ERR) == ST_IDLE;
        if (dma) {
            uint32_t addr = rnd() % 8 ? 0x10000 + (rnd() % 0x8000) * 2 : RAM_SIZE - 2 * (rnd() % 64);
            put_prd(e, 0x1000, 0, addr, rnd() % 0x10000, true);
            bus_pio_write(e->hw.b, BM_SEC + 4, 0x1000, 4);
            bus_pio_write(e->hw.b, BM_SEC, 0x09, 1);
            bus_pio_write(e->hw.b, BM_SEC, 0x00, 1);
            bus_pio_write(e->hw.b, BM_SEC + 2, 0x06, 1);
            continue;
        }
        uint32_t n = byte_count(e);
        bool out = !(inb(e, S_COUNT) & IR_IO);
        for (uint32_t i = 0; i < n + 2; i += 2) {   /* a word too many now and then is harmless */
            if (out)
                outw(e, S_DATA, (uint16_t)rnd());
            else
                inw(e, S_DATA);
        }
    }
    return false;
}

static void test_random_packets(void **state)
{
    struct env *e = *state;
    char err[256];
    for (int k = 0; k < (getenv("ATAPI_FUZZ") ? atoi(getenv("ATAPI_FUZZ")) : 3000); k++) {
        if (!run_random_command(e))
            fail_msg("command %d did not end", k);
        switch (rnd() % 64) {
        case 0: atapi_insert(e->cd, rnd() % 2 ? e->path : e->path2, rnd() % 2, err, sizeof(err)); break;
        case 1: atapi_eject(e->cd, rnd() % 2, err, sizeof(err)); break;
        case 2: outb(e, S_CTL, 0x04); outb(e, S_CTL, 0x00); break;
        case 3:
            bus_reset_devices(e->hw.b);    /* the firmware maps the bus master again */
            pci_config_write(e->hw.pb, DEVFN, 0x20, BM_BASE, 4);
            pci_config_write(e->hw.pb, DEVFN, 0x04, 0x0005, 2);
            break;
        }
    }
    /* Still a working drive. */
    atapi_insert(e->cd, e->path, true, err, sizeof(err));
    uint8_t tur[12] = { 0x00 };
    send_packet(e, tur, 0xfffe, false);
    inb(e, S_STATUS);
    expect_sense(e, SENSE_UNIT_ATTENTION, 0x28, 0);
    static uint8_t buf[2 * ATAPI_SECTOR];
    uint8_t rd[12];
    read10_cdb(rd, 40, 2);
    command_in(e, rd, buf, sizeof(buf));
    expect_disc_data(buf, 40, 2 * ATAPI_SECTOR, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_signature_after_resets),
        T(test_identify_device_aborts_with_signature),
        T(test_identify_packet_device),
        T(test_set_features_and_power),
        T(test_inquiry_pio_protocol),
        T(test_read_pio_byte_count_limit),
        T(test_read12_and_zero_length),
        T(test_out_of_range_reads),
        T(test_invalid_opcode),
        T(test_dma_read),
        T(test_dma_errors),
        T(test_read_capacity),
        T(test_read_toc),
        T(test_read_subchannel),
        T(test_get_configuration),
        T(test_mode_sense_and_select),
        T(test_disc_and_track_information),
        T(test_unit_attention_on_media_change),
        T(test_no_medium),
        T(test_guest_eject_and_lock),
        T(test_media_error),
        T(test_change_during_a_read),
        T(test_insert_errors),
        T(test_mechanism_status),
        T(test_random_packets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
