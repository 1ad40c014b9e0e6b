/* Disk image backend: raw I/O, snapshot overlay, locking and open errors. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hosted-driver/blockdev.h"

#define IMG_SIZE (256 * 1024)

struct env {
    char dir[64];
    char path[128];
};

static uint8_t pattern_byte(uint64_t off)
{
    return (uint8_t)(off * 7 + (off >> 9) * 13 + 1);
}

static void write_image(const char *path, size_t size)
{
    uint8_t *buf = malloc(size);
    for (size_t i = 0; i < size; i++)
        buf[i] = pattern_byte(i);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, size), (ssize_t)size);
    close(fd);
    free(buf);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    fstat(fd, &st);
    uint8_t *buf = malloc(st.st_size ? st.st_size : 1);
    assert_int_equal(pread(fd, buf, st.st_size, 0), st.st_size);
    close(fd);
    *len = st.st_size;
    return buf;
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    strcpy(e->dir, "/tmp/rv-blockdev-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->path, sizeof(e->path), "%s/disk.img", e->dir);
    write_image(e->path, IMG_SIZE);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    chmod(e->path, 0644);
    unlink(e->path);
    rmdir(e->dir);
    free(e);
    return 0;
}

static void test_geometry_and_read(void **state)
{
    struct env *e = *state;
    char err[256] = "";
    struct blockdev *bd = blockdev_open(e->path, false, false, err, sizeof(err));
    assert_non_null(bd);
    assert_int_equal(blockdev_size(bd), IMG_SIZE);
    assert_int_equal(blockdev_sectors(bd), IMG_SIZE / 512);
    assert_false(blockdev_readonly(bd));
    assert_false(blockdev_snapshot(bd));
    assert_string_equal(blockdev_path(bd), e->path);

    uint8_t buf[1500];
    assert_int_equal(blockdev_read(bd, 12345, buf, sizeof(buf)), 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], pattern_byte(12345 + i));
    blockdev_close(bd);
}

static void test_write_flush_round_trip(void **state)
{
    struct env *e = *state;
    char err[256];
    struct blockdev *bd = blockdev_open(e->path, false, false, err, sizeof(err));
    assert_non_null(bd);
    uint8_t data[8192];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(0xa5 ^ i);
    assert_int_equal(blockdev_write(bd, 3 * 512, data, sizeof(data)), 0);
    assert_int_equal(blockdev_flush(bd), 0);

    uint8_t back[sizeof(data)];
    assert_int_equal(blockdev_read(bd, 3 * 512, back, sizeof(back)), 0);
    assert_memory_equal(back, data, sizeof(data));

    /* Through a separate descriptor: the bytes are in the file. */
    size_t len;
    uint8_t *file = slurp(e->path, &len);
    assert_int_equal(len, IMG_SIZE);
    assert_memory_equal(file + 3 * 512, data, sizeof(data));
    assert_int_equal(file[3 * 512 - 1], pattern_byte(3 * 512 - 1));
    assert_int_equal(file[3 * 512 + sizeof(data)], pattern_byte(3 * 512 + sizeof(data)));
    free(file);
    blockdev_close(bd);
}

static void test_out_of_range(void **state)
{
    struct env *e = *state;
    char err[256];
    struct blockdev *bd = blockdev_open(e->path, false, false, err, sizeof(err));
    uint8_t buf[1024] = { 0 };
    assert_int_equal(blockdev_read(bd, IMG_SIZE - 512, buf, 1024), -EINVAL);
    assert_int_equal(blockdev_write(bd, IMG_SIZE, buf, 512), -EINVAL);
    assert_int_equal(blockdev_read(bd, UINT64_MAX - 100, buf, 512), -EINVAL);
    assert_int_equal(blockdev_read(bd, IMG_SIZE - 512, buf, 512), 0);
    blockdev_close(bd);
}

static void test_snapshot_never_touches_file(void **state)
{
    struct env *e = *state;
    struct stat before, after;
    /* Back-date the mtime so a write within the same tick would still show. */
    struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
    utimensat(AT_FDCWD, e->path, old, 0);
    stat(e->path, &before);
    size_t len0;
    uint8_t *orig = slurp(e->path, &len0);

    char err[256];
    struct blockdev *bd = blockdev_open(e->path, false, true, err, sizeof(err));
    assert_non_null(bd);
    assert_true(blockdev_snapshot(bd));
    assert_false(blockdev_readonly(bd));

    /* Unaligned pieces inside chunks, across chunk boundaries, and at the end. */
    uint8_t data[10000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 3 + 0x5a);
    assert_int_equal(blockdev_write(bd, 512, data, 512), 0);
    assert_int_equal(blockdev_write(bd, 4096 - 512, data, 1024), 0);
    assert_int_equal(blockdev_write(bd, 20480 + 1536, data, sizeof(data)), 0);
    assert_int_equal(blockdev_write(bd, IMG_SIZE - 512, data, 512), 0);
    /* Many chunks: forces the overlay table to grow. */
    for (uint64_t off = 65536; off < IMG_SIZE - 4096; off += 4096)
        assert_int_equal(blockdev_write(bd, off + 512, data, 512), 0);
    assert_int_equal(blockdev_flush(bd), 0);

    uint8_t *view = malloc(IMG_SIZE);
    assert_int_equal(blockdev_read(bd, 0, view, IMG_SIZE), 0);
    uint8_t *expect = malloc(IMG_SIZE);
    memcpy(expect, orig, IMG_SIZE);
    memcpy(expect + 512, data, 512);
    memcpy(expect + 4096 - 512, data, 1024);
    memcpy(expect + 20480 + 1536, data, sizeof(data));
    memcpy(expect + IMG_SIZE - 512, data, 512);
    for (uint64_t off = 65536; off < IMG_SIZE - 4096; off += 4096)
        memcpy(expect + off + 512, data, 512);
    assert_memory_equal(view, expect, IMG_SIZE);

    /* A read straddling overlay and untouched chunks. */
    uint8_t piece[9000];
    assert_int_equal(blockdev_read(bd, 30000, piece, sizeof(piece)), 0);
    assert_memory_equal(piece, expect + 30000, sizeof(piece));
    blockdev_close(bd);

    size_t len1;
    uint8_t *now = slurp(e->path, &len1);
    assert_int_equal(len1, len0);
    assert_memory_equal(now, orig, len0);
    stat(e->path, &after);
    assert_int_equal(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    assert_int_equal(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
    free(view);
    free(expect);
    free(orig);
    free(now);
}

static void test_readonly_refuses_writes(void **state)
{
    struct env *e = *state;
    char err[256];
    struct blockdev *bd = blockdev_open(e->path, true, false, err, sizeof(err));
    assert_non_null(bd);
    assert_true(blockdev_readonly(bd));
    uint8_t buf[512] = { 1 };
    assert_int_equal(blockdev_write(bd, 0, buf, 512), -EROFS);
    assert_int_equal(blockdev_flush(bd), 0);
    /* Read-only and snapshot: still read-only. */
    struct blockdev *bd2 = blockdev_open(e->path, true, true, err, sizeof(err));
    assert_non_null(bd2);
    assert_true(blockdev_readonly(bd2));
    assert_int_equal(blockdev_write(bd2, 0, buf, 512), -EROFS);
    blockdev_close(bd2);
    blockdev_close(bd);
}

static void test_no_write_permission_forces_readonly(void **state)
{
    struct env *e = *state;
    if (geteuid() == 0)
        skip();     /* root writes anyway */
    chmod(e->path, 0444);
    char err[256];
    struct blockdev *bd = blockdev_open(e->path, false, false, err, sizeof(err));
    assert_non_null(bd);
    assert_true(blockdev_readonly(bd));
    uint8_t buf[512] = { 0 };
    assert_int_equal(blockdev_write(bd, 0, buf, 512), -EROFS);
    blockdev_close(bd);
}

static void test_lock_conflicts(void **state)
{
    struct env *e = *state;
    char err[256] = "";
    struct blockdev *a = blockdev_open(e->path, false, false, err, sizeof(err));
    assert_non_null(a);
    struct blockdev *b = blockdev_open(e->path, false, false, err, sizeof(err));
    assert_null(b);
    assert_non_null(strstr(err, e->path));
    assert_non_null(strstr(err, "locked"));
    err[0] = 0;
    assert_null(blockdev_open(e->path, false, true, err, sizeof(err)));
    assert_non_null(strstr(err, "locked"));
    blockdev_close(a);

    /* Readers share. */
    struct blockdev *s1 = blockdev_open(e->path, false, true, err, sizeof(err));
    struct blockdev *s2 = blockdev_open(e->path, true, false, err, sizeof(err));
    assert_non_null(s1);
    assert_non_null(s2);
    assert_null(blockdev_open(e->path, false, false, err, sizeof(err)));
    blockdev_close(s1);
    blockdev_close(s2);
    a = blockdev_open(e->path, false, false, err, sizeof(err));
    assert_non_null(a);
    blockdev_close(a);
}

static void test_open_errors(void **state)
{
    struct env *e = *state;
    char err[256], p[160];

    snprintf(p, sizeof(p), "%s/missing.img", e->dir);
    assert_null(blockdev_open(p, false, false, err, sizeof(err)));
    assert_non_null(strstr(err, p));
    assert_non_null(strstr(err, "No such file"));

    assert_null(blockdev_open(e->dir, false, false, err, sizeof(err)));
    assert_non_null(strstr(err, "not a regular file or block device"));
    assert_null(blockdev_open(e->dir, false, true, err, sizeof(err)));
    assert_non_null(strstr(err, "not a regular file or block device"));

    assert_null(blockdev_open("/dev/null", true, false, err, sizeof(err)));
    assert_non_null(strstr(err, "not a regular file or block device"));

    snprintf(p, sizeof(p), "%s/tiny.img", e->dir);
    write_image(p, 100);
    assert_null(blockdev_open(p, false, false, err, sizeof(err)));
    assert_non_null(strstr(err, "smaller than one 512-byte sector"));
    unlink(p);
}

static void test_odd_size_rounds_down(void **state)
{
    struct env *e = *state;
    char err[256], p[160];
    snprintf(p, sizeof(p), "%s/odd.img", e->dir);
    write_image(p, 5 * 512 + 77);
    struct blockdev *bd = blockdev_open(p, false, false, err, sizeof(err));
    assert_non_null(bd);
    assert_int_equal(blockdev_sectors(bd), 5);
    assert_int_equal(blockdev_size(bd), 5 * 512);
    uint8_t buf[512];
    assert_int_equal(blockdev_read(bd, 4 * 512, buf, 512), 0);
    assert_int_equal(blockdev_read(bd, 5 * 512, buf, 77), -EINVAL);
    blockdev_close(bd);
    unlink(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_geometry_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_flush_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_never_touches_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_refuses_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_write_permission_forces_readonly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_odd_size_rounds_down, setup, teardown),
    };
    return cmocka_run_group_tests_name("blockdev", tests, NULL, NULL);
}
