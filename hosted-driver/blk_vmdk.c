/*
 * VMDK, VMware's hosted disk formats (VMware's "Virtual Disk Format 1.1"):
 * a text descriptor naming extents, each FLAT (raw), ZERO or SPARSE (a
 * "KDMV" header, a grain directory of grain tables, each entry the sector
 * of one grain, and a redundant copy of both).  monolithicSparse keeps the
 * descriptor inside its only sparse extent; monolithicFlat and the
 * twoGbMaxExtent kinds keep it in a small text file of their own.
 * streamOptimized (compressed grains, the directory at the end) is read only.
 *
 * Delta disks (VMware snapshots, NAME-000001.vmdk) name their parent in
 * parentFileNameHint; the parent's CID must equal the child's parentCID.
 * The first write to a disk gives it a new CID, as VMware does, so children
 * made from the old state no longer match it.
 *
 * Crash ordering: a grain (or a grain table) is written whole at the end of
 * the extent before the table entry (or directory entry) points at it, in
 * both the primary and the redundant tables.
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
#include <unistd.h>
#include <time.h>
#include <zlib.h>

#define VMDK_MAGIC 0x564d444bu         /* "KDMV" little-endian */
#define GD_AT_END 0xffffffffffffffffull
#define FLAG_RGD (1u << 1)
#define FLAG_COMPRESSED (1u << 16)
#define MAX_DESC (64u << 10)
#define MAX_EXTENTS BLK_MAX_FDS
#define TWO_GB_EXTENT 0x7fff0000ull     /* bytes per extent of the twoGbMaxExtent kinds */

enum ext_type { EXT_FLAT, EXT_SPARSE, EXT_ZERO };

struct extent {
    enum ext_type type;
    int fd;
    uint64_t start, len;        /* guest bytes */
    uint64_t flat_off;          /* FLAT: byte offset in the file */
    /* SPARSE: */
    uint64_t grain;             /* bytes */
    uint32_t gtes;              /* entries per grain table */
    uint32_t gd_entries;
    uint64_t gd_off, rgd_off;   /* bytes; rgd_off 0: no redundant tables */
    uint32_t *gd, *rgd;         /* sectors of the grain tables */
    uint32_t *gt;               /* every grain's sector, gd_entries * gtes of them */
    bool compressed;
    uint64_t file_end;          /* where the next grain or table goes */
};

struct vmdk {
    struct extent ext[MAX_EXTENTS];
    int n;
    char *desc;                 /* the descriptor text */
    int desc_fd;
    uint64_t desc_off, desc_room;   /* embedded: where it lives and how big it may be */
    bool embedded;
    uint32_t cid, parent_cid;
    bool cid_bumped;
    uint8_t *gbuf;              /* one grain: copy-on-write and decompression */
    uint8_t *zbuf;
    int64_t cached_grain;       /* guest grain index held decompressed in gbuf, or -1 */
    int cached_ext;
};

static struct vmdk *V(struct blk *b) { return b->priv; }

static bool vmdk_probe(const uint8_t *h, size_t n, const uint8_t *tail, uint64_t fsize)
{
    if (n >= 4 && le32(h) == VMDK_MAGIC)
        return true;
    static const char sig[] = "# Disk DescriptorFile";
    return n >= sizeof(sig) - 1 && !memcmp(h, sig, sizeof(sig) - 1);
}

/* ---- descriptor ---- */

static const char *desc_value(const char *desc, const char *key, char *out, size_t outlen)
{
    size_t kl = strlen(key);
    for (const char *line = desc; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        while (*line == ' ' || *line == '\t')
            line++;
        if (strncmp(line, key, kl))
            continue;
        const char *p = line + kl;
        while (*p == ' ')
            p++;
        if (*p != '=')
            continue;
        p++;
        while (*p == ' ')
            p++;
        bool quoted = *p == '"';
        p += quoted;
        size_t i = 0;
        while (*p && *p != '\n' && *p != '\r' && !(quoted && *p == '"') && i + 1 < outlen)
            out[i++] = *p++;
        out[i] = 0;
        return out;
    }
    return NULL;
}

static int verr(struct blk *b, char *err, size_t errlen, const char *msg)
{
    blk_set_err(err, errlen, "%s: vmdk: %s", b->path, msg);
    return -1;
}

/* ---- sparse extents ---- */

static int load_sparse(struct blk *b, struct extent *e, uint64_t fsize, char *err, size_t errlen)
{
    uint8_t h[512];
    if (fsize < 512 || blk_pread(e->fd, h, 512, 0) < 0 || le32(h) != VMDK_MAGIC)
        return verr(b, err, errlen, "sparse extent without a KDMV header");
    uint32_t version = le32(h + 4), flags = le32(h + 8);
    uint64_t gd = le64(h + 56);
    if (gd == GD_AT_END) {
        /* streamOptimized: the footer, a copy of the header with the real offsets, is 1 KiB before the end. */
        if (fsize < 1536 || blk_pread(e->fd, h, 512, fsize - 1024) < 0 || le32(h) != VMDK_MAGIC)
            return verr(b, err, errlen, "streamOptimized footer missing");
        flags = le32(h + 8);
        gd = le64(h + 56);
    }
    uint64_t capacity = le64(h + 12), grain_sectors = le64(h + 20);
    e->gtes = le32(h + 44);
    e->compressed = (flags & FLAG_COMPRESSED) != 0;
    if (version < 1 || version > 3)
        return verr(b, err, errlen, "unsupported sparse extent version");
    if (e->compressed && le16(h + 77) != 1)
        return verr(b, err, errlen, "unknown compression algorithm");
    if (grain_sectors < 1 || grain_sectors > 2048 || (grain_sectors & (grain_sectors - 1)))
        return verr(b, err, errlen, "grain size out of range (1..2048 sectors, a power of two)");
    if (e->gtes < 1 || e->gtes > 65536)
        return verr(b, err, errlen, "grain table size out of range");
    if (capacity == 0 || capacity > (1ull << 33))
        return verr(b, err, errlen, "capacity out of range");
    e->grain = grain_sectors * 512;
    uint64_t per_gt = (uint64_t)e->gtes * grain_sectors;
    uint64_t entries = capacity / per_gt + (capacity % per_gt != 0);
    /* The grain tables are held in memory: 128 MiB at most (2 TiB of 64 KiB grains). */
    if (entries * e->gtes > (1u << 25))
        return verr(b, err, errlen, "grain directory too large for its grain size");
    e->gd_entries = (uint32_t)entries;
    e->gd_off = gd * 512;
    e->rgd_off = (flags & FLAG_RGD) ? le64(h + 48) * 512 : 0;
    if (e->len == 0)
        e->len = capacity * 512;
    if (e->len > capacity * 512)
        return verr(b, err, errlen, "extent larger than its sparse header's capacity");
    uint64_t gd_bytes = (uint64_t)e->gd_entries * 4;
    if (gd > fsize / 512 || gd_bytes > fsize - e->gd_off || (e->rgd_off && (e->rgd_off > fsize || gd_bytes > fsize - e->rgd_off)))
        return verr(b, err, errlen, "grain directory outside the file");
    uint8_t *raw = xmalloc(gd_bytes > (uint64_t)e->gtes * 4 ? gd_bytes : (uint64_t)e->gtes * 4);
    e->gd = xcalloc(e->gd_entries, 4);
    e->rgd = xcalloc(e->gd_entries, 4);
    e->gt = xcalloc((size_t)e->gd_entries * e->gtes, 4);
    int r = blk_pread(e->fd, raw, gd_bytes, e->gd_off);
    for (uint32_t i = 0; i < e->gd_entries && r >= 0; i++)
        e->gd[i] = le32(raw + 4 * i);
    if (r >= 0 && e->rgd_off && (r = blk_pread(e->fd, raw, gd_bytes, e->rgd_off)) >= 0)
        for (uint32_t i = 0; i < e->gd_entries; i++)
            e->rgd[i] = le32(raw + 4 * i);
    for (uint32_t i = 0; i < e->gd_entries && r >= 0; i++) {
        if (!e->gd[i])
            continue;
        uint64_t at = (uint64_t)e->gd[i] * 512;
        if (at > fsize || (uint64_t)e->gtes * 4 > fsize - at || (e->rgd_off && e->rgd[i] &&
            ((uint64_t)e->rgd[i] * 512 > fsize || (uint64_t)e->gtes * 4 > fsize - (uint64_t)e->rgd[i] * 512))) {
            free(raw);
            return verr(b, err, errlen, "grain table outside the file");
        }
        if ((r = blk_pread(e->fd, raw, (size_t)e->gtes * 4, at)) < 0)
            break;
        for (uint32_t j = 0; j < e->gtes; j++) {
            uint32_t s = le32(raw + 4 * j);
            uint64_t end = (uint64_t)s * 512 + (e->compressed ? 12 : e->grain);
            if (s > 1 && end > ((fsize + 511) & ~511ull)) {
                free(raw);
                return verr(b, err, errlen, "grain table entry points outside the file");
            }
            e->gt[(size_t)i * e->gtes + j] = s;
        }
    }
    free(raw);
    if (r < 0)
        return verr(b, err, errlen, "cannot read the grain tables");
    e->file_end = (fsize + 511) & ~511ull;
    return 0;
}

/* ---- descriptor parsing ---- */

static int parse_extents(struct blk *b, const char *self_path, char *err, size_t errlen)
{
    struct vmdk *v = V(b);
    uint64_t at = 0;
    for (const char *line = v->desc; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        char access[16], type[16], name[1024];
        unsigned long long sectors, offset = 0;
        int got = sscanf(line, "%15s %llu %15s \"%1023[^\"]\" %llu", access, &sectors, type, name, &offset);
        if (got < 4 || (strcmp(access, "RW") && strcmp(access, "RDONLY") && strcmp(access, "NOACCESS")))
            continue;
        for (const char *c = name; *c; c++)
            if ((unsigned char)*c < 0x20)
                return verr(b, err, errlen, "extent line with a control character in its file name");
        if (v->n == MAX_EXTENTS)
            return verr(b, err, errlen, "too many extents");
        if (sectors > (1ull << 33))
            return verr(b, err, errlen, "extent size out of range");
        struct extent *e = &v->ext[v->n++];
        e->start = at;
        e->len = sectors * 512;
        e->flat_off = (uint64_t)offset * 512;
        at += e->len;
        if (at > (1ull << 42))
            return verr(b, err, errlen, "disk size out of range");
        if (!strcmp(type, "ZERO")) {
            e->type = EXT_ZERO;
            continue;
        }
        if (!strcmp(type, "FLAT") || !strcmp(type, "VMFS"))
            e->type = EXT_FLAT;
        else if (!strcmp(type, "SPARSE") || !strcmp(type, "VMFSSPARSE"))
            e->type = EXT_SPARSE;
        else
            return verr(b, err, errlen, "unknown extent type");
        if (self_path) {
            e->fd = b->fd;
        } else {
            char *p = blk_relative_path(b->path, name);
            e->fd = blk_open_extent(b, p, err, errlen);
            free(p);
            if (e->fd < 0)
                return -1;
        }
        struct stat st;
        if (fstat(e->fd, &st) < 0)
            return verr(b, err, errlen, "cannot stat an extent");
        if (e->type == EXT_FLAT && (e->flat_off > (uint64_t)st.st_size || e->len > (uint64_t)st.st_size - e->flat_off))
            return verr(b, err, errlen, "flat extent shorter than the descriptor says");
        if (e->type == EXT_SPARSE && load_sparse(b, e, (uint64_t)st.st_size, err, errlen) < 0)
            return -1;
    }
    if (!v->n)
        return verr(b, err, errlen, "descriptor lists no extents");
    b->size = at;
    return 0;
}

static int parse_descriptor(struct blk *b, char *err, size_t errlen)
{
    struct vmdk *v = V(b);
    if (!blk_utf8_valid((const uint8_t *)v->desc, strlen(v->desc)))
        return verr(b, err, errlen, "descriptor is not UTF-8 text");
    char val[1024];
    v->cid = desc_value(v->desc, "CID", val, sizeof(val)) ? (uint32_t)strtoul(val, NULL, 16) : 0;
    v->parent_cid = desc_value(v->desc, "parentCID", val, sizeof(val)) ? (uint32_t)strtoul(val, NULL, 16) : 0xffffffffu;
    if (!desc_value(v->desc, "createType", val, sizeof(val)))
        return verr(b, err, errlen, "descriptor has no createType");
    if (v->parent_cid != 0xffffffffu) {
        if (!desc_value(v->desc, "parentFileNameHint", val, sizeof(val)) || !val[0])
            return verr(b, err, errlen, "delta disk without parentFileNameHint");
        /* VMware on Windows writes "C:\\VMs\\base.vmdk": look for the file name next to us. */
        const char *name = strrchr(val, '\\') ? strrchr(val, '\\') + 1 : val;
        b->backing_path = xmalloc(strlen(name) + 1);
        strcpy(b->backing_path, name);
    }
    return 0;
}

static int check_parent(struct blk *b, struct blk *parent, char *err, size_t errlen)
{
    if (strcmp(parent->fmt->name, "vmdk"))
        return 0;
    uint32_t pcid = V(parent)->cid;
    if (pcid != V(b)->parent_cid) {
        blk_set_err(err, errlen, "%s: vmdk: parent %s has CID %08x, this delta expects parentCID %08x "
                    "(the parent changed since the delta was made)", b->path, parent->path, pcid, V(b)->parent_cid);
        return -1;
    }
    return 0;
}

static int vmdk_open(struct blk *b, char *err, size_t errlen)
{
    struct vmdk *v = xcalloc(1, sizeof(*v));
    b->priv = v;
    v->cached_grain = -1;
    b->check_parent = check_parent;
    uint8_t h[512] = { 0 };
    if (blk_pread(b->fd, h, b->file_size < 512 ? b->file_size : 512, 0) < 0)
        return verr(b, err, errlen, "cannot read the header");
    if (le32(h) == VMDK_MAGIC) {
        uint64_t doff = le64(h + 28) * 512, dsize = le64(h + 36) * 512;
        if (doff == 0) {
            /* An extent opened on its own: no descriptor, no parent. */
            v->n = 1;
            v->ext[0].type = EXT_SPARSE;
            v->ext[0].fd = b->fd;
            if (load_sparse(b, &v->ext[0], b->file_size, err, errlen) < 0)
                return -1;
            b->size = v->ext[0].len;
            v->desc = xcalloc(1, 1);
        } else {
            if (dsize > MAX_DESC)
                return verr(b, err, errlen, "embedded descriptor too long (over 64 KiB)");
            if (doff > b->file_size || dsize > b->file_size - doff || !dsize)
                return verr(b, err, errlen, "embedded descriptor outside the file");
            v->desc = xcalloc(1, dsize + 1);
            if (blk_pread(b->fd, v->desc, dsize, doff) < 0)
                return verr(b, err, errlen, "cannot read the descriptor");
            v->embedded = true;
            v->desc_fd = b->fd;
            v->desc_off = doff;
            v->desc_room = dsize;
            if (parse_descriptor(b, err, errlen) < 0 || parse_extents(b, b->path, err, errlen) < 0)
                return -1;
            if (v->n != 1 || v->ext[0].type != EXT_SPARSE)
                return verr(b, err, errlen, "a sparse file's embedded descriptor must list itself as its only extent");
        }
    } else {
        if (b->file_size > MAX_DESC)
            return verr(b, err, errlen, "descriptor file too long (over 64 KiB)");
        v->desc = xcalloc(1, b->file_size + 1);
        if (blk_pread(b->fd, v->desc, b->file_size, 0) < 0)
            return verr(b, err, errlen, "cannot read the descriptor");
        /* The text ends at the first NUL, as QEMU reads it: qemu-img pads
         * descriptor files with NULs, and when it rewrites a shorter text in
         * place (a new CID) the old text's tail stays after the NUL. */
        v->desc_fd = b->fd;
        v->desc_room = MAX_DESC;
        if (parse_descriptor(b, err, errlen) < 0 || parse_extents(b, NULL, err, errlen) < 0)
            return -1;
    }
    for (int i = 0; i < v->n; i++) {
        if (v->ext[i].compressed && b->writable)
            return verr(b, err, errlen, "streamOptimized (compressed) disks open read-only here");
        if (v->ext[i].type == EXT_SPARSE && v->ext[i].grain > (1u << 20))
            return verr(b, err, errlen, "grain too large");
    }
    uint64_t g = 65536;
    for (int i = 0; i < v->n; i++)
        if (v->ext[i].type == EXT_SPARSE && v->ext[i].grain > g)
            g = v->ext[i].grain;
    v->gbuf = xmalloc(g);
    v->zbuf = xmalloc(2 * g + 4096);
    return 0;
}

static void vmdk_close(struct blk *b)
{
    struct vmdk *v = V(b);
    if (!v)
        return;
    for (int i = 0; i < v->n; i++) {
        free(v->ext[i].gd);
        free(v->ext[i].rgd);
        free(v->ext[i].gt);
    }
    free(v->desc);
    free(v->gbuf);
    free(v->zbuf);
    free(v);
    b->priv = NULL;
}

/* ---- mapping ---- */

static struct extent *find_extent(struct vmdk *v, uint64_t off, int *idx)
{
    for (int i = 0; i < v->n; i++)
        if (off >= v->ext[i].start && off - v->ext[i].start < v->ext[i].len) {
            *idx = i;
            return &v->ext[i];
        }
    return NULL;
}

static int vmdk_map(struct blk *b, uint64_t off, uint64_t len, struct blk_map *m)
{
    struct vmdk *v = V(b);
    int idx;
    struct extent *e = find_extent(v, off, &idx);
    if (!e)
        return -EIO;
    uint64_t rel = off - e->start;
    m->len = e->len - rel;
    m->fd = e->fd;
    if (e->type == EXT_ZERO) {
        m->state = BLK_STATE_ZERO;
        return 0;
    }
    if (e->type == EXT_FLAT) {
        m->state = BLK_STATE_DATA;
        m->host_off = e->flat_off + rel;
        return 0;
    }
    uint64_t g = rel / e->grain, in = rel % e->grain;
    uint32_t s = e->gt[g];
    m->len = e->grain - in;
    if (m->len > e->len - rel)
        m->len = e->len - rel;
    m->state = s == 0 ? BLK_STATE_BACKING : s == 1 ? BLK_STATE_ZERO : BLK_STATE_DATA;
    m->host_off = (uint64_t)s * 512 + in;
    if (e->compressed && s > 1)
        m->fd = -1;
    /* Coalesce following grains of the same kind. */
    uint64_t ngrains = e->len / e->grain + (e->len % e->grain != 0);
    for (uint64_t k = g + 1; k < ngrains && m->len < len && !(e->compressed && s > 1); k++) {
        uint32_t t = e->gt[k];
        enum blk_state st = t == 0 ? BLK_STATE_BACKING : t == 1 ? BLK_STATE_ZERO : BLK_STATE_DATA;
        if (st != m->state || (st == BLK_STATE_DATA && (uint64_t)t * 512 != (uint64_t)s * 512 + (k - g) * e->grain))
            break;
        uint64_t add = e->len - k * e->grain < e->grain ? e->len - k * e->grain : e->grain;
        m->len += add;
    }
    return 0;
}

static int vmdk_read_special(struct blk *b, uint64_t off, void *buf, size_t len)
{
    struct vmdk *v = V(b);
    int idx;
    struct extent *e = find_extent(v, off, &idx);
    if (!e)
        return -EIO;
    uint64_t rel = off - e->start, g = rel / e->grain, in = rel % e->grain;
    if (v->cached_grain != (int64_t)g || v->cached_ext != idx) {
        uint64_t at = (uint64_t)e->gt[g] * 512;
        uint8_t mk[12];
        struct stat st;
        if (fstat(e->fd, &st) < 0 || blk_pread(e->fd, mk, 12, at) < 0)
            return -EIO;
        uint32_t csize = le32(mk + 8);
        if (csize > 2 * e->grain + 4096 || at + 12 + csize > (uint64_t)st.st_size)
            return -EIO;
        if (blk_pread(e->fd, v->zbuf, csize, at + 12) < 0)
            return -EIO;
        uLongf out = (uLongf)e->grain;
        int zr = uncompress(v->gbuf, &out, v->zbuf, csize);
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            return -EIO;
        if (out < e->grain)
            memset(v->gbuf + out, 0, e->grain - out);
        v->cached_grain = (int64_t)g;
        v->cached_ext = idx;
    }
    if (len > e->grain - in)
        return -EIO;
    memcpy(buf, v->gbuf + in, len);
    return 0;
}

/* ---- writing ---- */

/* VMware gives a disk a new CID when it first changes, so deltas of the old state stop matching. */
static int bump_cid(struct blk *b)
{
    struct vmdk *v = V(b);
    v->cid_bumped = true;
    if (!v->desc[0])
        return 0;
    uint32_t cid;
    do {
        if (getrandom(&cid, sizeof(cid), 0) != sizeof(cid))
            cid = (uint32_t)time(NULL) ^ (uint32_t)getpid();
    } while (cid == v->cid || cid == 0xffffffffu);
    char *line = v->desc;
    while (line && strncmp(line, "CID=", 4))
        line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL;
    if (!line)
        return 0;
    char hex[9];
    snprintf(hex, sizeof(hex), "%08x", cid);
    char *end = line + 4 + strcspn(line + 4, "\r\n");
    size_t old = (size_t)(end - (line + 4)), total = strlen(v->desc) - old + 8;
    if (total > v->desc_room)
        return 0;
    char *nd = xcalloc(1, total + 1);
    size_t head = (size_t)(line + 4 - v->desc);
    memcpy(nd, v->desc, head);
    memcpy(nd + head, hex, 8);
    strcpy(nd + head + 8, end);
    free(v->desc);
    v->desc = nd;
    v->cid = cid;
    int r;
    if (v->embedded) {
        uint8_t *room = xcalloc(1, v->desc_room);
        memcpy(room, nd, total);
        r = blk_pwrite(v->desc_fd, room, v->desc_room, v->desc_off);
        free(room);
    } else {
        r = blk_pwrite(v->desc_fd, nd, total, 0);
        if (r >= 0 && ftruncate(v->desc_fd, (off_t)total) < 0)
            r = -errno;
    }
    return r;
}

static int put_entry(int fd, uint64_t at, uint32_t value)
{
    uint8_t e[4];
    put_le32(e, value);
    return blk_pwrite(fd, e, 4, at);
}

/* A grain table for directory entry i, zeroed, at the end of the extent (and its redundant twin). */
static int new_grain_table(struct extent *e, uint32_t i)
{
    uint64_t bytes = ((uint64_t)e->gtes * 4 + 511) & ~511ull;
    uint8_t *z = xcalloc(1, bytes);
    int r = 0;
    for (int copy = 0; copy < (e->rgd_off ? 2 : 1) && r >= 0; copy++) {
        uint64_t at = e->file_end;
        if (at / 512 > UINT32_MAX - bytes / 512) {
            r = -EFBIG;
            break;
        }
        e->file_end += bytes;
        if ((r = blk_pwrite(e->fd, z, bytes, at)) < 0)
            break;
        if (copy == 0) {
            r = put_entry(e->fd, e->gd_off + 4ull * i, (uint32_t)(at / 512));
            e->gd[i] = (uint32_t)(at / 512);
        } else {
            r = put_entry(e->fd, e->rgd_off + 4ull * i, (uint32_t)(at / 512));
            e->rgd[i] = (uint32_t)(at / 512);
        }
    }
    free(z);
    return r;
}

static int64_t vmdk_write_new(struct blk *b, uint64_t off, const uint8_t *buf, uint64_t len)
{
    struct vmdk *v = V(b);
    int idx, r;
    struct extent *e = find_extent(v, off, &idx);
    if (!e || e->type != EXT_SPARSE)
        return -EROFS;      /* a ZERO extent cannot hold data */
    if (!v->cid_bumped && (r = bump_cid(b)) < 0)
        return r;
    uint64_t rel = off - e->start, g = rel / e->grain, in = rel % e->grain;
    uint64_t n = e->grain - in < len ? e->grain - in : len;
    uint32_t ti = (uint32_t)(g / e->gtes), tj = (uint32_t)(g % e->gtes);
    if (!e->gd[ti] && (r = new_grain_table(e, ti)) < 0)
        return r;
    uint32_t old = e->gt[g];
    if (n == e->grain)
        ;   /* the write covers the whole grain */
    else if (old == 1)
        memset(v->gbuf, 0, e->grain);
    else if ((r = blk_read_backing(b, off - in, v->gbuf, e->grain)) < 0)
        return r;
    memcpy(v->gbuf + in, buf, n);
    uint64_t at = e->file_end;
    if (at / 512 > UINT32_MAX - e->grain / 512)
        return -EFBIG;
    if ((r = blk_pwrite(e->fd, v->gbuf, e->grain, at)) < 0)
        return r;
    e->file_end += e->grain;
    uint32_t sector = (uint32_t)(at / 512);
    if (e->rgd_off && e->rgd[ti] && (r = put_entry(e->fd, (uint64_t)e->rgd[ti] * 512 + 4ull * tj, sector)) < 0)
        return r;
    if ((r = put_entry(e->fd, (uint64_t)e->gd[ti] * 512 + 4ull * tj, sector)) < 0)
        return r;
    e->gt[g] = sector;
    v->cached_grain = -1;
    return (int64_t)n;
}

static int vmdk_flush(struct blk *b) { return 0; }

/* ---- check ---- */

static int vmdk_check(struct blk *b, struct blk_check_result *res)
{
    struct vmdk *v = V(b);
    for (int i = 0; i < v->n; i++) {
        struct extent *e = &v->ext[i];
        if (e->type == EXT_FLAT)
            res->allocated += e->len;
        if (e->type != EXT_SPARSE)
            continue;
        struct stat st;
        if (fstat(e->fd, &st) < 0)
            return -errno;
        uint8_t *raw = xmalloc((size_t)e->gtes * 4);
        for (uint32_t t = 0; t < e->gd_entries; t++) {
            if (e->rgd_off && (!e->gd[t]) != (!e->rgd[t])) {
                if (!res->errors)
                    snprintf(res->first_error, sizeof(res->first_error), "grain directory %u and its redundant copy differ", t);
                res->errors++;
            }
            for (uint32_t j = 0; j < e->gtes; j++) {
                uint32_t s = e->gt[(size_t)t * e->gtes + j];
                if (s <= 1)
                    continue;
                if ((uint64_t)s * 512 + (e->compressed ? 12 : e->grain) > (uint64_t)st.st_size + 511) {
                    if (!res->errors)
                        snprintf(res->first_error, sizeof(res->first_error), "grain %u/%u points outside the file", t, j);
                    res->errors++;
                }
                res->allocated += e->grain;
            }
            if (e->rgd_off && e->rgd[t] && blk_pread(e->fd, raw, (size_t)e->gtes * 4, (uint64_t)e->rgd[t] * 512) >= 0)
                for (uint32_t j = 0; j < e->gtes; j++)
                    if (le32(raw + 4 * j) != e->gt[(size_t)t * e->gtes + j]) {
                        /* A crash between the redundant and primary entry leaves this: a leaked grain. */
                        res->leaks++;
                    }
        }
        free(raw);
    }
    return 0;
}

/* ---- create ---- */

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static char *descriptor_text(const char *type, uint32_t parent_cid, const char *parent, const char *extents,
                             uint64_t sectors)
{
    uint32_t cid;
    if (getrandom(&cid, sizeof(cid), 0) != sizeof(cid))
        cid = (uint32_t)time(NULL);
    if (cid == 0xffffffffu)
        cid = 1;
    char hint[1200] = "";
    if (parent)
        snprintf(hint, sizeof(hint), "parentFileNameHint=\"%s\"\n", parent);
    uint64_t cyl = sectors / (16 * 63);
    if (cyl > 16383)
        cyl = 16383;
    size_t cap = strlen(extents) + 2048;
    char *d = xmalloc(cap);
    snprintf(d, cap,
             "# Disk DescriptorFile\nversion=1\nCID=%08x\nparentCID=%08x\ncreateType=\"%s\"\n%s\n"
             "# Extent description\n%s\n# The Disk Data Base\n#DDB\n\n"
             "ddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"%llu\"\nddb.geometry.heads = \"16\"\n"
             "ddb.geometry.sectors = \"63\"\nddb.adapterType = \"ide\"\n",
             cid, parent_cid, type, hint, extents, (unsigned long long)cyl);
    return d;
}

/* A sparse extent of `sectors`, with the descriptor embedded when `desc` is given. */
static int write_sparse(const char *path, uint64_t sectors, uint64_t grain_sectors, const char *desc)
{
    const uint32_t gtes = 512;
    uint64_t per_gt = gtes * grain_sectors;
    uint64_t gt_count = sectors / per_gt + (sectors % per_gt != 0);
    uint64_t gd_sectors = (gt_count * 4 + 511) / 512, gt_sectors = gtes * 4 / 512;
    uint64_t desc_off = desc ? 1 : 0, desc_size = desc ? 20 : 0;
    uint64_t rgd = 1 + desc_size;
    uint64_t gd = rgd + gd_sectors + gt_count * gt_sectors;
    uint64_t overhead = gd + gd_sectors + gt_count * gt_sectors;
    overhead = (overhead + grain_sectors - 1) / grain_sectors * grain_sectors;
    if (overhead > UINT32_MAX || (desc && strlen(desc) > desc_size * 512))
        return -EFBIG;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    uint8_t *buf = xcalloc(1, overhead * 512);
    uint8_t *h = buf;
    put_le32(h, VMDK_MAGIC);
    put_le32(h + 4, 1);
    put_le32(h + 8, 3);     /* valid newline test, redundant grain tables */
    put_le64(h + 12, sectors);
    put_le64(h + 20, grain_sectors);
    put_le64(h + 28, desc_off);
    put_le64(h + 36, desc_size);
    put_le32(h + 44, gtes);
    put_le64(h + 48, rgd);
    put_le64(h + 56, gd);
    put_le64(h + 64, overhead);
    h[73] = '\n';
    h[74] = ' ';
    h[75] = '\r';
    h[76] = '\n';
    if (desc)
        memcpy(buf + 512, desc, strlen(desc));
    for (uint64_t t = 0; t < gt_count; t++) {
        put_le32(buf + rgd * 512 + 4 * t, (uint32_t)(rgd + gd_sectors + t * gt_sectors));
        put_le32(buf + gd * 512 + 4 * t, (uint32_t)(gd + gd_sectors + t * gt_sectors));
    }
    int r = blk_pwrite(fd, buf, overhead * 512, 0);
    free(buf);
    if (r >= 0 && fsync(fd) < 0)
        r = -errno;
    close(fd);
    return r;
}

static int write_flat(const char *path, uint64_t bytes)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int r = ftruncate(fd, (off_t)bytes) < 0 ? -errno : 0;
    close(fd);
    return r;
}

static int write_text(const char *path, const char *text)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int r = blk_pwrite(fd, text, strlen(text), 0);
    if (r >= 0 && fsync(fd) < 0)
        r = -errno;
    close(fd);
    return r;
}

static char *extent_name(const char *path, const char *suffix)
{
    /* NAME.vmdk -> NAME-flat.vmdk / NAME-s001.vmdk, next to it. */
    size_t n = strlen(path);
    if (n > 5 && !strcmp(path + n - 5, ".vmdk"))
        n -= 5;
    char *p = xmalloc(n + strlen(suffix) + 8);
    memcpy(p, path, n);
    sprintf(p + n, "-%s.vmdk", suffix);
    return p;
}

static int vmdk_create(const char *path, uint64_t size, const struct blk_create_opts *o, char *err, size_t errlen)
{
    const char *sub = o->subformat ? o->subformat : "monolithicSparse";
    uint64_t sectors = (size + 511) / 512;
    uint64_t grain = o->cluster_size ? o->cluster_size / 512 : 128;
    if (grain < 8 || grain > 2048 || (grain & (grain - 1))) {
        blk_set_err(err, errlen, "%s: vmdk: grain size must be a power of two from 4 KiB to 1 MiB", path);
        return -1;
    }
    uint32_t parent_cid = 0xffffffffu;
    if (o->backing) {
        char *bp = blk_relative_path(path, o->backing);
        struct blk *pb = blk_open(bp, o->backing_fmt, BLK_NO_LOCK | BLK_NO_BACKING, err, errlen);
        free(bp);
        if (!pb)
            return -1;
        bool is_vmdk = !strcmp(pb->fmt->name, "vmdk");
        if (is_vmdk)
            parent_cid = V(pb)->cid;
        blk_close(pb);
        if (!is_vmdk) {
            blk_set_err(err, errlen, "%s: vmdk: a delta disk's parent must be a vmdk", path);
            return -1;
        }
    }
    bool sparse = !strcmp(sub, "monolithicSparse") || !strcmp(sub, "twoGbMaxExtentSparse");
    bool split = !strncmp(sub, "twoGb", 5);
    if (!sparse && strcmp(sub, "monolithicFlat") && strcmp(sub, "twoGbMaxExtentFlat")) {
        blk_set_err(err, errlen, "%s: vmdk: unknown subformat '%s' (monolithicSparse, monolithicFlat, "
                    "twoGbMaxExtentSparse, twoGbMaxExtentFlat)", path, sub);
        return -1;
    }
    if (o->backing && !sparse) {
        blk_set_err(err, errlen, "%s: vmdk: a delta disk must be sparse", path);
        return -1;
    }
    int r = 0;
    if (!strcmp(sub, "monolithicSparse")) {
        char ext[1200];
        snprintf(ext, sizeof(ext), "RW %llu SPARSE \"%s\"", (unsigned long long)sectors, base_name(path));
        char *d = descriptor_text(sub, parent_cid, o->backing, ext, sectors);
        r = write_sparse(path, sectors, grain, d);
        free(d);
    } else {
        uint64_t per = split ? TWO_GB_EXTENT / 512 : sectors;
        size_t cap = 64 + (sectors / per + 1) * 1200;
        char *ext = xcalloc(1, cap);
        size_t used = 0;
        for (uint64_t at = 0, k = 1; at < sectors && r >= 0; at += per, k++) {
            uint64_t n = sectors - at < per ? sectors - at : per;
            char suffix[16];
            if (split)
                snprintf(suffix, sizeof(suffix), "%c%03llu", sparse ? 's' : 'f', (unsigned long long)k);
            else
                snprintf(suffix, sizeof(suffix), "flat");
            char *name = extent_name(path, suffix);
            r = sparse ? write_sparse(name, n, grain, NULL) : write_flat(name, n * 512);
            used += (size_t)snprintf(ext + used, cap - used, "RW %llu %s \"%s\"%s\n", (unsigned long long)n,
                                     sparse ? "SPARSE" : "FLAT", base_name(name), sparse ? "" : " 0");
            free(name);
        }
        if (r >= 0) {
            char *d = descriptor_text(sub, parent_cid, o->backing, ext, sectors);
            r = write_text(path, d);
            free(d);
        }
        free(ext);
    }
    if (r < 0) {
        blk_set_err(err, errlen, "%s: vmdk: %s", path, strerror(-r));
        return -1;
    }
    return 0;
}

const struct blk_format blk_fmt_vmdk = {
    .name = "vmdk",
    .probe = vmdk_probe,
    .open = vmdk_open,
    .close = vmdk_close,
    .map = vmdk_map,
    .read_special = vmdk_read_special,
    .write_new = vmdk_write_new,
    .flush = vmdk_flush,
    .check = vmdk_check,
    .create = vmdk_create,
};
