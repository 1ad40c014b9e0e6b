/* The prefault thread: pages ahead of a fill point become present, their
 * contents untouched, and nothing beyond the window is touched. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "hosted-driver/prefault.h"

#define AREA ((size_t)64 << 20)
#define MIB ((size_t)1 << 20)

/* Resident 4 KiB pages of [p, p + len), from the kernel's own view (mincore). */
static size_t resident_pages(uint8_t *p, size_t len)
{
    size_t n = len / 4096, count = 0;
    unsigned char *vec = malloc(n);
    assert_non_null(vec);
    assert_int_equal(mincore(p, len, vec), 0);
    for (size_t k = 0; k < n; k++)
        count += vec[k] & 1;
    free(vec);
    return count;
}

/* Waits up to two seconds for [p, p + len) to become wholly resident. */
static bool wait_resident(uint8_t *p, size_t len)
{
    for (int k = 0; k < 200; k++) {
        if (resident_pages(p, len) == len / 4096)
            return true;
        nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
    }
    return false;
}

/* A kernel without MADV_POPULATE_WRITE (before Linux 5.14): the
 * prefaulter gives up there by design, and these tests are skipped. */
static void skip_without_populate(void)
{
    uint8_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    int r = madvise(p, 4096, MADV_POPULATE_WRITE);
    munmap(p, 4096);
    if (r != 0)
        skip();
}

static uint8_t *map_area(void)
{
    skip_without_populate();
    uint8_t *p = mmap(NULL, AREA, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(p != MAP_FAILED);
    /* 4 KiB pages, so that mincore sees exactly what was populated. */
    madvise(p, AREA, MADV_NOHUGEPAGE);
    return p;
}

static void test_window_ahead_of_fill_becomes_present(void **state)
{
    (void)state;
    uint8_t *p = map_area();
    struct prefault *pf = prefault_new();
    assert_non_null(pf);
    int a = prefault_add(pf, p, AREA);
    assert_true(a >= 0);
    assert_int_equal(resident_pages(p, AREA), 0);

    /* Written bytes stay what they are while the thread populates around them. */
    memset(p, 0x5a, 4096);
    prefault_note(pf, a, p + 4096);
    assert_true(wait_resident(p, 8 * MIB));
    for (size_t k = 0; k < 4096; k++)
        assert_int_equal(p[k], 0x5a);
    assert_int_equal(p[4096], 0);
    /* Nothing far beyond the window. */
    assert_int_equal(resident_pages(p + 32 * MIB, 32 * MIB), 0);

    /* Filling on moves the window. */
    prefault_note(pf, a, p + 20 * MIB);
    assert_true(wait_resident(p + 20 * MIB, 8 * MIB));
    assert_int_equal(resident_pages(p + 40 * MIB, 24 * MIB), 0);

    prefault_free(pf);
    munmap(p, AREA);
}

static void test_window_stops_at_the_area_end(void **state)
{
    (void)state;
    uint8_t *p = map_area();
    struct prefault *pf = prefault_new();
    assert_non_null(pf);
    int a = prefault_add(pf, p, 16 * MIB);      /* the mapping goes on beyond the area */
    prefault_note(pf, a, p + 12 * MIB);
    assert_true(wait_resident(p + 12 * MIB, 4 * MIB));
    nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
    assert_int_equal(resident_pages(p + 16 * MIB, 48 * MIB), 0);
    prefault_free(pf);
    munmap(p, AREA);
}

static void test_null_prefaulter_does_nothing(void **state)
{
    (void)state;
    assert_int_equal(prefault_add(NULL, NULL, 0), -1);
    prefault_note(NULL, -1, NULL);
    prefault_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_ahead_of_fill_becomes_present),
        cmocka_unit_test(test_window_stops_at_the_area_end),
        cmocka_unit_test(test_null_prefaulter_does_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
