/*
 * read_regular_file (hosted-driver/readfile.c): an input file is checked
 * with fstat before a byte is read: a directory, a FIFO (without blocking
 * on it), an empty file and a file over the limit are refused with one line
 * that names the file; a file within the limit is read whole.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hosted-driver/readfile.h"

struct dir {
    char path[64];
    char file[96];
};

static int setup(void **state)
{
    struct dir *d = calloc(1, sizeof(*d));
    snprintf(d->path, sizeof(d->path), "/tmp/rv-readfile-XXXXXX");
    assert_non_null(mkdtemp(d->path));
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    struct dir *d = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
    assert_int_equal(system(cmd), 0);
    free(d);
    return 0;
}

static const char *make_file(struct dir *d, const char *name, const void *data, size_t len)
{
    snprintf(d->file, sizeof(d->file), "%s/%s", d->path, name);
    FILE *f = fopen(d->file, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    return d->file;
}

static void expect_refusal(const char *path, uint64_t limit, const char *why)
{
    char err[512];
    size_t len = 12345;
    uint8_t *buf = read_regular_file(path, limit, "the test's limit", &len, err, sizeof(err));
    assert_null(buf);
    assert_int_equal(len, 12345);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, why));
    assert_null(strchr(err, '\n'));
}

static void test_reads_a_file_within_its_limit(void **state)
{
    struct dir *d = *state;
    const char *path = make_file(d, "ok.bin", "\x55\xaa\x01\x02", 4);
    char err[256];
    size_t len = 0;
    uint8_t *buf = read_regular_file(path, 4, "four bytes", &len, err, sizeof(err));
    assert_non_null(buf);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "\x55\xaa\x01\x02", 4);
    free(buf);
}

static void test_refuses_a_file_over_its_limit_before_reading(void **state)
{
    struct dir *d = *state;
    const char *path = make_file(d, "five.bin", "12345", 5);
    expect_refusal(path, 4, "5 bytes is too large (the test's limit)");
    /* A sparse 4 GiB file: refused from its size alone. */
    snprintf(d->file, sizeof(d->file), "%s/huge.img", d->path);
    FILE *f = fopen(d->file, "wb");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), 4ull << 30), 0);
    fclose(f);
    expect_refusal(d->file, 1u << 30, "4294967296 bytes is too large");
}

static void test_refuses_an_empty_file(void **state)
{
    struct dir *d = *state;
    expect_refusal(make_file(d, "empty", "", 0), 100, "empty file");
}

static void test_refuses_a_directory(void **state)
{
    struct dir *d = *state;
    expect_refusal(d->path, 100, "is a directory");
}

static void test_refuses_a_fifo_without_blocking(void **state)
{
    struct dir *d = *state;
    snprintf(d->file, sizeof(d->file), "%s/fifo", d->path);
    assert_int_equal(mkfifo(d->file, 0600), 0);
    expect_refusal(d->file, 100, "is a FIFO");
    char buf[64];
    assert_non_null(input_file_problem(d->file, buf, sizeof(buf)));
}

static void test_refuses_a_character_device(void **state)
{
    expect_refusal("/dev/zero", 100, "is a character device");
}

static void test_names_a_missing_file(void **state)
{
    struct dir *d = *state;
    snprintf(d->file, sizeof(d->file), "%s/missing", d->path);
    expect_refusal(d->file, 100, "No such file");
    char buf[64];
    assert_non_null(input_file_problem(d->file, buf, sizeof(buf)));
    assert_null(input_file_problem(make_file(d, "here", "x", 1), buf, sizeof(buf)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads_a_file_within_its_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_a_file_over_its_limit_before_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_an_empty_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_a_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_a_fifo_without_blocking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_a_character_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_a_missing_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
