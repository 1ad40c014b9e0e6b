/* 82077AA floppy controller through its ports, with the 8237 and a 1.44M image. */
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
#include "devices/dma.h"
#include "devices/fdc.h"
#include "hosted-driver/blockdev.h"
#include "hosted-driver/vclock.h"
#include "device_bench.h"

#define RAM_SIZE (128 * 1024)
#define IMG_SIZE 1474560
#define SPT 18

#define DOR 0x3f2
#define MSR 0x3f4
#define FIFO 0x3f5
#define DIR 0x3f7

struct env {
    struct bench hw;
    struct dma *d;
    struct fdc *f;
    struct blockdev *bd;
    char path[64];
};

/* Every byte of the image says where it is: sector number (LBA) and offset. */
static uint8_t pattern(uint32_t lba, uint32_t off)
{
    return (uint8_t)(lba * 13 + off);
}

static void make_image(struct env *e)
{
    snprintf(e->path, sizeof(e->path), "/tmp/rv_test_fdc_%d.img", (int)getpid());
    FILE *fp = fopen(e->path, "wb");
    assert_non_null(fp);
    uint8_t sector[512];
    for (uint32_t lba = 0; lba < IMG_SIZE / 512; lba++) {
        for (int i = 0; i < 512; i++)
            sector[i] = pattern(lba, i);
        fwrite(sector, 1, 512, fp);
    }
    fclose(fp);
}

static struct blockdev *open_image(struct env *e, bool readonly)
{
    char err[256];
    struct blockdev *bd = blockdev_open(e->path, readonly, false, err, sizeof(err));
    assert_non_null(bd);
    return bd;
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    char err[256];
    bench_init(&e->hw, RAM_SIZE, false);
    e->d = dma_new(e->hw.b, bench_ram_rw, &e->hw);
    e->f = fdc_new(e->hw.b, e->d);
    make_image(e);
    e->bd = open_image(e, false);
    fdc_add_drive(e->f, 0, FLOPPY_1440K);
    assert_int_equal(fdc_insert(e->f, 0, e->bd, err, sizeof(err)), 0);
    bus_reset_devices(e->hw.b);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    fdc_free(e->f);
    dma_free(e->d);
    if (e->bd)
        blockdev_close(e->bd);
    unlink(e->path);
    bench_free(&e->hw);
    free(e);
    return 0;
}

static void outb(struct env *e, uint16_t port, uint8_t v)
{
    bus_pio_write(e->hw.b, port, v, 1);
}

static uint8_t inb(struct env *e, uint16_t port)
{
    return bus_pio_read(e->hw.b, port, 1);
}

/* Lets a millisecond of virtual time pass and runs the timers. */
static void settle(struct env *e)
{
    vclock_account_insns(e->hw.clk, 1000000);
    vclock_run_timers(e->hw.clk);
}

static void command(struct env *e, const uint8_t *bytes, int n)
{
    for (int i = 0; i < n; i++) {
        uint8_t msr = inb(e, MSR);
        assert_int_equal(msr & 0xc0, 0x80);     /* RQM, host to controller */
        outb(e, FIFO, bytes[i]);
    }
}

#define CMD(e, ...) do { uint8_t b_[] = { __VA_ARGS__ }; command(e, b_, sizeof(b_)); } while (0)

/* Reads the result phase; returns its length. */
static int result(struct env *e, uint8_t *out, int max)
{
    int n = 0;
    while ((inb(e, MSR) & 0xc0) == 0xc0) {
        assert_true(n < max);
        out[n++] = inb(e, FIFO);
    }
    assert_int_equal(inb(e, MSR) & 0xd0, 0x80);  /* back to the command phase, not busy */
    return n;
}

static void reset_controller(struct env *e)
{
    outb(e, DOR, 0x00);
    assert_int_equal(inb(e, MSR), 0);
    outb(e, DOR, 0x0c);
    settle(e);
    assert_int_equal(e->hw.level[FDC_IRQ], 1);
    uint8_t r[2];
    for (int unit = 0; unit < 4; unit++) {
        CMD(e, 0x08);
        assert_int_equal(result(e, r, 2), 2);
        assert_int_equal(r[0], 0xc0 | unit);
        assert_int_equal(e->hw.level[FDC_IRQ], 0);
    }
}

static void seek_and_sense(struct env *e, uint8_t unit, uint8_t cyl, uint8_t expect_st0)
{
    if (cyl == 0xff)
        CMD(e, 0x07, unit);
    else
        CMD(e, 0x0f, unit, cyl);
    int edges = e->hw.edges[FDC_IRQ];
    settle(e);
    assert_int_equal(e->hw.edges[FDC_IRQ], edges + 1);
    uint8_t r[2];
    CMD(e, 0x08);
    assert_int_equal(result(e, r, 2), 2);
    assert_int_equal(r[0], expect_st0);
    if (cyl != 0xff && !(expect_st0 & 0x40))
        assert_int_equal(r[1], cyl);
    assert_int_equal(e->hw.level[FDC_IRQ], 0);
}

/* DMA channel 2 for `bytes` bytes at addr, as SeaBIOS programs it. */
static void dma_setup(struct env *e, uint32_t addr, uint32_t bytes, bool to_memory)
{
    outb(e, 0x0a, 0x06);
    outb(e, 0x0c, 0);
    outb(e, 0x04, addr & 0xff);
    outb(e, 0x04, (addr >> 8) & 0xff);
    outb(e, 0x0c, 0);
    outb(e, 0x05, (bytes - 1) & 0xff);
    outb(e, 0x05, ((bytes - 1) >> 8) & 0xff);
    outb(e, 0x0b, to_memory ? 0x46 : 0x4a);
    outb(e, 0x81, addr >> 16);
    outb(e, 0x0a, 0x02);
}

static uint32_t lba_of(int c, int h, int r)
{
    return (c * 2 + h) * SPT + r - 1;
}

static void expect_sectors(struct env *e, uint32_t addr, uint32_t lba, int count)
{
    for (int s = 0; s < count; s++)
        for (int i = 0; i < 512; i++)
            if (e->hw.ram[addr + s * 512 + i] != pattern(lba + s, i))
                fail_msg("sector %d byte %d: %02x, expected %02x", s, i, e->hw.ram[addr + s * 512 + i],
                         pattern(lba + s, i));
}

/* Sends a data command, waits for the interrupt, returns the 7 result bytes. */
static void data_command(struct env *e, const uint8_t *cmd, int n, uint8_t *r)
{
    command(e, cmd, n);
    int edges = e->hw.edges[FDC_IRQ];
    settle(e);
    assert_int_equal(e->hw.edges[FDC_IRQ], edges + 1);
    assert_int_equal(result(e, r, 7), 7);
    assert_int_equal(e->hw.level[FDC_IRQ], 0);
}

static void reset_gives_four_ready_changed_statuses(void **state)
{
    struct env *e = *state;
    reset_controller(e);
    uint8_t r[2];
    CMD(e, 0x08);
    assert_int_equal(result(e, r, 2), 1);
    assert_int_equal(r[0], 0x80);      /* nothing left: invalid */
    /* DSR's software reset does it too. */
    outb(e, MSR, 0x80);
    settle(e);
    assert_int_equal(e->hw.level[FDC_IRQ], 1);
    CMD(e, 0x08);
    assert_int_equal(result(e, r, 2), 2);
    assert_int_equal(r[0], 0xc0);
}

static void identification_commands(void **state)
{
    struct env *e = *state;
    reset_controller(e);
    uint8_t r[16];
    CMD(e, 0x10);
    assert_int_equal(result(e, r, 16), 1);
    assert_int_equal(r[0], 0x90);
    CMD(e, 0x03, 0xaf, 0x02);
    CMD(e, 0x13, 0x00, 0x57, 0x05);                /* configure: EIS, FIFO off, threshold 7 */
    CMD(e, 0x94);
    assert_int_equal(result(e, r, 16), 1);
    assert_int_equal(r[0], 0x10);
    CMD(e, 0x0e);
    assert_int_equal(result(e, r, 16), 10);
    assert_int_equal(r[4], 0xaf);
    assert_int_equal(r[5], 0x02);
    assert_int_equal(r[7] & 0x80, 0x80);
    assert_int_equal(r[8], 0x57);
    assert_int_equal(r[9], 0x05);
    /* Locked: a reset keeps CONFIGURE's values. */
    reset_controller(e);
    CMD(e, 0x0e);
    assert_int_equal(result(e, r, 16), 10);
    assert_int_equal(r[8], 0x57);
    CMD(e, 0x14);
    assert_int_equal(result(e, r, 16), 1);
    assert_int_equal(r[0], 0x00);
    reset_controller(e);
    CMD(e, 0x0e);
    assert_int_equal(result(e, r, 16), 10);
    assert_int_equal(r[8], 0x20);
    /* Perpendicular mode takes one parameter byte and answers nothing. */
    outb(e, FIFO, 0x12);
    assert_int_equal(inb(e, MSR) & 0xd0, 0x90);
    outb(e, FIFO, 0x00);
    assert_int_equal(inb(e, MSR) & 0xd0, 0x80);
    /* PART ID is not an 82077 command. */
    CMD(e, 0x18);
    assert_int_equal(result(e, r, 16), 1);
    assert_int_equal(r[0], 0x80);
}

static void seek_then_read_through_dma(void **state)
{
    struct env *e = *state;
    reset_controller(e);
    CMD(e, 0x03, 0xaf, 0x02);
    outb(e, DOR, 0x1c);
    seek_and_sense(e, 0, 0xff, 0x20);
    seek_and_sense(e, 0, 5, 0x20);
    dma_setup(e, 0x1000, 3 * 512, true);
    uint8_t r[7];
    /* MT read of C5 H0 sectors 17-18, then on to head 1 sector 1: TC ends it there. */
    data_command(e, (uint8_t[]){ 0xe6, 0x00, 5, 0, 17, 2, 18, 0x1b, 0xff }, 9, r);
    assert_int_equal(r[0] & 0xc0, 0x00);
    expect_sectors(e, 0x1000, lba_of(5, 0, 17), 3);
    assert_int_equal(r[3], 5);
    assert_int_equal(r[4], 1);
    assert_int_equal(r[5], 2);
    assert_int_equal(r[6], 2);
    assert_int_equal(inb(e, 0x08) & 0x04, 0x04);    /* the DMA reached its terminal count */
}

static void dma_programmed_after_the_command(void **state)
{
    struct env *e = *state;
    reset_controller(e);
    CMD(e, 0x03, 0xaf, 0x02);
    dma_setup(e, 0x2000, 512, true);
    outb(e, 0x0a, 0x06);                            /* masked again */
    CMD(e, 0x66, 0x04, 2, 1, 9, 2, 9, 0x1b, 0xff);
    settle(e);
    assert_int_equal(inb(e, MSR) & 0x90, 0x10);     /* busy, waiting for the DMA */
    assert_int_equal(e->hw.level[FDC_IRQ], 0);
    outb(e, 0x0a, 0x02);
    settle(e);
    assert_int_equal(e->hw.level[FDC_IRQ], 1);
    uint8_t r[7];
    assert_int_equal(result(e, r, 7), 7);
    assert_int_equal(r[0] & 0xc0, 0);
    expect_sectors(e, 0x2000, lba_of(2, 1, 9), 1);
}

static void write_reaches_the_image(void **state)
{
    struct env *e = *state;
    reset_controller(e);
    CMD(e, 0x03, 0xaf, 0x02);
    for (int i = 0; i < 1024; i++)
        e->hw.ram[0x3000 + i] = (uint8_t)(i * 5 + 1);
    dma_setup(e, 0x3000, 1024, false);
    uint8_t r[7];
    data_command(e, (uint8_t[]){ 0xc5, 0x00, 79, 0, 3, 2, 4, 0x1b, 0xff }, 9, r);
    assert_int_equal(r[0] & 0xc0, 0);
    uint8_t back[1024];
    assert_int_equal(blockdev_read(e->bd, (uint64_t)lba_of(79, 0, 3) * 512, back, 1024), 0);
    assert_memory_equal(back, e->hw.ram + 0x3000, 1024);
}

static void write_protect(void **state)
{
    struct env *e = *state;
    char err[256];
    blockdev_close(fdc_eject(e->f, 0));
    e->bd = open_image(e, true);
    assert_int_equal(fdc_insert(e->f, 0, e->bd, err, sizeof(err)), 0);
    reset_controller(e);
    CMD(e, 0x03, 0xaf, 0x02);
    uint8_t r[7];
    CMD(e, 0x04, 0x00);
    assert_int_equal(result(e, r, 7), 1);
    assert_int_equal(r[0] & 0x40, 0x40);
    memset(e->hw.ram + 0x3000, 0xee, 512);
    dma_setup(e, 0x3000, 512, false);
    data_command(e, (uint8_t[]){ 0xc5, 0x00, 0, 0, 1, 2, 1, 0x1b, 0xff }, 9, r);
    assert_int_equal(r[0] & 0xc0, 0x40);
    assert_int_equal(r[1], 0x02);
    uint8_t back[512];
    assert_int_equal(blockdev_read(e->bd, 0, back, 512), 0);
    assert_int_equal(back[0], pattern(0, 0));
    /* FORMAT is a write too. */
    data_command(e, (uint8_t[]){ 0x4d, 0x00, 2, SPT, 0x6c, 0xf6 }, 6, r);
    assert_int_equal(r[1], 0x02);
}

static void errors_without_disk_drive_or_sector(void **state)
{
    struct env *e = *state;
    reset_controller(e);
    CMD(e, 0x03, 0xaf, 0x02);
    uint8_t r[7];
    /* Sector 19 of an 18-sector track: no data. */
    dma_setup(e, 0x1000, 512, true);
    data_command(e, (uint8_t[]){ 0x46, 0x00, 0, 0, 19, 2, 19, 0x1b, 0xff }, 9, r);
    assert_int_equal(r[0] & 0xc0, 0x40);
    assert_int_equal(r[1], 0x04);
    /* A sector size other than 512, or the H of the ID not the head used: no data. */
    data_command(e, (uint8_t[]){ 0x46, 0x00, 0, 0, 1, 3, 1, 0x1b, 0xff }, 9, r);
    assert_int_equal(r[1], 0x04);
    data_command(e, (uint8_t[]){ 0x46, 0x04, 0, 0, 1, 2, 1, 0x1b, 0xff }, 9, r);
    assert_int_equal(r[1], 0x04);
    /* Cylinder 80 of an 80-cylinder disk, FM instead of MFM: no address mark. */
    data_command(e, (uint8_t[]){ 0x46, 0x00, 80, 0, 1, 2, 1, 0x1b, 0xff }, 9, r);
    assert_int_equal(r[1], 0x01);
    data_command(e, (uint8_t[]){ 0x06, 0x00, 0, 0, 1, 2, 1, 0x1b, 0xff }, 9, r);
    assert_int_equal(r[1], 0x01);
    /* Drive B: is not connected: recalibrate fails, reads find nothing. */
    seek_and_sense(e, 1, 0xff, 0x70 | 1);
    data_command(e, (uint8_t[]){ 0x46, 0x01, 0, 0, 1, 2, 1, 0x1b, 0xff }, 9, r);
    assert_int_equal(r[0], 0x40 | 1);
    assert_int_equal(r[1], 0x01);
    /* No disk in A:. */
    blockdev_close(fdc_eject(e->f, 0));
    e->bd = NULL;
    data_command(e, (uint8_t[]){ 0x46, 0x00, 0, 0, 1, 2, 1, 0x1b, 0xff }, 9, r);
    assert_int_equal(r[0] & 0xc0, 0x40);
    assert_int_equal(r[1], 0x01);
    data_command(e, (uint8_t[]){ 0x4a, 0x00 }, 2, r);
    assert_int_equal(r[0] & 0xc0, 0x40);
    /* An unknown command byte is answered with 0x80 and nothing else. */
    CMD(e, 0x1f);
    assert_int_equal(result(e, r, 7), 1);
    assert_int_equal(r[0], 0x80);
}

static void data_rate_must_fit_the_medium(void **state)
{
    struct env *e = *state;
    reset_controller(e);
    uint8_t r[7];
    outb(e, DIR, 0x02);                                 /* 250 kb/s: a 720K disk's rate */
    data_command(e, (uint8_t[]){ 0x4a, 0x00 }, 2, r);
    assert_int_equal(r[0] & 0xc0, 0x40);
    assert_int_equal(r[1], 0x01);
    outb(e, DIR, 0x00);                                 /* 500 kb/s */
    seek_and_sense(e, 0, 7, 0x20);
    data_command(e, (uint8_t[]){ 0x4a, 0x04 }, 2, r);
    assert_int_equal(r[0], 0x04);
    assert_int_equal(r[3], 7);
    assert_int_equal(r[4], 1);
    assert_true(r[5] >= 1 && r[5] <= SPT);
    assert_int_equal(r[6], 2);
}

static void disk_change_line(void **state)
{
    struct env *e = *state;
    char err[256];
    reset_controller(e);
    outb(e, DOR, 0x1c);
    assert_int_equal(inb(e, DIR) & 0x80, 0x80);          /* since power-on */
    seek_and_sense(e, 0, 1, 0x20);
    assert_int_equal(inb(e, DIR) & 0x80, 0);
    struct blockdev *bd = fdc_eject(e->f, 0);
    assert_ptr_equal(bd, e->bd);
    assert_int_equal(inb(e, DIR) & 0x80, 0x80);
    seek_and_sense(e, 0, 2, 0x20);                        /* no disk: the line stays */
    assert_int_equal(inb(e, DIR) & 0x80, 0x80);
    assert_int_equal(fdc_insert(e->f, 0, bd, err, sizeof(err)), 0);
    seek_and_sense(e, 0, 0, 0x20);
    assert_int_equal(inb(e, DIR) & 0x80, 0);
    /* A 1,000,000-byte image is no floppy. */
    assert_null(floppy_format_by_size(1000000));
    assert_int_equal(floppy_format_by_size(737280)->spt, 9);
    assert_int_equal(floppy_format_by_size(2949120)->drive, FLOPPY_2880K);
    assert_int_equal(floppy_format_by_size(163840)->heads, 1);
}

static void non_dma_read_through_the_fifo(void **state)
{
    struct env *e = *state;
    reset_controller(e);
    CMD(e, 0x03, 0xaf, 0x03);                           /* ND: non-DMA */
    CMD(e, 0x46, 0x00, 0, 0, 18, 2, 18, 0x1b, 0xff);
    assert_int_equal(e->hw.level[FDC_IRQ], 1);
    for (int i = 0; i < 512; i++) {
        assert_int_equal(inb(e, MSR) & 0xe0, 0xe0);     /* RQM, DIO, NDMA */
        assert_int_equal(inb(e, FIFO), pattern(lba_of(0, 0, 18), i));
    }
    settle(e);
    uint8_t r[7];
    assert_int_equal(result(e, r, 7), 7);
    /* No terminal count in non-DMA mode: the end of the track ends it. */
    assert_int_equal(r[0] & 0xc0, 0x40);
    assert_int_equal(r[1], 0x80);
}

static void format_track_fills_sectors(void **state)
{
    struct env *e = *state;
    reset_controller(e);
    CMD(e, 0x03, 0xaf, 0x02);
    seek_and_sense(e, 0, 3, 0x20);
    for (int s = 0; s < SPT; s++) {
        uint8_t *id = e->hw.ram + 0x4000 + 4 * s;
        id[0] = 3, id[1] = 1, id[2] = s + 1, id[3] = 2;
    }
    dma_setup(e, 0x4000, 4 * SPT, false);
    uint8_t r[7];
    data_command(e, (uint8_t[]){ 0x4d, 0x04, 2, SPT, 0x6c, 0xf6 }, 6, r);
    assert_int_equal(r[0] & 0xc0, 0);
    uint8_t back[512];
    for (int s = 1; s <= SPT; s++) {
        assert_int_equal(blockdev_read(e->bd, (uint64_t)lba_of(3, 1, s) * 512, back, 512), 0);
        for (int i = 0; i < 512; i++)
            assert_int_equal(back[i], 0xf6);
    }
    assert_int_equal(blockdev_read(e->bd, (uint64_t)lba_of(3, 0, SPT) * 512, back, 512), 0);
    assert_int_equal(back[0], pattern(lba_of(3, 0, SPT), 0));
}

/* The disk leaves while FORMAT waits for its DMA: the command fails, nothing is touched. */
static void eject_while_waiting_for_dma(void **state)
{
    struct env *e = *state;
    reset_controller(e);
    CMD(e, 0x03, 0xaf, 0x02);
    for (int s = 0; s < SPT; s++) {
        uint8_t *id = e->hw.ram + 0x4000 + 4 * s;
        id[0] = 0, id[1] = 0, id[2] = s + 1, id[3] = 2;
    }
    dma_setup(e, 0x4000, 4 * SPT, false);
    outb(e, 0x0a, 0x06);
    CMD(e, 0x4d, 0x00, 2, SPT, 0x6c, 0xf6);
    blockdev_close(fdc_eject(e->f, 0));
    e->bd = NULL;
    outb(e, 0x0a, 0x02);
    settle(e);
    uint8_t r[7];
    assert_int_equal(result(e, r, 7), 7);
    assert_int_equal(r[0] & 0xc0, 0x40);
    assert_int_equal(r[1], 0x01);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(reset_gives_four_ready_changed_statuses),
        T(identification_commands),
        T(seek_then_read_through_dma),
        T(dma_programmed_after_the_command),
        T(write_reaches_the_image),
        T(write_protect),
        T(errors_without_disk_drive_or_sector),
        T(data_rate_must_fit_the_medium),
        T(disk_change_line),
        T(non_dma_read_through_the_fifo),
        T(format_track_fills_sectors),
        T(eject_while_waiting_for_dma),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
