/*
 * Block-driver layer: one image of some format (raw, qcow2, vmdk, vpc/VHD),
 * seen as a flat array of bytes, with an optional backing chain.
 *
 * A `struct blk` is one image file opened through its format driver; when the
 * format has a parent (qcow2 backing file, VMDK parentFileNameHint, VHD
 * differencing parent) the parent is opened read-only as `backing`, and so on
 * down the chain.  Reads of what this layer does not hold go to the backing
 * (or read as zeros past its end); writes land in this layer only: a parent
 * is never written.
 *
 * The format comes from the file's own header (qcow2 "QFI\xfb", VMDK "KDMV" or
 * a text descriptor, VHD "conectix" at the start or in the last sector).  A
 * file with none of these is raw.  An explicit format (`-drive format=`,
 * `retrovisor-img -f`) overrides detection.
 *
 * Every error at open is one line in `err` naming the file and the problem.
 * I/O returns 0 or a negative errno.
 */
#ifndef RV_BLK_H
#define RV_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct blk;
struct blk_format;

enum {
    BLK_WRITABLE   = 1 << 0,    /* open read-write (and lock as a writer) */
    BLK_NO_BACKING = 1 << 1,    /* do not open the backing chain (info, check) */
    BLK_NO_LOCK    = 1 << 2,    /* no QEMU-compatible lock bytes (temporary files) */
    BLK_TEMPORARY  = 1 << 3,    /* a throwaway file: no fsync, nobody else sees it */
};

/* How a range of this layer is stored, for convert, commit and info. */
enum blk_state {
    BLK_STATE_DATA,         /* this layer holds the bytes */
    BLK_STATE_ZERO,         /* this layer says zeros */
    BLK_STATE_BACKING,      /* this layer does not have it: the backing's bytes (or zeros) */
};

struct blk_check_result {
    uint64_t errors;        /* metadata that points at garbage, overlaps, bad sums */
    uint64_t leaks;         /* allocated but unreferenced (harmless) */
    uint64_t allocated;     /* bytes of guest data this layer holds */
    char first_error[256];
};

struct blk *blk_open(const char *path, const char *format, int flags, char *err, size_t errlen);
void blk_close(struct blk *b);  /* closes the whole chain */

const char *blk_path(const struct blk *b);
const char *blk_format_name(const struct blk *b);
uint64_t blk_size(const struct blk *b);         /* virtual size, bytes */
bool blk_writable(const struct blk *b);
struct blk *blk_backing(const struct blk *b);
const char *blk_backing_path(const struct blk *b);      /* as the image names it, or NULL */
uint64_t blk_file_size(const struct blk *b);            /* bytes on the host, all extents */

int blk_read(struct blk *b, uint64_t off, void *buf, size_t len);
int blk_write(struct blk *b, uint64_t off, const void *buf, size_t len);
int blk_flush(struct blk *b);       /* data and metadata durable (fsync) */
/* The state of [off, off+len) at `off`; *pnum: how many bytes share it (>= 1 sector). */
int blk_block_state(struct blk *b, uint64_t off, uint64_t len, uint64_t *pnum);
int blk_check(struct blk *b, struct blk_check_result *res);

/* Options for creating an image; zero means the format's default. */
struct blk_create_opts {
    const char *backing;            /* path as it is recorded in the new image */
    const char *backing_fmt;        /* NULL: detected */
    const char *subformat;          /* vmdk: monolithicSparse (default), monolithicFlat,
                                       twoGbMaxExtentSparse, twoGbMaxExtentFlat;
                                       vpc: dynamic (default) or fixed */
    uint32_t cluster_size;          /* qcow2 cluster, vmdk grain, vhd block */
    int compat;                     /* qcow2 version: 2 or 3 (default) */
};
/* size 0 with a backing file: the backing's size. */
int blk_create(const char *format, const char *path, uint64_t size, const struct blk_create_opts *o,
               char *err, size_t errlen);
/* The format a file would be opened as, or NULL when it cannot be read. */
const char *blk_probe_file(const char *path);
bool blk_format_known(const char *name);

/* The -snapshot overlay: an unlinked temporary qcow2 whose backing is `base`
 * (which it owns from then on). */
struct blk *blk_open_temp_overlay(struct blk *base, char *err, size_t errlen);

/* Fold this layer's data into its backing (which is reopened writable). */
int blk_commit(struct blk *top, char *err, size_t errlen);

#endif
