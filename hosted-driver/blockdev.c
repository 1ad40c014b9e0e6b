/*
 * Disk image backend (see blockdev.h): a thin layer over the block drivers
 * that adds the modes the device models need.
 */
#include "hosted-driver/blockdev.h"
#include "hosted-driver/blk.h"
#include "hosted-driver/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct blockdev {
    char *path;
    char *layer;            /* the image the top (or the overlay over it) was opened from */
    struct blk *top;        /* the image, or the snapshot overlay over it */
    uint64_t size;
    bool readonly;
    bool snapshot;
};

static bool may_write(const char *path)
{
    return access(path, W_OK) == 0;
}

struct blockdev *blockdev_open_format(const char *path, const char *format, bool readonly, bool snapshot,
                                      char *err, size_t errlen)
{
    bool want_write = !readonly && !snapshot;
    bool forced_readonly = false;
    if (want_write && access(path, F_OK) == 0 && !may_write(path)) {
        want_write = false;
        forced_readonly = true;
    }
    struct blk *b = blk_open(path, format, want_write ? BLK_WRITABLE : 0, err, errlen);
    if (!b)
        return NULL;
    if (blk_size(b) < BLOCKDEV_SECTOR_SIZE) {
        snprintf(err, errlen, "%s: image is %llu bytes, smaller than one 512-byte sector", path,
                 (unsigned long long)blk_size(b));
        blk_close(b);
        return NULL;
    }
    if (forced_readonly)
        fprintf(stderr, "retrovisor: warning: %s: no write permission; the disk is read-only (guest writes fail)\n",
                path);
    bool snap = snapshot && !readonly && !forced_readonly;
    if (snap) {
        struct blk *overlay = blk_open_temp_overlay(b, err, errlen);
        if (!overlay) {
            blk_close(b);
            return NULL;
        }
        b = overlay;
    }
    struct blockdev *bd = xcalloc(1, sizeof(*bd));
    bd->path = xmalloc(strlen(path) + 1);
    strcpy(bd->path, path);
    bd->layer = xmalloc(strlen(path) + 1);
    strcpy(bd->layer, path);
    bd->top = b;
    bd->size = blk_size(b) - blk_size(b) % BLOCKDEV_SECTOR_SIZE;
    bd->readonly = readonly || forced_readonly;
    bd->snapshot = snap;
    return bd;
}

struct blockdev *blockdev_open(const char *path, bool readonly, bool snapshot, char *err, size_t errlen)
{
    return blockdev_open_format(path, NULL, readonly, snapshot, err, errlen);
}

void blockdev_close(struct blockdev *bd)
{
    if (!bd)
        return;
    if (bd->top)
        blk_close(bd->top);     /* also drops the locks */
    free(bd->layer);
    free(bd->path);
    free(bd);
}

const char *blockdev_path(const struct blockdev *bd) { return bd->path; }
uint64_t blockdev_sectors(const struct blockdev *bd) { return bd->size / BLOCKDEV_SECTOR_SIZE; }
uint64_t blockdev_size(const struct blockdev *bd) { return bd->size; }
bool blockdev_readonly(const struct blockdev *bd) { return bd->readonly; }
bool blockdev_snapshot(const struct blockdev *bd) { return bd->snapshot; }

static bool in_range(const struct blockdev *bd, uint64_t off, size_t len)
{
    return off <= bd->size && len <= bd->size - off;
}

int blockdev_read(struct blockdev *bd, uint64_t offset, void *buf, size_t len)
{
    if (!in_range(bd, offset, len))
        return -EINVAL;
    if (!bd->top)
        return -EIO;
    return blk_read(bd->top, offset, buf, len);
}

int blockdev_write(struct blockdev *bd, uint64_t offset, const void *buf, size_t len)
{
    if (bd->readonly)
        return -EROFS;
    if (!in_range(bd, offset, len))
        return -EINVAL;
    if (!bd->top)
        return -EIO;
    return blk_write(bd->top, offset, buf, len);
}

int blockdev_flush(struct blockdev *bd)
{
    if (bd->readonly || bd->snapshot)
        return 0;
    if (!bd->top)
        return -EIO;
    return blk_flush(bd->top);
}

const char *blockdev_layer_path(const struct blockdev *bd) { return bd->layer; }
struct blk *blockdev_top(struct blockdev *bd) { return bd->top; }

/* Open path as this disk's chain in its mode; NULL with err on failure. */
static struct blk *open_layer(const struct blockdev *bd, const char *path, char *err, size_t errlen)
{
    struct blk *b = blk_open(path, NULL, bd->readonly || bd->snapshot ? 0 : BLK_WRITABLE, err, errlen);
    if (!b)
        return NULL;
    if (blk_size(b) - blk_size(b) % BLOCKDEV_SECTOR_SIZE != bd->size) {
        snprintf(err, errlen, "%s: %llu bytes, the disk has %llu", path, (unsigned long long)blk_size(b),
                 (unsigned long long)bd->size);
        blk_close(b);
        return NULL;
    }
    if (bd->snapshot) {
        struct blk *overlay = blk_open_temp_overlay(b, err, errlen);
        if (!overlay)
            blk_close(b);
        return overlay;
    }
    return b;
}

int blockdev_reopen(struct blockdev *bd, const char *path, char *err, size_t errlen)
{
    if (!bd->snapshot && !bd->readonly)
        blk_flush(bd->top);
    blk_close(bd->top);
    struct blk *b = open_layer(bd, path, err, errlen);
    if (!b) {
        char again[256];
        bd->top = open_layer(bd, bd->layer, again, sizeof(again));
        if (!bd->top) {
            fprintf(stderr, "retrovisor: %s: %s; the disk is gone (guest I/O fails)\n", bd->path, again);
            bd->top = NULL;
        }
        return -1;
    }
    bd->top = b;
    free(bd->layer);
    bd->layer = xmalloc(strlen(path) + 1);
    strcpy(bd->layer, path);
    return 0;
}
