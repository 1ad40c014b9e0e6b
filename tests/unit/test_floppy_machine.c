/* The floppy drives as the machine assembles them: CMOS bytes, boot order,
 * changing disks while running (machine_change_floppy, -fda-change). */
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

#include "devices/cmos.h"
#include "hosted-driver/vclock.h"
#include "monitor/machine.h"

struct env {
    char a[64], b[64], odd[64];
    struct machine *m;
};

static void write_image(const char *path, long size, uint8_t fill)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint8_t buf[512];
    memset(buf, fill, sizeof(buf));
    for (long n = 0; n < size; n += 512)
        fwrite(buf, 1, size - n < 512 ? size - n : 512, f);
    fclose(f);
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    snprintf(e->a, sizeof(e->a), "/tmp/rv_test_fm_a_%d.img", (int)getpid());
    snprintf(e->b, sizeof(e->b), "/tmp/rv_test_fm_b_%d.img", (int)getpid());
    snprintf(e->odd, sizeof(e->odd), "/tmp/rv_test_fm_odd_%d.img", (int)getpid());
    write_image(e->a, 1474560, 0xaa);
    write_image(e->b, 737280, 0xbb);
    write_image(e->odd, 1000000, 0xcc);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    machine_free(e->m);
    unlink(e->a);
    unlink(e->b);
    unlink(e->odd);
    free(e);
    return 0;
}

static struct machine *boot(struct machine_config *cfg)
{
    cfg->ram_mb = 16;
    cfg->deterministic = true;
    cfg->ns_per_insn = 1;
    struct machine *m = machine_new(cfg);
    assert_non_null(m);
    return m;
}

static void out(struct machine *m, uint16_t port, uint8_t v)
{
    machine_io_write(m, port, v, 1);
}

static uint8_t in(struct machine *m, uint16_t port)
{
    return machine_io_read(m, port, 1);
}

static void let_time_pass(struct machine *m, int64_t ns)
{
    vclock_account_insns(m->clock, ns);
    vclock_run_timers(m->clock);
}

/* Seek drive 0 to a cylinder and take the interrupt status: clears the change line when a disk is in. */
static void seek(struct machine *m, uint8_t cyl)
{
    out(m, 0x3f5, 0x0f);
    out(m, 0x3f5, 0x00);
    out(m, 0x3f5, cyl);
    let_time_pass(m, 1000000);
    out(m, 0x3f5, 0x08);
    in(m, 0x3f5);
    in(m, 0x3f5);
}

/* First byte of C0 H0 S1 through the FIFO (non-DMA mode), or -1 when the read fails. */
static int first_byte(struct machine *m)
{
    out(m, 0x3f5, 0x03);
    out(m, 0x3f5, 0xaf);
    out(m, 0x3f5, 0x03);
    uint8_t cmd[9] = { 0x46, 0x00, 0, 0, 1, 2, 1, 0x1b, 0xff };
    for (int i = 0; i < 9; i++)
        out(m, 0x3f5, cmd[i]);
    int v = -1;
    if ((in(m, 0x3f4) & 0xe0) == 0xe0) {
        v = in(m, 0x3f5);
        for (int i = 1; i < 512; i++)
            in(m, 0x3f5);
    }
    let_time_pass(m, 1000000);
    for (int i = 0; i < 7 && (in(m, 0x3f4) & 0xc0) == 0xc0; i++)
        in(m, 0x3f5);
    return v;
}

/* Writes C0 H0 S1 full of v through the FIFO; returns ST0, ST1 as (st0 << 8) | st1. */
static int write_first_sector(struct machine *m, uint8_t v)
{
    out(m, 0x3f5, 0x03);
    out(m, 0x3f5, 0xaf);
    out(m, 0x3f5, 0x03);
    uint8_t cmd[9] = { 0x45, 0x00, 0, 0, 1, 2, 1, 0x1b, 0xff };
    for (int i = 0; i < 9; i++)
        out(m, 0x3f5, cmd[i]);
    if ((in(m, 0x3f4) & 0xe0) == 0xa0)
        for (int i = 0; i < 512; i++)
            out(m, 0x3f5, v);
    let_time_pass(m, 1000000);
    uint8_t r[7] = { 0 };
    for (int i = 0; i < 7 && (in(m, 0x3f4) & 0xc0) == 0xc0; i++)
        r[i] = in(m, 0x3f5);
    return (r[0] << 8) | r[1];
}

static uint8_t file_byte(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    int c = fgetc(f);
    fclose(f);
    return (uint8_t)c;
}

static void snapshot_and_readonly_images(void **state)
{
    struct env *e = *state;
    struct machine_config cfg = { 0 };
    cfg.floppy[0] = (struct floppy_config){ .present = true, .path = e->a, .snapshot = true };
    cfg.floppy[1] = (struct floppy_config){ .present = true, .path = e->b, .readonly = true };
    e->m = boot(&cfg);
    struct machine *m = e->m;
    out(m, 0x3f2, 0x1c);
    /* -snapshot: the guest reads what it wrote, the file keeps what it had. */
    /* (Without DMA there is no terminal count: the end of the track ends the write.) */
    assert_int_equal(write_first_sector(m, 0x5e), 0x4080);
    assert_int_equal(first_byte(m), 0x5e);
    assert_int_equal(file_byte(e->a), 0xaa);
    /* readonly=on: B: is write-protected (ST3 WP; a write ends with ST1 "not writable"). */
    out(m, 0x3f2, 0x2d);
    out(m, 0x3f7, 0x02);
    out(m, 0x3f5, 0x04);
    out(m, 0x3f5, 0x01);
    assert_int_equal(in(m, 0x3f5) & 0x40, 0x40);
    out(m, 0x3f5, 0x03);
    out(m, 0x3f5, 0xaf);
    out(m, 0x3f5, 0x03);
    uint8_t cmd[9] = { 0x45, 0x01, 0, 0, 1, 2, 1, 0x1b, 0xff };
    for (int i = 0; i < 9; i++)
        out(m, 0x3f5, cmd[i]);
    let_time_pass(m, 1000000);
    uint8_t r[7] = { 0 };
    for (int i = 0; i < 7 && (in(m, 0x3f4) & 0xc0) == 0xc0; i++)
        r[i] = in(m, 0x3f5);
    assert_int_equal(r[0], 0x41);
    assert_int_equal(r[1], 0x02);
    assert_int_equal(file_byte(e->b), 0xbb);
}

static void cmos_reports_the_drives(void **state)
{
    struct env *e = *state;
    struct machine_config cfg = { 0 };
    cfg.floppy[0] = (struct floppy_config){ .present = true, .path = e->a };
    cfg.floppy[1] = (struct floppy_config){ .present = true, .path = e->b };
    cfg.boot_order = "ac";
    e->m = boot(&cfg);
    assert_int_equal(cmos_get(e->m->cmos, 0x10), 0x43);          /* A: 1.44M, B: 720K */
    assert_int_equal(cmos_get(e->m->cmos, 0x14) & 0xc1, 0x41);   /* floppies present, two of them */
    assert_int_equal(cmos_get(e->m->cmos, 0x3d), 0x21);          /* floppy, then hard disk */
    machine_free(e->m);
    struct machine_config none = { 0 };
    e->m = boot(&none);
    assert_int_equal(cmos_get(e->m->cmos, 0x10), 0x00);
    assert_int_equal(cmos_get(e->m->cmos, 0x14) & 0xc1, 0x00);
    assert_int_equal(cmos_get(e->m->cmos, 0x3d), 0x12);          /* QEMU's default: c, a, d */
    assert_int_equal(cmos_get(e->m->cmos, 0x38) & 0xf0, 0x30);
}

static void change_disk_while_running(void **state)
{
    struct env *e = *state;
    char err[512];
    struct machine_config cfg = { 0 };
    cfg.floppy[0] = (struct floppy_config){ .present = true, .path = e->a };
    e->m = boot(&cfg);
    struct machine *m = e->m;
    out(m, 0x3f2, 0x1c);
    assert_int_equal(in(m, 0x3f7) & 0x80, 0x80);
    seek(m, 1);
    assert_int_equal(in(m, 0x3f7) & 0x80, 0);
    assert_int_equal(first_byte(m), 0xaa);

    /* The 720K disk needs 250 kb/s; then the guest sees the change and the new data. */
    assert_int_equal(machine_change_floppy(m, 0, e->b, err, sizeof(err)), 0);
    assert_int_equal(in(m, 0x3f7) & 0x80, 0x80);
    assert_int_equal(first_byte(m), -1);
    out(m, 0x3f7, 0x02);
    assert_int_equal(first_byte(m), 0xbb);
    seek(m, 0);
    assert_int_equal(in(m, 0x3f7) & 0x80, 0);

    /* A file of no floppy size is refused, naming it; the disk in the drive stays. */
    assert_int_equal(machine_change_floppy(m, 0, e->odd, err, sizeof(err)), -1);
    assert_non_null(strstr(err, e->odd));
    assert_non_null(strstr(err, "1000000 bytes"));
    assert_int_equal(first_byte(m), 0xbb);
    assert_int_equal(machine_change_floppy(m, 0, "/nonexistent/x.img", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/x.img"));
    assert_int_equal(machine_change_floppy(m, 1, e->a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "B:"));

    /* Eject: the line is set and stays set without a disk; reads fail. */
    assert_int_equal(machine_change_floppy(m, 0, NULL, err, sizeof(err)), 0);
    assert_int_equal(in(m, 0x3f7) & 0x80, 0x80);
    seek(m, 2);
    assert_int_equal(in(m, 0x3f7) & 0x80, 0x80);
    assert_int_equal(first_byte(m), -1);
}

static void scheduled_changes(void **state)
{
    struct env *e = *state;
    struct machine_config cfg = { 0 };
    cfg.floppy[0] = (struct floppy_config){ .present = true };      /* an empty drive */
    cfg.floppy_change[0] = (struct floppy_change){ 0, 5000000, e->a };
    cfg.floppy_change[1] = (struct floppy_change){ 0, 9000000, NULL };
    cfg.n_floppy_change = 2;
    e->m = boot(&cfg);
    struct machine *m = e->m;
    assert_int_equal(cmos_get(m->cmos, 0x10), 0x40);
    out(m, 0x3f2, 0x1c);
    assert_int_equal(first_byte(m), -1);
    let_time_pass(m, 5000000);
    assert_non_null(m->floppy[0]);
    assert_int_equal(first_byte(m), 0xaa);
    let_time_pass(m, 5000000);
    assert_null(m->floppy[0]);
    assert_int_equal(first_byte(m), -1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(cmos_reports_the_drives),
        T(change_disk_while_running),
        T(scheduled_changes),
        T(snapshot_and_readonly_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
