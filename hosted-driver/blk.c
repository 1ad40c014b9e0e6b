/*
 * Block-driver layer (see blk.h): format detection, the backing chain,
 * QEMU-compatible image locks, and the read/write loops shared by the sparse
 * formats.
 */
#define _GNU_SOURCE
#include "hosted-driver/blk_driver.h"
#include "hosted-driver/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_CHAIN 32
#define PROBE_LEN 4096

static const struct blk_format *const formats[] = { &blk_fmt_qcow2, &blk_fmt_vmdk, &blk_fmt_vpc, &blk_fmt_raw };
#define N_FORMATS (sizeof(formats) / sizeof(formats[0]))

void blk_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int blk_pread(int fd, void *buf, size_t len, uint64_t off)
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
            return -EIO;    /* past the end of the file: never invent bytes */
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

int blk_pwrite(int fd, const void *buf, size_t len, uint64_t off)
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

int blk_fsync_fd(struct blk *b, int fd)
{
    if (b->flags & BLK_TEMPORARY)
        return 0;
    while (fsync(fd) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

bool blk_utf8_valid(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : 9;
        if (k == 9 || (k == 1 && c < 0xc2) || i + k >= n)
            return false;
        for (size_t j = 1; j <= k; j++)
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

char *blk_relative_path(const char *image, const char *name)
{
    const char *slash = strrchr(image, '/');
    if (name[0] == '/' || !slash) {
        char *p = xmalloc(strlen(name) + 1);
        strcpy(p, name);
        return p;
    }
    size_t dir = (size_t)(slash - image) + 1;
    char *p = xmalloc(dir + strlen(name) + 1);
    memcpy(p, image, dir);
    strcpy(p + dir, name);
    return p;
}

/* ---- locking: QEMU's byte-range scheme (block/file-posix.c) ----
 *
 * Permission bit i is held by read-locking byte 100+i; "nobody else may have
 * permission i" by read-locking byte 200+i.  Whoever wants a permission tests
 * that no other open file holds 200+i, and whoever refuses to share one tests
 * that nobody holds 100+i.  The locks are OFD locks, so they belong to the
 * open file, not the process, and vanish when it is closed. */
#define LOCK_PERM_BASE 100
#define LOCK_SHARED_BASE 200
enum { PERM_CONSISTENT_READ = 1, PERM_WRITE = 2, PERM_WRITE_UNCHANGED = 4, PERM_RESIZE = 8, PERM_BITS = 4 };

static int lock_byte(int fd, int cmd, short type, off_t at, struct flock *out)
{
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = at, .l_len = 1 };
    int r = fcntl(fd, cmd, &fl);
    if (out)
        *out = fl;
    return r < 0 ? -errno : 0;
}

static bool someone_holds(int fd, off_t at, bool *unsupported)
{
    struct flock fl;
    if (lock_byte(fd, F_OFD_GETLK, F_WRLCK, at, &fl) < 0) {
        *unsupported = true;
        return false;
    }
    return fl.l_type != F_UNLCK;
}

bool blk_lock_fd(int fd, bool writer, const char *path, char *err, size_t errlen)
{
    unsigned perm = writer ? PERM_CONSISTENT_READ | PERM_WRITE | PERM_WRITE_UNCHANGED | PERM_RESIZE
                           : PERM_CONSISTENT_READ;
    unsigned unshared = PERM_WRITE | PERM_RESIZE;
    bool unsupported = false;
    for (int i = 0; i < PERM_BITS && !unsupported; i++) {
        if ((perm >> i) & 1)
            unsupported |= lock_byte(fd, F_OFD_SETLK, F_RDLCK, LOCK_PERM_BASE + i, NULL) < 0;
        if ((unshared >> i) & 1)
            unsupported |= lock_byte(fd, F_OFD_SETLK, F_RDLCK, LOCK_SHARED_BASE + i, NULL) < 0;
    }
    const char *conflict = NULL;
    for (int i = 0; i < PERM_BITS && !conflict && !unsupported; i++) {
        if (((perm >> i) & 1) && someone_holds(fd, LOCK_SHARED_BASE + i, &unsupported))
            conflict = "another process has it open and does not share it";
        else if (((unshared >> i) & 1) && someone_holds(fd, LOCK_PERM_BASE + i, &unsupported))
            conflict = (1u << i) == PERM_WRITE ? "another process is writing it" : "another process may resize it";
    }
    if (conflict) {
        blk_set_err(err, errlen, "%s: image is locked: %s (in use by another VM or qemu?)%s", path, conflict,
                    writer ? "; -snapshot opens it read-only" : "");
        struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = LOCK_PERM_BASE, .l_len = 200 };
        fcntl(fd, F_OFD_SETLK, &fl);
        return false;
    }
    /* A file system without OFD locks (some network ones): run unlocked, as QEMU does. */
    return true;
}

/* ---- probing ---- */

static const struct blk_format *format_by_name(const char *name)
{
    if (!strcmp(name, "vhd"))
        name = "vpc";
    for (size_t i = 0; i < N_FORMATS; i++)
        if (!strcmp(formats[i]->name, name))
            return formats[i];
    return NULL;
}

bool blk_format_known(const char *name) { return format_by_name(name) != NULL; }

static const struct blk_format *probe_fd(int fd, uint64_t file_size)
{
    uint8_t head[PROBE_LEN] = { 0 }, tail[512] = { 0 };
    size_t n = file_size < PROBE_LEN ? (size_t)file_size : PROBE_LEN;
    if (blk_pread(fd, head, n, 0) < 0)
        return NULL;
    if (file_size >= 512 && blk_pread(fd, tail, 512, file_size - 512) < 0)
        return NULL;
    for (size_t i = 0; i < N_FORMATS; i++)
        if (formats[i]->probe && formats[i]->probe(head, n, file_size >= 512 ? tail : NULL, file_size))
            return formats[i];
    return &blk_fmt_raw;
}

static bool file_size_of(int fd, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return false;
    if (S_ISREG(st.st_mode)) {
        *size = (uint64_t)st.st_size;
        return true;
    }
    if (S_ISBLK(st.st_mode))
        return ioctl(fd, BLKGETSIZE64, size) == 0;
    errno = EINVAL;
    return false;
}

const char *blk_probe_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    uint64_t size;
    const struct blk_format *f = file_size_of(fd, &size) ? probe_fd(fd, size) : NULL;
    close(fd);
    return f ? f->name : NULL;
}

/* ---- opening the chain ---- */

struct chain_seen {
    dev_t dev[MAX_CHAIN];
    ino_t ino[MAX_CHAIN];
    int n;
};

static struct blk *open_layer(const char *path, const char *format, int flags, struct chain_seen *seen,
                              char *err, size_t errlen);

static int open_backing(struct blk *b, struct chain_seen *seen, char *err, size_t errlen)
{
    char *bpath = blk_relative_path(b->path, b->backing_path);
    /* The parent is only ever read: a child's writes never reach it. */
    int flags = (b->flags & (BLK_NO_LOCK)) & ~BLK_WRITABLE;
    b->backing = open_layer(bpath, b->backing_fmt, flags, seen, err, errlen);
    if (!b->backing) {
        /* Say which image wanted it, and the parent's own reason. */
        char inner[400];
        snprintf(inner, sizeof(inner), "%s", err);
        if (strstr(inner, bpath))
            blk_set_err(err, errlen, "%s: backing file %s", b->path, inner);
        else
            blk_set_err(err, errlen, "%s: backing file %s: %s", b->path, bpath, inner);
        free(bpath);
        return -1;
    }
    free(bpath);
    if (b->check_parent && b->check_parent(b, b->backing, err, errlen) < 0)
        return -1;
    return 0;
}

static struct blk *open_layer(const char *path, const char *format, int flags, struct chain_seen *seen,
                              char *err, size_t errlen)
{
    const struct blk_format *fmt = NULL;
    if (format && !(fmt = format_by_name(format))) {
        blk_set_err(err, errlen, "%s: unknown image format '%s' (raw, qcow2, vmdk, vpc)", path, format);
        return NULL;
    }
    bool writable = flags & BLK_WRITABLE;
    int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        blk_set_err(err, errlen, "%s: %s", path, errno == EISDIR ? "not a regular file or block device" : strerror(errno));
        return NULL;
    }
    struct stat st;
    uint64_t fsize = 0;
    if (fstat(fd, &st) < 0 || !file_size_of(fd, &fsize)) {
        blk_set_err(err, errlen, "%s: not a regular file or block device", path);
        close(fd);
        return NULL;
    }
    for (int i = 0; i < seen->n; i++) {
        if (seen->dev[i] == st.st_dev && seen->ino[i] == st.st_ino) {
            blk_set_err(err, errlen, "%s: the backing chain loops back to this image", path);
            close(fd);
            return NULL;
        }
    }
    if (seen->n == MAX_CHAIN) {
        blk_set_err(err, errlen, "%s: backing chain longer than %d images", path, MAX_CHAIN);
        close(fd);
        return NULL;
    }
    seen->dev[seen->n] = st.st_dev;
    seen->ino[seen->n++] = st.st_ino;

    if (!(flags & BLK_NO_LOCK) && !blk_lock_fd(fd, writable, path, err, errlen)) {
        close(fd);
        return NULL;
    }
    bool probed = !fmt;
    if (!fmt && !(fmt = probe_fd(fd, fsize))) {
        blk_set_err(err, errlen, "%s: cannot read the image: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    struct blk *b = xcalloc(1, sizeof(*b));
    b->fmt = fmt;
    b->path = xmalloc(strlen(path) + 1);
    strcpy(b->path, path);
    b->fd = fd;
    b->flags = flags;
    b->writable = writable;
    b->format_probed = probed;
    b->file_size = fsize;
    if (fmt->open(b, err, errlen) < 0) {
        b->writable = false;    /* nothing to sync; the driver frees what it built */
        blk_close(b);
        return NULL;
    }
    if (b->backing_path && !(flags & BLK_NO_BACKING) && open_backing(b, seen, err, errlen) < 0) {
        blk_close(b);
        return NULL;
    }
    return b;
}

struct blk *blk_open(const char *path, const char *format, int flags, char *err, size_t errlen)
{
    struct chain_seen seen = { .n = 0 };
    return open_layer(path, format, flags, &seen, err, errlen);
}

int blk_open_extent(struct blk *b, const char *path, char *err, size_t errlen)
{
    if (b->n_extra_fds == BLK_MAX_FDS) {
        blk_set_err(err, errlen, "%s: more than %d extent files", b->path, BLK_MAX_FDS);
        return -1;
    }
    int fd = open(path, (b->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        blk_set_err(err, errlen, "%s: extent %s: %s", b->path, path, strerror(errno));
        return -1;
    }
    if (!(b->flags & BLK_NO_LOCK) && !blk_lock_fd(fd, b->writable, path, err, errlen)) {
        close(fd);
        return -1;
    }
    b->extra_fds[b->n_extra_fds++] = fd;
    return fd;
}

void blk_close(struct blk *b)
{
    if (!b)
        return;
    if (b->fmt)
        b->fmt->close(b);   /* may write last metadata */
    blk_close(b->backing);
    for (int i = 0; i < b->n_extra_fds; i++) {
        if (b->writable)
            blk_fsync_fd(b, b->extra_fds[i]);
        close(b->extra_fds[i]);
    }
    if (b->writable)
        blk_fsync_fd(b, b->fd);
    close(b->fd);
    free(b->path);
    free(b->backing_path);
    free(b->backing_fmt);
    free(b);
}

const char *blk_path(const struct blk *b) { return b->path; }
const char *blk_format_name(const struct blk *b) { return b->fmt->name; }
uint64_t blk_size(const struct blk *b) { return b->size; }
bool blk_writable(const struct blk *b) { return b->writable; }
struct blk *blk_backing(const struct blk *b) { return b->backing; }
const char *blk_backing_path(const struct blk *b) { return b->backing_path; }

uint64_t blk_file_size(const struct blk *b)
{
    uint64_t total = 0, s;
    if (file_size_of(b->fd, &s))
        total += s;
    for (int i = 0; i < b->n_extra_fds; i++)
        if (file_size_of(b->extra_fds[i], &s))
            total += s;
    return total;
}

/* ---- I/O ---- */

static bool in_range(const struct blk *b, uint64_t off, uint64_t len)
{
    return off <= b->size && len <= b->size - off;
}

int blk_read_backing(struct blk *b, uint64_t off, void *buf, size_t len)
{
    uint64_t have = 0;
    if (b->backing && off < b->backing->size) {
        have = b->backing->size - off < len ? b->backing->size - off : len;
        int r = blk_read(b->backing, off, buf, (size_t)have);
        if (r < 0)
            return r;
    }
    memset((uint8_t *)buf + have, 0, len - have);
    return 0;
}

int blk_read(struct blk *b, uint64_t off, void *buf, size_t len)
{
    if (!in_range(b, off, len))
        return -EINVAL;
    if (b->fmt->read)
        return b->fmt->read(b, off, buf, len);
    uint8_t *p = buf;
    while (len) {
        struct blk_map m;
        int r = b->fmt->map(b, off, len, &m);
        if (r < 0)
            return r;
        size_t n = m.len < len ? (size_t)m.len : len;
        if (m.state == BLK_STATE_DATA && m.fd < 0)
            r = b->fmt->read_special(b, off, p, n);
        else if (m.state == BLK_STATE_DATA)
            r = blk_pread(m.fd, p, n, m.host_off);
        else if (m.state == BLK_STATE_BACKING)
            r = blk_read_backing(b, off, p, n);
        else
            memset(p, 0, n);
        if (r < 0)
            return r;
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

int blk_write(struct blk *b, uint64_t off, const void *buf, size_t len)
{
    if (!b->writable)
        return -EROFS;
    if (!in_range(b, off, len))
        return -EINVAL;
    if (b->fmt->write)
        return b->fmt->write(b, off, buf, len);
    const uint8_t *p = buf;
    while (len) {
        struct blk_map m;
        int r = b->fmt->map(b, off, len, &m);
        if (r < 0)
            return r;
        int64_t n = m.len < len ? (int64_t)m.len : (int64_t)len;
        if (m.state == BLK_STATE_DATA && m.fd < 0) {
            return -EROFS;
        } else if (m.state == BLK_STATE_DATA) {
            r = blk_pwrite(m.fd, p, (size_t)n, m.host_off);
            if (r < 0)
                return r;
        } else {
            n = b->fmt->write_new(b, off, p, (uint64_t)n);
            if (n < 0)
                return (int)n;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

int blk_flush(struct blk *b)
{
    if (!b->writable)
        return 0;
    int r = b->fmt->flush ? b->fmt->flush(b) : 0;
    if (r < 0)
        return r;
    for (int i = 0; i < b->n_extra_fds; i++)
        if ((r = blk_fsync_fd(b, b->extra_fds[i])) < 0)
            return r;
    return blk_fsync_fd(b, b->fd);
}

int blk_block_state(struct blk *b, uint64_t off, uint64_t len, uint64_t *pnum)
{
    if (!in_range(b, off, len) || !len)
        return -EINVAL;
    if (!b->fmt->map) {
        *pnum = len;
        return BLK_STATE_DATA;
    }
    struct blk_map m;
    int r = b->fmt->map(b, off, len, &m);
    if (r < 0)
        return r;
    *pnum = m.len < len ? m.len : len;
    return m.state;
}

int blk_check(struct blk *b, struct blk_check_result *res)
{
    memset(res, 0, sizeof(*res));
    if (!b->fmt->check)
        return -ENOTSUP;
    return b->fmt->check(b, res);
}

int blk_create(const char *format, const char *path, uint64_t size, const struct blk_create_opts *o,
               char *err, size_t errlen)
{
    const struct blk_format *fmt = format_by_name(format);
    if (!fmt || !fmt->create) {
        blk_set_err(err, errlen, "%s: cannot create images of format '%s' (raw, qcow2, vmdk, vpc)", path, format);
        return -1;
    }
    struct blk_create_opts opts = { 0 };
    if (o)
        opts = *o;
    char *bfmt = NULL;
    if (opts.backing) {
        /* The backing must exist now: it gives the size and the format recorded. */
        char *bpath = blk_relative_path(path, opts.backing);
        struct blk *bb = blk_open(bpath, opts.backing_fmt, BLK_NO_LOCK, err, errlen);
        free(bpath);
        if (!bb)
            return -1;
        if (!size)
            size = bb->size;
        bfmt = strdup(bb->fmt->name);
        if (!opts.backing_fmt)
            opts.backing_fmt = bfmt;
        blk_close(bb);
    }
    if (!size) {
        blk_set_err(err, errlen, "%s: image size must be given and not zero", path);
        free(bfmt);
        return -1;
    }
    int r = fmt->create(path, size, &opts, err, errlen);
    free(bfmt);
    return r;
}

/* ---- -snapshot overlay ---- */

int blk_qcow2_create_fd(int fd, uint64_t size, const char *backing, const char *backing_fmt, char *err, size_t errlen);

struct blk *blk_open_temp_overlay(struct blk *base, char *err, size_t errlen)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/var/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        /* File systems without O_TMPFILE: a named file, unlinked at once. */
        char name[4096];
        snprintf(name, sizeof(name), "%s/retrovisor-snapshot-XXXXXX", dir);
        fd = mkostemp(name, O_CLOEXEC);
        if (fd >= 0)
            unlink(name);
    }
    if (fd < 0) {
        blk_set_err(err, errlen, "%s: -snapshot: cannot create a temporary overlay in %s: %s", base->path, dir,
                    strerror(errno));
        return NULL;
    }
    if (blk_qcow2_create_fd(fd, base->size, NULL, NULL, err, errlen) < 0) {
        close(fd);
        return NULL;
    }
    struct blk *b = xcalloc(1, sizeof(*b));
    b->fmt = &blk_fmt_qcow2;
    b->path = xmalloc(strlen(base->path) + 32);
    sprintf(b->path, "%s (snapshot overlay)", base->path);
    b->fd = fd;
    b->flags = BLK_WRITABLE | BLK_NO_LOCK | BLK_TEMPORARY;
    b->writable = true;
    file_size_of(fd, &b->file_size);
    if (blk_fmt_qcow2.open(b, err, errlen) < 0) {
        b->writable = false;
        blk_close(b);
        return NULL;
    }
    b->backing = base;
    return b;
}

/* ---- commit ---- */

int blk_commit(struct blk *top, char *err, size_t errlen)
{
    if (!top->backing) {
        blk_set_err(err, errlen, "%s: image has no backing file to commit into", top->path);
        return -1;
    }
    /* Reopen the parent writable: our read-only open's locks would refuse us. */
    char *bpath = xmalloc(strlen(top->backing->path) + 1);
    strcpy(bpath, top->backing->path);
    char *bfmt = xmalloc(strlen(top->backing->fmt->name) + 1);
    strcpy(bfmt, top->backing->fmt->name);
    blk_close(top->backing);
    top->backing = blk_open(bpath, bfmt, BLK_WRITABLE, err, errlen);
    free(bfmt);
    free(bpath);
    if (!top->backing)
        return -1;
    struct blk *base = top->backing;
    uint64_t chunk = 1 << 20;
    uint8_t *buf = xmalloc(chunk);
    int r = 0;
    for (uint64_t off = 0; off < top->size && off < base->size && r >= 0;) {
        uint64_t want = top->size - off < chunk ? top->size - off : chunk;
        if (base->size - off < want)
            want = base->size - off;
        uint64_t n;
        r = blk_block_state(top, off, want, &n);
        if (r >= 0 && r != BLK_STATE_BACKING) {
            r = blk_read(top, off, buf, (size_t)n);
            if (r >= 0)
                r = blk_write(base, off, buf, (size_t)n);
        }
        off += n;
    }
    free(buf);
    if (r >= 0)
        r = blk_flush(base);
    if (r < 0) {
        blk_set_err(err, errlen, "%s: commit into %s failed: %s", top->path, base->path, strerror(-r));
        return -1;
    }
    /* The data is safe in the base: a top opened for writing is emptied, as
     * qemu-img commit does, so its clusters serve later writes. */
    if (top->writable && top->fmt->make_empty && (r = top->fmt->make_empty(top)) < 0) {
        blk_set_err(err, errlen, "%s: committed into %s, but emptying it failed: %s", top->path, base->path,
                    strerror(-r));
        return -1;
    }
    return 0;
}
