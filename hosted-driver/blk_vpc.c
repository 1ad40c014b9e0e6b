/*
 * VHD (Microsoft's "Virtual Hard Disk Image Format Specification"; QEMU calls
 * it vpc): a 512-byte footer at the end of the file, big-endian, with a
 * one's-complement checksum.  Fixed disks are the data then the footer.
 * Dynamic and differencing disks start with a copy of the footer and a
 * dynamic header ("cxsparse") pointing at the BAT, one entry per block
 * (2 MiB by default): the sector of a sector bitmap followed by the block's
 * data.  A bitmap bit says the sector is stored here; a clear bit reads as
 * zeros (dynamic) or from the parent (differencing).  A differencing disk
 * finds its parent through the header's locators and checks the parent's
 * unique ID.
 *
 * The virtual size follows QEMU's rule so both read the same disk: the CHS
 * geometry's size, unless the creator is one known to use the footer's size
 * or the geometry is at its maximum.  Images made here are rounded up to a
 * whole geometry (as Virtual PC and qemu-img do), so every rule agrees.
 *
 * Crash ordering: a new block goes where the footer was; the footer is first
 * rewritten past the block, then the bitmap and data, then the BAT entry.
 */
#define _GNU_SOURCE
#include "hosted-driver/blk_driver.h"
#include "hosted-driver/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TYPE_FIXED 2
#define TYPE_DYNAMIC 3
#define TYPE_DIFF 4
#define BAT_FREE 0xffffffffu
#define MAX_GEOMETRY (65535ull * 16 * 255)
#define VHD_EPOCH 946684800ll   /* 2000-01-01 00:00:00 UTC */
#define MAX_BAT_ENTRIES (1u << 22)

struct vpc {
    uint8_t footer[512];
    uint8_t dyn[1024];
    uint32_t type;
    uint32_t block_size, bitmap_bytes, entries;
    uint64_t bat_off;
    uint32_t *bat;
    uint8_t **bitmaps;      /* per block, loaded on first use */
    uint64_t footer_at;     /* where the footer is now: the next block goes here */
    uint8_t *buf;
};

static struct vpc *P(struct blk *b) { return b->priv; }

static uint32_t checksum(const uint8_t *p, size_t n, size_t skip_at)
{
    uint32_t sum = 0;
    for (size_t i = 0; i < n; i++)
        if (i < skip_at || i >= skip_at + 4)
            sum += p[i];
    return ~sum;
}

static bool is_footer(const uint8_t *p)
{
    return p && !memcmp(p, "conectix", 8);
}

static bool vpc_probe(const uint8_t *h, size_t n, const uint8_t *tail, uint64_t fsize)
{
    return (n >= 512 && is_footer(h)) || (is_footer(tail) && be32(tail + 60) == TYPE_FIXED);
}

static void geometry(uint64_t total, uint16_t *cyl, uint8_t *heads, uint8_t *spt)
{
    uint64_t cth, h, s;
    if (total > MAX_GEOMETRY)
        total = MAX_GEOMETRY;
    if (total >= 65535ull * 16 * 63) {
        s = 255;
        h = 16;
        cth = total / s;
    } else {
        s = 17;
        cth = total / s;
        h = (cth + 1023) / 1024;
        if (h < 4)
            h = 4;
        if (cth >= h * 1024 || h > 16) {
            s = 31;
            h = 16;
            cth = total / s;
        }
        if (cth >= h * 1024) {
            s = 63;
            h = 16;
            cth = total / s;
        }
    }
    *cyl = (uint16_t)(cth / h);
    *heads = (uint8_t)h;
    *spt = (uint8_t)s;
}

static int perr(struct blk *b, char *err, size_t errlen, const char *msg)
{
    blk_set_err(err, errlen, "%s: vhd: %s", b->path, msg);
    return -1;
}

static uint64_t size_from_footer(const uint8_t *f)
{
    uint64_t chs = (uint64_t)be16(f + 56) * f[58] * f[59];
    static const char *const uses_size[] = { "win ", "qem2", "d2v ", "CTXS", "tap" };
    for (size_t i = 0; i < 5; i++)
        if (!memcmp(f + 28, uses_size[i], 4))
            return be64(f + 48);
    return chs == MAX_GEOMETRY ? be64(f + 48) : chs * 512;
}

/* ---- parent ---- */

static char *utf16_to_utf8(const uint8_t *p, size_t bytes, bool big_endian)
{
    char *out = xcalloc(1, bytes * 2 + 1);
    size_t o = 0;
    for (size_t i = 0; i + 1 < bytes; i += 2) {
        uint32_t c = big_endian ? be16(p + i) : le16(p + i);
        if (!c)
            break;
        if (c >= 0xd800 && c < 0xe000) {
            free(out);
            return NULL;    /* surrogates: not in a path we can name */
        }
        if (c == '\\')
            c = '/';
        if (c < 0x80) {
            out[o++] = (char)c;
        } else if (c < 0x800) {
            out[o++] = (char)(0xc0 | c >> 6);
            out[o++] = (char)(0x80 | (c & 0x3f));
        } else {
            out[o++] = (char)(0xe0 | c >> 12);
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3f));
            out[o++] = (char)(0x80 | (c & 0x3f));
        }
    }
    return out;
}

static bool exists_near(struct blk *b, const char *name)
{
    char *p = blk_relative_path(b->path, name);
    bool ok = access(p, F_OK) == 0;
    free(p);
    return ok;
}

static int find_parent(struct blk *b, char *err, size_t errlen)
{
    struct vpc *v = P(b);
    char *found = NULL;
    for (int i = 0; i < 8 && !found; i++) {
        const uint8_t *l = v->dyn + 576 + 24 * i;
        uint32_t code = be32(l), len = be32(l + 8);
        uint64_t at = be64(l + 16);
        if (!code || !len)
            continue;
        if (len > 4096 || at > b->file_size || len > b->file_size - at)
            return perr(b, err, errlen, "parent locator outside the file");
        uint8_t *raw = xmalloc(len);
        char *name = NULL;
        if (blk_pread(b->fd, raw, len, at) >= 0) {
            if (code == 0x57327275 || code == 0x57326b75)       /* W2ru, W2ku: UTF-16LE Windows paths */
                name = utf16_to_utf8(raw, len, false);
            else if (code == 0x4d616358 && blk_utf8_valid(raw, len)) {   /* MacX: file:// URL */
                size_t skip = len >= 7 && !memcmp(raw, "file://", 7) ? 7 : 0;
                name = xcalloc(1, len - skip + 1);
                memcpy(name, raw + skip, len - skip);
            }
        }
        free(raw);
        if (!name)
            continue;
        char *n = name;
        if (!strncmp(n, "./", 2))
            n += 2;
        if (code == 0x57326b75 && strchr(n, '/'))     /* absolute Windows path: try the file name next to us */
            n = strrchr(n, '/') + 1;
        if (*n && exists_near(b, n)) {
            found = xmalloc(strlen(n) + 1);
            strcpy(found, n);
        }
        free(name);
    }
    if (!found) {
        char *name = utf16_to_utf8(v->dyn + 64, 512, true);
        if (name && *name) {
            const char *n = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
            found = xmalloc(strlen(n) + 1);
            strcpy(found, n);
        }
        free(name);
    }
    if (!found)
        return perr(b, err, errlen, "differencing disk names no parent");
    b->backing_path = found;
    return 0;
}

static int check_parent(struct blk *b, struct blk *parent, char *err, size_t errlen)
{
    if (strcmp(parent->fmt->name, "vpc") || memcmp(P(parent)->footer + 68, P(b)->dyn + 40, 16)) {
        blk_set_err(err, errlen, "%s: vhd: parent %s is not the disk this one was made from (unique ID differs)",
                    b->path, parent->path);
        return -1;
    }
    return 0;
}

/* ---- open ---- */

static int vpc_open(struct blk *b, char *err, size_t errlen)
{
    struct vpc *v = xcalloc(1, sizeof(*v));
    b->priv = v;
    if (b->file_size < 1024)
        return perr(b, err, errlen, "file too short");
    uint8_t head[512];
    if (blk_pread(b->fd, v->footer, 512, b->file_size - 512) < 0 || blk_pread(b->fd, head, 512, 0) < 0)
        return perr(b, err, errlen, "cannot read the footer");
    bool tail_ok = is_footer(v->footer) && checksum(v->footer, 512, 64) == be32(v->footer + 64);
    if (!tail_ok) {
        /* A dynamic disk keeps a copy at the start. */
        if (!is_footer(head) || be32(head + 60) == TYPE_FIXED)
            return perr(b, err, errlen, is_footer(v->footer) ? "footer checksum mismatch" : "no footer at the end");
        memcpy(v->footer, head, 512);
        if (checksum(v->footer, 512, 64) != be32(v->footer + 64))
            return perr(b, err, errlen, "footer checksum mismatch");
        v->footer_at = (b->file_size - 512) & ~511ull;
        if (b->writable)
            return perr(b, err, errlen, "the footer at the end is damaged; open read-only and convert");
    } else {
        v->footer_at = b->file_size - 512;
    }
    v->type = be32(v->footer + 60);
    b->size = size_from_footer(v->footer);
    if (v->type == TYPE_FIXED) {
        if (b->size > b->file_size - 512)
            return perr(b, err, errlen, "fixed disk larger than its file");
        return 0;
    }
    if (v->type != TYPE_DYNAMIC && v->type != TYPE_DIFF)
        return perr(b, err, errlen, "unknown disk type");
    uint64_t dyn_at = be64(v->footer + 16);
    if (dyn_at > b->file_size - 1024 || blk_pread(b->fd, v->dyn, 1024, dyn_at) < 0 || memcmp(v->dyn, "cxsparse", 8))
        return perr(b, err, errlen, "dynamic header missing");
    if (checksum(v->dyn, 1024, 36) != be32(v->dyn + 36))
        return perr(b, err, errlen, "dynamic header checksum mismatch");
    v->bat_off = be64(v->dyn + 16);
    v->entries = be32(v->dyn + 28);
    v->block_size = be32(v->dyn + 32);
    if (v->block_size < 4096 || v->block_size > (256u << 20) || (v->block_size & (v->block_size - 1)))
        return perr(b, err, errlen, "block size out of range");
    if (v->entries > MAX_BAT_ENTRIES || (uint64_t)v->entries * v->block_size < b->size)
        return perr(b, err, errlen, "block table does not cover the disk");
    if (v->bat_off > b->file_size || (uint64_t)v->entries * 4 > b->file_size - v->bat_off)
        return perr(b, err, errlen, "block table outside the file");
    v->bitmap_bytes = ((v->block_size / 512 / 8) + 511) & ~511u;
    uint8_t *raw = xmalloc((size_t)v->entries * 4 + 1);
    v->bat = xcalloc(v->entries + 1, 4);
    v->bitmaps = xcalloc(v->entries + 1, sizeof(uint8_t *));
    int r = blk_pread(b->fd, raw, (size_t)v->entries * 4, v->bat_off);
    for (uint32_t i = 0; i < v->entries && r >= 0; i++) {
        v->bat[i] = be32(raw + 4 * i);
        uint64_t at = (uint64_t)v->bat[i] * 512;
        if (v->bat[i] != BAT_FREE && (at > b->file_size || v->bitmap_bytes > b->file_size - at)) {
            free(raw);
            return perr(b, err, errlen, "block table entry points outside the file");
        }
    }
    free(raw);
    if (r < 0)
        return perr(b, err, errlen, "cannot read the block table");
    v->buf = xmalloc(v->block_size + 1024);
    if (v->type == TYPE_DIFF) {
        b->check_parent = check_parent;
        if (find_parent(b, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static void vpc_close(struct blk *b)
{
    struct vpc *v = P(b);
    if (!v)
        return;
    for (uint32_t i = 0; v->bitmaps && i < v->entries; i++)
        free(v->bitmaps[i]);
    free(v->bitmaps);
    free(v->bat);
    free(v->buf);
    free(v);
    b->priv = NULL;
}

/* ---- map, read, write ---- */

static int bitmap(struct blk *b, uint32_t blk, uint8_t **out)
{
    struct vpc *v = P(b);
    if (!v->bitmaps[blk]) {
        uint8_t *bm = xmalloc(v->bitmap_bytes);
        int r = blk_pread(b->fd, bm, v->bitmap_bytes, (uint64_t)v->bat[blk] * 512);
        if (r < 0) {
            free(bm);
            return r;
        }
        v->bitmaps[blk] = bm;
    }
    *out = v->bitmaps[blk];
    return 0;
}

static bool bit(const uint8_t *bm, uint64_t s) { return (bm[s / 8] >> (7 - s % 8)) & 1; }

static int vpc_map(struct blk *b, uint64_t off, uint64_t len, struct blk_map *m)
{
    struct vpc *v = P(b);
    m->fd = b->fd;
    if (v->type == TYPE_FIXED) {
        m->state = BLK_STATE_DATA;
        m->host_off = off;
        m->len = b->size - off;
        return 0;
    }
    uint32_t blk = (uint32_t)(off / v->block_size);
    uint64_t in = off % v->block_size;
    m->len = v->block_size - in;
    if (blk >= v->entries)
        return -EIO;
    if (v->bat[blk] == BAT_FREE) {
        m->state = BLK_STATE_BACKING;
        return 0;
    }
    uint8_t *bm;
    int r = bitmap(b, blk, &bm);
    if (r < 0)
        return r;
    uint64_t s = in / 512;
    bool set = bit(bm, s);
    m->state = set ? BLK_STATE_DATA : BLK_STATE_BACKING;
    m->host_off = (uint64_t)v->bat[blk] * 512 + v->bitmap_bytes + in;
    m->len = 512 - in % 512;
    for (uint64_t k = s + 1; k < v->block_size / 512 && m->len < len && bit(bm, k) == set; k++)
        m->len += 512;
    return 0;
}

static int write_footer_at(struct blk *b, uint64_t at)
{
    return blk_pwrite(b->fd, P(b)->footer, 512, at);
}

static int alloc_block(struct blk *b, uint32_t blk)
{
    struct vpc *v = P(b);
    uint64_t at = (v->footer_at + 511) & ~511ull;
    if (at / 512 >= BAT_FREE - 1)
        return -EFBIG;
    uint64_t end = at + v->bitmap_bytes + v->block_size;
    int r = write_footer_at(b, end);
    if (r < 0)
        return r;
    v->footer_at = end;
    uint8_t *bm = xcalloc(1, v->bitmap_bytes);
    if ((r = blk_pwrite(b->fd, bm, v->bitmap_bytes, at)) < 0) {
        free(bm);
        return r;
    }
    uint8_t e[4];
    put_be32(e, (uint32_t)(at / 512));
    if ((r = blk_pwrite(b->fd, e, 4, v->bat_off + 4ull * blk)) < 0) {
        free(bm);
        return r;
    }
    v->bat[blk] = (uint32_t)(at / 512);
    free(v->bitmaps[blk]);
    v->bitmaps[blk] = bm;
    return 0;
}

static int64_t vpc_write_new(struct blk *b, uint64_t off, const uint8_t *buf, uint64_t len)
{
    struct vpc *v = P(b);
    uint32_t blk = (uint32_t)(off / v->block_size);
    uint64_t in = off % v->block_size;
    uint64_t n = v->block_size - in < len ? v->block_size - in : len;
    int r;
    if (v->bat[blk] == BAT_FREE && (r = alloc_block(b, blk)) < 0)
        return r;
    uint8_t *bm;
    if ((r = bitmap(b, blk, &bm)) < 0)
        return r;
    /* Only the run of sectors not stored here: the caller's map said so for [off, off+len). */
    uint64_t first = in / 512, last = (in + n - 1) / 512;
    for (uint64_t s = first; s <= last; s++)
        if (bit(bm, s)) {
            last = s - 1;
            n = (last + 1) * 512 - in;
            break;
        }
    if (last < first)
        return -EIO;
    uint64_t span = (last - first + 1) * 512, base = off - in + first * 512;
    if ((r = blk_read_backing(b, base, v->buf, span)) < 0)
        return r;
    memcpy(v->buf + (off - base), buf, n);
    uint64_t host = (uint64_t)v->bat[blk] * 512 + v->bitmap_bytes + first * 512;
    if ((r = blk_pwrite(b->fd, v->buf, span, host)) < 0)
        return r;
    for (uint64_t s = first; s <= last; s++)
        bm[s / 8] |= (uint8_t)(0x80 >> (s % 8));
    uint64_t bfirst = first / 8 / 512 * 512, blast = last / 8 / 512 * 512 + 512;
    if ((r = blk_pwrite(b->fd, bm + bfirst, blast - bfirst, (uint64_t)v->bat[blk] * 512 + bfirst)) < 0)
        return r;
    return (int64_t)n;
}

static int vpc_flush(struct blk *b) { return 0; }

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int vpc_check(struct blk *b, struct blk_check_result *res)
{
    struct vpc *v = P(b);
    if (v->type == TYPE_FIXED) {
        res->allocated = b->size;
        return 0;
    }
    uint64_t fsize = blk_file_size(b);
    for (uint32_t i = 0; i < v->entries; i++) {
        if (v->bat[i] == BAT_FREE)
            continue;
        uint64_t at = (uint64_t)v->bat[i] * 512;
        if (at + v->bitmap_bytes > fsize - 512) {
            if (!res->errors)
                snprintf(res->first_error, sizeof(res->first_error), "block %u outside the file", i);
            res->errors++;
            continue;
        }
        res->allocated += v->block_size;
    }
    /* Two entries naming one block: sort a copy and look at neighbours. */
    uint32_t *sorted = xmalloc((size_t)v->entries * 4 + 4);
    memcpy(sorted, v->bat, (size_t)v->entries * 4);
    qsort(sorted, v->entries, 4, cmp_u32);
    for (uint32_t i = 1; i < v->entries; i++)
        if (sorted[i] == sorted[i - 1] && sorted[i] != BAT_FREE) {
            if (!res->errors)
                snprintf(res->first_error, sizeof(res->first_error), "two blocks share sector %u", sorted[i]);
            res->errors++;
        }
    free(sorted);
    return 0;
}

/* ---- create ---- */

static void fill_footer(uint8_t *f, uint32_t type, uint64_t size, uint16_t c, uint8_t h, uint8_t s)
{
    memset(f, 0, 512);
    memcpy(f, "conectix", 8);
    put_be32(f + 8, 2);
    put_be32(f + 12, 0x00010000);
    put_be64(f + 16, type == TYPE_FIXED ? ~0ull : 512);
    put_be32(f + 24, (uint32_t)(time(NULL) - VHD_EPOCH));
    memcpy(f + 28, "rtvs", 4);
    put_be32(f + 32, 0x00010000);
    memcpy(f + 36, "Wi2k", 4);
    put_be64(f + 40, size);
    put_be64(f + 48, size);
    put_be16(f + 56, c);
    f[58] = h;
    f[59] = s;
    put_be32(f + 60, type);
    if (getrandom(f + 68, 16, 0) != 16)
        for (int i = 0; i < 16; i++)
            f[68 + i] = (uint8_t)rand();
    put_be32(f + 64, checksum(f, 512, 64));
}

static size_t utf16(uint8_t *out, size_t room, const char *s, bool big_endian, bool windows)
{
    size_t o = 0;
    for (const uint8_t *p = (const uint8_t *)s; *p && o + 2 <= room;) {
        uint32_t c = *p++;
        if (c >= 0xc0 && (*p & 0xc0) == 0x80) {
            if (c < 0xe0) {
                c = (c & 0x1f) << 6 | (*p++ & 0x3f);
            } else if (p[1]) {
                c = (c & 0x0f) << 12 | (uint32_t)(p[0] & 0x3f) << 6 | (p[1] & 0x3f);
                p += 2;
            }
        }
        if (windows && c == '/')
            c = '\\';
        if (big_endian)
            put_be16(out + o, (uint16_t)c);
        else
            put_le16(out + o, (uint16_t)c);
        o += 2;
    }
    return o;
}

static int vpc_create(const char *path, uint64_t size, const struct blk_create_opts *o, char *err, size_t errlen)
{
    bool fixed = o->subformat && !strcmp(o->subformat, "fixed");
    if (o->subformat && !fixed && strcmp(o->subformat, "dynamic")) {
        blk_set_err(err, errlen, "%s: vhd: unknown subformat '%s' (dynamic, fixed)", path, o->subformat);
        return -1;
    }
    if (fixed && o->backing) {
        blk_set_err(err, errlen, "%s: vhd: a differencing disk cannot be fixed", path);
        return -1;
    }
    uint64_t total = (size + 511) / 512;
    uint16_t c;
    uint8_t h, s;
    geometry(total, &c, &h, &s);
    for (uint64_t i = 1; total > (uint64_t)c * h * s && (uint64_t)c * h * s != MAX_GEOMETRY; i++)
        geometry(total + i, &c, &h, &s);
    if ((uint64_t)c * h * s != MAX_GEOMETRY)
        total = (uint64_t)c * h * s;
    size = total * 512;
    uint8_t parent_footer[512] = { 0 };
    char *parent_abs = NULL;
    if (o->backing) {
        char *bp = blk_relative_path(path, o->backing);
        struct blk *pb = blk_open(bp, o->backing_fmt, BLK_NO_LOCK | BLK_NO_BACKING, err, errlen);
        parent_abs = realpath(bp, NULL);
        free(bp);
        if (!pb) {
            free(parent_abs);
            return -1;
        }
        bool ok = !strcmp(pb->fmt->name, "vpc");
        if (ok)
            memcpy(parent_footer, P(pb)->footer, 512);
        blk_close(pb);
        if (!ok) {
            free(parent_abs);
            blk_set_err(err, errlen, "%s: vhd: a differencing disk's parent must be a vhd", path);
            return -1;
        }
    }
    uint8_t f[512];
    fill_footer(f, fixed ? TYPE_FIXED : o->backing ? TYPE_DIFF : TYPE_DYNAMIC, size, c, h, s);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(parent_abs);
        blk_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int r;
    if (fixed) {
        r = ftruncate(fd, (off_t)size) < 0 ? -errno : blk_pwrite(fd, f, 512, size);
    } else {
        uint32_t bsize = o->cluster_size ? o->cluster_size : (2u << 20);
        uint32_t entries = (uint32_t)((size + bsize - 1) / bsize);
        uint64_t bat_bytes = ((uint64_t)entries * 4 + 511) & ~511ull;
        uint64_t loc_at = 1536 + bat_bytes, end = loc_at + (o->backing ? 2 * 1024 : 0);
        uint8_t *meta = xcalloc(1, end);
        memcpy(meta, f, 512);
        uint8_t *d = meta + 512;
        memcpy(d, "cxsparse", 8);
        put_be64(d + 8, ~0ull);
        put_be64(d + 16, 1536);
        put_be32(d + 24, 0x00010000);
        put_be32(d + 28, entries);
        put_be32(d + 32, bsize);
        memset(meta + 1536, 0xff, (size_t)entries * 4);
        if (o->backing) {
            memcpy(d + 40, parent_footer + 68, 16);
            put_be32(d + 56, be32(parent_footer + 24));
            const char *base = strrchr(o->backing, '/') ? strrchr(o->backing, '/') + 1 : o->backing;
            utf16(d + 64, 512, base, true, false);
            /* W2ru: relative to this disk; W2ku: absolute. */
            char rel[1100];
            snprintf(rel, sizeof(rel), ".\\%s", o->backing);
            size_t n1 = utf16(meta + loc_at, 1024, rel, false, true);
            put_be32(d + 576, 0x57327275);
            put_be32(d + 580, 1024);
            put_be32(d + 584, (uint32_t)n1);
            put_be64(d + 592, loc_at);
            size_t n2 = utf16(meta + loc_at + 1024, 1024, parent_abs ? parent_abs : o->backing, false, true);
            put_be32(d + 600, 0x57326b75);
            put_be32(d + 604, 1024);
            put_be32(d + 608, (uint32_t)n2);
            put_be64(d + 616, loc_at + 1024);
        }
        put_be32(d + 36, checksum(d, 1024, 36));
        r = blk_pwrite(fd, meta, end, 0);
        if (r >= 0)
            r = blk_pwrite(fd, f, 512, end);
        free(meta);
    }
    free(parent_abs);
    if (r >= 0 && fsync(fd) < 0)
        r = -errno;
    close(fd);
    if (r < 0) {
        blk_set_err(err, errlen, "%s: vhd: %s", path, strerror(-r));
        return -1;
    }
    return 0;
}

const struct blk_format blk_fmt_vpc = {
    .name = "vpc",
    .probe = vpc_probe,
    .open = vpc_open,
    .close = vpc_close,
    .map = vpc_map,
    .write_new = vpc_write_new,
    .flush = vpc_flush,
    .check = vpc_check,
    .create = vpc_create,
};
