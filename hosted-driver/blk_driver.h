/*
 * What a format driver (blk_raw.c, blk_qcow2.c, blk_vmdk.c, blk_vhd.c)
 * implements, and the helpers blk.c gives them.  Only the drivers and blk.c
 * include this; everyone else uses blk.h.
 *
 * Sparse formats describe their layout through `map` (where do the bytes at
 * a guest offset live) and `write_new` (store bytes where `map` said there
 * is nothing yet: allocate, copy the rest of the unit from the backing, link
 * it in).  blk.c turns those into read/write loops, so the copy-on-write and
 * backing rules live in one place.
 */
#ifndef RV_BLK_DRIVER_H
#define RV_BLK_DRIVER_H

#include "hosted-driver/blk.h"

#include <stdarg.h>

struct blk_map {
    enum blk_state state;
    int fd;                 /* BLK_STATE_DATA: the file that holds it; -1: the driver's
                               read_special reads it (compressed grains) */
    uint64_t host_off;      /* ... and where */
    uint64_t len;           /* bytes from the asked offset with this mapping */
};

struct blk_format {
    const char *name;
    /* Does this header (the first bytes, the last 512, the file size) belong to us? */
    bool (*probe)(const uint8_t *head, size_t head_len, const uint8_t *tail512, uint64_t file_size);
    int (*open)(struct blk *b, char *err, size_t errlen);
    void (*close)(struct blk *b);
    /* Sparse formats: */
    int (*map)(struct blk *b, uint64_t off, uint64_t len, struct blk_map *m);
    /* Store [off, off+len) (inside one allocation unit, which map reported
     * not DATA); returns bytes consumed (> 0) or -errno. */
    int64_t (*write_new)(struct blk *b, uint64_t off, const uint8_t *buf, uint64_t len);
    int (*read_special)(struct blk *b, uint64_t off, void *buf, size_t len);
    /* Flat formats (raw) instead: */
    int (*read)(struct blk *b, uint64_t off, void *buf, size_t len);
    int (*write)(struct blk *b, uint64_t off, const void *buf, size_t len);
    /* Write cached metadata; blk.c then fsyncs every file in `fds`. */
    int (*flush)(struct blk *b);
    /* Optional: forget every cluster of this layer (reads go to the backing
     * again) and free what it held; commit calls it on a writable top. */
    int (*make_empty)(struct blk *b);
    int (*check)(struct blk *b, struct blk_check_result *res);
    int (*create)(const char *path, uint64_t size, const struct blk_create_opts *o, char *err, size_t errlen);
};

#define BLK_MAX_FDS 64

struct blk {
    const struct blk_format *fmt;
    char *path;
    int fd;                 /* the image (for VMDK the descriptor) */
    int flags;
    bool writable;
    bool format_probed;     /* detected, not named: raw guards its header sectors */
    bool warned;            /* a guest-triggered warning was printed (once per image) */
    uint64_t size;          /* virtual bytes */
    uint64_t file_size;     /* of fd at open */
    char *backing_path;     /* as recorded in the image */
    char *backing_fmt;      /* as recorded, or NULL */
    struct blk *backing;
    /* VMDK/VHD parents are checked by ID: the driver fills what it expects
     * and blk.c opens the parent and asks the driver to compare. */
    int (*check_parent)(struct blk *b, struct blk *parent, char *err, size_t errlen);
    int extra_fds[BLK_MAX_FDS];     /* more files to fsync/close (VMDK extents) */
    int n_extra_fds;
    void *priv;
};

extern const struct blk_format blk_fmt_raw, blk_fmt_qcow2, blk_fmt_vmdk, blk_fmt_vpc;

void blk_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int blk_pread(int fd, void *buf, size_t len, uint64_t off);        /* all or -errno (-EIO at EOF) */
int blk_pwrite(int fd, const void *buf, size_t len, uint64_t off);
int blk_fsync_fd(struct blk *b, int fd);     /* no-op for temporary files */
/* The backing's bytes for [off, off+len) of this layer (zeros without one or past its end). */
int blk_read_backing(struct blk *b, uint64_t off, void *buf, size_t len);
/* Open a file for a driver's extra extent; locks it like the image. */
int blk_open_extent(struct blk *b, const char *path, char *err, size_t errlen);
/* A path relative to the directory of `image` (absolute paths unchanged); malloc'd. */
char *blk_relative_path(const char *image, const char *name);
/* Write the file's lock bytes (QEMU's scheme); false with err set when someone conflicts. */
bool blk_lock_fd(int fd, bool writer, const char *path, char *err, size_t errlen);
bool blk_utf8_valid(const uint8_t *s, size_t n);

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static inline uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }
static inline uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static inline uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }
static inline void put_be16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = (uint8_t)v; }
static inline void put_be32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (24 - 8 * i)); }
static inline void put_be64(uint8_t *p, uint64_t v) { put_be32(p, (uint32_t)(v >> 32)); put_be32(p + 4, (uint32_t)v); }
static inline void put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = v >> 8; }
static inline void put_le32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline void put_le64(uint8_t *p, uint64_t v) { put_le32(p, (uint32_t)v); put_le32(p + 4, (uint32_t)(v >> 32)); }

#endif
