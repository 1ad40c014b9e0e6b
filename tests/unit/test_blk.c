/*
 * Block drivers (raw, qcow2, vmdk, vpc): random writes against a shadow copy,
 * reopen, check; backing chains and commit; parents never written; bad
 * images refused with one line naming the file; QEMU-style lock bytes; the
 * bounded -snapshot overlay; and a mutation fuzzer over every format's
 * header and tables (a short run here, a long one under RETROVISOR_LONG=1,
 * which make check-long builds with AddressSanitizer).
 */
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
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hosted-driver/blk.h"
#include "hosted-driver/blockdev.h"

#define SIZE (8u << 20)

static char dir[64];

static char *path_of(const char *name)
{
    static char bufs[8][256];
    static int k;
    char *p = bufs[k++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

struct kind {
    const char *fmt, *sub, *name;
    int compat;
};

static const struct kind kinds[] = {
    { "raw", NULL, "r.img", 0 },
    { "qcow2", NULL, "q3.qcow2", 3 },
    { "qcow2", NULL, "q2.qcow2", 2 },
    { "vmdk", "monolithicSparse", "ms.vmdk", 0 },
    { "vmdk", "monolithicFlat", "mf.vmdk", 0 },
    { "vmdk", "twoGbMaxExtentSparse", "ts.vmdk", 0 },
    { "vmdk", "twoGbMaxExtentFlat", "tf.vmdk", 0 },
    { "vpc", "dynamic", "vd.vhd", 0 },
    { "vpc", "fixed", "vf.vhd", 0 },
};

static struct blk *must_open(const char *path, const char *fmt, int flags)
{
    char err[512] = "";
    struct blk *b = blk_open(path, fmt, flags, err, sizeof(err));
    if (!b)
        fail_msg("open %s: %s", path, err);
    return b;
}

static void random_writes(struct blk *b, uint8_t *shadow, uint64_t size, int count)
{
    uint8_t *buf = malloc(256 << 10);
    for (int i = 0; i < count; i++) {
        uint64_t len = (next_rand() % 256 + 1) * 512;
        if (next_rand() % 4 == 0)
            len = next_rand() % 3000 + 1;   /* unaligned pieces too */
        if (len > size)
            len = size;
        uint64_t off = next_rand() % (size - len + 1);
        if (next_rand() % 2)
            off &= ~511ull;
        for (uint64_t k = 0; k < len; k++)
            buf[k] = (uint8_t)next_rand();
        assert_int_equal(blk_write(b, off, buf, len), 0);
        memcpy(shadow + off, buf, len);
    }
    free(buf);
}

static void assert_content(struct blk *b, const uint8_t *shadow, uint64_t size)
{
    uint8_t *got = malloc(size);
    assert_int_equal(blk_read(b, 0, got, size), 0);
    assert_memory_equal(got, shadow, size);
    free(got);
}

static void assert_clean(struct blk *b)
{
    struct blk_check_result res;
    int r = blk_check(b, &res);
    if (r == -ENOTSUP)
        return;
    assert_int_equal(r, 0);
    if (res.errors)
        fail_msg("%s: %llu errors: %s", blk_path(b), (unsigned long long)res.errors, res.first_error);
    assert_int_equal(res.leaks, 0);
}

static void create(const struct kind *k, const char *path, uint64_t size, const char *backing)
{
    struct blk_create_opts o = { .subformat = k->sub, .compat = k->compat, .backing = backing };
    char err[512] = "";
    if (blk_create(k->fmt, path, size, &o, err, sizeof(err)) < 0)
        fail_msg("create %s: %s", path, err);
}

static void test_round_trip_every_format(void **state)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        const struct kind *k = &kinds[i];
        char *p = path_of(k->name);
        create(k, p, SIZE, NULL);
        struct blk *b = must_open(p, k->fmt, BLK_WRITABLE);
        uint64_t size = blk_size(b);
        assert_true(size >= SIZE);
        uint8_t *shadow = calloc(1, size);
        assert_content(b, shadow, size);
        random_writes(b, shadow, size, 300);
        assert_int_equal(blk_flush(b), 0);
        assert_content(b, shadow, size);
        blk_close(b);
        /* Detected from its header, not named. */
        b = must_open(p, NULL, 0);
        assert_string_equal(blk_format_name(b), k->fmt);
        assert_content(b, shadow, size);
        assert_clean(b);
        blk_close(b);
        free(shadow);
    }
}

static uint8_t *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    fstat(fd, &st);
    uint8_t *buf = malloc(st.st_size + 1);
    assert_int_equal(pread(fd, buf, st.st_size, 0), st.st_size);
    close(fd);
    *len = st.st_size;
    return buf;
}

/* base + two deltas: the top sees the newest data, lower files never change, commit folds down. */
static void chain_for(const struct kind *k, const char *b0, const char *b1, const char *b2)
{
    create(k, path_of(b0), SIZE, NULL);
    struct blk *b = must_open(path_of(b0), k->fmt, BLK_WRITABLE);
    uint64_t size = blk_size(b);
    uint8_t *shadow = calloc(1, size);
    random_writes(b, shadow, size, 100);
    blk_close(b);
    size_t base_len, d1_len;
    uint8_t *base_bytes = slurp(path_of(b0), &base_len);

    create(k, path_of(b1), 0, b0);
    b = must_open(path_of(b1), k->fmt, BLK_WRITABLE);
    assert_int_equal(blk_size(b), size);
    assert_content(b, shadow, size);
    random_writes(b, shadow, size, 100);
    blk_close(b);
    uint8_t *d1_bytes = slurp(path_of(b1), &d1_len);

    create(k, path_of(b2), 0, b1);
    b = must_open(path_of(b2), NULL, BLK_WRITABLE);
    assert_content(b, shadow, size);
    random_writes(b, shadow, size, 100);
    assert_content(b, shadow, size);
    assert_clean(b);
    blk_close(b);

    size_t n;
    uint8_t *now = slurp(path_of(b0), &n);
    assert_int_equal(n, base_len);
    assert_memory_equal(now, base_bytes, n);
    free(now);
    now = slurp(path_of(b1), &n);
    assert_int_equal(n, d1_len);
    assert_memory_equal(now, d1_bytes, n);
    free(now);

    /* Commit the top into the middle: the middle alone (over the base) now reads the newest. */
    b = must_open(path_of(b2), NULL, 0);
    char err[512] = "";
    if (blk_commit(b, err, sizeof(err)) < 0)
        fail_msg("commit: %s", err);
    blk_close(b);
    b = must_open(path_of(b1), NULL, 0);
    assert_content(b, shadow, size);
    assert_clean(b);
    blk_close(b);
    now = slurp(path_of(b0), &n);
    assert_memory_equal(now, base_bytes, base_len);
    free(now);
    free(base_bytes);
    free(d1_bytes);
    free(shadow);
}

static void test_delta_chains(void **state)
{
    chain_for(&kinds[1], "c0.qcow2", "c1.qcow2", "c2.qcow2");
    chain_for(&kinds[3], "c0.vmdk", "c0-000001.vmdk", "c0-000002.vmdk");
    chain_for(&kinds[7], "c0.vhd", "c1.vhd", "c2.vhd");
}

static void test_qcow2_over_raw_and_vmdk(void **state)
{
    /* A qcow2 overlay records its backing's format; a raw base stays raw. */
    create(&kinds[0], path_of("base.raw"), SIZE, NULL);
    struct blk *b = must_open(path_of("base.raw"), "raw", BLK_WRITABLE);
    uint8_t *shadow = calloc(1, SIZE);
    random_writes(b, shadow, SIZE, 50);
    blk_close(b);
    create(&kinds[1], path_of("over.qcow2"), 0, "base.raw");
    b = must_open(path_of("over.qcow2"), NULL, BLK_WRITABLE);
    assert_string_equal(blk_format_name(blk_backing(b)), "raw");
    random_writes(b, shadow, SIZE, 50);
    assert_content(b, shadow, SIZE);
    blk_close(b);
    free(shadow);
}

/* qemu-img's qcow2 with 512-byte clusters has a refcount table for 8 MiB:
 * filling 16 MiB makes the table move (twice). */
static void test_qcow2_refcount_table_grows(void **state)
{
    if (system("command -v qemu-img >/dev/null") != 0)
        skip();
    char cmd[512];
    char *p = path_of("small-clusters.qcow2");
    snprintf(cmd, sizeof(cmd), "qemu-img create -q -f qcow2 -o cluster_size=512 '%s' 16M", p);
    assert_int_equal(system(cmd), 0);
    struct blk *b = must_open(p, NULL, BLK_WRITABLE);
    uint8_t *shadow = calloc(1, SIZE * 2);
    uint8_t *buf = malloc(1 << 20);
    for (uint64_t off = 0; off < 16u << 20; off += 1 << 20) {
        for (size_t k = 0; k < 1 << 20; k++)
            buf[k] = (uint8_t)next_rand();
        assert_int_equal(blk_write(b, off, buf, 1 << 20), 0);
        memcpy(shadow + off, buf, 1 << 20);
    }
    assert_content(b, shadow, 16u << 20);
    blk_close(b);
    b = must_open(p, NULL, 0);
    assert_content(b, shadow, 16u << 20);
    assert_clean(b);
    blk_close(b);
    snprintf(cmd, sizeof(cmd), "qemu-img check -q -f qcow2 '%s'", p);
    assert_int_equal(system(cmd), 0);
    free(buf);
    free(shadow);
}

static uint64_t file_bytes(const char *p)
{
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return (uint64_t)st.st_size;
}

static void random_fill(uint8_t *buf, size_t n)
{
    for (size_t k = 0; k < n; k++)
        buf[k] = (uint8_t)next_rand();
}

static int qemu_img_check(const char *p)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "qemu-img check -q -f qcow2 '%s' >/dev/null 2>&1", p);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Commit empties a qcow2 top (as qemu-img commit does) and frees its
 * clusters; later writes take them instead of growing the file.  Counts stay
 * exact: our check and qemu-img check find neither errors nor leaks. */
static void test_qcow2_freed_clusters_reused(void **state)
{
    char *base = path_of("reuse-base.raw"), *top = path_of("reuse-top.qcow2");
    create(&kinds[0], base, SIZE, NULL);
    create(&kinds[1], top, 0, "reuse-base.raw");
    uint8_t *shadow = calloc(1, SIZE), *buf = malloc(SIZE / 2);
    struct blk *b = must_open(top, NULL, BLK_WRITABLE);
    random_fill(buf, SIZE / 2);
    assert_int_equal(blk_write(b, 0, buf, SIZE / 2), 0);
    memcpy(shadow, buf, SIZE / 2);
    blk_close(b);
    uint64_t grown = file_bytes(top);

    char err[512] = "";
    b = must_open(top, NULL, BLK_WRITABLE);
    if (blk_commit(b, err, sizeof(err)) < 0)
        fail_msg("commit: %s", err);
    uint64_t n;
    assert_int_equal(blk_block_state(b, 0, SIZE, &n), BLK_STATE_BACKING);
    assert_int_equal(n, SIZE);
    assert_content(b, shadow, SIZE);
    struct blk_check_result res;
    assert_int_equal(blk_check(b, &res), 0);
    assert_int_equal(res.errors, 0);
    assert_int_equal(res.leaks, 0);
    assert_int_equal(res.allocated, 0);
    blk_close(b);

    /* The other half now: as many clusters as were freed, so no growth. */
    b = must_open(top, NULL, BLK_WRITABLE);
    random_fill(buf, SIZE / 2);
    assert_int_equal(blk_write(b, SIZE / 2, buf, SIZE / 2), 0);
    memcpy(shadow + SIZE / 2, buf, SIZE / 2);
    assert_content(b, shadow, SIZE);
    blk_close(b);
    assert_true(file_bytes(top) <= grown);
    b = must_open(top, NULL, 0);
    assert_content(b, shadow, SIZE);
    assert_clean(b);
    assert_int_equal(blk_check(b, &res), 0);
    assert_int_equal(res.allocated, SIZE / 2);
    blk_close(b);
    if (system("command -v qemu-img >/dev/null") == 0) {
        assert_int_equal(qemu_img_check(top), 0);
    }

    /* Clusters that qemu freed (a discard) are found at open and taken first. */
    if (system("command -v qemu-io >/dev/null") == 0) {
        char *q = path_of("reuse-discard.qcow2"), cmd[600];
        create(&kinds[1], q, SIZE, NULL);
        snprintf(cmd, sizeof(cmd), "qemu-io -f qcow2 -c 'write -P 0x5a 0 4M' -c 'discard 0 2M' '%s' >/dev/null", q);
        assert_int_equal(system(cmd), 0);
        uint64_t before = file_bytes(q);
        memset(shadow, 0, SIZE);
        memset(shadow + (2u << 20), 0x5a, 2u << 20);
        b = must_open(q, NULL, BLK_WRITABLE);
        random_fill(buf, 2u << 20);
        assert_int_equal(blk_write(b, SIZE - (2u << 20), buf, 2u << 20), 0);
        memcpy(shadow + SIZE - (2u << 20), buf, 2u << 20);
        blk_close(b);
        assert_true(file_bytes(q) <= before);
        b = must_open(q, NULL, 0);
        assert_content(b, shadow, SIZE);
        assert_clean(b);
        blk_close(b);
        assert_int_equal(qemu_img_check(q), 0);
    }
    free(buf);
    free(shadow);
}

/* A raw image whose format was detected must not become a qcow2 (with a
 * backing file of the guest's choosing) by a guest write to its first sector,
 * nor a VHD by one to its last; when the format is named, anything goes. */
static void test_raw_stays_raw(void **state)
{
    char *p = path_of("guest.raw");
    create(&kinds[0], p, 1 << 20, NULL);
    uint8_t sector[512] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 3 };
    uint8_t footer[512] = { 'c', 'o', 'n', 'e', 'c', 't', 'i', 'x' };
    footer[63] = 2;     /* disk type: fixed */
    struct blk *b = must_open(p, NULL, BLK_WRITABLE);
    assert_int_equal(blk_write(b, 0, sector, 512), -EPERM);
    assert_int_equal(blk_write(b, (1 << 20) - 512, footer, 512), -EPERM);
    sector[0] = 'X';
    assert_int_equal(blk_write(b, 0, sector, 512), 0);     /* ordinary data is fine */
    blk_close(b);
    b = must_open(p, "raw", BLK_WRITABLE);
    sector[0] = 'Q';
    assert_int_equal(blk_write(b, 0, sector, 512), 0);
    blk_close(b);
}

static void expect_refused(const char *path, const char *fmt, const char *why)
{
    char err[512] = "";
    struct blk *b = blk_open(path, fmt, 0, err, sizeof(err));
    if (b)
        fail_msg("%s opened; expected refusal (%s)", path, why);
    assert_null(strchr(err, '\n'));
    if (!strstr(err, path) && !strstr(err, strrchr(path, '/') + 1))
        fail_msg("message does not name the file: %s", err);
    if (!strstr(err, why))
        fail_msg("expected '%s' in: %s", why, err);
}

static void poke(const char *path, uint64_t off, const void *bytes, size_t n)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, n, off), (ssize_t)n);
    close(fd);
}

static void test_bad_images(void **state)
{
    uint8_t big[8] = { 0x00, 0x00, 0x00, 0x10, 0, 0, 0, 0 };   /* 0x1000_0000_0000 */
    /* qcow2: L1 table offset past the end. */
    create(&kinds[1], path_of("bad1.qcow2"), SIZE, NULL);
    poke(path_of("bad1.qcow2"), 40, big, 8);
    expect_refused(path_of("bad1.qcow2"), NULL, "L1 table");
    /* qcow2: an L1 entry pointing outside. */
    create(&kinds[1], path_of("bad2.qcow2"), SIZE, NULL);
    struct blk *b = must_open(path_of("bad2.qcow2"), NULL, 0);
    blk_close(b);
    uint8_t l1e[8] = { 0, 0, 0x10, 0, 0, 0, 0, 0 };
    poke(path_of("bad2.qcow2"), 3 * 65536, l1e, 8);     /* header, refcount table, block, L1 */
    expect_refused(path_of("bad2.qcow2"), NULL, "outside the file");
    /* qcow2: encrypted. */
    create(&kinds[1], path_of("bad3.qcow2"), SIZE, NULL);
    uint8_t one[4] = { 0, 0, 0, 1 };
    poke(path_of("bad3.qcow2"), 32, one, 4);
    expect_refused(path_of("bad3.qcow2"), NULL, "encrypted");
    /* A backing chain that loops: x -> y -> x. */
    create(&kinds[1], path_of("x.qcow2"), SIZE, NULL);
    create(&kinds[1], path_of("y.qcow2"), 0, "x.qcow2");
    create(&kinds[1], path_of("x2.qcow2"), 0, "y.qcow2");
    rename(path_of("x2.qcow2"), path_of("x.qcow2"));
    expect_refused(path_of("x.qcow2"), NULL, "loops");
    /* A missing parent. */
    create(&kinds[1], path_of("p.qcow2"), SIZE, NULL);
    create(&kinds[1], path_of("orphan.qcow2"), 0, "p.qcow2");
    unlink(path_of("p.qcow2"));
    expect_refused(path_of("orphan.qcow2"), NULL, "p.qcow2");
    /* VMDK: a parent whose CID changed (it was written after the delta was made). */
    create(&kinds[3], path_of("vp.vmdk"), SIZE, NULL);
    create(&kinds[3], path_of("vp-000001.vmdk"), 0, "vp.vmdk");
    b = must_open(path_of("vp.vmdk"), NULL, BLK_WRITABLE);
    uint8_t sector[512] = { 1 };
    assert_int_equal(blk_write(b, 0, sector, 512), 0);
    blk_close(b);
    expect_refused(path_of("vp-000001.vmdk"), NULL, "CID");
    /* VMDK: a descriptor that is not UTF-8. */
    create(&kinds[4], path_of("nu.vmdk"), SIZE, NULL);
    uint8_t junk[2] = { 0xff, 0xfe };
    poke(path_of("nu.vmdk"), 30, junk, 2);
    expect_refused(path_of("nu.vmdk"), NULL, "UTF-8");
    /* VMDK: a grain table entry outside the file. */
    create(&kinds[3], path_of("gt.vmdk"), SIZE, NULL);
    uint8_t far[4] = { 0, 0, 0, 0x40 };
    b = must_open(path_of("gt.vmdk"), NULL, 0);
    blk_close(b);
    {
        size_t n;
        uint8_t *d = slurp(path_of("gt.vmdk"), &n);
        uint64_t gd = (uint64_t)d[56] | (uint64_t)d[57] << 8 | (uint64_t)d[58] << 16;
        uint32_t gt = d[gd * 512] | d[gd * 512 + 1] << 8 | d[gd * 512 + 2] << 16;
        free(d);
        poke(path_of("gt.vmdk"), (uint64_t)gt * 512 + 8, far, 4);
    }
    expect_refused(path_of("gt.vmdk"), NULL, "outside the file");
    /* VMDK: an embedded descriptor claiming to be huge. */
    create(&kinds[3], path_of("ld.vmdk"), SIZE, NULL);
    uint8_t huge[8] = { 0, 0x10, 0, 0, 0, 0, 0, 0 };
    poke(path_of("ld.vmdk"), 36, huge, 8);
    expect_refused(path_of("ld.vmdk"), NULL, "too long");
    /* VHD: a damaged footer checksum on a fixed disk. */
    create(&kinds[8], path_of("bf.vhd"), SIZE, NULL);
    struct stat st;
    stat(path_of("bf.vhd"), &st);
    uint8_t x = 0x55;
    poke(path_of("bf.vhd"), st.st_size - 512 + 64, &x, 1);
    expect_refused(path_of("bf.vhd"), "vpc", "checksum");
    /* VHD: a BAT entry outside the file. */
    create(&kinds[7], path_of("bb.vhd"), SIZE, NULL);
    uint8_t bat[4] = { 0x00, 0x10, 0x00, 0x00 };
    poke(path_of("bb.vhd"), 1536, bat, 4);
    expect_refused(path_of("bb.vhd"), NULL, "outside the file");
    /* VHD: a differencing disk whose parent is not the one it was made from. */
    create(&kinds[7], path_of("vpar.vhd"), SIZE, NULL);
    create(&kinds[7], path_of("vkid.vhd"), 0, "vpar.vhd");
    create(&kinds[7], path_of("vpar.vhd"), SIZE, NULL);    /* same name, new unique ID */
    expect_refused(path_of("vkid.vhd"), NULL, "unique ID");
}

static void test_parent_never_written_and_locks(void **state)
{
    create(&kinds[1], path_of("lb.qcow2"), SIZE, NULL);
    create(&kinds[1], path_of("lt.qcow2"), 0, "lb.qcow2");
    struct blk *top = must_open(path_of("lt.qcow2"), NULL, BLK_WRITABLE);
    assert_false(blk_writable(blk_backing(top)));
    uint8_t buf[512] = { 0 };
    assert_int_equal(blk_write(blk_backing(top), 0, buf, 512), -EROFS);
    /* A writer on the parent of an open child, and a second writer: refused. */
    char err[512] = "";
    assert_null(blk_open(path_of("lb.qcow2"), NULL, BLK_WRITABLE, err, sizeof(err)));
    assert_non_null(strstr(err, "locked"));
    assert_null(blk_open(path_of("lt.qcow2"), NULL, BLK_WRITABLE, err, sizeof(err)));
    assert_null(blk_open(path_of("lt.qcow2"), NULL, 0, err, sizeof(err)));
    struct blk *reader = must_open(path_of("lb.qcow2"), NULL, 0);   /* readers share */
    blk_close(reader);
    blk_close(top);
    top = must_open(path_of("lb.qcow2"), NULL, BLK_WRITABLE);
    blk_close(top);
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

static long status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, field, n) && sscanf(line + n, ": %ld", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

/*
 * Issue 26: a guest writing 2 GiB to an 8 GiB -snapshot disk grew the VMM
 * to 2.2 GB.  make check writes 256 MiB to a 512 MiB disk; RETROVISOR_LONG=1
 * (make check-long) writes the 2 GiB to an 8 GiB sparse disk.  Both
 * the growth of RSS and its peak (VmHWM) must stay far below what was
 * written.
 */
static void test_snapshot_overlay_is_bounded(void **state)
{
    bool long_run = getenv("RETROVISOR_LONG") && *getenv("RETROVISOR_LONG");
    const uint64_t size = long_run ? 8ull << 30 : 512ull << 20;
    const uint64_t written = long_run ? 2ull << 30 : 256ull << 20;
    int fd = open(path_of("big.raw"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    close(fd);
    char err[512];
    struct blockdev *bd = blockdev_open(path_of("big.raw"), false, true, err, sizeof(err));
    assert_non_null(bd);
    uint8_t *buf = malloc(1 << 20);
    memset(buf, 0x5a, 1 << 20);
    long before = rss_kib(), peak_before = status_kib("VmHWM");
    for (uint64_t off = 0; off < written; off += 1 << 20) {
        buf[0] = (uint8_t)(off >> 20);
        assert_int_equal(blockdev_write(bd, off, buf, 1 << 20), 0);
    }
    long after = rss_kib(), peak = status_kib("VmHWM");
    printf("snapshot overlay: %llu MiB written; RSS %ld -> %ld KiB, peak %ld KiB (was %ld)\n",
           (unsigned long long)(written >> 20), before, after, peak, peak_before);
    /* The overlay lives in a temporary file, not in memory. */
    if (after - before > 32 * 1024)
        fail_msg("RSS grew by %ld KiB for %llu MiB of snapshot writes", after - before,
                 (unsigned long long)(written >> 20));
    if (peak > peak_before + 64 * 1024 && peak > before + 64 * 1024)
        fail_msg("peak RSS reached %ld KiB for %llu MiB of snapshot writes (%ld before)", peak,
                 (unsigned long long)(written >> 20), before);
    uint8_t back[512];
    assert_int_equal(blockdev_read(bd, 100ull << 20, back, 512), 0);
    assert_int_equal(back[0], 100);
    assert_int_equal(back[1], 0x5a);
    blockdev_close(bd);
    struct stat st;
    stat(path_of("big.raw"), &st);
    assert_int_equal(st.st_blocks, 0);      /* the base was never written */
    unlink(path_of("big.raw"));
    free(buf);
}

/* Mutate headers and tables at random; opening and reading must never crash
 * or read outside the file (ASan watches in make check-long). */
static void fuzz_one(const char *src, const char *fmt, int rounds)
{
    size_t n;
    uint8_t *orig = slurp(src, &n);
    char *dst = path_of("fuzz.img");
    uint8_t *buf = malloc(64 << 10);
    for (int r = 0; r < rounds; r++) {
        int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        uint8_t *m = malloc(n);
        memcpy(m, orig, n);
        int flips = 1 + (int)(next_rand() % 8);
        size_t span = n < (1u << 20) ? n : (1u << 20);
        for (int k = 0; k < flips; k++) {
            size_t at = next_rand() % 4 == 0 ? n - 1 - next_rand() % (n < 1024 ? n : 1024) : next_rand() % span;
            m[at] = next_rand() % 3 ? (uint8_t)next_rand() : (uint8_t)(m[at] ^ (1u << (next_rand() % 8)));
        }
        size_t len = next_rand() % 8 == 0 ? next_rand() % n : n;     /* sometimes truncated */
        assert_int_equal(write(fd, m, len), (ssize_t)len);
        close(fd);
        free(m);
        char err[512];
        struct blk *b = blk_open(dst, next_rand() % 2 ? fmt : NULL, BLK_NO_BACKING, err, sizeof(err));
        if (!b) {
            if (strchr(err, '\n'))
                fail_msg("two lines: %s", err);
            continue;
        }
        uint64_t size = blk_size(b);
        for (int k = 0; k < 32 && size; k++) {
            uint64_t l = next_rand() % (64 << 10) + 1;
            if (l > size)
                l = size;
            uint64_t off = next_rand() % (size - l + 1);
            blk_read(b, off, buf, l);
        }
        struct blk_check_result res;
        blk_check(b, &res);
        blk_close(b);
    }
    free(buf);
    free(orig);
}

static void test_fuzz_parsers(void **state)
{
    int rounds = getenv("RETROVISOR_LONG") ? 5000 : 150;
    /* Images with data in them, so the tables have entries to break. */
    const struct kind *fz[] = { &kinds[1], &kinds[3], &kinds[7], &kinds[4] };
    for (size_t i = 0; i < 4; i++) {
        const struct kind *k = fz[i];
        char name[64];
        snprintf(name, sizeof(name), "fz-%s", k->name);
        create(k, path_of(name), 1 << 20, NULL);
        struct blk *b = must_open(path_of(name), k->fmt, BLK_WRITABLE);
        uint8_t *shadow = calloc(1, blk_size(b));
        random_writes(b, shadow, blk_size(b), 20);
        blk_close(b);
        free(shadow);
        fuzz_one(path_of(name), k->fmt, rounds);
    }
    /* Compressed qcow2 clusters (when qemu-img is here to make them): the inflate path. */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "command -v qemu-img >/dev/null && qemu-img convert -c -O qcow2 '%s' '%s'",
             path_of("fz-ms.vmdk"), path_of("fz-c.qcow2"));
    if (system(cmd) == 0)
        fuzz_one(path_of("fz-c.qcow2"), "qcow2", rounds);
}

/* Crash safety: a child writes 64 KiB pieces to distinct places and flushes
 * every few writes, telling the parent through a pipe which writes a flush
 * covered; the parent kills it with SIGKILL at a random moment.  Afterwards
 * the image must pass check (leaks allowed), qemu-img check for qcow2, and
 * hold every write that was reported flushed. */
#define SLOT (64u << 10)
#define SLOTS 512u
static uint64_t slot_of(uint32_t j) { return (uint64_t)((j * 2654435761u) % SLOTS) * SLOT; }

static void fill_slot(uint8_t *buf, uint32_t j)
{
    for (uint32_t k = 0; k < SLOT; k += 4) {
        uint32_t v = j * 0x9e3779b9u ^ k;
        memcpy(buf + k, &v, 4);
    }
}

static void crash_child(const char *path, const char *fmt, int wfd, uint64_t seed)
{
    char err[512];
    struct blk *b = blk_open(path, fmt, BLK_WRITABLE, err, sizeof(err));
    if (!b)
        _exit(3);
    uint8_t *buf = malloc(SLOT);
    rng = seed | 1;
    for (uint32_t j = 0; j < SLOTS; j++) {
        fill_slot(buf, j);
        if (blk_write(b, slot_of(j), buf, SLOT) < 0)
            _exit(4);
        if (next_rand() % 4 == 0) {
            if (blk_flush(b) < 0)
                _exit(5);
            if (write(wfd, &j, 4) != 4)
                _exit(6);
        }
    }
    _exit(0);
}

static void crash_round(const struct kind *k, int round)
{
    char *p = path_of("crash.img");
    create(k, p, SLOTS * SLOT, NULL);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        crash_child(p, k->fmt, fds[1], next_rand());
    }
    close(fds[1]);
    usleep((useconds_t)(next_rand() % 400000));
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    int64_t flushed = -1;
    uint32_t j;
    while (read(fds[0], &j, 4) == 4)
        flushed = j;
    close(fds[0]);
    struct blk *b = must_open(p, k->fmt, 0);
    struct blk_check_result res;
    int r = blk_check(b, &res);
    assert_true(r == 0 || r == -ENOTSUP);
    if (r == 0 && res.errors)
        fail_msg("%s round %d: check: %s", k->name, round, res.first_error);
    uint8_t *want = malloc(SLOT), *got = malloc(SLOT);
    for (int64_t i = 0; i <= flushed; i++) {
        fill_slot(want, (uint32_t)i);
        assert_int_equal(blk_read(b, slot_of((uint32_t)i), got, SLOT), 0);
        if (memcmp(want, got, SLOT))
            fail_msg("%s round %d: flushed write %lld lost", k->name, round, (long long)i);
    }
    blk_close(b);
    free(want);
    free(got);
    if (!strcmp(k->fmt, "qcow2") && system("command -v qemu-img >/dev/null") == 0) {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "qemu-img check -f qcow2 '%s' >/dev/null 2>&1", p);
        int rc = system(cmd);
        rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
        if (rc != 0 && rc != 3)     /* 3: leaked clusters only */
            fail_msg("%s round %d: qemu-img check exit %d", k->name, round, rc);
    }
}

/* Commit empties the top, then the guest's writes reuse its clusters; a
 * SIGKILL at any point (during the commit too) leaves a top that both checks
 * accept, with every write flushed after the commit in place. */
static void reuse_crash_child(const char *path, int wfd, uint64_t seed)
{
    char err[512];
    struct blk *b = blk_open(path, "qcow2", BLK_WRITABLE, err, sizeof(err));
    if (!b || blk_commit(b, err, sizeof(err)) < 0)
        _exit(3);
    uint8_t *buf = malloc(SLOT);
    rng = seed | 1;
    for (uint32_t j = 0; j < SLOTS; j++) {
        fill_slot(buf, j + SLOTS);
        if (blk_write(b, slot_of(j), buf, SLOT) < 0)
            _exit(4);
        if (next_rand() % 4 == 0) {
            if (blk_flush(b) < 0)
                _exit(5);
            if (write(wfd, &j, 4) != 4)
                _exit(6);
        }
    }
    _exit(0);
}

static void reuse_crash_round(int round)
{
    char *base = path_of("rc-base.raw"), *top = path_of("rc-top.qcow2");
    create(&kinds[0], base, SLOTS * SLOT, NULL);
    create(&kinds[1], top, 0, "rc-base.raw");
    struct blk *b = must_open(top, NULL, BLK_WRITABLE);
    uint8_t *want = malloc(SLOT), *got = malloc(SLOT);
    for (uint32_t j = 0; j < SLOTS; j++) {
        fill_slot(want, j);
        assert_int_equal(blk_write(b, slot_of(j), want, SLOT), 0);
    }
    blk_close(b);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        reuse_crash_child(top, fds[1], next_rand());
    }
    close(fds[1]);
    usleep((useconds_t)(next_rand() % 600000));
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    int64_t flushed = -1;
    uint32_t j;
    while (read(fds[0], &j, 4) == 4)
        flushed = j;
    close(fds[0]);
    b = must_open(top, NULL, 0);
    struct blk_check_result res;
    assert_int_equal(blk_check(b, &res), 0);
    if (res.errors)
        fail_msg("reuse round %d: check: %s", round, res.first_error);
    for (int64_t i = 0; i < SLOTS; i++) {
        assert_int_equal(blk_read(b, slot_of((uint32_t)i), got, SLOT), 0);
        fill_slot(want, (uint32_t)i + SLOTS);
        if (i <= flushed && memcmp(want, got, SLOT))
            fail_msg("reuse round %d: flushed write %lld lost", round, (long long)i);
    }
    blk_close(b);
    free(want);
    free(got);
    if (system("command -v qemu-img >/dev/null") == 0) {
        int rc = qemu_img_check(top);
        if (rc != 0 && rc != 3)     /* 3: leaked clusters only */
            fail_msg("reuse round %d: qemu-img check exit %d", round, rc);
    }
}

static void test_crash_safety(void **state)
{
    int rounds = getenv("RETROVISOR_LONG") ? 50 : 2;
    const struct kind *ck[] = { &kinds[1], &kinds[3], &kinds[7] };
    for (size_t i = 0; i < 3; i++)
        for (int r = 0; r < rounds; r++)
            crash_round(ck[i], r);
    for (int r = 0; r < rounds + 1; r++)
        reuse_crash_round(r);
}

static int setup(void **state)
{
    strcpy(dir, "/tmp/rv-blk-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_format),
        cmocka_unit_test(test_delta_chains),
        cmocka_unit_test(test_qcow2_over_raw_and_vmdk),
        cmocka_unit_test(test_qcow2_refcount_table_grows),
        cmocka_unit_test(test_qcow2_freed_clusters_reused),
        cmocka_unit_test(test_raw_stays_raw),
        cmocka_unit_test(test_bad_images),
        cmocka_unit_test(test_parent_never_written_and_locks),
        cmocka_unit_test(test_snapshot_overlay_is_bounded),
        cmocka_unit_test(test_fuzz_parsers),
        cmocka_unit_test(test_crash_safety),
    };
    return cmocka_run_group_tests_name("blk", tests, setup, teardown);
}
