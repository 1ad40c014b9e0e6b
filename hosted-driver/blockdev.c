/*
 * Disk image backend (see blockdev.h).
 *
 * The snapshot overlay is a hash table of 4 KiB chunks keyed by chunk index:
 * guests write in 512-byte to 128 KiB pieces scattered over the disk, so a
 * sparse map is both compact and O(1) per chunk.  A chunk is filled from the
 * image the first time any part of it is written, which makes reads of a
 * chunk purely an overlay lookup afterwards.
 */
#define _GNU_SOURCE
#include "hosted-driver/blockdev.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK_SIZE 4096u

struct chunk_slot {
    uint64_t index;
    uint8_t *data;          /* NULL: empty slot */
};

struct overlay {
    struct chunk_slot *slots;
    size_t cap;             /* power of two, or 0 */
    size_t count;
};

struct blockdev {
    char *path;
    int fd;
    uint64_t size;
    bool readonly;
    bool snapshot;
    struct overlay ov;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void *xalloc(size_t n)
{
    void *p = calloc(1, n);
    if (!p) {
        fprintf(stderr, "retrovisor: out of host memory for the disk snapshot overlay\n");
        exit(1);
    }
    return p;
}

/* ---- full-length positional I/O ---- */

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;    /* the image shrank under us */
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- snapshot overlay ---- */

static size_t slot_of(const struct overlay *ov, uint64_t index)
{
    /* Fibonacci hashing spreads sequential chunk indexes over the table. */
    return (size_t)((index * 0x9e3779b97f4a7c15ull) >> 20) & (ov->cap - 1);
}

static uint8_t *overlay_find(const struct overlay *ov, uint64_t index)
{
    if (!ov->count)
        return NULL;
    for (size_t i = slot_of(ov, index);; i = (i + 1) & (ov->cap - 1)) {
        if (!ov->slots[i].data)
            return NULL;
        if (ov->slots[i].index == index)
            return ov->slots[i].data;
    }
}

static void overlay_put(struct overlay *ov, uint64_t index, uint8_t *data)
{
    size_t i = slot_of(ov, index);
    while (ov->slots[i].data)
        i = (i + 1) & (ov->cap - 1);
    ov->slots[i] = (struct chunk_slot){ index, data };
    ov->count++;
}

static void overlay_grow(struct overlay *ov)
{
    struct overlay bigger = { NULL, ov->cap ? ov->cap * 2 : 1024, 0 };
    bigger.slots = xalloc(bigger.cap * sizeof(*bigger.slots));
    for (size_t i = 0; i < ov->cap; i++)
        if (ov->slots[i].data)
            overlay_put(&bigger, ov->slots[i].index, ov->slots[i].data);
    free(ov->slots);
    *ov = bigger;
}

static void overlay_free(struct overlay *ov)
{
    for (size_t i = 0; i < ov->cap; i++)
        free(ov->slots[i].data);
    free(ov->slots);
    memset(ov, 0, sizeof(*ov));
}

/* The overlay chunk for `index`, created from the image's bytes if new. */
static int overlay_chunk(struct blockdev *bd, uint64_t index, uint8_t **out)
{
    uint8_t *data = overlay_find(&bd->ov, index);
    if (!data) {
        data = xalloc(CHUNK_SIZE);
        uint64_t start = index * CHUNK_SIZE;
        uint64_t avail = bd->size - start;
        int r = pread_full(bd->fd, data, avail < CHUNK_SIZE ? avail : CHUNK_SIZE, start);
        if (r < 0) {
            free(data);
            return r;
        }
        if ((bd->ov.count + 1) * 2 > bd->ov.cap)
            overlay_grow(&bd->ov);
        overlay_put(&bd->ov, index, data);
    }
    *out = data;
    return 0;
}

static int overlay_read(struct blockdev *bd, uint64_t off, uint8_t *buf, size_t len)
{
    while (len) {
        uint64_t index = off / CHUNK_SIZE;
        size_t in_chunk = off % CHUNK_SIZE;
        size_t n = CHUNK_SIZE - in_chunk < len ? CHUNK_SIZE - in_chunk : len;
        const uint8_t *data = overlay_find(&bd->ov, index);
        if (data) {
            memcpy(buf, data + in_chunk, n);
        } else {
            /* Coalesce the run of chunks the overlay lacks into one pread. */
            while (n < len && !overlay_find(&bd->ov, (off + n) / CHUNK_SIZE))
                n = len - n < CHUNK_SIZE ? len : n + CHUNK_SIZE;
            int r = pread_full(bd->fd, buf, n, off);
            if (r < 0)
                return r;
        }
        buf += n;
        off += n;
        len -= n;
    }
    return 0;
}

static int overlay_write(struct blockdev *bd, uint64_t off, const uint8_t *buf, size_t len)
{
    while (len) {
        uint64_t index = off / CHUNK_SIZE;
        size_t in_chunk = off % CHUNK_SIZE;
        size_t n = CHUNK_SIZE - in_chunk < len ? CHUNK_SIZE - in_chunk : len;
        uint8_t *data;
        int r = overlay_chunk(bd, index, &data);
        if (r < 0)
            return r;
        memcpy(data + in_chunk, buf, n);
        buf += n;
        off += n;
        len -= n;
    }
    return 0;
}

/* ---- opening ---- */

static bool is_permission_error(int e)
{
    return e == EACCES || e == EPERM || e == EROFS;
}

static bool image_size(int fd, const struct stat *st, uint64_t *size)
{
    if (S_ISREG(st->st_mode)) {
        *size = (uint64_t)st->st_size;
        return true;
    }
    if (S_ISBLK(st->st_mode))
        return ioctl(fd, BLKGETSIZE64, size) == 0;
    return false;
}

/* Readers share an image; a writer needs it alone. */
static bool take_lock(int fd, bool writer, const char *path, char *err, size_t errlen)
{
    if (flock(fd, (writer ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0)
        return true;
    if (errno == EWOULDBLOCK) {
        set_err(err, errlen, "%s: image is locked by another process (already in use by a VM?)%s", path,
                writer ? "; use -snapshot to share it read-only" : "");
        return false;
    }
    /* Filesystems without flock support: run unlocked rather than refuse. */
    return true;
}

struct blockdev *blockdev_open(const char *path, bool readonly, bool snapshot, char *err, size_t errlen)
{
    bool want_write = !readonly && !snapshot;
    bool forced_readonly = false;
    int fd = open(path, (want_write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0 && want_write && is_permission_error(errno)) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        forced_readonly = fd >= 0;
    }
    if (fd < 0) {
        if (errno == EISDIR)
            set_err(err, errlen, "%s: not a regular file or block device", path);
        else
            set_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }

    struct stat st;
    uint64_t size = 0;
    if (fstat(fd, &st) < 0) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!image_size(fd, &st, &size)) {
        set_err(err, errlen, "%s: not a regular file or block device", path);
        goto fail;
    }
    if (size < BLOCKDEV_SECTOR_SIZE) {
        set_err(err, errlen, "%s: image is %llu bytes, smaller than one 512-byte sector", path,
                (unsigned long long)size);
        goto fail;
    }
    bool writer = want_write && !forced_readonly;
    if (!take_lock(fd, writer, path, err, errlen))
        goto fail;

    uint8_t probe[BLOCKDEV_SECTOR_SIZE];
    int r = pread_full(fd, probe, sizeof(probe), 0);
    if (r < 0) {
        set_err(err, errlen, "%s: cannot read the image: %s", path, strerror(-r));
        goto fail;
    }

    if (size % BLOCKDEV_SECTOR_SIZE)
        fprintf(stderr, "retrovisor: warning: %s: size %llu is not a multiple of 512; the last %u bytes are ignored\n",
                path, (unsigned long long)size, (unsigned)(size % BLOCKDEV_SECTOR_SIZE));
    if (forced_readonly)
        fprintf(stderr, "retrovisor: warning: %s: no write permission; the disk is read-only (guest writes fail)\n",
                path);

    struct blockdev *bd = calloc(1, sizeof(*bd));
    char *p = strdup(path);
    if (!bd || !p) {
        free(bd);
        free(p);
        set_err(err, errlen, "%s: out of host memory", path);
        goto fail;
    }
    bd->path = p;
    bd->fd = fd;
    bd->size = size - size % BLOCKDEV_SECTOR_SIZE;
    bd->readonly = readonly || forced_readonly;
    bd->snapshot = snapshot && !bd->readonly;
    return bd;

fail:
    close(fd);
    return NULL;
}

void blockdev_close(struct blockdev *bd)
{
    if (!bd)
        return;
    overlay_free(&bd->ov);
    close(bd->fd);      /* also drops the flock */
    free(bd->path);
    free(bd);
}

const char *blockdev_path(const struct blockdev *bd) { return bd->path; }
uint64_t blockdev_sectors(const struct blockdev *bd) { return bd->size / BLOCKDEV_SECTOR_SIZE; }
uint64_t blockdev_size(const struct blockdev *bd) { return bd->size; }
bool blockdev_readonly(const struct blockdev *bd) { return bd->readonly; }
bool blockdev_snapshot(const struct blockdev *bd) { return bd->snapshot; }

/* ---- I/O ---- */

static bool in_range(const struct blockdev *bd, uint64_t off, size_t len)
{
    return off <= bd->size && len <= bd->size - off;
}

int blockdev_read(struct blockdev *bd, uint64_t offset, void *buf, size_t len)
{
    if (!in_range(bd, offset, len))
        return -EINVAL;
    if (bd->ov.count)
        return overlay_read(bd, offset, buf, len);
    return pread_full(bd->fd, buf, len, offset);
}

int blockdev_write(struct blockdev *bd, uint64_t offset, const void *buf, size_t len)
{
    if (bd->readonly)
        return -EROFS;
    if (!in_range(bd, offset, len))
        return -EINVAL;
    if (bd->snapshot)
        return overlay_write(bd, offset, buf, len);
    return pwrite_full(bd->fd, buf, len, offset);
}

int blockdev_flush(struct blockdev *bd)
{
    if (bd->readonly || bd->snapshot)
        return 0;
    while (fsync(bd->fd) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}
