/*
 * State records (devices/state.c) and the snapshot file (monitor/snapshot_file.c):
 * round trips, and refusal of every kind of damaged input before anything is
 * copied.
 */
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

#include "devices/state.h"
#include "hosted-driver/vclock.h"
#include "monitor/snapshot_file.h"

struct sample {
    uint32_t regs[4];
    uint8_t mode;
    long double st[2];
    uint8_t *vram;
    struct vtimer *tick;
    uint16_t added_in_v2;
};

static const struct state_field sample_fields[] = {
    STATE_FIELD(struct sample, regs),
    STATE_FIELD(struct sample, mode),
    STATE_X87(struct sample, st),
    STATE_INDIRECT(struct sample, vram, 64),
    STATE_TIMER(struct sample, tick),
    STATE_FIELD_V(struct sample, added_in_v2, 2),
};
static const struct state_table sample_v2 = { "sample", 2, sample_fields, STATE_COUNT(sample_fields), NULL };
/* The same device as an older build knew it. */
static const struct state_table sample_v1 = { "sample", 1, sample_fields, STATE_COUNT(sample_fields) - 1, NULL };

static void tick(void *opaque) { (void)opaque; }

struct env {
    struct vclock *clk;
    struct sample a, b;
    uint8_t vram_a[64], vram_b[64];
    struct state_buf rec;
};

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->clk = vclock_new(true, 1);
    e->a.vram = e->vram_a;
    e->b.vram = e->vram_b;
    e->a.tick = vtimer_new(e->clk, tick, NULL);
    e->b.tick = vtimer_new(e->clk, tick, NULL);
    for (int i = 0; i < 4; i++)
        e->a.regs[i] = 0x11111111u * (i + 1);
    e->a.mode = 7;
    e->a.st[0] = 3.25L;
    e->a.st[1] = -1e300L;
    for (int i = 0; i < 64; i++)
        e->vram_a[i] = (uint8_t)(i * 7);
    e->a.added_in_v2 = 0xbeef;
    vtimer_mod(e->a.tick, 123456);
    state_save(&sample_v2, NULL, &e->a, &e->rec);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    vtimer_free(e->a.tick);
    vtimer_free(e->b.tick);
    vclock_free(e->clk);
    state_buf_free(&e->rec);
    free(e);
    return 0;
}

static void test_round_trip(void **state)
{
    struct env *e = *state;
    char err[256];
    assert_int_equal(state_check(&sample_v2, NULL, e->rec.data, e->rec.len, err, sizeof(err)), 0);
    state_apply(&sample_v2, &e->b, e->rec.data, e->rec.len);
    assert_memory_equal(e->a.regs, e->b.regs, sizeof(e->a.regs));
    assert_int_equal(e->b.mode, 7);
    assert_true(e->b.st[0] == 3.25L && e->b.st[1] == -1e300L);
    assert_memory_equal(e->vram_a, e->vram_b, 64);
    assert_true(vtimer_pending(e->b.tick));
    assert_int_equal(vtimer_expiry(e->b.tick), 123456);
    assert_int_equal(e->b.added_in_v2, 0xbeef);
    struct state_buf again = {0};
    state_save(&sample_v2, NULL, &e->b, &again);
    assert_int_equal(again.len, e->rec.len);
    assert_memory_equal(again.data, e->rec.data, again.len);
    state_buf_free(&again);
}

static void test_disarmed_timer_is_disarmed_on_load(void **state)
{
    struct env *e = *state;
    vtimer_del(e->a.tick);
    struct state_buf rec = {0};
    state_save(&sample_v2, NULL, &e->a, &rec);
    vtimer_mod(e->b.tick, 5);
    state_apply(&sample_v2, &e->b, rec.data, rec.len);
    assert_false(vtimer_pending(e->b.tick));
    state_buf_free(&rec);
}

static void test_x87_padding_is_not_state(void **state)
{
    struct env *e = *state;
    struct sample c = e->a;
    memset((uint8_t *)&c.st[0] + 10, 0xaa, 6);    /* junk in the padding */
    struct state_buf rec = {0};
    state_save(&sample_v2, NULL, &c, &rec);
    assert_int_equal(rec.len, e->rec.len);
    assert_memory_equal(rec.data, e->rec.data, rec.len);
    state_buf_free(&rec);
}

static void test_every_truncation_is_refused(void **state)
{
    struct env *e = *state;
    char err[256];
    for (size_t n = 0; n < e->rec.len; n++)
        assert_int_equal(state_check(&sample_v2, NULL, e->rec.data, n, err, sizeof(err)), -1);
    uint8_t *longer = malloc(e->rec.len + 1);
    memcpy(longer, e->rec.data, e->rec.len);
    longer[e->rec.len] = 0;
    assert_int_equal(state_check(&sample_v2, NULL, longer, e->rec.len + 1, err, sizeof(err)), -1);
    free(longer);
}

static void test_newer_version_refused_older_accepted(void **state)
{
    struct env *e = *state;
    char err[256];
    /* A v2 record into a build that knows v1: refused, the message names it. */
    assert_int_equal(state_check(&sample_v1, NULL, e->rec.data, e->rec.len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "version 2"));
    /* A v1 record (no added_in_v2) into this build: accepted, the new field kept. */
    struct state_buf old = {0};
    state_save(&sample_v1, NULL, &e->a, &old);
    assert_int_equal(state_check(&sample_v2, NULL, old.data, old.len, err, sizeof(err)), 0);
    e->b.added_in_v2 = 42;
    state_apply(&sample_v2, &e->b, old.data, old.len);
    assert_int_equal(e->b.added_in_v2, 42);
    state_buf_free(&old);
}

/* A table whose field `mode` is wider: the record's 1-byte mode is refused by name. */
struct wider { uint32_t regs[4]; uint16_t mode; };
static void test_size_mismatch_names_the_field(void **state)
{
    struct env *e = *state;
    static const struct state_field f[] = {
        STATE_FIELD(struct wider, regs), STATE_FIELD(struct wider, mode),
    };
    static const struct state_table t = { "sample", 2, f, 2, NULL };
    char err[256];
    assert_int_equal(state_check(&t, NULL, e->rec.data, e->rec.len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "'mode'"));
}

static void test_unknown_and_missing_fields(void **state)
{
    struct env *e = *state;
    char err[256];
    /* Missing: a table with one more v1 field than the record has. */
    static const struct state_field more[] = {
        STATE_FIELD(struct sample, regs), STATE_FIELD(struct sample, mode), STATE_X87(struct sample, st),
        STATE_INDIRECT(struct sample, vram, 64), STATE_TIMER(struct sample, tick),
        STATE_FIELD_V(struct sample, added_in_v2, 2), { "extra", 0, 4, 1, STATE_PLAIN },
    };
    static const struct state_table t_more = { "sample", 2, more, 7, NULL };
    assert_int_equal(state_check(&t_more, NULL, e->rec.data, e->rec.len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "lacks field 'extra'"));
    /* Unknown: a table without `mode`. */
    static const struct state_field fewer[] = { STATE_FIELD(struct sample, regs) };
    static const struct state_table t_fewer = { "sample", 2, fewer, 1, NULL };
    assert_int_equal(state_check(&t_fewer, NULL, e->rec.data, e->rec.len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "does not know"));
    /* Wrong record name. */
    assert_int_equal(state_check(&sample_v2, "other", e->rec.data, e->rec.len, err, sizeof(err)), -1);
}

struct diffs { int n; char last[128]; };
static void note_diff(const char *rec, const char *field, const char *why, void *ctx)
{
    struct diffs *d = ctx;
    d->n++;
    snprintf(d->last, sizeof(d->last), "%s.%s", rec, field);
}

static void test_compare_names_the_differing_field(void **state)
{
    struct env *e = *state;
    struct diffs d = {0};
    assert_int_equal(state_compare_records(e->rec.data, e->rec.len, e->rec.data, e->rec.len, note_diff, &d), 0);
    e->a.regs[2] ^= 1;
    struct state_buf other = {0};
    state_save(&sample_v2, NULL, &e->a, &other);
    assert_int_equal(state_compare_records(e->rec.data, e->rec.len, other.data, other.len, note_diff, &d), 1);
    assert_string_equal(d.last, "sample.regs");
    state_buf_free(&other);
}

/* ---- the file ---- */

static void write_sample_file(const char *path, const uint8_t *mem, uint64_t size)
{
    struct snapfile_writer w;
    snapfile_begin(&w);
    size_t mark = snapfile_section_begin(&w, "one");
    state_buf_put(&w.b, "hello", 5);
    snapfile_section_end(&w, mark);
    mark = snapfile_section_begin(&w, "ram");
    snapfile_put_memory(&w.b, mem, size);
    snapfile_section_end(&w, mark);
    char err[256];
    assert_int_equal(snapfile_commit(&w, path, err, sizeof(err)), 0);
    snapfile_writer_free(&w);
}

static uint8_t *sample_memory(uint64_t size)
{
    uint8_t *m = calloc(1, size);
    srand(7);
    for (int i = 0; i < 300; i++)
        m[(size_t)rand() % size] = (uint8_t)rand();
    memset(m + 8192, 0x5a, 4096);
    return m;
}

static void test_file_round_trip(void **state)
{
    (void)state;
    char path[] = "/tmp/rv-snapfile-XXXXXX";
    close(mkstemp(path));
    uint64_t size = 1 << 20;
    uint8_t *mem = sample_memory(size), *back = malloc(size);
    write_sample_file(path, mem, size);
    struct snapfile f;
    char err[256];
    assert_int_equal(snapfile_read(path, 1 << 30, &f, err, sizeof(err)), 0);
    const struct snapfile_section *s = snapfile_find(&f, "one");
    assert_non_null(s);
    assert_int_equal(s->len, 5);
    assert_memory_equal(s->data, "hello", 5);
    s = snapfile_find(&f, "ram");
    assert_int_equal(snapfile_get_memory(s->data, s->len, back, size, err, sizeof(err)), 0);
    assert_memory_equal(mem, back, size);
    /* The wrong machine size is refused. */
    assert_int_equal(snapfile_get_memory(s->data, s->len, back, size / 2, err, sizeof(err)), -1);
    /* Every truncation of the memory payload is refused. */
    for (size_t n = 0; n < s->len; n += 1 + n / 8)
        assert_int_equal(snapfile_get_memory(s->data, n, back, size, err, sizeof(err)), -1);
    snapfile_free(&f);
    unlink(path);
    free(mem);
    free(back);
}

static void test_damaged_files_are_refused(void **state)
{
    (void)state;
    char path[] = "/tmp/rv-snapfile-XXXXXX";
    close(mkstemp(path));
    uint64_t size = 64 << 10;
    uint8_t *mem = sample_memory(size);
    write_sample_file(path, mem, size);
    FILE *fp = fopen(path, "rb");
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    rewind(fp);
    uint8_t *good = malloc(len);
    assert_int_equal(fread(good, 1, len, fp), (size_t)len);
    fclose(fp);
    char err[256];
    struct snapfile f;
    for (long pos = 0; pos < len; pos += 1 + pos / 16) {
        /* A flipped bit anywhere. */
        good[pos] ^= 0x10;
        fp = fopen(path, "wb");
        fwrite(good, 1, len, fp);
        fclose(fp);
        assert_int_equal(snapfile_read(path, 1 << 30, &f, err, sizeof(err)), -1);
        good[pos] ^= 0x10;
        /* Cut short there. */
        fp = fopen(path, "wb");
        fwrite(good, 1, pos, fp);
        fclose(fp);
        assert_int_equal(snapfile_read(path, 1 << 30, &f, err, sizeof(err)), -1);
    }
    /* Bigger than the caller's bound. */
    fp = fopen(path, "wb");
    fwrite(good, 1, len, fp);
    fclose(fp);
    assert_int_equal(snapfile_read(path, (uint64_t)len - 1, &f, err, sizeof(err)), -1);
    assert_int_equal(snapfile_read(path, (uint64_t)len, &f, err, sizeof(err)), 0);
    snapfile_free(&f);
    unlink(path);
    free(good);
    free(mem);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_round_trip),
        T(test_disarmed_timer_is_disarmed_on_load),
        T(test_x87_padding_is_not_state),
        T(test_every_truncation_is_refused),
        T(test_newer_version_refused_older_accepted),
        T(test_size_mismatch_names_the_field),
        T(test_unknown_and_missing_fields),
        T(test_compare_names_the_differing_field),
        cmocka_unit_test(test_file_round_trip),
        cmocka_unit_test(test_damaged_files_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
